"""The PyTorch twin of a run, for ``tapegrad experiments`` (a) and the agreement tests.

This is the one file under nn/ that uses torch.nn, torch.optim and torch.autograd, and only as
the reference to compare against: it is imported lazily by the experiments and by tests, and
nothing in the library's own computations depends on it.
"""
from __future__ import annotations

from typing import Any

import torch

from .data import BatchLoader
from .presets import TrainConfig
from .train import History, error_rate


def _activation(name: str) -> torch.nn.Module:
    return {"relu": torch.nn.ReLU, "leaky_relu": torch.nn.LeakyReLU, "tanh": torch.nn.Tanh,
            "sigmoid": torch.nn.Sigmoid, "silu": torch.nn.SiLU, "softplus": torch.nn.Softplus}[name]()


def torch_model(cfg: TrainConfig, state_dict: dict) -> torch.nn.Sequential:
    """The same architecture as ``presets.build_model``, holding a copy of ``state_dict``."""
    sizes = (2, *cfg.hidden)
    layers: list = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(i, o), _activation(cfg.activation)]
    layers.append(torch.nn.Linear(sizes[-1], 1))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: v.clone() for k, v in state_dict.items()})
    return model.to(device=next(iter(state_dict.values())).device,
                    dtype=next(iter(state_dict.values())).dtype)


def _optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> Any:
    S = torch.optim.lr_scheduler
    if cfg.schedule == "cosine":
        if cfg.warmup == 0:
            return S.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
        return S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.01, total_iters=cfg.warmup),
                                    S.CosineAnnealingLR(opt, T_max=cfg.epochs - cfg.warmup)],
                              milestones=[cfg.warmup])
    if cfg.schedule == "step":
        return S.StepLR(opt, step_size=max(cfg.epochs // 4, 1), gamma=0.5)
    return None


def torch_fit(cfg: TrainConfig, state_dict: dict, train: tuple, test: tuple, batch_seed: int,
              threshold: float) -> tuple[torch.nn.Module, History]:
    """Train the torch twin from ``state_dict`` on the same batches as ``nn.train.fit`` would."""
    import time
    model = torch_model(cfg, state_dict)
    loss_fn = torch.nn.BCEWithLogitsLoss() if cfg.loss == "bce" else torch.nn.MSELoss()
    opt = _optimizer(cfg, model.parameters())
    sched = _scheduler(cfg, opt)
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
        history.append({"epoch": epoch, "loss": total / max(count, 1), "train_error": tr,
                        "test_error": te, "seconds": seconds, "lr": lr})
    return model, history
