"""Handwritten digits: a small CNN trained on scikit-learn's 8x8 digits.

    1x8x8 -> Conv2d(1, 32, 3, padding=1) -> ReLU -> MaxPool2d(2)        32x4x4
          -> Conv2d(32, 64, 3, padding=1) -> ReLU -> MaxPool2d(2)       64x2x2
          -> Flatten -> Linear(256, 10)                                  10 logits

Cross entropy, Adam with a cosine-decaying learning rate (per epoch), batches of 32 with random
1-pixel shifts; the split is fixed, ``seed`` picks the initial weights and the batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import autodiff as ad
import nn
from nn.train import History, error_rate

from . import digits_data
from .common import check_common, seeded, sub_seeds
from .loop import train_epochs


@dataclass
class DigitsConfig:
    """One digits run (reproducible from ``seed``)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    channels: tuple = (32, 64)
    max_shift: int = 1  # augmentation: random shifts of up to this many pixels
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def replace(self, **changes: Any) -> DigitsConfig:
        return dataclasses.replace(self, **changes)

    def check(self) -> DigitsConfig:
        check_common(self)
        return self


Config = DigitsConfig  # the name command.py and seeds.py look up in each task module


def build_model(cfg: DigitsConfig, lib: Any = nn) -> Any:
    """The CNN above, float32 on the CPU (``prepare`` casts and moves it); its layers come from
    ``lib``: tapegrad's ``nn``, or ``torch.nn`` for the torch twin (same names and state_dict)."""
    c1, c2 = cfg.channels
    return lib.Sequential(
        lib.Conv2d(1, c1, 3, padding=1),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(c1, c2, 3, padding=1),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(c2 * 2 * 2, 10),
    )


def loss_of(model: Any, xb: Any, yb: Any) -> Any:
    return nn.functional.cross_entropy(model(xb), yb)


@dataclass
class DigitsRun:
    """The outcome of :func:`run`: the trained model, its history and the data it used."""

    config: DigitsConfig
    model: Any
    history: History
    train: tuple
    test: tuple
    optimizer: Any = field(repr=False, default=None)

    def predictions(self) -> torch.Tensor:
        """The predicted class of each test image."""
        return predict(self.model, self.test[0])


def predict(model: Any, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """The class (argmax of the logits) of each image of ``x``, in eval mode, nothing recorded."""
    was = model.training
    model.eval()
    try:
        with ad.no_grad():
            return torch.cat(
                [model(x[i : i + chunk]).data.argmax(1) for i in range(0, x.shape[0], chunk)]
            )
    finally:
        model.train(was)


def prepare(cfg: DigitsConfig) -> tuple:
    """Data, model, optimizer, scheduler and batch seed of a run (nothing trained yet)."""
    cfg.check()
    _, init_seed, batch_seed = sub_seeds(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    train, test = digits_data.load_split(dtype)
    train = tuple(t.to(cfg.device) for t in train)
    test = tuple(t.to(cfg.device) for t in test)
    model = seeded(init_seed, lambda: build_model(cfg)).to(device=cfg.device, dtype=dtype)
    opt = nn.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = nn.optim.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return train, test, model, opt, sched, batch_seed


def batches_of(cfg: DigitsConfig, train: tuple, batch_seed: int) -> Callable[[int], Any]:
    x, y = train
    return lambda epoch: digits_data.epoch_batches(
        x, y, cfg.batch_size, batch_seed, epoch, cfg.max_shift
    )


def evaluator(model: Any, train: tuple, test: tuple) -> Callable[[Any], tuple[float, float]]:
    """Train and test error (%) of the whole sets (unshifted images)."""

    def evaluate(_last: Any) -> tuple[float, float]:
        return (error_rate(model(train[0]), train[1]), error_rate(model(test[0]), test[1]))

    return evaluate


def run(
    cfg: DigitsConfig, progress: bool = False, on_epoch: Callable[[dict], None] | None = None
) -> DigitsRun:
    """Train one configuration; returns the model and its history."""
    train, test, model, opt, sched, batch_seed = prepare(cfg)
    history = train_epochs(
        model,
        opt,
        sched,
        cfg.epochs,
        batches_of(cfg, train, batch_seed),
        loss_of,
        evaluator(model, train, test),
        progress=progress,
        on_epoch=on_epoch,
    )
    return DigitsRun(cfg, model, history, train, test, opt)
