"""Reductions over ``dim`` (int, tuple or None for all; ``keepdim``) and the softmax family.

``dim=()`` and ``dim=[]`` reduce over all dims, as in torch. A VJP first puts the reduced dims
back (``g`` reshaped to the keepdim shape), then broadcasts it over the input's shape.
"""
from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

import torch

from ..engine import derived
from ..op import Op
from ._common import Tensor, as_tensor, keep_shape, norm_dims, raw

# torch.return_types.max / .min: ``values, indices = x.max(dim)``, or ``.values``/``.indices``
max_result = namedtuple("max", ["values", "indices"])  # type: ignore[name-match]
min_result = namedtuple("min", ["values", "indices"])  # type: ignore[name-match]


def _dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` as a sorted tuple of dims; None, () and [] all mean every dim (torch's rule)."""
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        dim = None
    return norm_dims(op, dim, ndim)


def _all(dim: Any) -> bool:
    return dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0)


def _unreduce(op: Any, g: Any) -> Any:
    """``g`` with the reduced dims put back (size 1) and broadcast over the input's shape."""
    shape = op.in_meta[0][0]
    dim = op.dim
    if not op.keepdim and dim is not None and g.ndim:  # a 0-d g broadcasts as it is
        g = g.reshape(keep_shape(shape, (dim,) if dim.__class__ is int else dim))
    return g.expand(shape)


def _count(shape: torch.Size, dims: Any) -> int:
    """How many elements each output element reduces (a 0-d tensor holds one)."""
    if dims is None:
        return math.prod(shape)
    return math.prod(shape[d] for d in dims) if shape else 1


class Sum(Op):
    """y = Σ_dims x;  dx = g broadcast back over dims"""
    fields = ("dim", "keepdim")
    forward = staticmethod(torch.sum)

    def vjp(self, g):
        return _unreduce(self, g)


class Mean(Op):
    """y = Σ_dims x / n;  dx = g / n broadcast back over dims"""
    fields = ("dim", "keepdim")
    forward = staticmethod(torch.mean)

    def vjp(self, g):
        return _unreduce(self, g / _count(self.in_meta[0][0], self.dim))


def sum(x: Any, dim: Any = None, keepdim: bool = False, *,
        dtype: torch.dtype | None = None) -> Tensor:
    """Sum over ``dim`` (all dims when None or ())."""
    x = as_tensor(x)
    if dtype is not None and dtype != x.data.dtype:
        # cast first (a recorded cast): the gradient then returns in the input's dtype
        x = x.to(dtype)
    if dim is not None:
        dim = _dims("sum", dim, x.data.dim())
    return Sum.apply(x, dim=dim, keepdim=keepdim)


def mean(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Mean over ``dim`` (all dims when None or ())."""
    x = as_tensor(x)
    if dim is not None:
        dim = _dims("mean", dim, x.data.dim())
    if not x.data.is_floating_point():
        raise TypeError(f"mean: needs a floating point tensor, got dtype {x.dtype}")
    return Mean.apply(x, dim=dim, keepdim=keepdim)


class Amax(Op):
    """y = max over dims;  dx = (g / c) * [x = y], c = the number of elements equal to y
    (torch's rule, kept exactly: a NaN max gives NaN to its slice, an infinite g gives NaN to the
    other elements)"""
    saves = ("x", "out")
    fields = ("dim", "keepdim")
    forward = staticmethod(torch.amax)

    def vjp(self, g, x, y):
        return _share(self, g, x, y)


class Amin(Op):
    """y = min over dims;  dx = (g / c) * [x = y], c = the number of elements equal to y
    (torch's rule, as for Amax)"""
    saves = ("x", "out")
    fields = ("dim", "keepdim")
    forward = staticmethod(torch.amin)

    def vjp(self, g, x, y):
        return _share(self, g, x, y)


def _share(op: Any, g: Any, x: Any, y: Any) -> Any:
    shape = op.in_meta[0][0]
    kshape = keep_shape(shape, op.dim)
    hit = raw(x) == raw(y).reshape(kshape)
    count = hit.sum(op.dim, keepdim=True)
    # torch multiplies by the mask here (its inf * 0 = NaN included): the same product gives
    # torch's values exactly, where a selection would differ from it for an infinite g
    return (g.reshape(kshape) / count) * hit


def _extreme(name: str, cls: type[Op]) -> Any:
    def op(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
        x = as_tensor(x)
        dims = _dims(name, dim, x.data.dim())
        _check_nonempty(name, x, dims)
        return cls.apply(x, dim=dims, keepdim=keepdim)
    op.__name__ = name
    op.__doc__ = (f"{name[1:].capitalize()} over ``dim`` (all dims when None or ()); ties share "
                  "the gradient evenly.")
    return op


amax = _extreme("amax", Amax)
amin = _extreme("amin", Amin)


def _check_nonempty(op: str, x: Tensor, dims: tuple) -> None:
    shape = x.data.shape
    if x.data.numel() == 0 and (not dims or any(shape[d] == 0 for d in dims)):
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {tuple(shape)} over "
                         f"dims {dims} (the max of nothing is undefined)")


class Max(Op):
    """y = max of all elements;  dx = g / c at the c elements equal to y (at the NaNs when y is
    NaN), 0 elsewhere (torch's evenly distributed gradient)"""
    saves = ("x", "out")
    forward = staticmethod(torch.max)

    def vjp(self, g, x, y):
        return _evenly(self, g, x, y)


class Min(Op):
    """y = min of all elements;  dx = g / c at the c elements equal to y (at the NaNs when y is
    NaN), 0 elsewhere"""
    saves = ("x", "out")
    forward = staticmethod(torch.min)

    def vjp(self, g, x, y):
        return _evenly(self, g, x, y)


def _evenly(op: Any, g: Any, x: Any, y: Any) -> Any:
    rx, ry = raw(x), raw(y)
    hit = rx.isnan() if bool(ry.isnan()) else rx == ry
    return (g / hit.sum()).expand(op.in_meta[0][0]).where(hit, 0.0)


def _gather(x: torch.Tensor, indices: torch.Tensor, dim: int, keepdim: bool) -> torch.Tensor:
    """The values max/min(dim) chose: ``x`` at ``indices`` along ``dim``."""
    if keepdim or x.dim() == 0:
        return x.gather(dim, indices)
    return x.gather(dim, indices.unsqueeze(dim)).squeeze(dim)


class MaxDim(Op):
    """values = x at indices along dim (the max);  dx = g at the indices, 0 elsewhere"""
    args = ("x", "indices")
    saves = ("indices",)
    fields = ("dim", "keepdim")
    forward = staticmethod(_gather)

    def vjp(self, g, indices):
        return _select(self, g, indices), None


class MinDim(Op):
    """values = x at indices along dim (the min);  dx = g at the indices, 0 elsewhere"""
    args = ("x", "indices")
    saves = ("indices",)
    fields = ("dim", "keepdim")
    forward = staticmethod(_gather)

    def vjp(self, g, indices):
        return _select(self, g, indices), None


def _select(op: Any, g: Any, indices: Any) -> Any:
    shape = op.in_meta[0][0]
    idx = raw(indices)
    if not op.keepdim and idx.dim() < len(shape):
        idx = idx.unsqueeze(op.dim)
    hit = torch.zeros(shape, dtype=torch.bool, device=idx.device).scatter_(op.dim, idx, True)
    return _unreduce(op, g).where(hit, 0.0)


def _select_reduce(op: str, cls: type[Op], full: type[Op], result: Any, x: Any, dim: Any,
                   keepdim: bool) -> Any:
    x = as_tensor(x)
    if dim is None:
        _check_nonempty(op, x, ())
        return full.apply(x)
    (d,) = norm_dims(op, dim, x.data.dim())
    _check_nonempty(op, x, (d,))
    _, idx = getattr(torch, op)(x.data, d, keepdim=keepdim)
    # The indices are an input of the node: backward reads them, so changing them in place
    # before backward() is refused, as in torch.
    indices = derived(idx)
    return result(cls.apply(x, indices, dim=d, keepdim=keepdim), indices)


def max(x: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """Max of all elements, or ``(values, indices)`` along ``dim`` like torch.max."""
    if isinstance(dim, (Tensor, torch.Tensor)):
        from .elementwise import maximum
        return maximum(x, dim)
    return _select_reduce("max", MaxDim, Max, max_result, x, dim, keepdim)


def min(x: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """Min of all elements, or ``(values, indices)`` along ``dim`` like torch.min."""
    if isinstance(dim, (Tensor, torch.Tensor)):
        from .elementwise import minimum
        return minimum(x, dim)
    return _select_reduce("min", MinDim, Min, min_result, x, dim, keepdim)


def argmax(x: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return derived(torch.argmax(raw(x), dim=dim, keepdim=keepdim))


def argmin(x: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return derived(torch.argmin(raw(x), dim=dim, keepdim=keepdim))


class Var(Op):
    """y = Σ(x - mean)² / (n - correction);  dx = g * 2 (x - mean) / (n - correction)"""
    saves = ("x",)
    fields = ("dim", "correction", "keepdim")
    forward = staticmethod(torch.var)

    def vjp(self, g, x):
        denom = _count(self.in_meta[0][0], self.dim) - self.correction
        # divide last: with no degrees of freedom left (denom 0) this gives nan, as in torch,
        # instead of a ZeroDivisionError in the middle of backward()
        return _unreduce(self, g) * (x - x.mean(self.dim, keepdim=True)) * 2.0 / denom


class Std(Op):
    """y = sqrt(var(x));  dx = g * (x - mean) / ((n - correction) * y)  (0 where y = 0)"""
    saves = ("x", "out")
    fields = ("dim", "correction", "keepdim")
    forward = staticmethod(torch.std)

    def vjp(self, g, x, y):
        shape = self.in_meta[0][0]
        kshape = keep_shape(shape, self.dim)
        denom = _count(shape, self.dim) - self.correction
        y = y.reshape(kshape)
        # A constant slice has y = 0: its gradient is 0 (as in torch), not sqrt's 0 * inf = nan.
        scale = (g.reshape(kshape) / (y * denom)).where(raw(y) != 0, 0.0)
        return scale * (x - x.mean(self.dim, keepdim=True))


def _spread(cls: type[Op], op: str, x: Any, dim: Any, correction: float | None,
            unbiased: bool | None, keepdim: bool) -> Tensor:
    """var and std: the same arguments and fields."""
    x = as_tensor(x)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = _dims(op, dim, x.data.dim())
    return cls.apply(x, dim=dims, correction=correction, keepdim=keepdim)


def var(x: Any, dim: Any = None, *, correction: float | None = None, unbiased: bool | None = None,
        keepdim: bool = False) -> Tensor:
    """Variance over ``dim``; ``correction=1`` (the default, like torch) is Bessel's correction."""
    return _spread(Var, "var", x, dim, correction, unbiased, keepdim)


def std(x: Any, dim: Any = None, *, correction: float | None = None, unbiased: bool | None = None,
        keepdim: bool = False) -> Tensor:
    """Standard deviation: sqrt(var), one node (so a constant input gets a 0 gradient)."""
    return _spread(Std, "std", x, dim, correction, unbiased, keepdim)


class LogSumExp(Op):
    """y = log Σ exp(x);  dx = g * exp(x - y)  (= g * softmax(x))"""
    saves = ("x", "out")
    fields = ("dim", "keepdim")
    forward = staticmethod(torch.logsumexp)

    def vjp(self, g, x, y):
        shape = self.in_meta[0][0]
        kshape = keep_shape(shape, self.dim)
        return g.reshape(kshape) * (x - y.reshape(kshape)).exp()


def logsumexp(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``dim``, computed stably."""
    x = as_tensor(x)
    return LogSumExp.apply(x, dim=_dims("logsumexp", dim, x.data.dim()), keepdim=keepdim)


class Softmax(Op):
    """y = exp(x) / Σ exp(x);  dx = y * (g - Σ g * y)"""
    saves = ("out",)
    fields = ("dim",)
    forward = staticmethod(torch.softmax)

    def vjp(self, g, y):
        return y * (g - (g * y).sum(self.dim, keepdim=True))


class LogSoftmax(Op):
    """y = x - logsumexp(x);  dx = g - exp(y) * Σ g"""
    saves = ("out",)
    fields = ("dim",)
    forward = staticmethod(torch.log_softmax)

    def vjp(self, g, y):
        return g - y.exp() * g.sum(self.dim, keepdim=True)


def softmax(x: Any, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (shifted by the max: stable)."""
    x = as_tensor(x)
    (d,) = norm_dims("softmax", dim, x.data.dim())
    return Softmax.apply(x, dim=d)


def log_softmax(x: Any, dim: int = -1) -> Tensor:
    """x - logsumexp(x) along ``dim`` (stable)."""
    x = as_tensor(x)
    (d,) = norm_dims("log_softmax", dim, x.data.dim())
    return LogSoftmax.apply(x, dim=d)


class ReductionMethods:
    """The Tensor methods of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    sum, mean, max, min, amax, amin = sum, mean, max, min, amax, amin
    argmax, argmin, var, std = argmax, argmin, var, std
    logsumexp, softmax, log_softmax = logsumexp, softmax, log_softmax
