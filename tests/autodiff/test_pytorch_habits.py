"""PyTorch habits a new user brings (issue 11's list), each working as it does in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import autodiff as ad
import nn

F64 = torch.float64


def _pair(values: list | torch.Tensor) -> tuple[ad.Tensor, torch.Tensor]:
    t = torch.as_tensor(values, dtype=F64)
    return ad.Tensor(t.clone(), requires_grad=True), t.clone().requires_grad_(True)


def _same_values_and_grads(fn, values, seed: int = 0) -> None:
    """fn(x) on an autodiff and a torch leaf: equal outputs, and equal gradients of a random
    weighting of every output (tuples: every piece)."""
    a, t = _pair(values)
    outs_a, outs_t = fn(a), fn(t)
    outs_a = outs_a if isinstance(outs_a, tuple) else (outs_a,)
    outs_t = outs_t if isinstance(outs_t, tuple) else (outs_t,)
    assert len(outs_a) == len(outs_t)
    gen = torch.Generator().manual_seed(seed)
    la, lt = 0.0, 0.0
    for oa, ot in zip(outs_a, outs_t):
        assert isinstance(oa, ad.Tensor)
        torch.testing.assert_close(oa.data, ot.detach(), rtol=1e-12, atol=1e-12)
        if ot.requires_grad:
            w = torch.randn(ot.shape, generator=gen, dtype=F64)
            la, lt = la + (oa * w).sum(), lt + (ot * w).sum()
    la.backward()
    lt.backward()
    torch.testing.assert_close(a.grad.data, t.grad, rtol=1e-12, atol=1e-12)


# ---- torch functions on autodiff tensors -------------------------------------------------------
def test_torch_exp_is_recorded_and_differentiable():
    x = ad.tensor([0.5, -1.0], requires_grad=True)
    y = torch.exp(x)
    assert isinstance(y, ad.Tensor) and y.grad_fn is not None
    y.sum().backward()
    torch.testing.assert_close(x.grad.data, torch.exp(x.data))


def test_torch_allclose_on_a_gradient():
    a = ad.tensor([1.0, 2.0], requires_grad=True)
    a.sum().backward()
    assert torch.allclose(a.grad, torch.ones(2))
    assert not torch.allclose(a.grad, torch.zeros(2))


def test_functional_relu_on_an_autodiff_tensor():
    x = ad.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = F.relu(x)
    assert y.grad_fn is not None and y.grad_fn.name == "ReLU"
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0]


def test_sgd_step_on_data_in_place():
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    (p * p).sum().backward()
    data = p.data
    lr = 0.1
    p.data -= lr * p.grad
    assert p.data is data  # updated in place, as torch does
    torch.testing.assert_close(p.data, torch.tensor([0.8, -1.6]))


def test_torch_norm_dispatches_to_tapegrad_norm():
    _same_values_and_grads(lambda x: torch.norm(x), [[3.0, -4.0], [1.0, 2.0]])
    x = ad.tensor([3.0, 4.0], requires_grad=True)
    assert torch.norm(x).grad_fn.name == "Norm"
    _same_values_and_grads(lambda x: torch.norm(x, p=1, dim=0), [[3.0, -4.0], [1.0, 2.0]])


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode, ad.no_grad])
def test_evaluation_under_no_grad_records_nothing(mode):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    x = ad.randn(4, 2)
    with mode():
        out = model(x)
    assert out.grad_fn is None and not out.requires_grad
    assert model(x).grad_fn is not None  # recording resumes after the block


# ---- the everyday calls, as methods and as torch functions ---------------------------------
M = [[1.5, -2.0, 0.5], [3.0, 0.25, -1.0]]
CALLS = {
    "t": (lambda x: x.t(), M),
    "square": (lambda x: x.square(), M),
    "norm": (lambda x: x.norm(), M),
    "norm_p1_dim": (lambda x: x.norm(p=1, dim=1, keepdim=True), M),
    "norm_inf": (lambda x: x.norm(float("inf")), M),
    "mm": (lambda x: x.mm(x.t()), M),
    "dot": (lambda x: x[0].dot(x[1]), M),
    "repeat": (lambda x: x.repeat(2, 1, 3), M),
    "split_int": (lambda x: x.split(2, dim=1), M),
    "split_list": (lambda x: x.split([1, 2], 1), M),
    "chunk": (lambda x: x.chunk(2, dim=1), M),
    "prod": (lambda x: x.prod(), M),
    "prod_dim": (lambda x: x.prod(dim=1), M),
    "cumsum": (lambda x: x.cumsum(dim=1), M),
    "masked_fill": (lambda x: x.masked_fill(x > 1, 0.0), M),
    "gather": (lambda x: x.gather(1, torch.tensor([[2, 0], [1, 1]])), M),
    "mean_axis": (lambda x: x.mean(axis=1), M),
    "sum_axis": (lambda x: x.sum(axis=0), M),
    "min_dim": (lambda x: x.min(dim=0).values, M),
    "type_convert": (lambda x: x.type(torch.float32).sum().double(), M),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_method_matches_torch(name):
    fn, values = CALLS[name]
    _same_values_and_grads(fn, values)


TORCH_FNS = {
    "t": lambda x: torch.t(x),
    "square": lambda x: torch.square(x),
    "prod": lambda x: torch.prod(x, 1),
    "cumsum": lambda x: torch.cumsum(x, dim=0),
    "split": lambda x: torch.split(x, [2, 1], dim=1),
    "chunk": lambda x: torch.chunk(x, 3, dim=1),
    "mm": lambda x: torch.mm(x, x.t()),
    "dot": lambda x: torch.dot(x[0], x[1]),
    "masked_fill": lambda x: torch.masked_fill(x, x < 0, -1.0),
    "gather": lambda x: torch.gather(x, 0, torch.tensor([[1, 0, 1]])),
    "flip": lambda x: torch.flip(x, [1]),
    "mean_axis": lambda x: torch.mean(x, axis=1),
}


@pytest.mark.parametrize("name", list(TORCH_FNS))
def test_torch_function_matches_torch(name):
    _same_values_and_grads(TORCH_FNS[name], M)


def test_all_and_any():
    x = ad.tensor([[1.0, 0.0], [2.0, 3.0]], requires_grad=True)
    t = x.data
    for got, want in [
        (x.all(), t.all()),
        (x.any(), t.any()),
        (x.all(dim=1), t.all(dim=1)),
        (x.any(0, keepdim=True), t.any(0, keepdim=True)),
        (torch.all(x), t.all()),
    ]:
        assert got.dtype == torch.bool and not got.requires_grad
        assert torch.equal(got.data, want)


def test_type_names_like_torch():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    assert x.type() == torch.tensor([1.0]).type() == "torch.FloatTensor"
    y = x.type("torch.DoubleTensor")
    assert y.dtype == F64 and y.type() == "torch.DoubleTensor" and y.grad_fn is not None
    y.sum().backward()
    assert x.grad.dtype == torch.float32 and x.grad.tolist() == [1.0, 1.0]


def test_new_tensors_take_dtype_and_device_and_need_no_grad():
    x = ad.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    for made, want in [
        (x.new_zeros(2, 3), torch.zeros(2, 3, dtype=F64)),
        (x.new_ones((2,)), torch.ones(2, dtype=F64)),
        (x.new_full((2,), 7.0), torch.full((2,), 7.0, dtype=F64)),
        (x.new_tensor([1, 2]), torch.tensor([1.0, 2.0], dtype=F64)),
    ]:
        assert isinstance(made, ad.Tensor) and not made.requires_grad and made.grad_fn is None
        assert torch.equal(made.data, want)
    assert x.new_zeros(2, dtype=torch.int64).dtype == torch.int64
    assert x.new_zeros(2, requires_grad=True).requires_grad


def test_min_dim_returns_torch_named_tuple():
    x = ad.tensor([[3.0, 1.0], [2.0, 5.0]], requires_grad=True)
    r, want = x.min(dim=0), torch.min(x.data, dim=0)
    assert type(r).__name__ == type(want).__name__ == "min"
    values, indices = r
    assert torch.equal(values.data, want.values) and torch.equal(indices.data, want.indices)
    assert type(x.max(1)).__name__ == "max"


def test_from_numpy_shares_memory():
    a = np.array([1.0, 2.0])
    x = ad.from_numpy(a)
    assert isinstance(x, ad.Tensor) and x.dtype == F64 and not x.requires_grad
    a[0] = 5.0
    x.data[1] = 7.0
    assert x.tolist() == [5.0, 7.0] and a.tolist() == [5.0, 7.0]


def test_manual_seed_reproduces_random_factories_and_init():
    g = ad.manual_seed(3)
    assert isinstance(g, torch.Generator)
    first = (ad.randn(4).data, nn.Linear(3, 2).weight.data.clone())
    ad.manual_seed(3)
    again = (ad.randn(4).data, nn.Linear(3, 2).weight.data.clone())
    torch.manual_seed(3)
    with_torch = torch.randn(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert torch.equal(first[0], with_torch)


def _net(mods):
    class Net(mods.Module):
        def __init__(self):
            super().__init__()
            self.layers = mods.ModuleList([mods.Linear(2, 3), mods.Linear(3, 1)])
            self.heads = mods.ModuleDict({"a": mods.Linear(1, 1), "b": mods.Linear(1, 2)})

    return Net()


def test_module_list_and_dict_register_like_torch():
    ours, theirs = _net(nn), _net(torch.nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for m in (ours, theirs):
        m.layers.insert(0, type(m.layers[0])(2, 2))
        m.layers.append(type(m.layers[0])(1, 1))
        del m.layers[1]
        m.heads["c"] = type(m.layers[0])(2, 2)
        m.heads.pop("a")
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert len(ours.layers) == 3 and list(ours.heads) == ["b", "c"] and "b" in ours.heads


def test_clip_grad_norm_returns_total_and_scales_in_place():
    p = nn.Parameter(torch.tensor([3.0, 4.0]))
    (p * p).sum().backward()  # grad (6, 8), norm 10
    g = p.grad
    total = nn.utils.clip_grad_norm_([p], max_norm=1.0)
    assert p.grad is g and float(total) == pytest.approx(10.0)
    torch.testing.assert_close(p.grad.data, torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)
