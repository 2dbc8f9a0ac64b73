"""Second derivatives: gradgradcheck, and torch's double backward as the oracle."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from ad_op_table import OPS
from ad_support import AD, TORCH, ad_leaves, double_backward_against_torch, first_tensor, generators

SECOND = [op for op in OPS if op.second]
_ids = [op.name for op in SECOND]
# gradgradcheck differentiates a whole backward pass per input element: half the examples
_fewer = settings(max_examples=max(1, settings.default.max_examples // 2))


@pytest.mark.parametrize("op", SECOND, ids=_ids)
@_fewer
@given(data=st.data())
def test_gradgradcheck(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    inputs = ad_leaves(xs)
    assert ad.gradgradcheck(lambda *a: first_tensor(op.fn(AD, *a, **kw)), inputs)


@pytest.mark.parametrize("op", SECOND, ids=_ids)
@_fewer
@given(data=st.data())
def test_double_backward_matches_torch(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    double_backward_against_torch(op.fn, xs, data.draw(generators(), label="seed"), **kw)


def _objective(ns, x, w):
    h = ns.linear(x, w).tanh()
    return (h * h).sum() + (x**3).sum() + x.softmax(-1).log().mean() + x.var()


def test_hessian_vector_product_matches_torch():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(5, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    v = torch.randn(5, generator=gen, dtype=torch.float64)
    x = ad.Tensor(x0.clone(), requires_grad=True)
    (g,) = ad.grad(_objective(AD, x, ad.Tensor(w)), x, create_graph=True)
    (hv,) = ad.grad(g, x, v)
    _, want = torch.autograd.functional.hvp(lambda t: _objective(TORCH, t, w), x0, v)
    torch.testing.assert_close(hv.data, want)
    hess = torch.autograd.functional.hessian(lambda t: _objective(TORCH, t, w), x0)
    torch.testing.assert_close(hv.data, hess @ v)
    # Hessian-vector products of a dot product with v are also first derivatives of <g, v>
    x2 = ad.Tensor(x0.clone(), requires_grad=True)
    (g2,) = ad.grad(_objective(AD, x2, ad.Tensor(w)), x2, create_graph=True)
    (g2 * ad.Tensor(v)).sum().backward()
    torch.testing.assert_close(x2.grad.data, want)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_backward_create_graph_gradient_penalty_matches_torch():
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    w0 = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    x, w = ad.Tensor(x0.clone(), requires_grad=True), ad.Tensor(w0.clone(), requires_grad=True)
    tx, tw = x0.clone().requires_grad_(), w0.clone().requires_grad_()
    for ns, a, b in ((AD, x, w), (TORCH, tx, tw)):
        ns.linear(a, b).sigmoid().sum().backward(create_graph=True)
        (a.grad**2).sum().backward()  # accumulates d|grad|²/dx onto the first-order grad
    torch.testing.assert_close(x.grad.data, tx.grad.detach())
    torch.testing.assert_close(w.grad.data, tw.grad.detach())
