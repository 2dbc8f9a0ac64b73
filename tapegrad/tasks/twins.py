"""The torch twins of the tasks: the same layouts built from torch.nn, torch.optim optimizers
and schedulers, started from the same weights and fed the same batches through the same loop
(``loop.train_epochs``), so their losses can be compared step for step. The one file of
``tapegrad.tasks`` that runs torch's autograd, and only as the reference: imported by tests and
on request, never by the tasks themselves."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn as tnn

from nn.train import History, error_rate

from . import digits, reverse
from .loop import train_epochs


def _copy_into(model: tnn.Module, state_dict: dict) -> tnn.Module:
    first = next(iter(state_dict.values()))
    model.to(device=first.device, dtype=first.dtype)
    model.load_state_dict({k: v.clone() for k, v in state_dict.items()})
    return model


def _adam_cosine(model: tnn.Module, lr: float, epochs: int) -> tuple[Any, Any]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)


# ---- digits -------------------------------------------------------------------------------------
def digits_pair(cfg: digits.DigitsConfig) -> tuple[History, History]:
    """Train ``cfg`` with tapegrad and with torch from the same initial weights and batches;
    returns both histories (tapegrad's first)."""
    train, test, model, opt, sched, batch_seed = digits.prepare(cfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    batches = digits.batches_of(cfg, train, batch_seed)
    ours = train_epochs(
        model, opt, sched, cfg.epochs, batches, digits.loss_of, digits.evaluator(model, train, test)
    )
    twin = _copy_into(digits.build_model(cfg, lib=tnn), start)
    topt, tsched = _adam_cosine(twin, cfg.lr, cfg.epochs)
    theirs = train_epochs(
        twin,
        topt,
        tsched,
        cfg.epochs,
        batches,
        lambda m, x, y: F.cross_entropy(m(x), y),
        lambda _: (error_rate(twin(train[0]), train[1]), error_rate(twin(test[0]), test[1])),
    )
    return ours, theirs


# ---- reverse ------------------------------------------------------------------------------------
class TorchBlock(reverse.BlockLayout, tnn.Module):
    lib = tnn


class TorchReverseTransformer(reverse.TransformerLayout, tnn.Module):
    lib, block = tnn, TorchBlock


def _reverse_loss(model: Any, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(inputs)[:, -targets.shape[1] :]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def reverse_pair(cfg: reverse.ReverseConfig) -> tuple[History, History]:
    """As :func:`digits_pair`, for the reverse task."""
    test, model, opt, sched, batch_seed = reverse.prepare(cfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    batches = reverse.batches_of(cfg, test, batch_seed)
    ours = train_epochs(
        model, opt, sched, cfg.epochs, batches, reverse.loss_of, reverse.evaluator(model, test)
    )
    twin = _copy_into(TorchReverseTransformer(cfg), start)
    topt, tsched = _adam_cosine(twin, cfg.lr, cfg.epochs)
    theirs = train_epochs(
        twin, topt, tsched, cfg.epochs, batches, _reverse_loss, reverse.evaluator(twin, test)
    )
    return ours, theirs
