"""What both tasks share: checking the common options, seeding the initial weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..presets import TrainConfig, sub_seeds

__all__ = ["check_common", "sub_seeds", "seeded"]


def check_common(cfg: Any) -> None:
    """Check ``epochs``, ``batch_size``, ``lr``, ``seed``, ``device`` and ``dtype`` with the disc
    task's ranges and messages (raises ``presets.ConfigError`` naming the field)."""
    TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        device=cfg.device,
        dtype=cfg.dtype,
    ).check()


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` with torch's global generator seeded by ``seed`` (the layers draw their initial
    weights from it), leaving the caller's generator state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
