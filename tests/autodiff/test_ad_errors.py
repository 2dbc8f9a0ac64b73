"""Bad input fails at the forward call, with a message naming the op and the shapes/dtypes/dims.

Every ``pytest.raises`` block holds only the offending call: an error deferred to backward()
would escape it and fail the test.
"""

import re

import pytest
import torch

import autodiff as ad

F32, F64 = torch.float32, torch.float64


def leaf(*shape, dtype=F32):
    return ad.randn(*shape, dtype=dtype, requires_grad=True)


@pytest.mark.parametrize(
    "name, op",
    [
        ("add", lambda a, b: a + b),
        ("sub", lambda a, b: a - b),
        ("mul", lambda a, b: a * b),
        ("div", lambda a, b: a / b),
        ("pow", lambda a, b: a**b),
        ("maximum", ad.maximum),
        ("minimum", ad.minimum),
        ("where", lambda a, b: ad.where(torch.ones(2, 3, dtype=torch.bool), a, b)),
    ],
)
def test_broadcast_mismatch_names_op_and_both_shapes(name, op):
    a, b = leaf(2, 3), leaf(4, 3)
    with pytest.raises(ad.ShapeError) as e:
        op(a, b)
    msg = str(e.value)
    assert msg.startswith(name) and "(2, 3)" in msg and "(4, 3)" in msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, RuntimeError)


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(ad.ShapeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        leaf(2, 3) @ leaf(4, 5)
    with pytest.raises(ad.ShapeError, match=r"matmul.*\(2, 2, 3\).*\(3, 3, 4\)"):
        leaf(2, 2, 3) @ leaf(3, 3, 4)
    with pytest.raises(ad.ShapeError, match=r"matmul.*\(\).*\(3,\)"):
        ad.matmul(ad.tensor(1.0, requires_grad=True), leaf(3))


def test_linear_mismatch_names_input_and_weight():
    with pytest.raises(ad.ShapeError, match=r"linear.*\(2, 3\).*\(5, 4\)"):
        ad.linear(leaf(2, 3), leaf(5, 4))
    with pytest.raises(ad.ShapeError, match=r"linear.*bias \(4,\)"):
        ad.linear(leaf(2, 3), leaf(5, 3), leaf(4))


@pytest.mark.parametrize(
    "make",
    [
        lambda a, b: a + b,
        lambda a, b: a * b,
        lambda a, b: a @ b.mT,
        lambda a, b: ad.linear(a, b),
        lambda a, b: ad.cat([a, b]),
        lambda a, b: ad.stack([a, b]),
        lambda a, b: ad.maximum(a, b),
        lambda a, b: ad.where(a.data > 0, a, b),
    ],
)
def test_mixed_float_dtypes_raise_naming_both(make):
    a, b = leaf(2, 3, dtype=F32), leaf(2, 3, dtype=F64)
    with pytest.raises(ad.DTypeError) as e:
        make(a, b)
    assert "torch.float32" in str(e.value) and "torch.float64" in str(e.value)
    assert isinstance(e.value, TypeError)


def test_backward_on_non_scalar_says_what_to_pass():
    y = leaf(2, 3) * 2
    with pytest.raises(ad.GraphError, match=r"\(2, 3\).*grad=") as e:
        y.backward()
    assert "scalar" in str(e.value)
    with pytest.raises(ad.ShapeError, match=r"\(2,\).*\(2, 3\)"):
        y.backward(torch.ones(2))


def test_backward_without_graph_explains():
    for t in (ad.randn(3).sum(), leaf(3).detach().sum()):
        with pytest.raises(ad.GraphError, match="does not require grad"):
            t.backward()
    with ad.no_grad():
        t = (leaf(3) * 2).sum()
    with pytest.raises(ad.GraphError, match="no_grad"):
        t.backward()


@pytest.mark.parametrize(
    "call, dim",
    [
        (lambda x: x.sum(5), 5),
        (lambda x: x.sum((0, 3)), 3),
        (lambda x: x.mean(-4), -4),
        (lambda x: x.amax(2), 2),
        (lambda x: x.max(-3), -3),
        (lambda x: x.var(4), 4),
        (lambda x: x.std(7), 7),
        (lambda x: x.logsumexp(3), 3),
        (lambda x: x.softmax(2), 2),
        (lambda x: x.log_softmax(-3), -3),
        (lambda x: x.transpose(0, 2), 2),
        (lambda x: x.unsqueeze(4), 4),
        (lambda x: x.squeeze(5), 5),
        (lambda x: x.flatten(0, 6), 6),
    ],
)
def test_bad_dim_names_the_dim(call, dim):
    x = leaf(2, 3)
    with pytest.raises(IndexError) as e:
        call(x)
    assert re.search(rf"(?<![\d-]){dim}(?!\d)", str(e.value)), str(e.value)
    assert "(2, 3)" in str(e.value) or "2 dims" in str(e.value)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda x: x.reshape(4, 2), ["reshape", "(2, 3)"]),
        (lambda x: x.view(5), ["view", "(2, 3)"]),
        (lambda x: x.expand(3, 3), ["expand", "(2, 3)", "(3, 3)"]),
        (lambda x: x.sum_to_size(5), ["sum_to_size", "(2, 3)", "(5,)"]),
        (lambda x: ad.cat([x, leaf(3, 2)]), ["cat", "(2, 3)", "(3, 2)"]),
        (lambda x: ad.stack([x, leaf(3, 2)]), ["stack", "(2, 3)", "(3, 2)"]),
        (lambda x: x.permute(0, 0), ["permute", "(2, 3)"]),
    ],
)
def test_shape_op_errors_name_op_and_shapes(call, words):
    with pytest.raises(ad.ShapeError if words[0] != "permute" else ValueError) as e:
        call(leaf(2, 3))
    for w in words:
        assert w in str(e.value)


def test_index_out_of_range_names_shape():
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        leaf(2, 3)[5]


def test_errors_leave_no_partial_graph():
    # a failed forward must not leave a node behind that a later backward would trip over
    x = leaf(2, 3)
    with pytest.raises(ad.ShapeError):
        x + leaf(4, 3)
    (x * 2).sum().backward()
    torch.testing.assert_close(x.grad.data, torch.full((2, 3), 2.0))
