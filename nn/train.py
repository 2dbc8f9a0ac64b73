"""The training loop: ``fit`` runs epochs of mini-batch updates and records a ``History``."""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Callable

import autodiff as ad
from autodiff import Tensor
from autodiff.errors import GraphError

from .data import BatchLoader
from .module import Module


def error_rate(output: Any, target: Any, threshold: float = 0.5) -> float:
    """Misclassified share in percent.

    One output column: predicted class is ``output > threshold``, true class ``target >
    threshold``; several columns: argmax of the output against the target's argmax (one-hot) or
    the target itself (class indices).
    """
    out = output.data if isinstance(output, Tensor) else output
    tgt = target.data if isinstance(target, Tensor) else target
    if out.numel() == 0:
        return 0.0
    if out.dim() == 2 and out.shape[1] > 1:
        pred = out.argmax(1)
        true = tgt.argmax(1) if tgt.dim() == 2 else tgt
    else:
        pred = out.reshape(-1) > threshold
        true = tgt.reshape(-1) > threshold
    return int((pred != true).sum()) * 100.0 / pred.numel()


def default_threshold(loss: Any, target: Any) -> float:
    """The loss's ``decision_threshold`` if it declares one (0 for logits), else 0 for ±1 labels
    and 0.5 for 0/1 labels or probabilities."""
    declared = getattr(loss, "decision_threshold", None)
    if declared is not None:
        return float(declared)
    t = target.data if isinstance(target, Tensor) else target
    return 0.0 if t.numel() and float(t.min()) < 0 else 0.5


class History:
    """Per-epoch records and every step's loss. ``history['loss']`` is the list over epochs.

    A record holds ``epoch``, ``loss`` (mean training loss), ``train_error`` and ``test_error``
    (misclassified share in percent, 0-100; ``test_error`` is None when ``fit`` had no test
    set), ``seconds`` and ``lr``. ``final`` is the last record.
    """

    KEYS = ("epoch", "loss", "train_error", "test_error", "seconds", "lr")

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.step_losses: list[float] = []

    def append(self, record: dict) -> None:
        self.records.append(record)

    def __getitem__(self, key: str) -> list:
        if key not in self.KEYS:
            raise KeyError(f"History has no {key!r}; keys: {', '.join(self.KEYS)}")
        return [r[key] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def final(self) -> dict:
        """The last epoch's record (errors in percent; ``test_error`` None without a test set)."""
        if not self.records:
            raise IndexError("History is empty: no epoch was run")
        return self.records[-1]

    def to_dict(self) -> dict:
        return {"records": list(self.records), "step_losses": list(self.step_losses)}

    def __repr__(self) -> str:
        if not self.records:
            return "History(0 epochs)"
        f = self.final
        test = "" if f["test_error"] is None else f", test error {f['test_error']:.2f}%"
        return (
            f"History({len(self)} epochs, loss {f['loss']:.4g}, train error "
            f"{f['train_error']:.2f}%{test})"
        )


def evaluate(model: Module, x: Any, y: Any, threshold: float) -> float:
    """Error rate (%) of ``model`` on ``(x, y)``, in eval mode, without recording."""
    was = model.training
    model.eval()
    try:
        with ad.no_grad():
            return error_rate(model(x), y, threshold)
    finally:
        model.train(was)


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def fit(
    model: Module,
    loss_fn: Module,
    optimizer: Any,
    train: tuple,
    test: tuple | None = None,
    epochs: int = 100,
    batch_size: int = 32,
    *,
    scheduler: Any = None,
    seed: int | None = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    threshold: float | None = None,
    progress: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    replay: bool = False,
    sampler: Any = None,
    compile: bool = False,
) -> History:
    """Train ``model`` on ``train = (x, y)`` for ``epochs`` passes of mini-batch updates.

    After each epoch: train and test error (%), the mean training loss, the time taken and the
    learning rate are appended to the returned ``History``; ``scheduler.step()`` is called and
    ``on_epoch(record)`` too. ``seed`` fixes the batch order. A tqdm progress bar is shown on a
    terminal (``progress=None``) or when ``progress=True``; never when ``progress=False``.
    ``replay=True`` records the training step once per batch shape and replays it
    (``autodiff.replay``: same numbers, less Python per step); a step that cannot be replayed
    (Dropout, data-dependent ops) falls back to the recorded graph with a warning.
    ``compile=True`` replays the whole step, the optimizer's update included, as code compiled
    by ``torch.compile`` (``autodiff.replay(..., optimizer=, compile=True)``; equal to the eager
    run up to float rounding; a few seconds of compiling per batch shape).
    ``sampler`` (e.g. ``nn.data.DistributedSampler``) picks each epoch's samples and order instead
    of ``shuffle``/``seed``; ``set_epoch(epoch - 1)`` is called before each epoch.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    x, y = train
    loader = BatchLoader(
        x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, sampler=sampler
    )
    if threshold is None:
        threshold = default_threshold(loss_fn, loader.y)
    history = History()
    bar = None
    if _show_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, unit="epoch", leave=False)
    steps = history.step_losses
    step = (
        ad.replay(
            lambda xb, yb: loss_fn(model(xb), yb),
            optimizer=optimizer if compile else None,
            compile=compile,
        )
        if replay or compile
        else None
    )
    try:
        for epoch in range(1, epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch - 1)
            t0 = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            for xb, yb in loader:
                if step is not None:
                    optimizer.zero_grad()
                    try:
                        loss = step(xb, yb)
                    except GraphError as e:
                        warnings.warn(f"fit: training without replay: {e}", stacklevel=2)
                        step = None
                        optimizer.zero_grad()
                if step is None:
                    loss = loss_fn(model(xb), yb)
                    optimizer.zero_grad()
                    loss.backward()
                if step is None or not compile:  # a compiled step made the update itself
                    optimizer.step()
                value = loss.item()
                steps.append(value)
                n = xb.data.shape[0]
                total += value * n
                count += n
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            seconds = time.perf_counter() - t0
            record = {
                "epoch": epoch,
                "loss": total / max(count, 1),
                "train_error": evaluate(model, x, y, threshold),
                "test_error": evaluate(model, *test, threshold) if test is not None else None,
                "seconds": seconds,
                "lr": lr,
            }
            history.append(record)
            if bar is not None:
                bar.update(1)
                shown = record["test_error"] if test is not None else record["train_error"]
                bar.set_postfix(
                    {
                        "loss": f"{record['loss']:.4f}",
                        "test" if test is not None else "train": f"{shown:.1f}%",
                    }
                )
            if on_epoch is not None:
                on_epoch(record)
    finally:
        if bar is not None:
            bar.close()
    return history
