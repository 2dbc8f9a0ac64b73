"""Gradient facts for the gradient view: norms, all-zero gradients, units that get no gradient.

Parameters and leaves keep their gradient in ``.grad``, so the picture reads it there. The
gradient flowing through an intermediate op is never stored by the engine: call
:func:`watch_grads` on the output *before* ``backward()``; it adds a gradient hook to every
recorded op (the only change it makes to the graph, undone by ``remove()``) and keeps a summary
of the gradient each op received, which ``draw_graph(..., show_grad=True)`` then shows.
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Iterable

import torch

from autodiff import Tensor

from .graph_walk import OP, as_roots, constant_inputs, walk

# node -> GradStat of the gradient w.r.t. its output in the latest backward() that reached it.
_STATS: "weakref.WeakKeyDictionary[Any, GradStat]" = weakref.WeakKeyDictionary()


class GradStat:
    """Summary of one gradient tensor: L2 norm, whether all zero / finite, dead units."""

    __slots__ = ("norm", "zero", "finite", "dead", "units")

    def __init__(self, norm: float, zero: bool, finite: bool, dead: int, units: int) -> None:
        self.norm, self.zero, self.finite, self.dead, self.units = norm, zero, finite, dead, units

    def __repr__(self) -> str:
        return (f"GradStat(norm={self.norm:.3g}, zero={self.zero}, finite={self.finite}, "
                f"dead={self.dead}/{self.units})")


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
    return GradStat(norm, zero, finite, dead, units)


def combine(stats: Iterable[GradStat]) -> GradStat | None:
    """One summary for several tensors (the parameters of a collapsed module)."""
    stats = list(stats)
    if not stats:
        return None
    norm = math.sqrt(sum(s.norm ** 2 for s in stats))
    return GradStat(norm, all(s.zero for s in stats), all(s.finite for s in stats), 0, 0)


def op_stat(node: Any) -> GradStat | None:
    return _STATS.get(node)


def leaf_stat(t: Tensor) -> GradStat | None:
    if t.grad is None:
        return None
    return grad_stat(t.grad, 0)


class GradWatch:
    """Handle returned by :func:`watch_grads`; ``remove()`` takes the hooks off again."""

    def __init__(self, hooks: list) -> None:
        self._hooks = hooks  # (weakref to node, hook)

    def remove(self) -> None:
        for ref, hook in self._hooks:
            node = ref()
            if node is not None and node.hooks and hook in node.hooks:
                node.hooks.remove(hook)
        self._hooks = []

    def __len__(self) -> int:
        return len(self._hooks)

    def __enter__(self) -> "GradWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _hook_for(ref: "weakref.ref") -> Any:
    def record_grad(g: Any) -> None:
        node = ref()
        if node is not None:
            _STATS[node] = grad_stat(g, -1 if g.dim() >= 2 else None)
    record_grad._viz_watch = True  # type: ignore[attr-defined]
    return record_grad


def watch_grads(tensors: Any) -> GradWatch:
    """Record, during the next ``backward()``, the gradient reaching every op of the graph of
    ``tensors`` (call it before backward). Returns a handle; ``remove()`` stops watching.

        watch = viz.watch_grads(loss)
        loss.backward()
        viz.render(loss, "grads.png", show_grad=True)
    """
    roots = as_roots("watch_grads", tensors)
    g = walk(roots)
    hooks = []
    for it in g.items:
        if it.kind != OP:
            continue
        node = it.obj
        constant_inputs(node)  # remember the constant inputs before backward frees them
        if node.hooks is None:
            node.hooks = []
        elif any(getattr(h, "_viz_watch", False) for h in node.hooks):
            continue
        ref = weakref.ref(node)
        hook = _hook_for(ref)
        # After the user's hooks (it sees the gradient that flows on), before retain_grad's.
        n = len(node.hooks)
        while n and getattr(node.hooks[n - 1], "_retains_grad", False):
            n -= 1
        node.hooks.insert(n, hook)
        hooks.append((ref, hook))
    return GradWatch(hooks)
