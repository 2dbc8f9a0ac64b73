"""tapegrad with ``autodiff.replay``: the same nn model, optimizer and numbers as tapegrad_impl,
but each step after the first replays the recorded tape instead of rebuilding it. Training steps
only (no deep-chain workload)."""

from __future__ import annotations

import autodiff as ad

from . import tapegrad_impl
from .workloads import MLPSpec

NAME = "tapegrad replay"
AVAILABLE = hasattr(ad, "replay") and tapegrad_impl.nn is not None
loss_value = tapegrad_impl.loss_value


class Trainer(tapegrad_impl.Trainer):
    def __init__(self, spec: MLPSpec, weights: list, device: str) -> None:
        super().__init__(spec, weights, device, mode="replay")
