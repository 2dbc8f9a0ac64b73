"""Indexing: ``x[i]``, slices, ``None``/``...``, integer-tensor and boolean-mask indices.

The VJP scatters the gradient back into a zero tensor of the input's shape, adding where an
advanced index picks the same element twice (``x[[0, 0]]``).
"""
from __future__ import annotations

from typing import Any

import torch

from ..engine import Node, kernel, record
from ..tensor import Tensor
from ._common import as_tensor, shape_str

_BASIC = (int, slice, type(None), type(Ellipsis))


def _raw_index(idx: Any) -> Any:
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in idx)
    if isinstance(idx, list) and any(isinstance(i, Tensor) for i in idx):
        return [i.data if isinstance(i, Tensor) else i for i in idx]
    return idx


def _is_basic(idx: Any) -> bool:
    if isinstance(idx, tuple):
        return all(i.__class__ in _BASIC for i in idx)
    return idx.__class__ in _BASIC


def _scatter(g: torch.Tensor, shape: torch.Size, idx: Any, basic: bool) -> torch.Tensor:
    z = g.new_zeros(shape)
    if basic:
        z[idx] = g  # a basic index never names an element twice
        return z
    where = torch.arange(z.numel(), device=g.device).reshape(shape)[idx]
    z.view(-1).index_add_(0, where.reshape(-1), g.reshape(-1))
    return z


class Index(Node):
    """y = x[idx];  dx = zeros like x with g added at idx"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: (lambda x: x[m[1]]) if m[2] else None)

    def vjp(self, g):
        return (index_scatter(g, *self.meta),)


class IndexScatter(Node):
    """y = zeros with g added at idx (the VJP of indexing);  dg = gy[idx]"""
    __slots__ = ()

    def vjp(self, gy):
        shape, idx, basic = self.meta
        return (gy[idx],)


def index_scatter(g: Any, shape: torch.Size, idx: Any, basic: bool) -> Any:
    """Zeros of ``shape`` with ``g`` added at ``idx``; raw in, raw out; recorded for Tensors."""
    if isinstance(g, Tensor):
        return record(IndexScatter, _scatter(g.data, shape, idx, basic), (g,), meta=(shape, idx, basic))
    return _scatter(g, shape, idx, basic)


def getitem(x: Tensor, idx: Any) -> Tensor:
    """``x[idx]`` with the full torch indexing syntax."""
    ridx = _raw_index(idx)
    try:
        out = x.data[ridx]
    except (IndexError, RuntimeError, TypeError) as e:
        raise type(e)(f"indexing a tensor of shape {shape_str(x.shape)} with {idx!r}: {e}") from None
    return record(Index, out, (x,), meta=(x.data.shape, ridx, _is_basic(ridx)))


def take(x: Any, idx: Any) -> Tensor:
    return getitem(as_tensor(x), idx)
