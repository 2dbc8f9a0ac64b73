"""Named training configurations for the disc classifier, and how to build and run one.

``default`` reproduces the course project (ReLU network, SGD with momentum, mini-batches);
``best`` is the configuration found to generalise best with the same 1,000 training points and
the same 2 -> 25 -> 25 -> 25 -> 1 network (see the README for the measured figures).

What a name in a configuration means is looked up in the tables below (name -> class), so a new
optimizer, activation, loss or schedule is one line.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import nn
from nn import optim
from nn.train import History, default_threshold, fit

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
}
OPTIMIZERS: dict[str, type[optim.Optimizer]] = {
    "sgd": optim.SGD,
    "adam": optim.Adam,
    "adamw": optim.AdamW,
}
# 'bce': one logit per point and BCEWithLogitsLoss; 'mse': a linear output and MSE on 0/1 labels.
LOSSES: dict[str, type[nn.Module]] = {"bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}
# Each schedule from the configuration: 'cosine' (after ``warmup`` linear epochs), 'step'
# (halved at every quarter of the run).
SCHEDULES: dict[str, Callable[[Any, TrainConfig], Any] | None] = {
    "none": None,
    "cosine": lambda opt, cfg: optim.CosineAnnealingLR(opt, T_max=cfg.epochs, warmup=cfg.warmup),
    "step": lambda opt, cfg: optim.StepLR(opt, step_size=max(cfg.epochs // 4, 1), gamma=0.5),
}
DTYPES = ("float32", "float64")

# Accepted ranges of the numeric fields: (kind, low, high). A learning rate above 100 or a
# momentum of 1 or more only produces infinities; the seed must fit torch's 64-bit generator.
LIMITS: dict[str, tuple[type, float, float]] = {
    "n_train": (int, 1, 10_000_000),
    "n_test": (int, 1, 10_000_000),
    "batch_size": (int, 1, 10_000_000),
    "epochs": (int, 1, 1_000_000),
    "lr": (float, 0.0, 100.0),
    "momentum": (float, 0.0, 1.0),
    "weight_decay": (float, 0.0, 1.0),
    "seed": (int, 0, 2**63 - 1),
}
_OPEN_LOW = ("lr",)  # lr > 0
_OPEN_HIGH = ("momentum",)  # momentum < 1


class ConfigError(ValueError):
    """A configuration value out of range; ``field`` names it (the CLI turns it into --field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _range_text(name: str) -> str:
    kind, low, high = LIMITS[name]
    if kind is int:
        return f"an integer in [{low}, {high}]"
    lo = "(" if name in _OPEN_LOW else "["
    hi = ")" if name in _OPEN_HIGH else "]"
    return f"a finite number in {lo}{low:g}, {high:g}{hi}"


def check_device(device: str) -> None:
    """Refuse a device string that is not cpu or an available CUDA device (raises ConfigError)."""
    accepted = "cpu" + (
        f", cuda or cuda:0..{torch.cuda.device_count() - 1}"
        if torch.cuda.is_available()
        else " (no CUDA device on this machine)"
    )
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError("device", f"invalid device {device!r}; accepted: {accepted}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "device",
                f"invalid device {device!r}: CUDA is not available here; accepted: {accepted}",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                "device",
                f"invalid device {device!r}: there are "
                f"{torch.cuda.device_count()} CUDA devices; "
                f"accepted: {accepted}",
            )
    elif dev.type != "cpu":
        raise ConfigError("device", f"invalid device {device!r}; accepted: {accepted}")


@dataclass
class TrainConfig:
    """Everything that defines one training run (all runs are reproducible from ``seed``)."""

    n_train: int = 1000
    n_test: int = 1000
    hidden: tuple = (25, 25, 25)
    activation: str = "relu"
    loss: str = "bce"  # a key of LOSSES
    optimizer: str = "sgd"  # a key of OPTIMIZERS
    lr: float = 0.05
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    batch_size: int = 16
    epochs: int = 100
    schedule: str = "none"  # a key of SCHEDULES
    warmup: int = 0
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def check(self) -> TrainConfig:
        """Raise ConfigError naming the first field out of its accepted range; else ``self``."""
        for name, table in (
            ("activation", ACTIVATIONS),
            ("optimizer", OPTIMIZERS),
            ("loss", LOSSES),
            ("schedule", SCHEDULES),
            ("dtype", DTYPES),
        ):
            value = getattr(self, name)
            if value not in table:
                raise ConfigError(name, f"invalid {name} {value!r}; accepted: {', '.join(table)}")
        for name, (kind, low, high) in LIMITS.items():
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if kind is int:
                ok = ok and isinstance(v, int) and low <= v <= high
            else:
                ok = (
                    ok
                    and math.isfinite(v)
                    and (v > low if name in _OPEN_LOW else v >= low)
                    and (v < high if name in _OPEN_HIGH else v <= high)
                )
            if not ok:
                raise ConfigError(name, f"invalid {name} {v!r}; accepted: {_range_text(name)}")
        if not isinstance(self.warmup, int) or not 0 <= self.warmup < self.epochs:
            raise ConfigError(
                "warmup",
                f"invalid warmup {self.warmup!r}; accepted: an integer in "
                f"[0, epochs={self.epochs})",
            )
        check_device(self.device)
        return self


PRESETS: dict[str, TrainConfig] = {
    # The course project (ReLU hidden layers, SGD with momentum, mini-batches of 16) with a
    # cosine-decaying learning rate.
    "default": TrainConfig(schedule="cosine"),
    # Smooth activation, Adam, full batch, linear warm-up then cosine decay, many epochs.
    "best": TrainConfig(
        activation="silu",
        optimizer="adam",
        lr=1e-2,
        batch_size=1000,
        epochs=1000,
        schedule="cosine",
        warmup=100,
    ),
}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; accepted: {', '.join(PRESETS)}")
    return PRESETS[name].replace()


def sub_seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the data, the initial weights and the batch order."""
    g = torch.Generator().manual_seed(seed)
    return tuple(int(s) for s in torch.randint(0, 2**62, (3,), generator=g))  # type: ignore[return-value]


def build_model(cfg: TrainConfig, generator: torch.Generator | None = None) -> nn.Sequential:
    """2 -> hidden... -> 1 with ``cfg.activation`` between the Linear layers (none at the end)."""
    dtype = getattr(torch, cfg.dtype)
    sizes = (2, *cfg.hidden)
    layers: list[nn.Module] = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o, generator=generator, dtype=dtype), ACTIVATIONS[cfg.activation]()]
    layers.append(nn.Linear(sizes[-1], 1, generator=generator, dtype=dtype))
    return nn.Sequential(layers)


def build_loss(cfg: TrainConfig) -> nn.Module:
    return LOSSES[cfg.loss]()


def optimizer_options(cfg: TrainConfig, cls: type) -> dict:
    """The configuration's hyper-parameters that ``cls`` takes (SGD's momentum only for SGD)."""
    accepted = inspect.signature(cls).parameters
    return {k: getattr(cfg, k) for k in ("lr", "momentum", "weight_decay") if k in accepted}


def build_optimizer(cfg: TrainConfig, params: Any) -> optim.Optimizer:
    cls = OPTIMIZERS[cfg.optimizer]
    return cls(params, **optimizer_options(cfg, cls))


def build_scheduler(cfg: TrainConfig, optimizer: Any) -> Any:
    make = SCHEDULES[cfg.schedule]
    return None if make is None else make(optimizer, cfg)


def threshold(cfg: TrainConfig) -> float:
    """Where the single output splits inside from outside (0 for logits, 0.5 for MSE on 0/1)."""
    return default_threshold(LOSSES[cfg.loss](), torch.zeros(1))


@dataclass
class Run:
    """The outcome of :func:`run`: the trained model, its history and the data it used."""

    config: TrainConfig
    model: nn.Module
    history: History
    train: tuple
    test: tuple
    optimizer: Any = field(repr=False, default=None)


def prepare(cfg: TrainConfig) -> tuple:
    """Data, model, loss, optimizer, scheduler and batch seed of a run (nothing trained yet)."""
    cfg.check()
    data_seed, init_seed, batch_seed = sub_seeds(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    train, test = nn.data.disc_split(cfg.n_train, cfg.n_test, seed=data_seed)
    train = tuple(t.to(dtype=dtype, device=cfg.device) for t in train)
    test = tuple(t.to(dtype=dtype, device=cfg.device) for t in test)
    model = build_model(cfg, torch.Generator().manual_seed(init_seed)).to(cfg.device)
    opt = build_optimizer(cfg, model.parameters())
    return train, test, model, build_loss(cfg), opt, build_scheduler(cfg, opt), batch_seed


def run(
    cfg: TrainConfig,
    progress: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    replay: bool = False,
    compile: bool = False,
) -> Run:
    """Train one configuration and return the model and its history (``replay``, ``compile``:
    see ``fit``)."""
    prepared = prepare(cfg)
    train, test, model, _, opt, _, _ = prepared
    history = fit_prepared(
        cfg, prepared, progress=progress, on_epoch=on_epoch, replay=replay, compile=compile
    )
    return Run(cfg, model, history, train, test, opt)


def fit_prepared(cfg: TrainConfig, prepared: tuple, **options: Any) -> History:
    """``fit`` on what ``prepare(cfg)`` made (``options``: fit's progress, on_epoch, replay,
    compile)."""
    train, test, model, loss, opt, sched, batch_seed = prepared
    return fit(
        model,
        loss,
        opt,
        train,
        test,
        cfg.epochs,
        cfg.batch_size,
        scheduler=sched,
        seed=batch_seed,
        threshold=threshold(cfg),
        **options,
    )
