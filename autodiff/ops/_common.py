"""Helpers shared by the op catalogue: operand conversion, un-broadcasting, clear errors."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor

SCALARS = (int, float, bool)


def as_tensor(x: Any) -> Tensor:
    """Tensor operands stay; torch tensors, numbers and lists become constant Tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, torch.Tensor):
        return Tensor._make(x.detach() if x.requires_grad else x)
    try:
        return Tensor._make(torch.as_tensor(x, dtype=torch.get_default_dtype()
                                            if isinstance(x, float) else None))
    except (RuntimeError, TypeError, ValueError) as e:
        raise TypeError(f"expected a Tensor, a torch.Tensor, a number or a (nested) list of "
                        f"numbers, got {type(x).__name__} {x!r:.60}: {e}") from None


def raw(x: Any) -> Any:
    """The torch tensor under a Tensor (masks in VJPs are computed on raw data: constants)."""
    return x.data if isinstance(x, Tensor) else x


def shape_str(shape: Sequence[int]) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def sum_to(g: Any, shape: torch.Size) -> Any:
    """Undo broadcasting: sum ``g`` down to ``shape`` (works on torch and autodiff tensors)."""
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    dims = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    if dims:
        g = g.sum(dims, keepdim=True)
    if lead:
        g = g.reshape(shape)
    return g


def check_float_pair(op: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """Refuse silently promoting between two floating dtypes (float32 + float64)."""
    da, db = a.dtype, b.dtype
    if da is not db and (da.is_floating_point and db.is_floating_point):
        raise DTypeError(
            f"{op}: operands have different dtypes {da} and {db} (shapes {shape_str(a.shape)} and "
            f"{shape_str(b.shape)}); convert one with .to({da}) or .to({db}) first.")


def explain(op: str, err: Exception, *operands: Any) -> Exception:
    """Turn a torch failure inside ``op``'s forward into an error naming op, shapes and devices."""
    ts = [raw(o) for o in operands if isinstance(o, (Tensor, torch.Tensor))]
    devices = {t.device for t in ts if t.dim() > 0}
    if len(devices) > 1:
        desc = " and ".join(f"{shape_str(t.shape)} on {t.device}" for t in ts)
        return DeviceError(f"{op}: operands are on different devices: {desc}. Move them to one "
                           "device with .to(device) first.")
    if len(ts) >= 2:
        try:
            torch.broadcast_shapes(*(t.shape for t in ts))
        except RuntimeError:
            return ShapeError(f"{op}: {broadcast_mismatch(*(t.shape for t in ts))}")
    shapes = " and ".join(shape_str(t.shape) for t in ts)
    return type(err)(f"{op} (operand shapes {shapes}): {err}")


def broadcast_mismatch(*shapes: Sequence[int]) -> str:
    n = max(len(s) for s in shapes)
    for d in range(-1, -n - 1, -1):
        sizes = [s[d] for s in shapes if len(s) >= -d]
        distinct = {x for x in sizes if x != 1}
        if len(distinct) > 1:
            return (f"shapes {' and '.join(shape_str(s) for s in shapes)} cannot be broadcast "
                    f"together: at dimension {d} the sizes are {' and '.join(map(str, sizes))} "
                    "(sizes must match or be 1)")
    return "shapes " + " and ".join(shape_str(s) for s in shapes) + " cannot be broadcast together"


def norm_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, int or tuple) as a sorted tuple of non-negative dims; None means all."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dims: tuple = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {type(dim).__name__} {dim!r}")
    out = []
    lim = max(ndim, 1)
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {d!r} in {dim!r}")
        if not -lim <= d < lim:
            raise IndexError(f"{op}: dim {d!r} is out of range for a tensor with {ndim} dims "
                             f"(expected an int in [{-lim}, {lim - 1}])")
        out.append(d % lim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} names a dimension twice")
    return tuple(sorted(out))


def keep_shape(shape: Sequence[int], dims: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a reduction over ``dims`` has with keepdim=True."""
    return tuple(1 if i in dims else s for i, s in enumerate(shape))
