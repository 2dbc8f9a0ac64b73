"""``nn.Embedding``: a trainable lookup table (the file named as torch's nn/modules/sparse.py)."""

from __future__ import annotations

from typing import Any

import torch

from autodiff import Tensor

from . import init
from .embedding import _padding_index, embedding
from .module import Module
from .parameter import Parameter


class Embedding(Module):
    """y = W[i] with W of shape (num_embeddings, embedding_dim), initialised N(0, 1) like torch's
    (the ``padding_idx`` row zero, and it gets no gradient); ``_weight`` to start from a table."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        _weight: Any = None,
        *,
        generator: torch.Generator | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for what, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Embedding: {what} must be a positive int, got {v!r}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = (
            None
            if padding_idx is None
            else _padding_index("Embedding", padding_idx, num_embeddings)
        )
        if _weight is None:
            self.weight = Parameter(
                torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)
            )
            self.reset_parameters(generator)
        else:
            w = _weight.data if isinstance(_weight, Tensor) else torch.as_tensor(_weight)
            if tuple(w.shape) != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"Embedding: _weight must have shape ({num_embeddings}, "
                    f"{embedding_dim}), got {tuple(w.shape)}"
                )
            self.weight = Parameter(w)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init.normal_(self.weight, generator=generator)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx].fill_(0)

    def forward(self, input: Any) -> Tensor:
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
