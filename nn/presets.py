"""Named training configurations for the disc classifier, and how to build and run one.

``default`` reproduces the course project (ReLU network, SGD with momentum, mini-batches);
``best`` is the configuration found to generalise best with the same 1,000 training points and
the same 2 -> 25 -> 25 -> 25 -> 1 network (see the README for the measured figures).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import optim
from .activations import LeakyReLU, ReLU, Sigmoid, SiLU, Softplus, Tanh
from .container import Sequential
from .data import disc_split
from .layers import Linear
from .losses import BCEWithLogitsLoss, MSELoss
from .module import Module
from .train import History, fit

ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "silu": SiLU,
    "softplus": Softplus,
}
OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("bce", "mse")
SCHEDULES = ("none", "cosine", "step")


@dataclass
class TrainConfig:
    """Everything that defines one training run (all runs are reproducible from ``seed``)."""

    n_train: int = 1000
    n_test: int = 1000
    hidden: tuple = (25, 25, 25)
    activation: str = "relu"
    loss: str = "bce"            # 'bce': logits + BCEWithLogitsLoss; 'mse': linear output, MSE on 0/1
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 16
    epochs: int = 100
    schedule: str = "none"       # 'cosine' (with ``warmup`` epochs), 'step' (x0.1 at 50% and 75%)
    warmup: int = 0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def check(self) -> "TrainConfig":
        def bad(what: str, value: Any, allowed: Any) -> ValueError:
            return ValueError(f"invalid {what} {value!r}; expected {allowed}")
        if self.activation not in ACTIVATIONS:
            raise bad("activation", self.activation, ", ".join(ACTIVATIONS))
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", self.optimizer, ", ".join(OPTIMIZERS))
        if self.loss not in LOSSES:
            raise bad("loss", self.loss, ", ".join(LOSSES))
        if self.schedule not in SCHEDULES:
            raise bad("schedule", self.schedule, ", ".join(SCHEDULES))
        if self.dtype not in ("float32", "float64"):
            raise bad("dtype", self.dtype, "float32 or float64")
        for name in ("n_train", "n_test", "batch_size", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise bad(name, v, "a positive int")
        if not 0 <= self.warmup < max(self.epochs, 1):
            raise bad("warmup", self.warmup, f"an int in [0, epochs={self.epochs})")
        if not (self.lr > 0):
            raise bad("lr", self.lr, "a positive number")
        return self


PRESETS: dict[str, TrainConfig] = {
    # The course project (ReLU hidden layers, SGD with momentum, mini-batches of 16) with a
    # cosine-decaying learning rate.
    "default": TrainConfig(schedule="cosine"),
    # Smooth activation, Adam, full batch, linear warm-up then cosine decay, many epochs.
    "best": TrainConfig(activation="silu", optimizer="adam", lr=1e-2, batch_size=1000,
                        epochs=1000, schedule="cosine", warmup=100),
}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].replace()


def sub_seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the data, the initial weights and the batch order."""
    g = torch.Generator().manual_seed(seed)
    return tuple(int(s) for s in torch.randint(0, 2 ** 62, (3,), generator=g))  # type: ignore[return-value]


def build_model(cfg: TrainConfig, generator: torch.Generator | None = None) -> Sequential:
    """2 -> hidden... -> 1 with ``cfg.activation`` between the Linear layers (none at the end)."""
    dtype = getattr(torch, cfg.dtype)
    sizes = (2, *cfg.hidden)
    layers: list[Module] = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(i, o, generator=generator, dtype=dtype), ACTIVATIONS[cfg.activation]()]
    layers.append(Linear(sizes[-1], 1, generator=generator, dtype=dtype))
    return Sequential(layers)


def build_loss(cfg: TrainConfig) -> Module:
    return BCEWithLogitsLoss() if cfg.loss == "bce" else MSELoss()


def build_optimizer(cfg: TrainConfig, params: Any) -> optim.Optimizer:
    if cfg.optimizer == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = optim.Adam if cfg.optimizer == "adam" else optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: TrainConfig, optimizer: Any) -> Any:
    if cfg.schedule == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1), warmup=cfg.warmup)
    if cfg.schedule == "step":
        return optim.StepLR(optimizer, step_size=max(cfg.epochs // 4, 1), gamma=0.5)
    return None


@dataclass
class Run:
    """The outcome of :func:`run`: the trained model, its history and the data it used."""

    config: TrainConfig
    model: Module
    history: History
    train: tuple
    test: tuple
    optimizer: Any = field(repr=False, default=None)


def prepare(cfg: TrainConfig) -> tuple:
    """Data, model, loss, optimizer, scheduler and batch seed of a run (nothing trained yet)."""
    cfg.check()
    data_seed, init_seed, batch_seed = sub_seeds(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    train, test = disc_split(cfg.n_train, cfg.n_test, seed=data_seed)
    train = tuple(t.to(dtype=dtype, device=cfg.device) for t in train)
    test = tuple(t.to(dtype=dtype, device=cfg.device) for t in test)
    model = build_model(cfg, torch.Generator().manual_seed(init_seed)).to(cfg.device)
    opt = build_optimizer(cfg, model.parameters())
    return train, test, model, build_loss(cfg), opt, build_scheduler(cfg, opt), batch_seed


def run(cfg: TrainConfig, progress: bool | None = None,
        on_epoch: Callable[[dict], None] | None = None, replay: bool = False) -> Run:
    """Train one configuration and return the model and its history (``replay``: see ``fit``)."""
    train, test, model, loss, opt, sched, batch_seed = prepare(cfg)
    history = fit(model, loss, opt, train, test, cfg.epochs, cfg.batch_size, scheduler=sched,
                  seed=batch_seed, progress=progress, on_epoch=on_epoch,
                  threshold=0.0 if cfg.loss == "bce" else 0.5, replay=replay)
    return Run(cfg, model, history, train, test, opt)
