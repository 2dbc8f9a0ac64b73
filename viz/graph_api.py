"""The one place viz reads the recorded graph: autodiff's public ``Node`` and ``Tensor`` API.

Everything else in viz goes through these functions, so the pictures depend on nothing but the
documented graph-reading names (``node.name``, ``.inputs``, ``.scope``, ``.shape``,
``.saved_tensors``, ``.released``, ``.register_prehook``, ``.register_hook``).
Nothing here changes the graph except the hooks that :func:`add_prehook` / :func:`add_hook`
add on request (each returns a handle whose ``remove()`` takes it off again).

Until the engine grows the whole public API, the ``_old_*`` fallbacks below read the
equivalent attributes of the current Node (``HAS_PUBLIC`` says which is in use).
"""
from __future__ import annotations

from typing import Any, Callable

import autodiff as ad

Node = ad.Node
Tensor = ad.Tensor
HAS_PUBLIC = hasattr(ad.Node, "register_prehook") and hasattr(ad.Node, "inputs")


def is_node(x: Any) -> bool:
    return isinstance(x, ad.Node)


def inputs(node: Any) -> tuple:
    """One entry per input: a Node, a leaf Tensor that requires grad, or None (a constant)."""
    return tuple(node.inputs if HAS_PUBLIC else node.next_functions)


def scope(node: Any) -> Any:
    """What ``ad.scope(...)`` (e.g. an nn module call) was active when ``node`` was recorded."""
    return node.scope


def shape(node: Any) -> tuple:
    return tuple(node.shape)


def saved(node: Any) -> tuple | None:
    """The tensors ``node`` saved for its backward (its output among them when it saved it),
    or None once a backward released them."""
    if node.released:
        return None
    if not HAS_PUBLIC:
        return _old_saved(node)
    return tuple(node.saved_tensors)


def saved_output(node: Any) -> Any:
    """The output ``node`` saved (ops declaring ``saves = (..., "out")``), else None."""
    if not HAS_PUBLIC:
        return None if node.released else node.out
    names = getattr(type(node), "saves", None)
    if not names or "out" not in names:
        return None
    got = saved(node)
    if got is None:
        return None
    i = tuple(names).index("out")
    return got[i] if i < len(got) else None


def requires_grad(t: Any) -> bool:
    return bool(t.requires_grad)


def add_prehook(node: Any, fn: Callable[[Any], None]) -> Any:
    """Call ``fn(grad_output)`` when the backward reaches ``node``; ``fn`` returns None (the
    gradient is only read). Returns a handle with ``remove()``."""
    if not HAS_PUBLIC:
        return _old_prehook(node, fn)
    return node.register_prehook(fn)


def add_hook(node: Any, fn: Callable[[tuple, Any], None]) -> Any:
    """Call ``fn(grad_inputs, grad_output)`` right after ``node``'s VJP ran (in the order the
    engine applies them). Returns a handle with ``remove()``, or None where the engine cannot
    (then :func:`add_prehook` gives the order and the gradient received, not what was sent)."""
    if not HAS_PUBLIC:
        return None
    return node.register_hook(fn)


# ---- fallbacks on the engine's current attributes (removed once the public API is in) ----------
def _old_saved(node: Any) -> tuple:
    out = node.out
    return tuple(node.saved) + ((out,) if out is not None else ())


class _OldHandle:
    def __init__(self, hooks: list, fn: Any) -> None:
        self.hooks, self.fn = hooks, fn

    def remove(self) -> None:
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


def _old_prehook(node: Any, fn: Any) -> _OldHandle:
    if node.hooks is None:
        node.hooks = []
    hooks = node.hooks
    n = len(hooks)  # after the user's hooks (it sees the gradient that flows on)
    while n and getattr(hooks[n - 1], "_retains_grad", False):
        n -= 1
    hooks.insert(n, fn)
    return _OldHandle(hooks, fn)
