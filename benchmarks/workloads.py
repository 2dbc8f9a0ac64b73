"""What the benchmark runs: network specs, shared initial weights, data, and the op chains.

Every implementation receives the same raw torch tensors from here (weights, batches, chain
input), so the three compute the same numbers and the harness can check that they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected network trained with MSE and SGD with momentum."""

    name: str
    sizes: tuple[int, ...]  # (in, hidden..., out)
    act: str  # "tanh" or "relu" between layers (none after the last)
    lr: float = 0.01
    momentum: float = 0.9

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1


COURSE = MLPSpec("course", (2, 25, 25, 25, 1), "tanh", lr=0.01, momentum=0.9)
WIDE = MLPSpec("wide", (2, 1024, 1024, 1024, 1), "relu", lr=1e-3, momentum=0.9)
WIDE_QUICK = MLPSpec("wide", (2, 128, 128, 128, 1), "relu", lr=1e-3, momentum=0.9)

COURSE_BATCHES = (1, 16, 128, 1000)
WIDE_BATCH = 1024
EPOCHS, EPOCH_BATCH, N_POINTS = 100, 16, 1000
CHAIN_LENGTHS = (1_000, 10_000, 100_000)
CHAIN_WIDTH = 16  # elements per tensor in the chain: small, so per-op overhead dominates


def init_weights(spec: MLPSpec, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W of shape (out, in), b of shape (out,)) per layer, uniform in ±1/sqrt(in) (as
    torch.nn.Linear)."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        w = torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g)
        b = torch.empty(fan_out).uniform_(-bound, bound, generator=g)
        layers.append((w, b))
    return layers


def disc_data(n: int = N_POINTS, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The course data: points uniform in [0,1]², label 1 inside the disc of area 1/2 around
    (½, ½)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g)
    inside = (x - 0.5).pow(2).sum(1) < 1 / (2 * math.pi)
    return x, inside.float().unsqueeze(1)


def random_batch(batch: int, d_in: int, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, d_in, generator=g), torch.rand(batch, 1, generator=g)


def epoch_batches(n: int, batch: int, epochs: int, seed: int = 3):
    """The index tensors of a shuffled mini-batch run: the same order for every implementation."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            yield perm[i : i + batch]


def chain_input(width: int = CHAIN_WIDTH, seed: int = 4) -> torch.Tensor:
    """The chain alternates tanh and negation: values shrink like n^-1/2 and gradients like n^-3/2,
    so 10^5 ops stay in normal float32 range (no denormals slowing the kernels down)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(width, generator=g) + 0.5
