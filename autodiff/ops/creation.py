"""Tensors made like another (``x.new_zeros(3)``: x's dtype and device) and ``x.type()``.

They are new leaves, outside any graph; ``type(dtype)`` is a cast (recorded like ``to``).
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import Tensor, raw
from .shape import to


def _size(size: tuple) -> Any:
    return size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size


def _leaf(data: torch.Tensor, requires_grad: bool) -> Tensor:
    t = Tensor._make(data)
    return t.requires_grad_(requires_grad) if requires_grad else t


def new_zeros(
    self: Tensor,
    *size: Any,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Zeros of ``size`` with this tensor's dtype and device (unless given)."""
    return _leaf(self.data.new_zeros(_size(size), dtype=dtype, device=device), requires_grad)


def new_ones(
    self: Tensor,
    *size: Any,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Ones of ``size`` with this tensor's dtype and device (unless given)."""
    return _leaf(self.data.new_ones(_size(size), dtype=dtype, device=device), requires_grad)


def new_empty(
    self: Tensor,
    *size: Any,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uninitialised values of ``size`` with this tensor's dtype and device (unless given)."""
    return _leaf(self.data.new_empty(_size(size), dtype=dtype, device=device), requires_grad)


def new_full(
    self: Tensor,
    size: Any,
    fill_value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``fill_value`` everywhere in ``size``, with this tensor's dtype and device (unless given)."""
    return _leaf(
        self.data.new_full(tuple(size), raw(fill_value), dtype=dtype, device=device), requires_grad
    )


def new_tensor(
    self: Tensor,
    data: Any,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """A copy of ``data`` with this tensor's dtype and device (unless given)."""
    d = raw(data)
    d = d.detach().clone() if isinstance(d, torch.Tensor) else d
    return _leaf(self.data.new_tensor(d, dtype=dtype, device=device), requires_grad)


def type_(self: Tensor, dtype: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
    """No argument: torch's type name (``'torch.FloatTensor'``). With a dtype or a type name
    (``'torch.DoubleTensor'``): this tensor converted to it (differentiable, like ``to``)."""
    if dtype is None:
        return self.data.type()
    like = self.data.new_empty(0).type(dtype)  # torch's reading of every accepted spelling
    return to(self, device=like.device, dtype=like.dtype)


class CreationMethods:
    """The Tensor methods of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    new_zeros, new_ones, new_empty, new_full, new_tensor = (
        new_zeros,
        new_ones,
        new_empty,
        new_full,
        new_tensor,
    )
    type = type_
