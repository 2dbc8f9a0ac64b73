"""Anomaly detection: find the op where a NaN or Inf first appears.

    with autodiff.detect_anomaly():
        loss = model(x)      # raises at the first recorded op whose output is NaN/Inf
        loss.backward()      # raises at the first VJP that returns a NaN/Inf gradient

Both errors name the op and the line of user code that created it (the first stack frame outside
the autodiff package, plus the frames that led to it). The mode is per thread. While it is off,
recording pays one flag check per node and nothing else; while it is on, every recorded op's
output is scanned and its creation site is remembered (in a weak map, freed with the node).
"""

from __future__ import annotations

import linecache
import os
import sys
import weakref
from types import FrameType
from typing import Any

import torch

from . import engine
from .grad_mode import FlagMode, SetFlag, state

_PKG = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MAX_FRAMES = 6
_sites: weakref.WeakKeyDictionary[Any, tuple] = weakref.WeakKeyDictionary()


class AnomalyError(FloatingPointError, RuntimeError):
    """A NaN or Inf appeared in a forward output or a backward gradient under detect_anomaly()."""


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on for the current thread."""
    return state.anomaly


class detect_anomaly(FlagMode):
    """Context manager (and decorator) turning anomaly detection on for the current thread."""

    flag = "anomaly"
    value = True


class set_detect_anomaly(SetFlag):
    """Set anomaly detection to ``mode`` for the block (or for the thread, outside ``with``)."""

    flag = "anomaly"


def _creation_site() -> tuple:
    """The innermost frames outside autodiff, innermost first: ((file, line, function), ...)."""
    f: FrameType | None = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(_PKG):
        f = f.f_back
    frames: list = []
    while f is not None and len(frames) < _MAX_FRAMES:
        frames.append((f.f_code.co_filename, f.f_lineno, f.f_code.co_name))
        f = f.f_back
    return tuple(frames)


def _fmt_frame(frame: tuple) -> str:
    file, line, func = frame
    code = linecache.getline(file, line).strip()
    return f'File "{file}", line {line}, in {func}' + (f": {code}" if code else "")


def _fmt_site(site: tuple | None) -> str:
    if not site:
        return "an unknown place (the node was recorded while anomaly detection was off)"
    text = _fmt_frame(site[0])
    if len(site) > 1:
        text += "\n  called from:\n" + "\n".join("    " + _fmt_frame(fr) for fr in site[1:])
    return text


def _bad(t: Any) -> str | None:
    """'NaN', 'Inf' or None for a raw torch tensor."""
    if not (t.is_floating_point() or t.is_complex()):
        return None
    if torch.isfinite(t).all():
        return None
    return "NaN" if torch.isnan(t).any() else "Inf"


def _count(t: torch.Tensor) -> str:
    return f"{int((~torch.isfinite(t)).sum())} of {t.numel()} elements"


def on_record(node: Any, out: torch.Tensor) -> None:
    """Called by ``engine.record`` for every node recorded while the mode is on."""
    site = _creation_site()
    _sites[node] = site
    kind = _bad(out)
    if kind is not None:
        raise AnomalyError(
            f"detect_anomaly: {node.name} produced {kind} in its output (shape "
            f"{tuple(out.shape)}, {_count(out)} non-finite). The op was called at\n  "
            f"{_fmt_site(site)}"
        )


def on_backward(node: Any, in_grads: tuple) -> None:
    """Called by the backward walk after each VJP while the mode is on."""
    for i, g in enumerate(in_grads):
        if g is None:
            continue
        raw = g if isinstance(g, torch.Tensor) else g.data
        kind = _bad(raw)
        if kind is not None:
            raise AnomalyError(
                f"detect_anomaly: the backward of {node.name} returned {kind} in the gradient for "
                f"its input {i} (of {len(in_grads)}; shape {tuple(raw.shape)}, {_count(raw)} "
                f"non-finite). That {node.name} was created at\n  {_fmt_site(_sites.get(node))}"
            )


engine._anomaly = sys.modules[__name__]
