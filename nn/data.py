"""The course's disc data set, a seeded mini-batch loader, and a sampler that gives each process
of a data-parallel run its own share of every epoch."""

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


def disc_dataset(
    n: int,
    seed: int | None = None,
    labels: str = "binary",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """``n`` points uniform in [0, 1]², labelled by whether they fall inside the disc of radius
    1/sqrt(2π) centred at (0.5, 0.5).

    Returns ``(x, y)``: x of shape (n, 2); y of shape (n, 1) holding 1/0 (``'binary'``) or
    +1/-1 (``'sign'``), or of shape (n, 2) holding one-hot [outside, inside] (``'onehot'``).
    The same ``seed`` gives the same points.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(
            f"disc_dataset: n must be a positive int (the number of points), got {n!r}"
        )
    if labels not in _LABELS:
        raise ValueError(f"disc_dataset: labels must be one of {_LABELS}, got {labels!r}")
    if generator is None:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    x = torch.rand(n, 2, generator=generator, dtype=dtype)
    inside = ((x - 0.5) ** 2).sum(1) < RADIUS**2
    return Tensor(x), Tensor(_labels(inside, labels, dtype))


def disc_split(
    n_train: int = 1000, n_test: int = 1000, seed: int | None = None, labels: str = "binary"
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A training and a test set drawn one after the other from one seeded generator."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return (
        disc_dataset(n_train, labels=labels, generator=g),
        disc_dataset(n_test, labels=labels, generator=g),
    )


class DistributedSampler:
    """The sample indices of rank ``rank``'s share of each epoch, out of ``num_replicas`` ranks.

    Every rank draws the same order (``randperm`` seeded with ``seed + epoch``; call
    ``set_epoch(epoch)`` before each epoch, or every epoch repeats the first order) and takes every
    ``num_replicas``-th index from its rank on, so the shares never overlap. When ``n`` does not
    divide evenly, ``drop_last=False`` pads the order by repeating its first indices (a few samples
    count twice in that epoch); ``drop_last=True`` drops its last ``n % num_replicas`` indices
    instead. Either way every rank gets ``len(sampler)`` indices, so all take the same number of
    steps. With ``B`` samples per rank and step, the ranks' batches of one step together are
    batch ``k`` of size ``num_replicas * B`` of that order.

    ``n`` is the number of samples, or the data: a tensor (its first dimension) or an ``(x, y)``
    pair. ``num_replicas`` and ``rank`` default to the initialised ``torch.distributed`` group's.
    """

    def __init__(
        self,
        n: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if isinstance(n, tuple) and len(n) == 2:
            n = n[0]  # (x, y): the samples are x's rows
        if isinstance(n, (Tensor, torch.Tensor)):
            n = n.shape[0] if n.dim() else 0
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(
                f"DistributedSampler: expected the number of samples, a tensor or an "
                f"(x, y) pair, got {type(n).__name__}"
            )
        if n < 1:
            raise ValueError(f"DistributedSampler: the data set is empty (n = {n})")
        if num_replicas is None or rank is None:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError(
                    "DistributedSampler: pass num_replicas and rank, or initialise "
                    "the torch.distributed process group first"
                )
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(
                f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}"
            )
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be in [0, {num_replicas - 1}], got {rank!r}"
            )
        if drop_last and n < num_replicas:
            raise ValueError(
                f"DistributedSampler: drop_last with {n} samples and {num_replicas} "
                "ranks leaves every rank empty"
            )
        self.n, self.num_replicas, self.rank = n, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        self.num_samples = n // num_replicas if drop_last else -(-n // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        total = self.num_samples * self.num_replicas
        if total > self.n:  # pad: repeat the order's start (several times if n < num_replicas)
            order = order.repeat(-(-total // self.n))
        return order[:total][self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class BatchLoader:
    """Iterate over ``(x, y)`` mini-batches; each pass (epoch) draws a new order when shuffling.

    The order depends only on ``seed`` (and the epoch number), so two loaders with the same seed
    yield the same batches. ``drop_last`` skips a final batch smaller than ``batch_size``.
    With a ``sampler`` (e.g. :class:`DistributedSampler`) the batches follow its indices instead
    (``shuffle`` and ``seed`` are then the sampler's business).
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        sampler: DistributedSampler | None = None,
    ) -> None:
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
        if sampler is not None and sampler.n != xd.shape[0]:
            raise ValueError(
                f"BatchLoader: the sampler covers {sampler.n} samples but x has {xd.shape[0]}"
            )
        self.sampler = sampler
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __len__(self) -> int:
        n = self.x.shape[0] if self.sampler is None else len(self.sampler)
        b = self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.x, self.y
        n, b = x.shape[0], self.batch_size
        if self.sampler is not None:
            idx = self.sampler.indices()
            x, y, n = x[idx], y[idx], idx.numel()
        elif self.shuffle and n > b:
            perm = torch.randperm(n, generator=self.generator)
            x, y = x[perm], y[perm]  # one gather per epoch; the batches are then views
        stop = n - n % b if self.drop_last else n
        for i in range(0, stop, b):
            yield Tensor(x[i : i + b]), Tensor(y[i : i + b])
