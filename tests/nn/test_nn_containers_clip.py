"""nn.ModuleList, nn.ModuleDict and nn.utils.clip_grad_* against torch's."""

from __future__ import annotations

import math

import pytest
import torch

import autodiff as ad
import nn


def test_module_list_indexing_slicing_and_misuse():
    layers = nn.ModuleList([nn.Linear(1, 1), nn.Tanh(), nn.Linear(1, 2)])
    assert isinstance(layers[-1], nn.Linear) and layers[-1].out_features == 2
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 2
    layers += [nn.ReLU()]
    layers.extend(nn.ModuleList([nn.Sigmoid()]))
    assert [type(m).__name__ for m in layers] == ["Linear", "Tanh", "Linear", "ReLU", "Sigmoid"]
    layers[1] = nn.Identity()
    assert type(layers[1]).__name__ == "Identity" and list(layers._modules)[1] == "1"
    del layers[0:2]
    assert list(layers._modules) == ["0", "1", "2"] and not hasattr(layers, "3")
    with pytest.raises(IndexError, match="ModuleList index 5 is out of range for 3"):
        layers[5]
    with pytest.raises(TypeError, match="is not an nn.Module"):
        layers.append(ad.randn(2))
    with pytest.raises(NotImplementedError):
        layers(ad.randn(1))


def test_module_dict_mapping_protocol_and_misuse():
    heads = nn.ModuleDict([("x", nn.Linear(2, 1)), ("y", nn.Linear(2, 3))])
    heads.update({"z": nn.Tanh()})
    assert list(heads.keys()) == ["x", "y", "z"] and len(heads) == 3
    assert [k for k, _ in heads.items()] == list(heads) and "z" in heads
    assert [n for n, _ in heads.named_parameters()] == ["x.weight", "x.bias", "y.weight", "y.bias"]
    del heads["x"]
    with pytest.raises(KeyError, match="ModuleDict has no module 'x'"):
        heads["x"]
    with pytest.raises(TypeError, match="keys must be strings"):
        heads[1] = nn.Tanh()
    heads.clear()
    assert len(heads) == 0 and list(heads.parameters()) == []


def test_parameters_of_containers_reach_the_optimizer():
    net = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(net.parameters())) == 6
    opt = nn.optim.SGD(net.parameters(), lr=0.1)
    x = ad.randn(4, 2)
    for m in net:
        x = m(x)
    x.sum().backward()
    before = net[0].weight.data.clone()
    opt.step()
    assert not torch.equal(before, net[0].weight.data)


def _grads_pair(seed: int, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(s, generator=gen, dtype=torch.float64) * scale for s in [(3, 2), (4,), ()]]
    ours = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad = g.clone()
        q.grad = g.clone()
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _grads_pair(0)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, ad.Tensor)
    torch.testing.assert_close(total.data, want)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.grad.data, q.grad)


def test_clip_grad_norm_single_tensor_no_grads_and_nonfinite():
    ours, _ = _grads_pair(1)
    g = ours[0].grad
    nn.utils.clip_grad_norm_(ours[0], 0.1)
    assert ours[0].grad is g  # in place
    assert float(nn.utils.clip_grad_norm_([nn.Parameter(torch.zeros(2))], 1.0)) == 0.0
    ours[1].grad.data[0] = math.inf
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_matches_torch():
    ours, theirs = _grads_pair(2, scale=3.0)
    assert nn.utils.clip_grad_value_(ours, 1.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.grad.data, q.grad)
