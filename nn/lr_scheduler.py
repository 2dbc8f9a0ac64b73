"""Learning-rate schedules (stepped once per epoch, or per step): ``StepLR``, ``CosineAnnealingLR``.

Closed forms of t = ``last_epoch``; the sequences equal torch's (cosine with warm-up equals
torch's ``SequentialLR(LinearLR, CosineAnnealingLR)``).
"""

from __future__ import annotations

import math
from typing import Any


class LRScheduler:
    """Sets ``group['lr']`` from ``get_lr()`` at every ``step()``; starts at t = 0 on creation."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        for i, g in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                g.setdefault("initial_lr", g["lr"])
            elif "initial_lr" not in g:
                raise KeyError(
                    f"{type(self).__name__}: param group {i} has no 'initial_lr'; "
                    "resuming with last_epoch != -1 needs a scheduler-initialised optimizer"
                )
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        lrs = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """lr = base_lr · gamma^⌊t / step_size⌋"""

    def __init__(
        self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Optional linear warm-up over ``warmup`` steps from ``warmup_start_factor · base_lr``, then
    lr = η_min + (base_lr - η_min) (1 + cos(π (t - warmup) / (T_max - warmup))) / 2.

    ``T_max`` counts the warm-up steps too (the whole schedule is T_max steps long).
    """

    def __init__(
        self,
        optimizer: Any,
        T_max: int,
        eta_min: float = 0.0,
        last_epoch: int = -1,
        *,
        warmup: int = 0,
        warmup_start_factor: float = 0.01,
    ) -> None:
        if not isinstance(T_max, int) or T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, got {T_max!r}")
        if not isinstance(warmup, int) or not 0 <= warmup < T_max:
            raise ValueError(
                f"CosineAnnealingLR: warmup must be an int in [0, T_max={T_max}), got {warmup!r}"
            )
        if not 0.0 < warmup_start_factor <= 1.0:
            raise ValueError(
                "CosineAnnealingLR: warmup_start_factor must be in (0, 1], got "
                f"{warmup_start_factor!r}"
            )
        self.T_max = T_max
        self.eta_min = eta_min
        self.warmup = warmup
        self.warmup_start_factor = warmup_start_factor
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, w = self.last_epoch, self.warmup
        if t < w:
            f = self.warmup_start_factor
            factor = f + (1.0 - f) * t / w
            return [b * factor for b in self.base_lrs]
        c = (1 + math.cos(math.pi * (t - w) / (self.T_max - w))) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]
