"""The epoch loop both tasks share; ``twins.py`` runs the same loop on the torch twins (it only
calls ``loss.backward()``, ``optimizer.step()`` and the like, which both libraries spell alike)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

import autodiff as ad
from nn.train import History

Batches = Callable[[int], Iterable[tuple[Any, Any]]]


def train_epochs(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    epochs: int,
    batches: Batches,
    loss_of: Callable[[Any, Any, Any], Any],
    evaluate: Callable[[tuple[Any, Any] | None], tuple[float, float]],
    *,
    progress: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    history: History | None = None,
) -> History:
    """``epochs`` passes over ``batches(epoch)`` (raw tensors), one optimizer step per batch.

    After each epoch ``scheduler.step()`` runs, then ``evaluate(last_batch)`` (None after an
    epoch without batches) gives the train and test error in percent (in eval mode, nothing
    recorded); the record goes to the History.
    """
    history = History() if history is None else history
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, unit="epoch", leave=False)
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            total, count, last = 0.0, 0, None
            for xb, yb in batches(epoch):
                loss = loss_of(model, xb, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                value = loss.item()
                history.step_losses.append(value)
                total += value * xb.shape[0]
                count += xb.shape[0]
                last = (xb, yb)
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            seconds = time.perf_counter() - t0
            model.eval()
            with ad.no_grad(), torch.no_grad():  # torch's too: twins.py runs this loop on torch
                train_error, test_error = evaluate(last)
            record = {
                "epoch": epoch,
                "loss": total / max(count, 1),
                "train_error": train_error,
                "test_error": test_error,
                "seconds": seconds,
                "lr": lr,
            }
            history.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{record['loss']:.4f}", "test": f"{test_error:.2f}%"})
            if on_epoch is not None:
                on_epoch(record)
    finally:
        if bar is not None:
            bar.close()
        model.train()
    return history
