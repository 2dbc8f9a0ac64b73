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


class CheckpointError(RuntimeError):
    """The file is not a readable checkpoint, or does not fit the model/optimizer given."""


def save_checkpoint(path: str | os.PathLike, model: Module, optimizer: Any = None,
                    scheduler: Any = None, **extra: Any) -> Path:
    """Write ``model`` (and optimizer/scheduler state, and ``extra`` plain values) to ``path``."""
    path = Path(path)
    payload = {
        "format": FORMAT, "version": VERSION,
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
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, model: Module, optimizer: Any = None,
                    scheduler: Any = None, *, map_location: Any = None) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns its ``extra`` values.

    Raises ``CheckpointError`` (and changes nothing) when the file is corrupt, is not a
    checkpoint, or does not match the model's parameter names and shapes or the optimizer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no such file: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"load_checkpoint: {path} is not a readable checkpoint "
                              f"({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"load_checkpoint: {path} is not a tapegrad checkpoint (written by "
                              "nn.checkpoint.save_checkpoint)")
    if optimizer is not None and payload.get("optimizer") is None:
        raise CheckpointError(f"load_checkpoint: {path} holds no optimizer state")
    if scheduler is not None and payload.get("scheduler") is None:
        raise CheckpointError(f"load_checkpoint: {path} holds no scheduler state")
    backup = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError) as e:
        raise CheckpointError(f"load_checkpoint: {path} does not fit the model: {e}") from None
    if optimizer is not None:
        try:
            optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError, TypeError) as e:
            model.load_state_dict(backup)  # all or nothing
            raise CheckpointError(f"load_checkpoint: {path} does not fit the optimizer: {e}") from None
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    return dict(payload.get("extra") or {})
