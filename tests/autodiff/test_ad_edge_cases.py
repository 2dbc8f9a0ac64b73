"""Fixed inputs at the awkward points (kinks, ties, zeros, infinities, empty tensors, odd
operands), where the subgradient or nan/inf conventions must be torch's."""

import pytest
import torch

import autodiff as ad
from ad_support import AD, TORCH, first_tensor

F64 = torch.float64


def t(*v, shape=None):
    x = torch.tensor(v, dtype=F64)
    return x.reshape(shape) if shape is not None else x


CASES = {
    "abs at 0": (lambda m, x: m.abs(x), [t(0.0, 1.0, -1.0)]),
    "relu at 0": (lambda m, x: m.relu(x), [t(0.0, 1.0, -1.0)]),
    "leaky_relu at 0": (lambda m, x: m.leaky_relu(x, 0.1), [t(0.0, 1.0, -1.0)]),
    "clamp at its bounds": (lambda m, x: m.clamp(x, -1.0, 1.0), [t(-1.0, 0.0, 1.0, 2.0)]),
    "amax ties share": (lambda m, x: x.amax(), [t(1.0, 3.0, 3.0, 2.0)]),
    "max ties share": (lambda m, x: x.max(), [t(1.0, 3.0, 3.0, 2.0)]),
    "max(dim) ties pick one": (lambda m, x: x.max(1), [t(3.0, 3.0, 1.0, 2.0, shape=(2, 2))]),
    "min(dim) ties pick one": (lambda m, x: x.min(0), [t(1.0, 1.0, 1.0, 2.0, shape=(2, 2))]),
    "maximum ties split": (lambda m, a, b: m.maximum(a, b), [t(0.0, 1.0), t(0.0, 2.0)]),
    "minimum ties split": (lambda m, a, b: m.minimum(a, b), [t(0.0, 1.0), t(0.0, 0.5)]),
    "0 ** b, b = 0": (lambda m, a, b: a**b, [t(0.0, 0.0, 2.0), t(2.0, 0.0, 1.0)]),
    "x ** 0.5 at 0": (lambda m, x: x**0.5, [t(0.0, 4.0)]),
    "x ** 0 at 0": (lambda m, x: x**0, [t(0.0, 4.0)]),
    "x ** 1 at 0": (lambda m, x: x**1, [t(0.0, 4.0)]),
    "0.0 ** x": (lambda m, x: 0.0**x, [t(1.0, 2.0)]),
    "negative base ** x": (lambda m, x: (-2.0) ** x, [t(1.0, 2.0)]),
    "sqrt at 0": (lambda m, x: x.sqrt(), [t(0.0, 4.0)]),
    "log at 0": (lambda m, x: x.log(), [t(0.0, 4.0)]),
    "var of one element": (lambda m, x: x.var(), [t(3.0)]),
    "std of a constant": (lambda m, x: x.std(), [t(3.0, 3.0)]),
    "std of a constant row": (lambda m, x: x.std(1), [t(3.0, 3.0, 1.0, 2.0, shape=(2, 2))]),
    "logsumexp with -inf": (lambda m, x: m.logsumexp(x, 0), [t(-float("inf"), 0.0)]),
    "softmax of huge logits": (lambda m, x: m.softmax(x, 0), [t(1000.0, 0.0, -1000.0)]),
    "log_softmax of huge logits": (lambda m, x: m.log_softmax(x, 0), [t(1000.0, 0.0, -1000.0)]),
    "sigmoid saturated": (lambda m, x: x.sigmoid(), [t(-800.0, 800.0)]),
    "tanh saturated": (lambda m, x: x.tanh(), [t(-800.0, 800.0)]),
    "where masks a nan branch": (lambda m, x: m.where(x > 0, x.log(), 0.0), [t(-1.0, 4.0)]),
    "sum of empty": (lambda m, x: x.sum(), [torch.zeros(0, dtype=F64)]),
    "mean of empty": (lambda m, x: x.mean(), [torch.zeros(0, dtype=F64)]),
    "cat with an empty": (lambda m, a, b: m.cat([a, b]), [torch.zeros(0, dtype=F64), t(1.0, 2.0)]),
    "sum(dtype=float32)": (lambda m, x: x.sum(dtype=torch.float32).double(), [t(1.0, 2.0)]),
    "int tensor operand": (lambda m, x: x * torch.tensor([1, 2, 3]), [t(1.0, 2.0, 3.0)]),
    "int tensor exponent": (lambda m, x: x ** torch.tensor(2), [t(1.0, -2.0, 3.0)]),
    "bool scalar": (lambda m, x: x + True, [t(1.0, 2.0)]),
    "int tensor on the left": (lambda m, x: torch.tensor([1, 2]) / x, [t(1.0, 2.0)]),
    "round trip through int": (lambda m, x: x.to(torch.int64).to(F64) * x, [t(1.5, -2.5)]),
    "list index with repeats": (lambda m, x: x[[0, 0, 2]], [t(1.0, 2.0, 3.0)]),
    "two index lists": (lambda m, x: x[[0, 1], [1, 1]], [t(*range(6), shape=(2, 3))]),
    "0-d index tensor": (lambda m, x: x[torch.tensor(1)], [t(*range(6), shape=(2, 3))]),
    "negative int index": (lambda m, x: x[-1, ..., None], [t(*range(6), shape=(2, 3))]),
    "squeeze a tuple of dims": (lambda m, x: x.squeeze((0, 2)), [t(1.0, 2.0, shape=(1, 2, 1))]),
    "flatten a 0-d tensor": (lambda m, x: x.flatten(), [t(3.0, shape=())]),
    "mean over dim 0 of 0-d": (lambda m, x: x.mean(0), [t(3.0, shape=())]),
    "dot product": (lambda m, a, b: a @ b, [t(1.0, 2.0), t(3.0, -1.0)]),
    "torch matrix @ Tensor": (lambda m, x: t(1.0, 2.0, 3.0, 4.0, shape=(2, 2)) @ x, [t(1.0, -1.0)]),
}


@pytest.mark.filterwarnings("ignore:var\\(\\).*degrees of freedom")  # torch warns for both
@pytest.mark.parametrize("name", list(CASES))
def test_edge_case_matches_torch(name):
    fn, xs = CASES[name]
    a_in = [ad.Tensor(x.clone(), requires_grad=True) for x in xs]
    t_in = [x.clone().requires_grad_(True) for x in xs]
    a_out, t_out = first_tensor(fn(AD, *a_in)), first_tensor(fn(TORCH, *t_in))
    torch.testing.assert_close(a_out.data, t_out.detach(), equal_nan=True)
    a_out.sum().backward()
    t_out.sum().backward()
    for a, x in zip(a_in, t_in):
        want = x.grad if x.grad is not None else torch.zeros_like(x)
        torch.testing.assert_close(a.grad.data, want, equal_nan=True)


def test_comparisons_sign_argmax_carry_no_gradient():
    x = ad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    tx = x.data.clone()
    for got, want in [
        (x > 0, tx > 0),
        (x <= 1.0, tx <= 1.0),
        (x == x, tx == tx),
        (x != 1.0, tx != 1.0),
        (x.sign(), tx.sign()),
        (x.argmax(), tx.argmax()),
        (ad.argmin(x), tx.argmin()),
        ((x > 0) & (x < 2), (tx > 0) & (tx < 2)),
    ]:
        assert not got.requires_grad and got.grad_fn is None
        assert torch.equal(got.data, want)
