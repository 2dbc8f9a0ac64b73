"""Gradient facts for the gradient view: norms, all-zero gradients, units that get no gradient.

Parameters and leaves keep their gradient in ``.grad``, so the picture reads it there. The
gradient flowing through an intermediate op is never stored by the engine: call
:func:`watch_grads` on the output *before* ``backward()``; it adds a gradient hook to every
recorded op (the only change it makes to the graph, undone by ``remove()``) and keeps, per op, a
summary of the gradient it received and of what it sent to each input, and the order in which
the engine applied the VJPs: ``draw_graph(..., show_grad=True)`` and the HTML page's backward
stepper show them.
"""

from __future__ import annotations

import itertools
import math
import weakref
from typing import Any, Iterable

import torch

from . import graph_api as api
from .graph_api import Tensor
from .graph_walk import OP, as_roots, constant_inputs, walk


class GradStat:
    """Summary of one gradient tensor: L2 norm, whether all zero / finite, dead units, and (for
    the HTML page) its shape, min, max and a 16-bin histogram."""

    __slots__ = ("norm", "zero", "finite", "dead", "units", "shape", "lo", "hi", "hist")

    def __init__(
        self,
        norm: float,
        zero: bool,
        finite: bool,
        dead: int,
        units: int,
        shape: tuple | None = None,
        lo: float | None = None,
        hi: float | None = None,
        hist: list | None = None,
    ) -> None:
        self.norm, self.zero, self.finite, self.dead, self.units = norm, zero, finite, dead, units
        self.shape, self.lo, self.hi, self.hist = shape, lo, hi, hist

    def __repr__(self) -> str:
        return (
            f"GradStat(norm={self.norm:.3g}, zero={self.zero}, finite={self.finite}, "
            f"dead={self.dead}/{self.units})"
        )


def grad_stat(g: Any, unit_dim: int | None = -1) -> GradStat:
    """Summarise gradient ``g``; a *unit* is a slice along ``unit_dim`` (features of an
    activation (N, C): the last dim; output units of a weight (out, in) or bias: dim 0)."""
    d = g.data if isinstance(g, Tensor) else g
    d = d.detach()
    finite = bool(torch.isfinite(d).all()) if d.is_floating_point() or d.is_complex() else True
    norm = float(torch.linalg.vector_norm(d.to(torch.float64) if not d.is_complex() else d))
    nz = d != 0
    zero = not bool(nz.any())
    dead = units = 0
    if unit_dim is not None and d.dim() >= 1 and d.numel() > 1:
        nz = nz.movedim(unit_dim, -1).reshape(-1, d.shape[unit_dim]) if d.dim() > 1 else nz[None]
        if nz.shape[-1] > 1:
            units = nz.shape[-1]
            dead = units - int(nz.any(0).sum())
    lo, hi, hist = value_summary(d)
    return GradStat(norm, zero, finite, dead, units, tuple(d.shape), lo, hi, hist)


def value_summary(d: torch.Tensor, bins: int = 16) -> tuple:
    """``(min, max, histogram counts)`` of the finite values of ``d`` (Nones when none)."""
    if d.is_complex() or d.numel() == 0:
        return None, None, None
    x = d.reshape(-1).to(torch.float64)
    x = x[torch.isfinite(x)]
    if x.numel() == 0:
        return None, None, None
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        return lo, hi, [int(c) for c in torch.histc(x, bins, lo, hi)]
    return lo, hi, [0] * (bins // 2) + [x.numel()] + [0] * (bins - bins // 2 - 1)


def combine(stats: Iterable[GradStat]) -> GradStat | None:
    """One summary for several tensors (the parameters of a collapsed module)."""
    stats = list(stats)
    if not stats:
        return None
    norm = math.sqrt(sum(s.norm**2 for s in stats))
    return GradStat(norm, all(s.zero for s in stats), all(s.finite for s in stats), 0, 0)


def op_stat(node: Any) -> GradStat | None:
    """The gradient ``node`` received in the latest watched backward that reached it."""
    rec = _RECORDS.get(node)
    return None if rec is None else rec.received


def record_of(node: Any) -> StepRecord | None:
    return _RECORDS.get(node)


def leaf_stat(t: Tensor) -> GradStat | None:
    if t.grad is None:
        return None
    return grad_stat(t.grad, 0)


class StepRecord:
    """What one VJP application did in a watched backward: when (``step``, a counter over all
    watched backwards, so sorting by it gives the engine's order), the gradient it received,
    and what it sent to each input (``sent``, None where nothing was sent). ``to_leaf`` keeps a
    copy of the gradients sent to leaves (parameters), so repeated calls of a module can show
    each call's share of a parameter's gradient."""

    __slots__ = ("step", "received", "sent", "to_leaf")

    def __init__(self, step: int, received: GradStat | None) -> None:
        self.step, self.received = step, received
        self.sent: tuple | None = None
        self.to_leaf: dict = {}


_RECORDS: weakref.WeakKeyDictionary[Any, StepRecord] = weakref.WeakKeyDictionary()
_WATCHED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_clock = itertools.count()


def _stat(g: Any) -> GradStat | None:
    if g is None:
        return None
    d = g.data if isinstance(g, Tensor) else g
    return grad_stat(d, -1 if d.dim() >= 2 else None)


def _posthook(ref: weakref.ref) -> Any:
    def record_applied(grad_inputs: tuple, grad_output: Any) -> None:
        node = ref()
        if node is None:
            return
        rec = _RECORDS[node] = StepRecord(next(_clock), _stat(grad_output))
        rec.sent = tuple(_stat(gi) for gi in grad_inputs)
        for k, (p, gi) in enumerate(zip(api.inputs(node), grad_inputs)):
            if gi is not None and p is not None and not api.is_node(p):
                d = gi.data if isinstance(gi, Tensor) else gi
                rec.to_leaf[k] = d.detach().clone()  # the engine may add into it later

    return record_applied


class GradWatch:
    """Handle returned by :func:`watch_grads`; ``remove()`` takes the hooks off again.

    ``order()`` lists the watched nodes in the order the engine applied their VJPs in the
    latest backward that reached them."""

    def __init__(self, nodes: list, handles: list) -> None:
        self._nodes = [weakref.ref(n) for n in nodes]
        self._handles = handles

    def order(self) -> list:
        nodes = [n for n in (r() for r in self._nodes) if n is not None and n in _RECORDS]
        return sorted(nodes, key=lambda n: _RECORDS[n].step)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        for r in self._nodes:
            n = r()
            if n is not None:
                _WATCHED.pop(n, None)
        self._handles = []

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> GradWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def watch_grads(tensors: Any) -> GradWatch:
    """Record, during the next ``backward()``, the gradient reaching every op of the graph of
    ``tensors``, what each op sent to its inputs and the order in which the engine applied the
    VJPs (call it before backward). Returns a handle; ``remove()`` stops watching.

        watch = viz.watch_grads(loss)
        loss.backward()
        viz.render(loss, "grads.png", show_grad=True)    # or "graph.html": a backward stepper
    """
    roots = as_roots("watch_grads", tensors)
    g = walk(roots)
    nodes, handles = [], []
    for it in g.items:
        if it.kind != OP or it.obj in _WATCHED:
            continue
        node = it.obj
        constant_inputs(node)  # remember the constant inputs before backward frees them
        ref = weakref.ref(node)
        h = api.add_hook(node, _posthook(ref))
        _WATCHED[node] = True
        nodes.append(node)
        handles.append(h)
    return GradWatch(nodes, handles)
