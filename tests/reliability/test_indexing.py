"""Indexing and joining against torch: index tensors and masks are inputs of the node (saved and
version-checked), repeated indices add up, legacy empty tensors in cat, and ``.grad`` assignment
checked like torch's."""

from __future__ import annotations

import pytest
import torch

import autodiff as ad
from autodiff.errors import DeviceError, DTypeError, GraphError, ShapeError
from rel_support import assert_close_tree, run_both

M = [[1.0, -2.0, 3.0], [4.0, 0.5, -6.0]]


def _int(L, v):
    t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    return ad.Tensor(t) if L.name == "ad" else t


# ---- index tensors kept by the tape ----------------------------------------------------------
MUTATIONS = {  # (index builder, in-place change made after y = x[index])
    "int tensor": (lambda L: _int(L, [0, 1, 1]), lambda i: i.__setitem__(1, 0)),
    "mask": (lambda L: _int(L, [True, False]), lambda m: m.__setitem__(1, True)),
    "row index of a pair": (lambda L: (_int(L, [1, 0]), 2), lambda i: i.add_(0)),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_changing_an_index_after_use_makes_backward_raise_as_in_torch(case):
    build, change = MUTATIONS[case]

    def program(L):
        x = L.tensor(M, True)
        idx = build(L)
        y = x[idx]
        change(idx[0] if isinstance(idx, tuple) else idx)
        y.sum().backward()
        return x.grad

    ours, ref = run_both(program)
    assert isinstance(ref, RuntimeError) and "modified by an inplace operation" in str(ref), ref
    assert isinstance(ours, GraphError), ours
    assert "Index's backward" in str(ours) and "modified by an in-place operation" in str(ours)


def test_a_list_index_is_copied_so_changing_the_list_changes_nothing():
    x = ad.tensor(M[0], dtype=torch.float64, requires_grad=True)
    idx = [0, 2, 2]
    y = x[idx]
    idx[0] = 1
    (y * ad.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 5.0]


INDEXES = {
    "repeated ints": lambda L: _int(L, [0, 0, 1, 0]),
    "mask": lambda L: _int(L, [[True, False, True], [False, False, True]]),
    "pair with repeats": lambda L: (_int(L, [1, 1, 0]), _int(L, [2, 2, 0])),
    "slice and tensor": lambda L: (slice(None), _int(L, [2, 0, 2])),
    "none, ellipsis, tensor": lambda L: (None, Ellipsis, _int(L, [[1], [1]])),
    "list of ints": lambda L: [1, 1],
    "0-d int tensor": lambda L: _int(L, 1),
    "empty index": lambda L: _int(L, torch.zeros(0, dtype=torch.long)),
}


@pytest.mark.parametrize("case", sorted(INDEXES))
def test_advanced_index_gradients_and_second_order_match_torch(case):
    def program(L):
        x = L.tensor(M, True)
        y = x[INDEXES[case](L)]
        (g,) = L.grad((y**3).sum(), x, create_graph=True)
        (gg,) = L.grad((g * g).sum(), x)
        return y, g, gg

    ours, ref = run_both(program)
    assert not isinstance(ref, Exception), ref
    assert_close_tree(ours, ref)


# ---- cat with a legacy empty (0,) tensor -------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_skips_a_legacy_empty_tensor_as_torch_does(dim):
    def program(L):
        a = L.tensor(M, True)
        e = L.tensor([], True)
        y = ad.cat([e, a, e], dim) if L.name == "ad" else torch.cat([e, a, e], dim)
        (y * L.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).sum().backward()
        return y, a.grad, e.grad

    ours, ref = run_both(program)
    assert not isinstance(ref, Exception), ref
    assert ours[2].shape == (0,)
    assert_close_tree(ours, ref)


def test_cat_of_only_empty_tensors():
    e = ad.zeros(0, requires_grad=True)
    y = ad.cat([e, e * 2.0])
    assert y.shape == torch.cat([torch.zeros(0), torch.zeros(0)]).shape
    y.sum().backward()
    assert e.grad.shape == (0,)


# ---- assigning .grad ---------------------------------------------------------------------------
BAD_GRADS = {
    "shape": (lambda: ad.zeros(5), ShapeError, r"shape \(5,\).*shape \(3,\)"),
    "one element": (lambda: ad.zeros(1), ShapeError, r"shape \(1,\).*shape \(3,\)"),
    "dtype": (lambda: ad.zeros(3, dtype=torch.float64), DTypeError, r"float64.*float32"),
    "integer dtype": (lambda: ad.zeros(3, dtype=torch.int64), DTypeError, r"int64.*float32"),
    "not a tensor": (lambda: 3.0, TypeError, r"Tensor or None.*float"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRADS))
def test_assigning_a_grad_that_does_not_fit_is_refused_as_in_torch(case):
    make, err, msg = BAD_GRADS[case]
    t = torch.zeros(3, requires_grad=True)
    with pytest.raises((RuntimeError, TypeError)):
        t.grad = make().data if isinstance(make(), ad.Tensor) else make()
    x = ad.zeros(3, requires_grad=True)
    x.grad = ad.ones(3)
    with pytest.raises(err, match=msg):
        x.grad = make()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]  # unchanged


def test_assigning_a_fitting_grad_or_none_works_and_accumulates():
    x = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.grad = torch.ones(3)  # a torch tensor is wrapped, as torch would keep it
    (x * x).sum().backward()
    assert x.grad.tolist() == [3.0, 5.0, 7.0]
    x.grad = None
    assert x.grad is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_assigning_a_grad_on_another_device_is_refused():
    x = ad.zeros(3, requires_grad=True)
    with pytest.raises(DeviceError, match=r"cuda.*cpu"):
        x.grad = ad.zeros(3).cuda()


def test_a_raw_torch_index_changed_after_use_makes_backward_raise():
    x = ad.tensor(M, dtype=torch.float64, requires_grad=True)
    rows, mask = torch.tensor([1, 0]), torch.tensor([[True, False, True], [False, True, True]])
    y1, y2 = x[rows], x[mask]
    rows[0] = 0
    mask.logical_not_()
    for y in (y1, y2):
        with pytest.raises(GraphError, match=r"Index's backward.*an index, a mask.*version 1"):
            y.sum().backward(retain_graph=True)
