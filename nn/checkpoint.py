"""Save and restore a model with its optimizer (and scheduler) in one file.

Writes are atomic (a temporary file in the same folder, then ``os.replace``): a crash never
leaves a half-written checkpoint. Reads use ``torch.load(weights_only=True)`` (no code runs from
the file) and check everything before changing anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .module import Module

FORMAT = "tapegrad-checkpoint"
VERSION = 1


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


class CheckpointError(RuntimeError):
    """The file is not a readable checkpoint, or does not fit the model/optimizer given."""


def save_checkpoint(
    path: str | os.PathLike,
    model: Module,
    optimizer: Any = None,
    scheduler: Any = None,
    **extra: Any,
) -> Path:
    """Write ``model`` (and optimizer/scheduler state, and ``extra`` plain values) to ``path``."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": dict(model.state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a plain file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: Module,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    map_location: Any = None,
) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns its ``extra`` values.

    Raises ``CheckpointError`` (and changes nothing) when the file is corrupt, is not a
    checkpoint, was written by a newer version, or does not match the model's parameter names
    and shapes, the optimizer or the scheduler.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"load_checkpoint: {path} is a folder, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"load_checkpoint: no such file: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"load_checkpoint: {path} is not a readable checkpoint ({type(e).__name__}: {e})"
        ) from None
    _check_payload(path, payload, optimizer, scheduler)
    # Each load below checks everything before it changes anything; the model is restored if
    # the optimizer's load then fails, and the scheduler's state was checked above.
    backup = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError) as e:
        raise CheckpointError(f"load_checkpoint: {path} does not fit the model: {e}") from None
    if optimizer is not None:
        try:
            optimizer.load_state_dict(payload["optimizer"])
        except Exception as e:
            model.load_state_dict(backup)  # all or nothing
            raise CheckpointError(
                f"load_checkpoint: {path} does not fit the optimizer: {e}"
            ) from None
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    return dict(payload.get("extra") or {})


def _check_payload(path: Path, payload: Any, optimizer: Any, scheduler: Any) -> None:
    """Everything about the file's contents that can be checked before loading any of it."""

    def fail(msg: str) -> CheckpointError:
        return CheckpointError(f"load_checkpoint: {path} {msg}")

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise fail("is not a tapegrad checkpoint (written by nn.checkpoint.save_checkpoint)")
    version = payload.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise fail(f"has format version {version!r}; this tapegrad reads versions 1 to {VERSION}")
    if not isinstance(payload.get("model"), dict):
        raise fail("holds no model weights (its 'model' entry is missing or not a dict)")
    if not isinstance(payload.get("extra") or {}, dict):
        raise fail("is damaged: its 'extra' entry is not a dict")
    if optimizer is not None and payload.get("optimizer") is None:
        raise fail("holds no optimizer state")
    if scheduler is not None:
        state = payload.get("scheduler")
        if state is None:
            raise fail("holds no scheduler state")
        problem = _scheduler_mismatch(scheduler.state_dict(), state)
        if problem:
            raise fail(f"does not fit the scheduler {type(scheduler).__name__}: {problem}")


def _scheduler_mismatch(own: dict, saved: Any) -> str | None:
    """Why ``saved`` cannot be this scheduler's state (same keys, same kinds of values)."""
    if not isinstance(saved, dict):
        return f"its state is a {type(saved).__name__}, not a dict"
    if set(saved) != set(own):
        return (
            f"its state has keys {sorted(saved)}, the scheduler has {sorted(own)} (a "
            "different schedule?)"
        )

    def kind(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return type(v).__name__
        if isinstance(v, (int, float)):
            return "number"
        if isinstance(v, (list, tuple)):
            return "list of " + ",".join(sorted({kind(x) for x in v}))
        return type(v).__name__

    for k, v in own.items():
        if kind(saved[k]) != kind(v) or (isinstance(v, (list, tuple)) and len(saved[k]) != len(v)):
            return f"'{k}' is {saved[k]!r}, expected a value like {v!r}"
    return None
