"""Shape ops: views, permutations, broadcasting, joining; plus casts and copies.

Their VJPs only move the gradient back into the input's layout (no arithmetic); ``expand``'s
returns the broadcast gradient as it is, and the engine sums it back to the input's shape.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import ShapeError
from ..op import Op
from ._common import Tensor, as_tensor, check_float_pair, explain, raw, shape_str, sum_to


def _sizes(args: tuple) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` like torch."""
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return tuple(args[0])
    return args


class Reshape(Op):
    """y = x's elements in another shape;  dx = g reshaped back to x's shape"""

    fields = ("shape",)
    forward = staticmethod(torch.reshape)

    def vjp(self, g):
        return g.reshape(self.in_meta[0][0])


class View(Op):
    """y = x viewed as another shape (no copy);  dx = g reshaped back to x's shape"""

    fields = ("shape",)
    forward = staticmethod(lambda x, shape: x.view(shape))

    def vjp(self, g):
        return g.reshape(self.in_meta[0][0])


class Flatten(Op):
    """y = x with dims start..end merged;  dx = g reshaped back to x's shape"""

    fields = ("start_dim", "end_dim")
    forward = staticmethod(torch.flatten)

    def vjp(self, g):
        return g.reshape(self.in_meta[0][0])


class Squeeze(Op):
    """y = x without size-1 dims (all, or those in dim);  dx = g reshaped back to x's shape"""

    fields = ("dim",)
    forward = staticmethod(lambda x, dim: x.squeeze() if dim is None else x.squeeze(dim))

    def vjp(self, g):
        return g.reshape(self.in_meta[0][0])


class Unsqueeze(Op):
    """y = x with a new size-1 dim;  dx = g reshaped back to x's shape"""

    fields = ("dim",)
    forward = staticmethod(torch.unsqueeze)

    def vjp(self, g):
        return g.reshape(self.in_meta[0][0])


def _torch_error(e: BaseException) -> BaseException:
    # Op.apply restates torch's failure with the operand shapes; these ops give their own words.
    return e.__context__ or e


def _reshape_like(cls: Any, op: str, x: Any, **fields: Any) -> Tensor:
    x = as_tensor(x)
    try:
        return cls.apply(x, **fields)
    except RuntimeError as e:
        raise ShapeError(
            f"{op}: cannot reshape a tensor of shape {shape_str(x.shape)}: {_torch_error(e)}"
        ) from None
    except IndexError as e:  # a bad dim (squeeze, unsqueeze, flatten): name the op and shape
        raise IndexError(
            f"{op}: bad dim for a tensor of shape {shape_str(x.shape)}: {_torch_error(e)}"
        ) from None


def reshape(x: Any, *shape: Any) -> Tensor:
    """The same elements in a new shape (one dim may be -1)."""
    return _reshape_like(Reshape, "reshape", x, shape=_sizes(shape))


def view(x: Any, *shape: Any) -> Tensor:
    """Like reshape, but fails (as torch does) when a copy would be needed."""
    return _reshape_like(View, "view", x, shape=_sizes(shape))


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one."""
    x = as_tensor(x)
    nd = x.data.dim()
    if (
        nd
        and isinstance(start_dim, int)
        and isinstance(end_dim, int)
        and -nd <= start_dim < nd
        and -nd <= end_dim < nd
        and start_dim % nd == end_dim % nd
    ):
        return x  # nothing to merge: torch returns the tensor itself (no new node)
    return _reshape_like(Flatten, "flatten", x, start_dim=start_dim, end_dim=end_dim)


def squeeze(x: Any, dim: Any = None) -> Tensor:
    """Remove size-1 dims (all of them, or those in ``dim``)."""
    return _reshape_like(Squeeze, "squeeze", x, dim=dim)


def unsqueeze(x: Any, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim``."""
    return _reshape_like(Unsqueeze, "unsqueeze", x, dim=dim)


class Transpose(Op):
    """y = x with dims d0, d1 swapped;  dx = g with them swapped back"""

    fields = ("dim0", "dim1")
    forward = staticmethod(torch.transpose)

    def vjp(self, g):
        return g.transpose(self.dim0, self.dim1)


def transpose(x: Any, dim0: int, dim1: int) -> Tensor:
    """Swap two dims."""
    x = as_tensor(x)
    try:
        return Transpose.apply(x, dim0=dim0, dim1=dim1)
    except (IndexError, RuntimeError, TypeError) as e:
        raise IndexError(
            f"transpose: dims {dim0}, {dim1} for a tensor of shape "
            f"{shape_str(x.shape)}: {_torch_error(e)}"
        ) from None


class Permute(Op):
    """y = x with dims reordered by p (y.shape[i] = x.shape[p[i]]);  dx = g reordered by p⁻¹"""

    fields = ("dims",)
    forward = staticmethod(torch.permute)

    def vjp(self, g):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return g.permute(inverse)


def permute(x: Any, *dims: Any) -> Tensor:
    """Reorder dims: ``y.shape[i] == x.shape[dims[i]]``."""
    x = as_tensor(x)
    dims = _sizes(dims)
    n = x.data.dim()
    if not all(isinstance(d, int) for d in dims) or sorted(d % max(n, 1) for d in dims) != list(
        range(n)
    ):
        raise ValueError(
            f"permute: {dims} is not a permutation of the {n} dims of a "
            f"tensor of shape {shape_str(x.shape)}"
        )
    return Permute.apply(x, dims=tuple(d % max(n, 1) for d in dims))


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


class Expand(Op):
    """y = x broadcast to a larger shape;  dx = g (the engine sums it over the broadcast dims)"""

    fields = ("shape",)
    forward = staticmethod(lambda x, shape: x.expand(shape))

    def vjp(self, g):
        return g


def expand(x: Any, *shape: Any) -> Tensor:
    """Broadcast to ``shape`` without copying (-1 keeps a dim)."""
    x = as_tensor(x)
    shape = _sizes(shape)
    try:
        out = Expand.apply(x, shape=shape)
    except RuntimeError:
        raise ShapeError(
            f"expand: a tensor of shape {shape_str(x.shape)} cannot be broadcast to "
            f"{shape_str(shape)} (sizes must match, or be 1 in the input)"
        ) from None
    return out  # a new tensor even when nothing expands, as torch's view (hooks go on it)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    return expand(x, tuple(shape))


def expand_as(x: Any, other: Any) -> Tensor:
    return expand(x, tuple(raw(other).shape))


class SumToSize(Op):
    """y = x summed over the dims that broadcasting would expand;  dx = g expanded to x's shape"""

    fields = ("shape",)
    forward = staticmethod(sum_to)

    def vjp(self, g):
        return g.expand(self.in_meta[0][0])


def sum_to_size(x: Any, *shape: Any) -> Tensor:
    """Sum broadcast dims away so the result has ``shape`` (the inverse of expand)."""
    x = as_tensor(x)
    shape = torch.Size(_sizes(shape))
    have = x.data.shape
    # sum_to trusts its caller; a user's shape must be one that expands to the input's
    if len(shape) > len(have) or any(
        s != 1 and s != h for s, h in zip(reversed(shape), reversed(have))
    ):
        raise ShapeError(
            f"sum_to_size: a tensor of shape {shape_str(have)} cannot be summed to "
            f"{shape_str(shape)} (each size must equal the input's or be 1)"
        )
    if shape == have and len(shape):
        return x  # nothing to sum: torch returns the tensor itself (for () it sums: a new node)
    return SumToSize.apply(x, shape=shape)


class Cat(Op):
    """y = [x₁, x₂, ...] joined along dim;  dxᵢ = the slice of g that xᵢ filled
    (a legacy empty (0,) tensor, which cat skips as torch does, gets an empty gradient)"""

    fields = ("dim", "sizes")
    forward = staticmethod(lambda *xs, dim, sizes: torch.cat(xs, dim))

    def vjp(self, g):
        lead = (slice(None),) * self.dim
        grads, start = [], 0
        for wanted, n in zip(self.needs_input_grad, self.sizes):
            if n is None:
                grads.append(g.reshape(-1)[:0] if wanted else None)
                continue
            grads.append(g[lead + (slice(start, start + n),)] if wanted else None)
            start += n
        return tuple(grads)


class Stack(Op):
    """y = [x₁, x₂, ...] stacked on a new dim;  dxᵢ = g[..., i, ...]"""

    fields = ("dim",)
    forward = staticmethod(lambda *xs, dim: torch.stack(xs, dim))

    def vjp(self, g):
        lead = (slice(None),) * self.dim
        return tuple(
            g[lead + (i,)] if wanted else None for i, wanted in enumerate(self.needs_input_grad)
        )


def _joinable(op: str, tensors: Sequence[Any]) -> list[Tensor]:
    if isinstance(tensors, (Tensor, torch.Tensor)) or len(tensors) == 0:
        raise TypeError(f"{op}: expects a non-empty list or tuple of tensors")
    ts = [as_tensor(t) for t in tensors]
    for t in ts[1:]:
        check_float_pair(op, ts[0].data, t.data)
    return ts


def _join(op: str, cls: Any, ts: list[Tensor], dim: int, rule: str, **fields: Any) -> Tensor:
    try:
        return cls.apply(*ts, dim=dim, **fields)
    except (RuntimeError, IndexError) as e:
        if len({t.data.device for t in ts}) > 1:
            raise e from None  # Op.apply's error names the devices
        shapes = ", ".join(shape_str(t.shape) for t in ts)
        raise ShapeError(f"{op}: cannot join shapes {shapes} {rule} ({_torch_error(e)})") from None


def _legacy_empty(t: Tensor) -> bool:
    return t.data.dim() == 1 and t.data.shape[0] == 0


def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors along an existing dim (legacy empty ``(0,)`` tensors skipped, as torch does)."""
    ts = _joinable("cat", tensors)
    rule = f"along dim {dim}: all dims but {dim} must match"
    full = [t for t in ts if not _legacy_empty(t)]
    ndim = full[0].data.dim() if full else 1
    if not isinstance(dim, int) or not -max(ndim, 1) <= dim < max(ndim, 1):
        shapes = ", ".join(shape_str(t.shape) for t in ts)
        raise IndexError(
            f"cat: dim {dim!r} is out of range for shapes {shapes} (expected an int "
            f"in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])"
        )
    d = dim % max(ndim, 1)
    sizes = tuple(
        None if _legacy_empty(t) and ndim != 1 else (t.data.shape[d] if t.data.dim() > d else 0)
        for t in ts
    )
    return _join("cat", Cat, ts, d, rule, sizes=sizes)


def stack(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new dim."""
    ts = _joinable("stack", tensors)
    n = ts[0].data.dim() + 1
    if isinstance(dim, int) and -n <= dim < n:
        dim %= n
    return _join("stack", Stack, ts, dim, "(all tensors must have the same shape)")


# ---- copies and casts ---------------------------------------------------------------------------
class Clone(Op):
    """y = copy of x;  dx = g"""

    forward: Any = staticmethod(torch.clone)  # Any: Contiguous swaps in another function

    def vjp(self, g):
        return g


class Contiguous(Clone):
    """y = x laid out contiguously (a copy);  dx = g"""

    forward = staticmethod(torch.Tensor.contiguous)


def clone(x: Any) -> Tensor:
    return Clone.apply(x if isinstance(x, Tensor) else as_tensor(x))


def contiguous(x: Tensor) -> Tensor:
    if x.data.is_contiguous():
        return x
    return Contiguous.apply(x)


class Cast(Op):
    """y = x converted to another dtype and/or device;  dx = g converted back"""

    fields = ("dtype", "device", "from_device")
    opname = "to"
    forward = staticmethod(lambda x, dtype, device, from_device: x.to(device=device, dtype=dtype))

    def vjp(self, g):
        return g.to(device=self.from_device, dtype=self.in_meta[0][1])


def to(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Convert dtype and/or device (``to(device)``, ``to(dtype)``, ``to(other)``)."""
    args = tuple(raw(a) for a in args)
    copy = kwargs.pop("copy", False)
    xd = x.data
    try:
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
    except (RuntimeError, TypeError) as e:
        raise explain("to", e, x) from None
    dtype = xd.dtype if dtype is None else dtype
    device = xd.device if device is None else torch.device(device)
    if device.type == xd.device.type and device.index is None:
        device = xd.device  # "cuda" means the current one, as for torch
    if dtype is xd.dtype and device == xd.device:
        return clone(x) if copy else x
    if x._requires_grad and not (dtype.is_floating_point or dtype.is_complex):
        # casting to an integer type ends differentiation, as in torch
        return Tensor._make(xd.to(device=device, dtype=dtype))
    try:
        return Cast.apply(x, dtype=dtype, device=device, from_device=xd.device)
    except (RuntimeError, TypeError) as e:
        raise explain("to", _torch_error(e), x) from None


# ---- transposes, flips, tiling, splitting -------------------------------------------------------
def t(x: Any) -> Tensor:
    """A matrix transposed; of fewer than 2 dims, a new view of the same values (recorded, as
    torch.t: a hook on it is its own)."""
    x = as_tensor(x)
    n = x.data.dim()
    if n > 2:
        raise ShapeError(
            f"t: expects a tensor with at most 2 dims, got shape "
            f"{shape_str(x.shape)}; use transpose(dim0, dim1) or .mT for batches "
            "of matrices"
        )
    return transpose(x, 0, 1) if n == 2 else transpose(x, 0, 0)


class Flip(Op):
    """y = x reversed along dims;  dx = g reversed along the same dims"""

    fields = ("dims",)
    forward = staticmethod(torch.flip)

    def vjp(self, g):
        return g.flip(self.dims)


def flip(x: Any, *dims: Any) -> Tensor:
    """Reverse the order of elements along ``dims``."""
    from ._common import norm_dims

    x = as_tensor(x)
    return Flip.apply(x, dims=norm_dims("flip", _sizes(dims), x.data.dim()))


class Repeat(Op):
    """y = x tiled repeats[k] times along dim k (extra repeats add leading dims);
    dx = g summed over the tiles"""

    fields = ("repeats",)
    forward = staticmethod(lambda x, repeats: x.repeat(repeats))

    def vjp(self, g):
        shape = self.in_meta[0][0]
        reps = self.repeats
        full = (1,) * (len(reps) - len(shape)) + tuple(shape)
        tiles: list = []
        for r, n in zip(reps, full):
            tiles += [r, n]  # explicit sizes: a -1 is ambiguous when a size is 0
        return g.reshape(tiles).sum(tuple(range(0, 2 * len(reps), 2))).reshape(shape)


def repeat(x: Any, *repeats: Any) -> Tensor:
    """Tile ``x``: ``repeats`` has one count per dim (more counts add leading dims)."""
    x = as_tensor(x)
    reps = tuple(_sizes(repeats))
    if len(reps) < x.data.dim():
        raise ShapeError(
            f"repeat: needs at least one count per dim of shape {shape_str(x.shape)}, got {reps}"
        )
    if any(not isinstance(r, int) or r < 0 for r in reps):
        raise ValueError(f"repeat: counts must be non-negative ints, got {reps}")
    return Repeat.apply(x, repeats=reps)


def _split_dim(op: str, x: Tensor, dim: int) -> int:
    n = x.data.dim()
    if n == 0:
        raise ShapeError(f"{op}: cannot split a 0-d tensor")
    if not isinstance(dim, int) or not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim!r} is out of range for shape {shape_str(x.shape)}")
    return dim % n


def _pieces(x: Tensor, d: int, sizes: Sequence[int]) -> tuple:
    """Slices of ``x`` along ``d`` with these sizes (each a view-like Slice node)."""
    from .indexing import getitem

    lead = (slice(None),) * d
    out, start = [], 0
    for n in sizes:
        out.append(getitem(x, lead + (slice(start, start + n),)))
        start += n
    return tuple(out)


def split(x: Any, split_size_or_sections: Any, dim: int = 0) -> tuple:
    """Pieces of ``x`` along ``dim``: of ``split_size`` each (the last may be smaller), or of the
    listed sizes (which must add up to the dim's size)."""
    x = as_tensor(x)
    d = _split_dim("split", x, dim)
    size = x.data.shape[d]
    sec = split_size_or_sections
    if isinstance(sec, int) and not isinstance(sec, bool):
        if sec < 0 or (sec == 0 and size != 0):
            raise ValueError(
                f"split: split_size must be positive, got {sec} for a dim of size {size}"
            )
        if size == 0:
            return (x[(slice(None),) * d + (slice(0, 0),)],)
        return _pieces(x, d, [sec] * (size // sec) + ([size % sec] if size % sec else []))
    sizes = list(sec) if isinstance(sec, (list, tuple, torch.Size)) else None
    if sizes is None or any(not isinstance(n, int) or n < 0 for n in sizes) or sum(sizes) != size:
        raise ValueError(
            f"split: sections {sec!r} must be non-negative ints adding up to {size}, "
            f"the size of dim {dim} of shape {shape_str(x.shape)}"
        )
    return _pieces(x, d, sizes)


def chunk(x: Any, chunks: int, dim: int = 0) -> tuple:
    """``chunks`` pieces along ``dim`` of ceil(size / chunks) each (fewer when they run out)."""
    x = as_tensor(x)
    if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    d = _split_dim("chunk", x, dim)
    size = x.data.shape[d]
    if size == 0:
        return _pieces(x, d, [0] * chunks)
    return split(x, -(-size // chunks), d)


class ShapeMethods:
    """The Tensor methods of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    reshape, view, flatten, squeeze, unsqueeze = reshape, view, flatten, squeeze, unsqueeze
    transpose, permute, expand, expand_as, broadcast_to = (
        transpose,
        permute,
        expand,
        expand_as,
        broadcast_to,
    )
    sum_to_size, clone, contiguous, to = sum_to_size, clone, contiguous, to
    t, flip, repeat, split, chunk = t, flip, repeat, split, chunk
    T = property(T)
    mT = property(mT)

    def float(self: Any) -> Any:
        return to(self, torch.float32)

    def double(self: Any) -> Any:
        return to(self, torch.float64)

    def half(self: Any) -> Any:
        return to(self, torch.float16)

    def cpu(self: Any) -> Any:
        return to(self, "cpu")

    def cuda(self: Any, device: Any = None) -> Any:
        return to(self, "cuda" if device is None else device)
