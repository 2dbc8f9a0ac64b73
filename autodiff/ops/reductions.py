"""Reductions over ``dim`` (int, tuple or None for all; ``keepdim``) and the softmax family.

VJPs first put the reduced dims back (``g`` reshaped to the keepdim shape), then broadcast.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any

import torch

from ..engine import Node, derived, kernel, record
from ..tensor import Tensor
from ._common import as_tensor, keep_shape, norm_dims, raw

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _reduce_meta(op: str, x: Tensor, dim: Any) -> tuple:
    dims = norm_dims(op, dim, x.data.dim())
    return dims, x.data.shape, keep_shape(x.data.shape, dims)


class Sum(Node):
    """y = Σ_dims x;  dx = g broadcast back over dims"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: _reducer("sum", m[0], m[1], shape))

    def vjp(self, g):
        shape, kshape = self.meta
        if g.ndim:  # a 0-d gradient (full reduction) expands as it is
            g = g.reshape(kshape)
        return (g.expand(shape),)


class Mean(Node):
    """y = Σ_dims x / n;  dx = g / n broadcast back over dims"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: _reducer("mean", m[0], m[1], shape))

    def vjp(self, g):
        shape, kshape, n = self.meta
        if g.ndim:
            g = g.reshape(kshape)
        return ((g / n).expand(shape),)


def _reducer(name: str, in_shape: torch.Size, kshape: tuple, out_shape: torch.Size) -> Any:
    """The raw reduction that maps ``in_shape`` to ``out_shape`` (for replay)."""
    dims = tuple(i for i, (a, k) in enumerate(zip(in_shape, kshape)) if k == 1 and a != 1)
    keep = len(out_shape) == len(in_shape) and len(in_shape) > 0
    if not dims:
        return lambda x: x.reshape(out_shape).clone()
    return lambda x: getattr(x, name)(dims, keepdim=keep)


def _count(shape: torch.Size, dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        if shape:  # a 0-d tensor accepts dim 0 (as in torch) and holds one element
            n *= shape[d]
    return n


def sum(x: Any, dim: Any = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
    """Sum over ``dim`` (all dims when None)."""
    x = as_tensor(x)
    if dim is None and not keepdim and dtype is None:  # the common full reduction, kept lean
        d = x.data
        return record(Sum, d.sum(), (x,), meta=(d.shape, (1,) * d.dim()))
    if dtype is not None and dtype != x.data.dtype:
        # cast first (a recorded cast): the gradient then returns in the input's dtype
        x = x.to(dtype)
    dims, shape, kshape = _reduce_meta("sum", x, dim)
    out = x.data.sum(dims, keepdim=keepdim) if dims else x.data.clone()
    return record(Sum, out, (x,), meta=(shape, kshape))


def mean(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Mean over ``dim`` (all dims when None)."""
    x = as_tensor(x)
    d = x.data
    if dim is None and not keepdim and d.is_floating_point():  # the common full reduction
        return record(Mean, d.mean(), (x,), meta=(d.shape, (1,) * d.dim(), d.numel()))
    dims, shape, kshape = _reduce_meta("mean", x, dim)
    if not x.data.is_floating_point():
        raise TypeError(f"mean: needs a floating point tensor, got dtype {x.dtype}")
    out = x.data.mean(dims, keepdim=keepdim) if dims else x.data.clone()
    return record(Mean, out, (x,), meta=(shape, kshape, _count(shape, dims)))


class Amax(Node):
    """y = max over dims;  dx = g shared evenly among the elements equal to the max"""
    __slots__ = ()

    def vjp(self, g, x, y):
        shape, kshape, dims = self.meta
        hit = raw(x) == raw(y).reshape(kshape)
        count = hit.sum(dims, keepdim=True)
        return (g.reshape(kshape).expand(shape).where(hit, 0.0) / count,)


class Amin(Amax):
    """y = min over dims;  dx = g shared evenly among the elements equal to the min"""
    __slots__ = ()


def _extreme(name: str, cls: type[Node]) -> Any:
    def op(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
        x = as_tensor(x)
        dims, shape, kshape = _reduce_meta(name, x, dim)
        _check_nonempty(name, x, dims)
        out = getattr(x.data, name)(dims, keepdim=keepdim) if dims else x.data.clone()
        return record(cls, out, (x,), (x,), meta=(shape, kshape, dims), save_out=True)
    op.__name__ = name
    op.__doc__ = f"{name[1:].capitalize()} over ``dim`` (ties share the gradient evenly)."
    return op


amax = _extreme("amax", Amax)
amin = _extreme("amin", Amin)


def _check_nonempty(op: str, x: Tensor, dims: tuple) -> None:
    shape = x.data.shape
    if x.data.numel() == 0 and (not dims or any(shape[d] == 0 for d in dims)):
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {tuple(shape)} over "
                         f"dims {dims} (the max of nothing is undefined)")


class MaxDim(Node):
    """values = max along dim;  dx = g at the index of the chosen element, 0 elsewhere"""
    __slots__ = ()

    def vjp(self, g):
        shape, kshape, dim, idx = self.meta
        hit = torch.zeros(shape, dtype=torch.bool, device=idx.device).scatter_(dim, idx, True)
        return (g.reshape(kshape).expand(shape).where(hit, 0.0),)


class MinDim(MaxDim):
    """values = min along dim;  dx = g at the index of the chosen element, 0 elsewhere"""
    __slots__ = ()


def _select_reduce(op: str, cls: type[Node], full: Any, x: Any, dim: Any, keepdim: bool) -> Any:
    x = as_tensor(x)
    if dim is None:
        return full(x)
    (d,) = norm_dims(op, dim, x.data.dim())
    _check_nonempty(op, x, (d,))
    values, idx = getattr(torch, op)(x.data, d, keepdim=keepdim)
    kshape = keep_shape(x.data.shape, (d,))
    v = record(cls, values, (x,), meta=(x.data.shape, kshape, d, idx.reshape(kshape)))
    return MaxResult(v, derived(idx))


def max(x: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """Max of all elements, or ``(values, indices)`` along ``dim`` like torch.max."""
    if isinstance(dim, (Tensor, torch.Tensor)):
        from .elementwise import maximum
        return maximum(x, dim)
    return _select_reduce("max", MaxDim, amax, x, dim, keepdim)


def min(x: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    """Min of all elements, or ``(values, indices)`` along ``dim`` like torch.min."""
    if isinstance(dim, (Tensor, torch.Tensor)):
        from .elementwise import minimum
        return minimum(x, dim)
    return _select_reduce("min", MinDim, amin, x, dim, keepdim)


def argmax(x: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return derived(torch.argmax(raw(x), dim=dim, keepdim=keepdim))


def argmin(x: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return derived(torch.argmin(raw(x), dim=dim, keepdim=keepdim))


class Var(Node):
    """y = Σ(x - mean)² / (n - correction);  dx = g * 2 (x - mean) / (n - correction)"""
    __slots__ = ()

    def vjp(self, g, x):
        shape, kshape, dims, denom = self.meta
        centred = x - x.mean(dims, keepdim=True)
        # divide last: with no degrees of freedom left (denom 0) this gives nan, as in torch,
        # instead of a ZeroDivisionError in the middle of backward()
        return (g.reshape(kshape) * centred * 2.0 / denom,)


def var(x: Any, dim: Any = None, *, correction: float | None = None, unbiased: bool | None = None,
        keepdim: bool = False) -> Tensor:
    """Variance over ``dim``; ``correction=1`` (the default, like torch) is Bessel's correction."""
    return _spread(Var, torch.var, x, dim, correction, unbiased, keepdim)


def _spread(cls: type[Node], fn: Any, x: Any, dim: Any, correction: float | None,
            unbiased: bool | None, keepdim: bool) -> Tensor:
    """var and std: the same arguments, meta and saved input (std also saves its output)."""
    x = as_tensor(x)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims, shape, kshape = _reduce_meta(fn.__name__, x, dim)
    out = fn(x.data, dims, correction=correction, keepdim=keepdim)
    denom = _count(shape, dims) - correction
    return record(cls, out, (x,), (x,), meta=(shape, kshape, dims, denom), save_out=cls is Std)


class Std(Node):
    """y = sqrt(var(x));  dx = g * (x - mean) / ((n - correction) * y)  (0 where y = 0)"""
    __slots__ = ()

    def vjp(self, g, x, y):
        shape, kshape, dims, denom = self.meta
        # A constant slice has y = 0: its gradient is 0 (as in torch), not sqrt's 0 * inf = nan.
        nonzero = raw(y).reshape(kshape) != 0
        scale = (g.reshape(kshape) / (y.reshape(kshape) * denom)).where(nonzero, 0.0)
        return (scale * (x - x.mean(dims, keepdim=True)),)


def std(x: Any, dim: Any = None, *, correction: float | None = None, unbiased: bool | None = None,
        keepdim: bool = False) -> Tensor:
    """Standard deviation: sqrt(var), one node (so a constant input gets a 0 gradient)."""
    return _spread(Std, torch.std, x, dim, correction, unbiased, keepdim)


class LogSumExp(Node):
    """y = log Σ exp(x);  dx = g * exp(x - y)  (= g * softmax(x))"""
    __slots__ = ()

    def vjp(self, g, x, y):
        kshape = self.meta
        return (g.reshape(kshape) * (x - y.reshape(kshape)).exp(),)


def logsumexp(x: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``dim``, computed stably."""
    x = as_tensor(x)
    dims, shape, kshape = _reduce_meta("logsumexp", x, dim)
    out = torch.logsumexp(x.data, dims, keepdim=keepdim)
    return record(LogSumExp, out, (x,), (x,), meta=kshape, save_out=True)


class Softmax(Node):
    """y = exp(x) / Σ exp(x);  dx = y * (g - Σ g * y)"""
    __slots__ = ()
    replay = staticmethod(lambda d, shape: lambda x: torch.softmax(x, d))

    def vjp(self, g, y):
        return (y * (g - (g * y).sum(self.meta, keepdim=True)),)


class LogSoftmax(Node):
    """y = x - logsumexp(x);  dx = g - exp(y) * Σ g"""
    __slots__ = ()
    replay = staticmethod(lambda d, shape: lambda x: torch.log_softmax(x, d))

    def vjp(self, g, y):
        return (g - y.exp() * g.sum(self.meta, keepdim=True),)


def softmax(x: Any, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (shifted by the max: stable)."""
    x = as_tensor(x)
    (d,) = norm_dims("softmax", dim, x.data.dim())
    return record(Softmax, torch.softmax(x.data, d), (x,), meta=d, save_out=True)


def log_softmax(x: Any, dim: int = -1) -> Tensor:
    """x - logsumexp(x) along ``dim`` (stable)."""
    x = as_tensor(x)
    (d,) = norm_dims("log_softmax", dim, x.data.dim())
    return record(LogSoftmax, torch.log_softmax(x.data, d), (x,), meta=d, save_out=True)
