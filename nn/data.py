"""The course's disc data set, and a seeded mini-batch loader."""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch

from autodiff import Tensor

RADIUS = 1 / math.sqrt(2 * math.pi)  # the disc covers half of the unit square
_LABELS = ("binary", "sign", "onehot")


def _labels(inside: torch.Tensor, labels: str, dtype: torch.dtype) -> torch.Tensor:
    if labels == "binary":
        return inside.to(dtype).unsqueeze(1)
    if labels == "sign":
        return (inside.to(dtype) * 2 - 1).unsqueeze(1)
    return torch.stack([~inside, inside], 1).to(dtype)


def disc_dataset(n: int, seed: int | None = None, labels: str = "binary", *,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``n`` points uniform in [0, 1]², labelled by whether they fall inside the disc of radius
    1/sqrt(2π) centred at (0.5, 0.5).

    Returns ``(x, y)``: x of shape (n, 2); y of shape (n, 1) holding 1/0 (``'binary'``) or
    +1/-1 (``'sign'``), or of shape (n, 2) holding one-hot [outside, inside] (``'onehot'``).
    The same ``seed`` gives the same points.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"disc_dataset: n must be a positive int (the number of points), got {n!r}")
    if labels not in _LABELS:
        raise ValueError(f"disc_dataset: labels must be one of {_LABELS}, got {labels!r}")
    if generator is None:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    x = torch.rand(n, 2, generator=generator, dtype=dtype)
    inside = ((x - 0.5) ** 2).sum(1) < RADIUS ** 2
    return Tensor(x), Tensor(_labels(inside, labels, dtype))


def disc_split(n_train: int = 1000, n_test: int = 1000, seed: int | None = None,
               labels: str = "binary") -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A training and a test set drawn one after the other from one seeded generator."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return (disc_dataset(n_train, labels=labels, generator=g),
            disc_dataset(n_test, labels=labels, generator=g))


class BatchLoader:
    """Iterate over ``(x, y)`` mini-batches; each pass (epoch) draws a new order when shuffling.

    The order depends only on ``seed`` (and the epoch number), so two loaders with the same seed
    yield the same batches. ``drop_last`` skips a final batch smaller than ``batch_size``.
    """

    def __init__(self, x: Any, y: Any, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, drop_last: bool = False) -> None:
        xd = x.data if isinstance(x, Tensor) else torch.as_tensor(x)
        yd = y.data if isinstance(y, Tensor) else torch.as_tensor(y)
        if xd.shape[0] != yd.shape[0]:
            raise ValueError(f"BatchLoader: x has {xd.shape[0]} samples but y has {yd.shape[0]}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"BatchLoader: batch_size must be a positive int, got {batch_size!r}")
        self.x, self.y = xd, yd
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __len__(self) -> int:
        n, b = self.x.shape[0], self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.x, self.y
        n, b = x.shape[0], self.batch_size
        if self.shuffle and n > b:
            perm = torch.randperm(n, generator=self.generator)
            x, y = x[perm], y[perm]  # one gather per epoch; the batches are then views
        stop = n - n % b if self.drop_last else n
        for i in range(0, stop, b):
            yield Tensor._make(x[i:i + b]), Tensor._make(y[i:i + b])
