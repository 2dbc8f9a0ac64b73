"""Shape ops: views, permutations, broadcasting, joining; plus casts and copies.

Their VJPs only move the gradient back into the input's layout (no arithmetic), except
``expand`` whose VJP sums over the broadcast dims.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..engine import Node, kernel, record
from ..errors import ShapeError
from ..tensor import Tensor
from ._common import as_tensor, check_float_pair, explain, norm_dims, raw, shape_str, sum_to


def _sizes(args: tuple) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` like torch."""
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0])
    return args


class Reshape(Node):
    """y = x viewed as another shape;  dx = g reshaped back"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: lambda x: x.reshape(shape))

    def vjp(self, g):
        return (g.reshape(self.meta),)


class View(Reshape):
    """y = x viewed as another shape (no copy);  dx = g reshaped back"""
    __slots__ = ()


class Flatten(Reshape):
    """y = x with dims start..end merged;  dx = g reshaped back"""
    __slots__ = ()


class Squeeze(Reshape):
    """y = x without size-1 dims;  dx = g reshaped back"""
    __slots__ = ()


class Unsqueeze(Reshape):
    """y = x with a new size-1 dim;  dx = g reshaped back"""
    __slots__ = ()


def _reshape_like(cls: type[Node], op: str, x: Any, fn: Any) -> Tensor:
    x = as_tensor(x)
    try:
        out = fn(x.data)
    except RuntimeError as e:
        raise ShapeError(f"{op}: cannot reshape a tensor of shape {shape_str(x.shape)}: {e}") from None
    except IndexError as e:  # a bad dim (squeeze, unsqueeze, flatten): name the op and shape
        raise IndexError(f"{op}: bad dim for a tensor of shape {shape_str(x.shape)}: {e}") from None
    return record(cls, out, (x,), meta=x.data.shape)


def reshape(x: Any, *shape: Any) -> Tensor:
    """The same elements in a new shape (one dim may be -1)."""
    shape = _sizes(shape)
    return _reshape_like(Reshape, "reshape", x, lambda d: d.reshape(shape))


def view(x: Any, *shape: Any) -> Tensor:
    """Like reshape, but fails (as torch does) when a copy would be needed."""
    shape = _sizes(shape)
    return _reshape_like(View, "view", x, lambda d: d.view(shape))


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one."""
    return _reshape_like(Flatten, "flatten", x, lambda d: d.flatten(start_dim, end_dim))


def squeeze(x: Any, dim: Any = None) -> Tensor:
    """Remove size-1 dims (all of them, or those in ``dim``)."""
    return _reshape_like(Squeeze, "squeeze", x, lambda d: d.squeeze() if dim is None else d.squeeze(dim))


def unsqueeze(x: Any, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim``."""
    return _reshape_like(Unsqueeze, "unsqueeze", x, lambda d: d.unsqueeze(dim))


class Transpose(Node):
    """y = x with dims d0, d1 swapped;  dx = g with them swapped back"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: lambda x: x.transpose(*m))

    def vjp(self, g):
        d0, d1 = self.meta
        return (g.transpose(d0, d1),)


def transpose(x: Any, dim0: int, dim1: int) -> Tensor:
    """Swap two dims."""
    x = as_tensor(x)
    try:
        out = x.data.transpose(dim0, dim1)
    except (IndexError, RuntimeError) as e:
        raise IndexError(f"transpose: dims {dim0}, {dim1} for a tensor of shape {shape_str(x.shape)}: {e}") from None
    return record(Transpose, out, (x,), meta=(dim0, dim1))


def _inverse(perm: tuple) -> tuple:
    inv = [0] * len(perm)
    for i, d in enumerate(perm):
        inv[d] = i
    return tuple(inv)


class Permute(Node):
    """y = x with dims reordered by p;  dx = g reordered by p⁻¹"""
    __slots__ = ()
    replay = staticmethod(lambda inv, shape: lambda x: x.permute(_inverse(inv)))

    def vjp(self, g):
        return (g.permute(self.meta),)


def permute(x: Any, *dims: Any) -> Tensor:
    """Reorder dims: ``y.shape[i] == x.shape[dims[i]]``."""
    x = as_tensor(x)
    dims = _sizes(dims)
    if sorted(d % max(x.data.dim(), 1) for d in dims) != list(range(x.data.dim())):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.data.dim()} dims of a "
                         f"tensor of shape {shape_str(x.shape)}")
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d % len(dims)] = i
    return record(Permute, x.data.permute(dims), (x,), meta=tuple(inverse))


def T(x: Tensor) -> Tensor:
    """Dims reversed (a matrix transposed)."""
    n = x.data.dim()
    if n < 2:
        return x
    if n == 2:
        return transpose(x, 0, 1)
    return permute(x, tuple(range(n - 1, -1, -1)))


def mT(x: Tensor) -> Tensor:
    """The last two dims swapped (a batch of matrices transposed)."""
    return transpose(x, -2, -1)


class Expand(Node):
    """y = x broadcast to a larger shape;  dx = g summed over the broadcast dims"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: lambda x: x.expand(shape))

    def vjp(self, g):
        return (sum_to(g, self.meta),)


def expand(x: Any, *shape: Any) -> Tensor:
    """Broadcast to ``shape`` without copying (-1 keeps a dim)."""
    x = as_tensor(x)
    shape = _sizes(shape)
    try:
        out = x.data.expand(shape)
    except RuntimeError:
        raise ShapeError(f"expand: a tensor of shape {shape_str(x.shape)} cannot be broadcast to "
                         f"{shape_str(shape)} (sizes must match, or be 1 in the input)") from None
    if out.shape == x.data.shape:
        return x
    return record(Expand, out, (x,), meta=x.data.shape)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    return expand(x, tuple(shape))


def expand_as(x: Any, other: Any) -> Tensor:
    return expand(x, tuple(raw(other).shape))


def sum_to_size(x: Any, *shape: Any) -> Tensor:
    """Sum broadcast dims away so the result has ``shape`` (the inverse of expand)."""
    x = as_tensor(x)
    shape = torch.Size(_sizes(shape))
    have = x.data.shape
    # sum_to trusts its caller; a user's shape must be one that expands to the input's
    if len(shape) > len(have) or any(s != 1 and s != h for s, h in zip(reversed(shape), reversed(have))):
        raise ShapeError(f"sum_to_size: a tensor of shape {shape_str(have)} cannot be summed to "
                         f"{shape_str(shape)} (each size must equal the input's or be 1)")
    return sum_to(x, shape)


class Cat(Node):
    """y = [x₁, x₂, ...] joined along dim;  dxᵢ = the slice of g that xᵢ filled"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: lambda *xs: torch.cat(xs, m[0]))

    def vjp(self, g):
        dim, sizes = self.meta
        lead = (slice(None),) * dim
        grads, start = [], 0
        for p, n in zip(self.parents, sizes):
            grads.append(g[lead + (slice(start, start + n),)] if p is not None else None)
            start += n
        return tuple(grads)


class Stack(Node):
    """y = [x₁, x₂, ...] stacked on a new dim;  dxᵢ = g[..., i, ...]"""
    __slots__ = ()
    replay = staticmethod(lambda d, shape: lambda *xs: torch.stack(xs, d))

    def vjp(self, g):
        lead = (slice(None),) * self.meta
        return tuple(g[lead + (i,)] if p is not None else None for i, p in enumerate(self.parents))


def _joinable(op: str, tensors: Sequence[Any]) -> list[Tensor]:
    if isinstance(tensors, (Tensor, torch.Tensor)) or len(tensors) == 0:
        raise TypeError(f"{op}: expects a non-empty list or tuple of tensors")
    ts = [as_tensor(t) for t in tensors]
    for t in ts[1:]:
        check_float_pair(op, ts[0].data, t.data)
    return ts


def _join(op: str, fn: Any, ts: list[Tensor], dim: int, rule: str) -> torch.Tensor:
    try:
        return fn([t.data for t in ts], dim)
    except RuntimeError as e:
        if len({t.data.device for t in ts}) > 1:
            raise explain(op, e, *ts) from None
        shapes = ", ".join(shape_str(t.shape) for t in ts)
        raise ShapeError(f"{op}: cannot join shapes {shapes} {rule} ({e})") from None


def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along an existing dim."""
    ts = _joinable("cat", tensors)
    out = _join("cat", torch.cat, ts, dim,
                f"along dim {dim}: all dims but {dim} must match")
    d = dim % out.dim()
    return record(Cat, out, ts, meta=(d, [t.data.shape[d] if t.data.dim() else 0 for t in ts]))


def stack(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new dim."""
    ts = _joinable("stack", tensors)
    out = _join("stack", torch.stack, ts, dim, "(all tensors must have the same shape)")
    return record(Stack, out, ts, meta=dim % out.dim())


# ---- copies and casts ---------------------------------------------------------------------------
class Clone(Node):
    """y = copy of x;  dx = g"""
    __slots__ = ()
    replay = kernel(torch.clone)

    def vjp(self, g):
        return (g,)


def clone(x: Any) -> Tensor:
    x = as_tensor(x)
    return record(Clone, x.data.clone(), (x,))


def contiguous(x: Tensor) -> Tensor:
    if x.data.is_contiguous():
        return x
    return record(Clone, x.data.contiguous(), (x,))


class Cast(Node):
    """y = x converted to another dtype/device;  dx = g converted back"""
    __slots__ = ()

    def vjp(self, g):
        dtype, device = self.meta
        return (g.to(device=device, dtype=dtype),)


def to(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Convert dtype and/or device (``to(device)``, ``to(dtype)``, ``to(other)``); differentiable."""
    args = tuple(raw(a) for a in args)
    try:
        out = x.data.to(*args, **kwargs)
    except (RuntimeError, TypeError) as e:
        raise explain("to", e, x) from None
    if out is x.data:
        return x
    if x._requires_grad and not (out.is_floating_point() or out.is_complex()):
        return Tensor._make(out)  # casting to an integer type ends differentiation, as in torch
    return record(Cast, out, (x,), meta=(x.data.dtype, x.data.device))
