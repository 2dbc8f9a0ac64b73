"""nn.Module: registration, traversal, modes, state_dict, to(), repr, scopes for viz."""

import pytest
import torch

import autodiff as ad
import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        self.scale = nn.Parameter(torch.ones(1))
        self.note = "not registered"

    def forward(self, x):
        return self.layers(x) * self.scale


def test_registration_and_dotted_names():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == [
        "scale",
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    ]
    assert [n for n, _ in m.named_modules()] == ["", "layers", "layers.0", "layers.1", "layers.2"]
    assert list(m.children()) == [m.layers]
    assert len(list(m.modules())) == 5
    assert all(
        isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf for p in m.parameters()
    )
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]


def test_shared_parameters_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.Tanh(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_assignment_rules():
    m = Block()
    m.scale = None
    assert [n for n, _ in m.named_parameters()][0] == "layers.0.weight"
    with pytest.raises(TypeError, match="child module 'layers'.*nn.Module or None"):
        m.layers = 3
    m2 = Block()
    with pytest.raises(TypeError, match="parameter 'scale'"):
        m2.scale = ad.ones(1)
    del m2.layers
    assert [n for n, _ in m2.named_parameters()] == ["scale"]

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(torch.ones(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Forgot()


def test_missing_forward():
    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="NoForward"):
        NoForward()(ad.ones(1))


def test_zero_grad_sets_none_and_train_eval():
    m = Block()
    m(ad.ones(4, 2)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.eval()
    assert not m.training and not m.layers[0].training
    m.train()
    assert m.training and m.layers[2].training
    with pytest.raises(ValueError):
        m.train("yes")


def test_state_dict_roundtrip_and_torch_compatibility():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    sd = m.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(type(v) is torch.Tensor for v in sd.values())
    tm = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    tm.load_state_dict(sd)
    m2 = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    result = m2.load_state_dict(tm.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = torch.rand(5, 2)
    assert torch.allclose(m2(x).data, tm(x).detach())


def test_load_state_dict_errors_leave_model_unchanged():
    m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    bad = {k: torch.zeros_like(v) for k, v in before.items()}
    bad["1.weight"] = torch.zeros(2, 3)  # wrong shape; other keys would load
    with pytest.raises(RuntimeError, match=r"size mismatch for '1.weight'.*\(2, 3\).*\(1, 3\)"):
        m.load_state_dict(bad)
    missing = {k: torch.zeros_like(v) for k, v in before.items() if k != "0.bias"}
    missing["extra"] = torch.zeros(1)
    with pytest.raises(
        RuntimeError, match=r"missing keys: \['0.bias'\][\s\S]*unexpected keys: \['extra'\]"
    ):
        m.load_state_dict(missing)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
    res = m.load_state_dict(missing, strict=False)
    assert res.missing_keys == ["0.bias"] and res.unexpected_keys == ["extra"]
    assert torch.equal(m.state_dict()["0.bias"], before["0.bias"])
    assert torch.equal(m.state_dict()["0.weight"], torch.zeros(3, 2))
    with pytest.raises(TypeError):
        m.load_state_dict([1, 2])


def test_to_dtype_keeps_parameter_identity():
    m = nn.Sequential(nn.Linear(2, 3))
    p = m[0].weight
    m(ad.ones(1, 2)).sum().backward()
    assert m.double() is m
    assert m[0].weight is p and p.dtype == torch.float64 and p.grad.dtype == torch.float64
    assert m(ad.ones(1, 2, dtype=torch.float64)).dtype == torch.float64


def test_repr_matches_torch():
    ours = nn.Sequential(
        nn.Linear(2, 25), nn.ReLU(), nn.LeakyReLU(0.2), nn.Linear(25, 1, bias=False)
    )
    theirs = torch.nn.Sequential(
        torch.nn.Linear(2, 25),
        torch.nn.ReLU(),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Linear(25, 1, bias=False),
    )
    assert repr(ours) == repr(theirs)
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1)"
    assert repr(nn.Parameter(torch.ones(1))).startswith(
        "Parameter containing:\ntensor([1.], requires_grad=True)"
    )


def test_call_sets_module_scope_on_nodes_and_restores_it():
    m = Block()
    out = m(ad.ones(4, 2))
    node = out.grad_fn  # the multiplication by scale, recorded in Block's forward
    assert node.scope[0] is m and node.scope[1] is None
    linear_node = node.inputs[0]
    assert linear_node.name == "Linear"
    assert linear_node.scope[0] is m.layers[2] and linear_node.scope[1][0] is m.layers
    assert linear_node.scope[1][1][0] is m
    from autodiff.grad_mode import state

    assert state.scope is None

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Boom()(ad.ones(1))
    assert state.scope is None


def test_apply_and_requires_grad_():
    m = Block()
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Block" and seen.count("Linear") == 2
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
