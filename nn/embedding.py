"""Embedding lookup: rows of a weight table picked by integer indices (``nn.Embedding``'s op).

``Embedding`` and ``EmbeddingBackward`` are each other's VJPs (a gather and a scatter-add over
the same indices), so every order works; the indices are an input of both nodes (saved and
version-checked). First-order gradients come from torch's ``embedding_dense_backward``.
"""

from __future__ import annotations

from typing import Any

import torch

import autodiff as ad
from autodiff import DTypeError, ShapeError, Tensor, as_tensor

_RAW = torch.Tensor
_embedding_backward = torch.ops.aten.embedding_dense_backward.default


def _lookup(indices: torch.Tensor, weight: torch.Tensor, padding_idx: int) -> torch.Tensor:
    return torch.embedding(weight, indices, padding_idx)


def _scatter(
    g: torch.Tensor, indices: torch.Tensor, num_weights: int, padding_idx: int
) -> torch.Tensor:
    return _embedding_backward(g, indices, num_weights, padding_idx, False)


class Embedding(ad.Op):
    """y = W[i] (one row per index);  dW = g rows added at i (rows repeated in i add up; the
    padding_idx row gets none)"""

    args = ("input", "weight")
    saves = ("input",)
    fields = ("padding_idx",)  # -1: none
    forward = staticmethod(_lookup)

    def vjp(self, g, indices):
        n = self.in_meta[1][0][0]
        if g.__class__ is _RAW:
            return None, _scatter(g, indices, n, self.padding_idx)
        return None, EmbeddingBackward.apply(
            g, indices, num_weights=n, padding_idx=self.padding_idx
        )


class EmbeddingBackward(ad.Op):
    """dW = zeros with g rows added at i (the embedding's VJP);  dg = gg[i] (0 where i is the
    padding_idx)"""

    args = ("grad", "input")
    saves = ("input",)
    fields = ("num_weights", "padding_idx")
    forward = staticmethod(_scatter)

    def vjp(self, gg, indices):
        rows = (
            _lookup(indices, gg, self.padding_idx)
            if gg.__class__ is _RAW
            else Embedding.apply(indices, gg, padding_idx=self.padding_idx)
        )
        if self.padding_idx >= 0:
            idx = indices.data if isinstance(indices, Tensor) else indices
            rows = rows.where((idx != self.padding_idx).unsqueeze(-1), 0.0)
        return rows, None


def _padding_index(op: str, padding_idx: Any, n: int) -> int:
    if padding_idx is None:
        return -1
    if (
        not isinstance(padding_idx, int)
        or isinstance(padding_idx, bool)
        or not -n <= padding_idx < n
    ):
        raise ValueError(
            f"{op}: padding_idx must be an int in [{-n}, {n - 1}] (the table has "
            f"{n} rows), got {padding_idx!r}"
        )
    return padding_idx % n


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Tensor:
    """``weight[input]``: a row of the (num_embeddings, dim) table per integer index; the row
    ``padding_idx`` (if given) receives no gradient."""
    op = "embedding"
    w = as_tensor(weight)
    idx = input.data if isinstance(input, Tensor) else input
    if not isinstance(idx, torch.Tensor):
        idx = torch.as_tensor(idx, device=w.data.device)
    if idx.dtype not in (torch.int64, torch.int32):
        raise DTypeError(f"{op}: indices must be int64 or int32, got dtype {idx.dtype}")
    if w.ndim != 2:
        raise ShapeError(
            f"{op}: weight must be 2-d (num_embeddings, embedding_dim), got shape {tuple(w.shape)}"
        )
    n = w.shape[0]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(
            f"{op}: indices must lie in [0, {n - 1}] (the table has {n} rows), got "
            f"values in [{int(idx.min())}, {int(idx.max())}]"
        )
    p = _padding_index(op, padding_idx, n)
    # the indices are an input of the node: changing them before backward() is refused
    return Embedding.apply(input if isinstance(input, Tensor) else idx, w, padding_idx=p)
