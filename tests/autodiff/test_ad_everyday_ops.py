"""Corners of the everyday ops (issue 11): prod at zeros, norms at 0, cumsum over size-0 dims,
uneven splits, version-checked masks and indices, and the errors that name the call."""

from __future__ import annotations

import pytest
import torch

import autodiff as ad
from ad_support import double_backward_against_torch

F64 = torch.float64


def _first_order(fn, x0: torch.Tensor, v: torch.Tensor | None = None) -> None:
    a, t = ad.Tensor(x0.clone(), requires_grad=True), x0.clone().requires_grad_(True)
    ya, yt = fn(a), fn(t)
    torch.testing.assert_close(ya.data, yt.detach(), rtol=0, atol=0, equal_nan=True)
    v = torch.ones_like(yt) if v is None else v
    ya.backward(v.clone())
    yt.backward(v.clone())
    if t.grad is None:  # torch: no gradient at all (norm p = 0)
        assert a.grad is None
        return
    torch.testing.assert_close(a.grad.data, t.grad, rtol=1e-15, atol=0, equal_nan=True)


ZEROS = {
    "one_zero": [[2.0, 0.0, 3.0], [1.5, -2.0, 4.0]],
    "two_zeros_in_a_row": [[0.0, 0.0, 3.0], [1.5, 0.0, 4.0]],
    "all_zero": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
}


@pytest.mark.parametrize("case", list(ZEROS))
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_prod_with_zeros_first_and_second_order(case, dim):
    x0 = torch.tensor(ZEROS[case], dtype=F64)
    fn = (lambda m, x: x.prod()) if dim is None else (lambda m, x: x.prod(dim))
    _first_order(lambda x: fn(None, x), x0)
    double_backward_against_torch(fn, [x0], torch.Generator().manual_seed(0))


def test_prod_lone_zero_gets_the_product_of_the_others():
    x = ad.tensor([2.0, 0.0, 3.0, -1.0], requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, -6.0, 0.0, 0.0]


@pytest.mark.parametrize("p", [2, "fro", 1, 3, 1.5, 0.5, 0, float("inf"), float("-inf")])
def test_norm_of_a_zero_vector_has_torchs_gradient(p):
    """At x = 0 torch gives 0 for p = 2 (by selection, not 0/0 = nan) and its own values else."""
    x0 = torch.zeros(2, 3, dtype=F64)
    _first_order(lambda x: x.norm(p), x0)
    _first_order(lambda x: x.norm(p, dim=1), x0)
    a = ad.Tensor(x0.clone(), requires_grad=True)
    a.norm(p).backward()
    if p in (2, "fro"):
        assert torch.equal(a.grad.data, torch.zeros(2, 3, dtype=F64))


def test_norm_with_a_zero_row_and_ties():
    x0 = torch.tensor([[0.0, 0.0], [3.0, -3.0], [1.0, 2.0]], dtype=F64)
    for p in (2, 1, 3, float("inf")):
        _first_order(lambda x, p=p: x.norm(p, dim=1, keepdim=True), x0)


@pytest.mark.parametrize("shape,dim", [((0, 3), 0), ((0, 3), 1), ((2, 0), 1), ((0,), 0)])
def test_cumsum_over_size_zero_dims(shape, dim):
    _first_order(lambda x: x.cumsum(dim), torch.randn(shape, dtype=F64))


def test_cumsum_of_a_0d_tensor():
    _first_order(lambda x: x.cumsum(0), torch.tensor(2.5, dtype=F64))


@pytest.mark.parametrize(
    "how",
    [
        lambda x: x.split(2),
        lambda x: x.split([1, 0, 4]),
        lambda x: x.chunk(3),
        lambda x: x.chunk(4),
        lambda x: x.split(7),
        lambda x: x.chunk(9),
    ],
)
def test_uneven_splits_and_chunks_match_torch(how):
    x0 = torch.randn(5, 2, dtype=F64)
    a, t = ad.Tensor(x0.clone(), requires_grad=True), x0.clone().requires_grad_(True)
    pa, pt = how(a), how(t)
    assert isinstance(pa, tuple) and [p.shape for p in pa] == [p.shape for p in pt]
    sum(((p * (i + 1)).sum() for i, p in enumerate(pa)), ad.tensor(0.0, dtype=F64)).backward()
    sum((p * (i + 1)).sum() for i, p in enumerate(pt)).backward()
    torch.testing.assert_close(a.grad.data, t.grad)


def test_split_and_chunk_of_an_empty_dim():
    x = torch.empty(0, 2)
    assert [p.shape for p in ad.Tensor(x).split(2)] == [p.shape for p in x.split(2)]
    assert [p.shape for p in ad.Tensor(x).chunk(3)] == [p.shape for p in x.chunk(3)]


def test_masked_fill_mask_and_gather_index_are_version_checked():
    x = ad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    mask = torch.tensor([True, False, False])
    y = x.masked_fill(mask, 0.0)
    mask[1] = True
    with pytest.raises(ad.GraphError, match="modified by an in-place"):
        y.sum().backward()
    idx = torch.tensor([0, 0, 2])
    y = x.gather(0, idx)
    idx[0] = 1
    with pytest.raises(ad.GraphError, match="modified by an in-place"):
        y.sum().backward()


def test_masked_fill_with_a_0d_tensor_value_gets_its_gradient():
    x = ad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    v = ad.tensor(5.0, requires_grad=True)
    y = x.masked_fill(x.data < 0, v) * ad.tensor([1.0, 2.0, 3.0])
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 3.0] and v.grad.item() == 2.0


def test_gather_repeated_indices_add_up():
    x = ad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x.gather(1, torch.tensor([[0, 0, 0], [1, 0, 1]])).sum().backward()
    assert x.grad.tolist() == [[3.0, 0.0], [1.0, 2.0]]


@pytest.mark.parametrize(
    "call,err,words",
    [
        (lambda x: ad.randn(2, 2, 2).t(), ad.ShapeError, "t: expects a tensor with at most 2 dims"),
        (lambda x: x[0].mm(x), ad.ShapeError, "mm: expects two matrices"),
        (lambda x: x[0].dot(x[0, :2]), ad.ShapeError, "dot: expects two 1-D tensors"),
        (lambda x: x.norm("nuc"), NotImplementedError, "nuclear"),
        (lambda x: x.norm("max"), ValueError, "norm: p must be"),
        (lambda x: x.masked_fill(x.data, 0.0), TypeError, "masked_fill: mask must be a bool"),
        (lambda x: x.masked_fill(x.data > 0, x), ValueError, "masked_fill: value must be"),
        (lambda x: x.split([1, 2]), ValueError, "split: sections"),
        (lambda x: x.split(0), ValueError, "split: split_size must be positive"),
        (lambda x: x.chunk(0), ValueError, "chunk: chunks must be a positive int"),
        (lambda x: x.repeat(2), ad.ShapeError, "repeat: needs at least one count per dim"),
        (lambda x: x.prod((0, 1)), TypeError, "prod: dim must be one int"),
        (lambda x: x.sum(0, axis=1), TypeError, "sum: got both dim=0 and its alias axis=1"),
        (lambda x: x.cumsum(), TypeError, "cumsum: missing the dim"),
        (lambda x: x.gather(2, torch.tensor([[0]])), IndexError, "gather: dim 2 is out of range"),
    ],
)
def test_misuse_names_the_call(call, err, words):
    x = ad.randn(2, 3, requires_grad=True)
    with pytest.raises(err, match=words.replace("(", r"\(")):
        call(x)
