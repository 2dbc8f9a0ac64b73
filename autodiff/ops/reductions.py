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


def _axis(op: str, dim: Any, axis: Any) -> Any:
    """torch accepts NumPy's ``axis=`` for ``dim=``; both at once is a mistake."""
    if axis is None:
        return dim
    if dim is not None:
        raise TypeError(f"{op}: got both dim={dim!r} and its alias axis={axis!r}; pass one")
    return axis


def sum(
    x: Any,
    dim: Any = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
    axis: Any = None,
) -> Tensor:
    """Sum over ``dim`` (all dims when None or (); ``axis`` is an alias)."""
    x = as_tensor(x)
    dim = _axis("sum", dim, axis)
    if dtype is not None and dtype != x.data.dtype:
        # cast first (a recorded cast): the gradient then returns in the input's dtype
        x = x.to(dtype)
    if dim is not None:
        dim = _dims("sum", dim, x.data.dim())
    return Sum.apply(x, dim=dim, keepdim=keepdim)


def mean(
    x: Any,
    dim: Any = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
    axis: Any = None,
) -> Tensor:
    """Mean over ``dim`` (all dims when None or (); ``axis`` is an alias)."""
    x = as_tensor(x)
    dim = _axis("mean", dim, axis)
    if dtype is not None and dtype != x.data.dtype:
        x = x.to(dtype)
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
    op.__doc__ = (
        f"{name[1:].capitalize()} over ``dim`` (all dims when None or ()); ties share "
        "the gradient evenly."
    )
    return op


amax = _extreme("amax", Amax)
amin = _extreme("amin", Amin)


def _check_nonempty(op: str, x: Tensor, dims: tuple) -> None:
    shape = x.data.shape
    if x.data.numel() == 0 and (not dims or any(shape[d] == 0 for d in dims)):
        raise ValueError(
            f"{op}: cannot reduce an empty tensor of shape {tuple(shape)} over "
            f"dims {dims} (the max of nothing is undefined)"
        )


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


class MinDim(MaxDim):
    """values = x at indices along dim (the min);  dx = g at the indices, 0 elsewhere"""


def _select(op: Any, g: Any, indices: Any) -> Any:
    shape = op.in_meta[0][0]
    idx = raw(indices)
    if not op.keepdim and idx.dim() < len(shape):
        idx = idx.unsqueeze(op.dim)
    hit = torch.zeros(shape, dtype=torch.bool, device=idx.device).scatter_(op.dim, idx, True)
    return _unreduce(op, g).where(hit, 0.0)


def _select_reduce(
    op: str, cls: type[Op], full: type[Op], result: Any, x: Any, dim: Any, keepdim: bool
) -> Any:
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
    fields = ("dim", "correction", "keepdim", "whole")  # whole: no dim given (or a 0-d x)
    forward = staticmethod(
        lambda x, dim, correction, keepdim, whole: torch.var(
            x, dim, correction=correction, keepdim=keepdim
        )
    )

    def vjp(self, g, x):
        return _var_backward(self, _unreduce(self, g), x)


class Std(Op):
    """y = sqrt(var(x));  dx = g * (x - mean) / ((n - correction) * y)  (0 where y = 0)"""

    saves = ("x", "out")
    fields = ("dim", "correction", "keepdim", "whole")
    forward = staticmethod(
        lambda x, dim, correction, keepdim, whole: torch.std(
            x, dim, correction=correction, keepdim=keepdim
        )
    )

    def vjp(self, g, x, y):
        kshape = keep_shape(self.in_meta[0][0], self.dim)
        # A constant slice has y = 0: its gradient is 0 (as in torch), not sqrt's 0 * inf = nan.
        gv = (g.reshape(kshape) / (y.reshape(kshape) * 2)).where(raw(y).reshape(kshape) != 0, 0.0)
        return _var_backward(self, gv.expand(self.in_meta[0][0]), x)


def _var_backward(op: Any, g: Any, x: Any) -> Any:
    """d var / dx times the (broadcast) gradient ``g`` of var."""
    shape = op.in_meta[0][0]
    dof = _count(shape, op.dim) - op.correction
    centred = x - x.mean(op.dim, keepdim=True)
    if dof <= 0 and op.whole:
        # no degrees of freedom over the whole tensor: torch's rule, 2 / 0 = inf times the
        # deviation, which is nan where x equals the mean (inf * 0) and inf elsewhere
        rx = raw(x)
        return g * torch.full_like(rx, math.inf).masked_fill(rx == rx.mean(), math.nan)
    # divide last: with no degrees of freedom left this gives nan (0 / 0) as torch does
    return g * centred * 2.0 / dof


def _spread(
    cls: type[Op],
    op: str,
    x: Any,
    dim: Any,
    correction: float | None,
    unbiased: bool | None,
    keepdim: bool,
) -> Tensor:
    """var and std: the same arguments and fields."""
    x = as_tensor(x)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = _dims(op, dim, x.data.dim())
    whole = dim is None or x.data.dim() == 0
    return cls.apply(x, dim=dims, correction=correction, keepdim=keepdim, whole=whole)


def var(
    x: Any,
    dim: Any = None,
    *,
    correction: float | None = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
) -> Tensor:
    """Variance over ``dim``; ``correction=1`` (the default, like torch) is Bessel's correction."""
    return _spread(Var, "var", x, dim, correction, unbiased, keepdim)


def std(
    x: Any,
    dim: Any = None,
    *,
    correction: float | None = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
) -> Tensor:
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


# ---- products, running sums, norms, truth reductions ---------------------------------------------
def _prod(x: torch.Tensor, dim: int | None, keepdim: bool) -> torch.Tensor:
    return torch.prod(x) if dim is None else torch.prod(x, dim, keepdim=keepdim)


class Prod(Op):
    """y = Π_dim x;  dx_i = g Π_{j≠i} x_j  (= g y / x_i when no x is 0; with zeros the product of
    the others, computed without dividing: a lone zero gets it, every other element gets 0)"""

    saves = ("x", "out")
    fields = ("dim", "keepdim")
    forward = staticmethod(_prod)

    def vjp(self, g, x, y):
        shape = self.in_meta[0][0]
        if not shape:  # one element: y = x
            return g
        d = self.dim
        if d is not None and not self.keepdim:
            g, y = g.unsqueeze(d), y.unsqueeze(d)
        zeros = int((raw(x) == 0).sum())
        if not zeros:
            return g * (y / x)  # torch's formula (and its rounding) when dividing is safe
        if d is None:
            if zeros > 1 and x.__class__ is torch.Tensor:
                # torch's first order: every product of the others is 0, so 0 outright (not
                # g * 0, which an infinite g would make NaN)
                return torch.zeros_like(x)
            return g * _others(x.reshape(-1), 0).reshape(shape)
        return g * _others(x, d)


def _others(x: Any, d: int) -> Any:
    """Π_{j≠i} x_j along ``d``, exact when some x_j are 0 (no division)."""
    n = x.shape[d]
    if x.__class__ is torch.Tensor:  # first order: products before and after i (cumprods)
        one = torch.ones_like(x.narrow(d, 0, 1))
        before = torch.cat([one, x.narrow(d, 0, n - 1)], d).cumprod(d)
        after = torch.cat([x.narrow(d, 1, n - 1), one], d).flip(d).cumprod(d).flip(d)
        return before * after
    # recorded (create_graph): row i of an n×n table holds x with x_i replaced by 1, and its
    # product is again a Prod node, so every order of derivative stays exact at zeros
    from .elementwise import where

    xt = x.transpose(d, -1)
    eye = torch.eye(n, dtype=torch.bool, device=raw(x).device)
    table: Any = where(eye, 1.0, xt.unsqueeze(-2))
    return table.prod(-1).transpose(d, -1)


def prod(
    x: Any,
    dim: int | None = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
    axis: Any = None,
) -> Tensor:
    """Product of all elements, or along one ``dim`` (``axis`` is an alias)."""
    x = as_tensor(x)
    dim = _axis("prod", dim, axis)
    if dtype is not None and dtype != x.data.dtype:
        x = x.to(dtype)
    if dim is None:
        return Prod.apply(x, dim=None, keepdim=False)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"prod: dim must be one int, got {type(dim).__name__} {dim!r}")
    (d,) = norm_dims("prod", dim, x.data.dim())
    return Prod.apply(x, dim=d, keepdim=keepdim)


class Cumsum(Op):
    """y_i = Σ_{j≤i} x_j along dim;  dx_i = Σ_{j≥i} g_j  (g summed from the end)"""

    fields = ("dim",)
    forward = staticmethod(torch.cumsum)

    def vjp(self, g):
        if g.ndim == 0:
            return g
        d = self.dim
        return g.flip(d).cumsum(d).flip(d)


def cumsum(
    x: Any, dim: int | None = None, *, dtype: torch.dtype | None = None, axis: Any = None
) -> Tensor:
    """Running sum along ``dim`` (``axis`` is an alias)."""
    x = as_tensor(x)
    dim = _axis("cumsum", dim, axis)
    if dim is None:
        raise TypeError("cumsum: missing the dim to sum along (e.g. x.cumsum(0))")
    if dtype is not None and dtype != x.data.dtype:
        x = x.to(dtype)
    (d,) = norm_dims("cumsum", dim, x.data.dim())
    return Cumsum.apply(x, dim=d)


def _vector_norm(x: torch.Tensor, p: float, dim: Any, keepdim: bool) -> torch.Tensor:
    return torch.linalg.vector_norm(x, p, dim, keepdim)


class Norm(Op):
    """y = (Σ_dims |x|^p)^(1/p);  dx = g sign(x) |x|^(p-1) / y^(p-1), 0 where y = 0
    (p = 2: g x / y; p = 1: g sign(x); p = ±inf: g sign(x) shared evenly among the |x| = y;
    p = 0: none, as torch; p < 1: 0 where x = 0)"""

    saves = ("x", "out")
    fields = ("p", "dim", "keepdim")
    forward = staticmethod(_vector_norm)

    def vjp(self, g, x, y):
        p, dim = self.p, self.dim
        shape = self.in_meta[0][0]
        if dim is not None and not self.keepdim and g.ndim:
            kshape = keep_shape(shape, dim)
            g, y = g.reshape(kshape), y.reshape(kshape)
        rx, ry = raw(x), raw(y)
        if p == 0:  # a count: no gradient at all (torch's undefined one), nothing flows on
            return None
        if p == 1:
            return g * x.sign()
        if p == 2:
            return g * (x / y).where(ry != 0, 0.0)
        if math.isinf(p):
            ax = rx.abs()
            hit = (ax == ry) | ax.isnan()
            count = hit.sum(dim, keepdim=True) if dim is not None else hit.sum()
            return (x.sign() * (g / count)).where(hit, 0.0)
        if p < 1:
            scaled = (x.sign() * x.abs() ** (p - 1)).where(rx != 0, 0.0)
            return scaled * g * y ** (1 - p)
        scaled = x.sign() * x.abs() ** (p - 1) if p < 2 else x * x.abs() ** (p - 2)
        return scaled * (g / y ** (p - 1)).where(ry != 0, 0.0)


def norm(
    x: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: torch.dtype | None = None
) -> Tensor:
    """The vector p-norm over ``dim`` (all elements by default), as torch.norm: ``p`` a number
    (2, 1, inf, -inf, 0, any other) or 'fro' (the 2-norm over the dims)."""
    x = as_tensor(x)
    if dtype is not None and dtype != x.data.dtype:
        x = x.to(dtype)
    if isinstance(p, str):
        if p == "nuc":
            raise NotImplementedError(
                "norm: p='nuc' (the nuclear norm, a sum of singular values) "
                "has no VJP in tapegrad; use p='fro' or a number"
            )
        if p != "fro":
            raise ValueError(f"norm: p must be a number, 'fro' or 'nuc', got {p!r}")
        p = 2
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"norm: p must be a number or 'fro', got {type(p).__name__} {p!r}")
    if not (x.data.is_floating_point() or x.data.is_complex()):
        raise TypeError(f"norm: needs a floating point tensor, got dtype {x.data.dtype}")
    dims = None if _all(dim) else _dims("norm", dim, x.data.dim())
    return Norm.apply(x, p=float(p), dim=dims, keepdim=keepdim)


def _truth(name: str, fn: Any) -> Any:
    def op(x: Any, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        dim = _axis(name, dim, axis)
        r = raw(x)
        if dim is None:
            return derived(fn(r))
        return derived(fn(r, dim=dim, keepdim=keepdim))

    op.__name__ = name
    op.__doc__ = (
        f"Whether {'every' if name == 'all' else 'any'} element (along ``dim``) is "
        "true (nonzero); a bool tensor without gradient."
    )
    return op


all_ = _truth("all", torch.all)
any_ = _truth("any", torch.any)


class ReductionMethods:
    """The Tensor methods of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    sum, mean, max, min, amax, amin = sum, mean, max, min, amax, amin
    argmax, argmin, var, std = argmax, argmin, var, std
    logsumexp, softmax, log_softmax = logsumexp, softmax, log_softmax
    prod, cumsum, norm, all, any = prod, cumsum, norm, all_, any_
