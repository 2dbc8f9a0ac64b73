"""The PyTorch twin of a run, for ``tapegrad experiments`` (a) and the agreement tests.

The one file of the project (outside tests) that uses torch.nn, torch.optim and torch's
autograd, and only as the reference to compare against: it is imported lazily by the
experiments and by tests; nothing in autodiff, nn or viz depends on it.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from nn.data import BatchLoader
from nn.train import History, error_rate

from .presets import TrainConfig, optimizer_options

# The same names as presets' tables, with torch's classes.
ACTIVATIONS = {
    "relu": torch.nn.ReLU,
    "leaky_relu": torch.nn.LeakyReLU,
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
    "silu": torch.nn.SiLU,
    "softplus": torch.nn.Softplus,
}
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
LOSSES = {"bce": torch.nn.BCEWithLogitsLoss, "mse": torch.nn.MSELoss}


def torch_model(cfg: TrainConfig, state_dict: dict) -> torch.nn.Sequential:
    """The same architecture as ``presets.build_model``, holding a copy of ``state_dict``."""
    sizes = (2, *cfg.hidden)
    layers: list = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(i, o), ACTIVATIONS[cfg.activation]()]
    layers.append(torch.nn.Linear(sizes[-1], 1))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: v.clone() for k, v in state_dict.items()})
    return model.to(
        device=next(iter(state_dict.values())).device, dtype=next(iter(state_dict.values())).dtype
    )


def _optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    cls = OPTIMIZERS[cfg.optimizer]
    return cls(params, **optimizer_options(cfg, cls))


def _cosine(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """Our cosine schedule with warm-up is torch's LinearLR then CosineAnnealingLR."""
    S = torch.optim.lr_scheduler
    if cfg.warmup == 0:
        return S.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return S.SequentialLR(
        opt,
        [
            S.LinearLR(opt, start_factor=0.01, total_iters=cfg.warmup),
            S.CosineAnnealingLR(opt, T_max=cfg.epochs - cfg.warmup),
        ],
        milestones=[cfg.warmup],
    )


SCHEDULES = {
    "none": lambda opt, cfg: None,
    "cosine": _cosine,
    "step": lambda opt, cfg: torch.optim.lr_scheduler.StepLR(
        opt, step_size=max(cfg.epochs // 4, 1), gamma=0.5
    ),
}


def torch_fit(
    cfg: TrainConfig, state_dict: dict, train: tuple, test: tuple, batch_seed: int, threshold: float
) -> tuple[torch.nn.Module, History]:
    """Train the torch twin from ``state_dict`` on the same batches as ``nn.train.fit`` would."""
    model = torch_model(cfg, state_dict)
    loss_fn = LOSSES[cfg.loss]()
    opt = _optimizer(cfg, model.parameters())
    sched = SCHEDULES[cfg.schedule](opt, cfg)
    x, y = (t.data if hasattr(t, "grad_fn") else t for t in train)
    xt, yt = (t.data if hasattr(t, "grad_fn") else t for t in test)
    loader = BatchLoader(x, y, cfg.batch_size, shuffle=True, seed=batch_seed)
    history = History()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for xb, yb in loader:
            loss = loss_fn(model(xb.data), yb.data)
            opt.zero_grad()
            loss.backward()
            opt.step()
            v = loss.item()
            history.step_losses.append(v)
            total += v * xb.data.shape[0]
            count += xb.data.shape[0]
        lr = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            tr, te = error_rate(model(x), y, threshold), error_rate(model(xt), yt, threshold)
        history.append(
            {
                "epoch": epoch,
                "loss": total / max(count, 1),
                "train_error": tr,
                "test_error": te,
                "seconds": seconds,
                "lr": lr,
            }
        )
    return model, history
