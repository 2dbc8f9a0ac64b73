"""Reductions and linear at their corners, torch.autograd as the oracle: ``dim=()``, NaN and tied
extremes with finite and infinite upstream gradients, the indices ``max/min(dim)`` return (an
input of the node: changing them is refused), and ``linear`` with a 1-D weight, no output
features or a broadcast bias."""

import pytest
import torch

import autodiff as ad
from autodiff.errors import GraphError

F64 = torch.float64
NAN, INF = float("nan"), float("inf")


def _both(x: torch.Tensor):
    return ad.Tensor(x.clone(), requires_grad=True), x.clone().requires_grad_(True)


def _assert_same(a, t):
    # bit-for-bit where finite, NaN where torch has NaN
    torch.testing.assert_close(a, t, equal_nan=True, rtol=1e-12, atol=1e-12)


# ---- dim=() and dim=[] reduce over every dim, as in torch ----------------------------------------
@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "var", "std", "logsumexp"])
@pytest.mark.parametrize("dim", [(), []])
@pytest.mark.parametrize("keepdim", [False, True])
def test_empty_dim_list_reduces_over_all_dims(op, dim, keepdim):
    x = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    a, t = _both(x)
    y = getattr(a, op)(dim, keepdim=keepdim)
    # torch's var/std backward (and logsumexp's forward) mishandle dim=(): the oracle names
    # every dim instead, which torch defines as the same reduction
    want = getattr(t, op)((0, 1), keepdim=keepdim)
    if op in ("sum", "mean", "amax", "amin"):
        torch.testing.assert_close(getattr(t, op)(dim, keepdim=keepdim), want)
    assert y.shape == want.shape
    _assert_same(y.data, want.detach())
    g = torch.randn(want.shape, dtype=F64)
    y.backward(g.clone())
    want.backward(g)
    _assert_same(a.grad.data, t.grad)


def test_empty_dim_list_on_a_0d_tensor():
    a, t = _both(torch.tensor(2.5, dtype=F64))
    for op in ("sum", "mean", "amax", "amin"):
        y, want = getattr(a, op)(()), getattr(t, op)(())
        _assert_same(y.data, want.detach())
        y.backward()
        want.backward()
    _assert_same(a.grad.data, t.grad)


# ---- NaN and ties: the gradient goes where torch sends it ----------------------------------------
_CASES = {
    "nan": [[1.0, 3.0, 3.0], [NAN, 2.0, NAN]],
    "ties": [[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]],
    "inf": [[INF, 3.0, INF], [-INF, -INF, 0.0]],
    "one nan": [[0.0, NAN, 5.0], [1.0, 1.0, 1.0]],
}


@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("g", [2.0, -INF, INF, NAN])
def test_max_min_of_all_elements_follow_torch(case, op, g):
    # torch's evenly distributed gradient: to the NaNs when the result is NaN, else to the ties
    a, t = _both(torch.tensor(_CASES[case], dtype=F64))
    y, want = getattr(a, op)(), getattr(t, op)()
    _assert_same(y.data, want.detach())
    y.backward(torch.tensor(g, dtype=F64))
    want.backward(torch.tensor(g, dtype=F64))
    _assert_same(a.grad.data, t.grad)


@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize("op", ["amax", "amin"])
@pytest.mark.parametrize("dim", [0, 1, (0, 1), None])
@pytest.mark.parametrize("g", [2.0, INF])
def test_amax_amin_follow_torch_with_nan_ties_and_infinite_gradients(case, op, dim, g):
    a, t = _both(torch.tensor(_CASES[case], dtype=F64))
    args = () if dim is None else (dim,)
    y, want = getattr(a, op)(*args), getattr(t, op)(*args)
    _assert_same(y.data, want.detach())
    gg = torch.full(want.shape, g, dtype=F64)
    y.backward(gg.clone())
    want.backward(gg)
    _assert_same(a.grad.data, t.grad)


@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_a_dim_follow_torch(case, op, keepdim):
    a, t = _both(torch.tensor(_CASES[case], dtype=F64))
    for dim in (0, 1, -1):
        (av, ai), (tv, ti) = getattr(a, op)(dim, keepdim), getattr(t, op)(dim, keepdim)
        _assert_same(av.data, tv.detach())
        assert torch.equal(ai.data, ti)
        g = torch.full(tv.shape, INF, dtype=F64)  # the others get exactly 0, not inf * 0
        av.backward(g.clone())
        tv.backward(g)
    _assert_same(a.grad.data, t.grad)


# ---- the indices max/min(dim) return ------------------------------------------------------------
@pytest.mark.parametrize("op", ["max", "min"])
def test_changing_the_returned_indices_in_place_is_refused(op):
    x = ad.randn(3, 4, requires_grad=True)
    v, i = getattr(x, op)(1)
    i += 1
    with pytest.raises(GraphError, match="modified by an inplace operation|in-place operation"):
        v.sum().backward()


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_along_a_dim_return_torch_named_tuples(op):
    x = ad.randn(3, 4)
    r, tr = getattr(x, op)(dim=0), getattr(x.data, op)(dim=0)
    assert type(r).__name__ == type(tr).__name__ == op
    assert r._fields == ("values", "indices")
    values, indices = r
    assert values is r.values and indices is r.indices
    assert torch.equal(r.values.data, tr.values) and torch.equal(r.indices.data, tr.indices)
    assert f"{op}(values=" in repr(r)


def test_max_along_the_dim_of_a_0d_tensor():
    a, t = _both(torch.tensor(1.5, dtype=F64))
    (av, ai), (tv, ti) = a.max(0), t.max(0)
    assert av.shape == tv.shape and torch.equal(ai.data, ti)
    av.backward()
    tv.backward()
    _assert_same(a.grad.data, t.grad)


# ---- linear -------------------------------------------------------------------------------------
def _linear_vs_torch(x, w, b=None, create_graph=False):
    ins = [v for v in (x, w, b) if v is not None]
    a_in = [ad.Tensor(v.clone(), requires_grad=True) for v in ins]
    t_in = [v.clone().requires_grad_(True) for v in ins]
    y = ad.linear(*a_in)
    want = torch.nn.functional.linear(*t_in)
    assert y.shape == want.shape
    _assert_same(y.data, want.detach())
    g = torch.randn(want.shape, dtype=F64)
    a_g = ad.grad(y, a_in, g.clone(), create_graph=create_graph)
    t_g = torch.autograd.grad(want, t_in, g, create_graph=create_graph)
    for a, t in zip(a_g, t_g):
        assert a.shape == t.shape
        _assert_same(a.data, t.detach())
    return a_in, a_g, t_in, t_g


@pytest.mark.parametrize("x_shape", [(3,), (4, 3), (2, 4, 3)])
def test_linear_with_a_1d_weight(x_shape):
    x, w = torch.randn(*x_shape, dtype=F64), torch.randn(3, dtype=F64)
    _linear_vs_torch(x, w)


@pytest.mark.parametrize("x_shape", [(3,), (4, 3), (0, 3)])
def test_linear_with_no_output_features(x_shape):
    x = torch.randn(*x_shape, dtype=F64)
    _linear_vs_torch(x, torch.randn(0, 3, dtype=F64))
    _linear_vs_torch(x, torch.randn(0, 3, dtype=F64), torch.randn(0, dtype=F64))


@pytest.mark.parametrize("b_shape", [(1,), (), (1, 2), (4, 2)])
def test_linear_bias_broadcasts_as_in_torch(b_shape):
    x, w = torch.randn(4, 3, dtype=F64), torch.randn(2, 3, dtype=F64)
    b = torch.randn(b_shape, dtype=F64)
    _linear_vs_torch(x, w, b)
    _linear_vs_torch(x.unsqueeze(0), w, b)  # batched input: the slow path


def test_linear_1d_weight_second_order_matches_torch():
    x, w = torch.randn(4, 3, dtype=F64), torch.randn(3, dtype=F64)
    a_in, a_g, t_in, t_g = _linear_vs_torch(x, w, create_graph=True)
    u = [torch.randn(v.shape, dtype=F64) for v in t_g]
    a_s = sum((g * ui).sum() for g, ui in zip(a_g, u))
    t_s = sum((g * ui).sum() for g, ui in zip(t_g, u))
    for a, t in zip(ad.grad(a_s, a_in), torch.autograd.grad(t_s, t_in)):
        _assert_same(a.data, t)


def test_linear_refuses_what_torch_refuses():
    with pytest.raises(ad.ShapeError, match=r"linear: input \(4, 3\) does not fit weight \(2, 5\)"):
        ad.linear(ad.randn(4, 3), ad.randn(2, 5))
    with pytest.raises(ad.ShapeError, match=r"bias \(3,\)"):
        ad.linear(ad.randn(4, 3), ad.randn(2, 3), ad.randn(3))
    with pytest.raises(ad.ShapeError, match=r"bias \(1,\)"):
        ad.linear(ad.randn(4, 3), ad.randn(3), ad.randn(1))  # torch: no bias with a 1-D weight
