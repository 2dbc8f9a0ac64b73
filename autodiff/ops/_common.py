"""Helpers shared by the op catalogue: operand conversion, dims, clear errors.

``Tensor`` here is the base class every autodiff Tensor derives from (isinstance checks);
``Tensor._make`` builds the full ``autodiff.Tensor``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..engine import sum_to  # noqa: F401  (re-exported: sum_to_size)
from ..errors import DTypeError
from ..op import broadcast_mismatch, explain, shape_str  # noqa: F401  (re-exported)
from ..tensor_base import TensorBase as Tensor

SCALARS = (int, float, bool)


def as_tensor(x: Any) -> Tensor:
    """Tensor operands stay; torch tensors, numbers and lists become constant Tensors."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, torch.Tensor):
        return Tensor._make(x.detach() if x.requires_grad else x)
    try:
        return Tensor._make(
            torch.as_tensor(x, dtype=torch.get_default_dtype() if isinstance(x, float) else None)
        )
    except (RuntimeError, TypeError, ValueError) as e:
        raise TypeError(
            f"expected a Tensor, a torch.Tensor, a number or a (nested) list of "
            f"numbers, got {type(x).__name__} {x!r:.60}: {e}"
        ) from None


def aten_kernel(overload: Any) -> Any:
    """The callable behind ``torch.ops.aten.<op>.default``: the overload's ``__call__`` only
    forwards to it, a Python call per use on the VJPs' first-order path."""
    return getattr(overload, "_op", overload)


def raw(x: Any) -> Any:
    """The torch tensor under a Tensor (masks in VJPs are computed on raw data: constants)."""
    return x.data if isinstance(x, Tensor) else x


def check_float_pair(op: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """Refuse silently promoting between two floating dtypes (float32 + float64)."""
    da, db = a.dtype, b.dtype
    if da is not db and (da.is_floating_point and db.is_floating_point):
        raise DTypeError(
            f"{op}: operands have different dtypes {da} and {db} (shapes {shape_str(a.shape)} and "
            f"{shape_str(b.shape)}); convert one with .to({da}) or .to({db}) first."
        )


def norm_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, int or tuple) as a sorted tuple of non-negative dims; None means all."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dims: tuple = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        raise TypeError(
            f"{op}: dim must be an int or a tuple of ints, got {type(dim).__name__} {dim!r}"
        )
    out = []
    lim = max(ndim, 1)
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {d!r} in {dim!r}")
        if not -lim <= d < lim:
            raise IndexError(
                f"{op}: dim {d!r} is out of range for a tensor with {ndim} dims "
                f"(expected an int in [{-lim}, {lim - 1}])"
            )
        out.append(d % lim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} names a dimension twice")
    return tuple(sorted(out))


def keep_shape(shape: Sequence[int], dims: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a reduction over ``dims`` has with keepdim=True."""
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def zeros_like_grad(g: Any) -> Any:
    """A zero gradient shaped like ``g``, by selection (``g * 0`` would turn ±inf into NaN)."""
    return g.where(torch.zeros((), dtype=torch.bool, device=raw(g).device), 0.0)
