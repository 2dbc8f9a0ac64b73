"""Layers and containers against torch.nn: initialisation, values and gradients."""

import pytest
import torch

import autodiff as ad
import nn


def _leaf(t):
    return ad.Tensor(t.clone(), requires_grad=True)


def test_linear_init_matches_torch_global_rng_and_generator():
    torch.manual_seed(3)
    theirs = torch.nn.Linear(7, 5)
    torch.manual_seed(3)
    ours = nn.Linear(7, 5)
    assert torch.equal(ours.weight.data, theirs.weight.detach())
    assert torch.equal(ours.bias.data, theirs.bias.detach())
    a = nn.Linear(7, 5, generator=torch.Generator().manual_seed(1))
    b = nn.Linear(7, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.weight.data, b.weight.data) and torch.equal(a.bias.data, b.bias.data)
    assert a.weight.shape == (5, 7)
    assert float(a.weight.data.abs().max()) <= 7**-0.5
    assert nn.Linear(3, 2, bias=False).bias is None


def test_linear_forward_and_gradients_match_torch():
    torch.manual_seed(0)
    tl = torch.nn.Linear(4, 3, dtype=torch.float64)
    ours = nn.Linear(4, 3, dtype=torch.float64)
    ours.load_state_dict(tl.state_dict())
    x = torch.randn(6, 4, dtype=torch.float64)
    xt = x.clone().requires_grad_()
    xo = _leaf(x)
    g = torch.randn(6, 3, dtype=torch.float64)
    tl(xt).backward(g)
    y = ours(xo)
    assert y.grad_fn.name == "Linear"  # one fused node
    y.backward(g)
    assert torch.allclose(y.data, tl(x).detach())
    assert torch.allclose(xo.grad.data, xt.grad)
    assert torch.allclose(ours.weight.grad.data, tl.weight.grad)
    assert torch.allclose(ours.bias.grad.data, tl.bias.grad)


def test_linear_bad_input_names_shapes():
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(2, 4\)"):
        nn.Linear(4, 2)(ad.ones(5, 3))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)


ACTS = [
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.LeakyReLU(), torch.nn.LeakyReLU()),
    (nn.LeakyReLU(0.3), torch.nn.LeakyReLU(0.3)),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.SiLU(), torch.nn.SiLU()),
    (nn.Softplus(), torch.nn.Softplus()),
    (nn.Identity(), torch.nn.Identity()),
]


@pytest.mark.parametrize("ours,theirs", ACTS, ids=lambda m: repr(m))
def test_activations_match_torch(ours, theirs):
    x = torch.randn(5, 7, dtype=torch.float64) * 3
    g = torch.randn(5, 7, dtype=torch.float64)
    xt = x.clone().requires_grad_()
    yt = theirs(xt)
    yt.backward(g)
    xo = _leaf(x)
    yo = ours(xo)
    yo.backward(g)
    assert torch.allclose(yo.data, yt.detach())
    assert torch.allclose(xo.grad.data, xt.grad)


@pytest.mark.parametrize("cls", [nn.SiLU, nn.Softplus])
def test_fused_activations_gradcheck_and_second_order(cls):
    x = ad.Tensor(torch.randn(4, 3, dtype=torch.float64), requires_grad=True)
    assert ad.gradcheck(cls(), (x,))
    assert ad.gradgradcheck(cls(), (x,))


def test_dropout_training_eval_and_reproducible():
    x = ad.ones(2000, 10)
    d = nn.Dropout(0.25, generator=torch.Generator().manual_seed(0))
    y = d(x).data
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert abs(kept.float().mean().item() - 0.75) < 0.02
    d2 = nn.Dropout(0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(d2(x).data, y)
    d.eval()
    assert d(x) is x
    xg = ad.ones(3, 4, requires_grad=True)
    d.train()
    out = d(xg)
    out.sum().backward()
    assert torch.equal(xg.grad.data, out.data)  # gradient = mask / (1 - p)
    assert torch.equal(nn.Dropout(1.0)(x).data, torch.zeros(2000, 10))
    assert nn.Dropout(0.0)(x).data is x.data
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.5)


def test_sequential_container_protocol():
    a, b, c = nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)
    s = nn.Sequential(a, b)
    assert len(s) == 2 and s[0] is a and s[-1] is b and list(s) == [a, b]
    s.append(c)
    assert len(s) == 3 and s[2] is c
    assert [n for n, _ in s.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(nn.Sequential([a, b, c])) == [a, b, c]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    with pytest.raises(IndexError):
        s[3]
    with pytest.raises(TypeError):
        s.append("relu")
    x = ad.ones(4, 2)
    assert torch.allclose(s(x).data, c(b(a(x))).data)
