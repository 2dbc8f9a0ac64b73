"""The one place viz reads the recorded graph: autodiff's public ``Node`` and ``Tensor`` API.

Everything else in viz goes through these functions, so the pictures depend on nothing but the
documented graph-reading names (``node.name``, ``.inputs``, ``.scope``, ``.shape``,
``.saved_tensors``, ``.released``, ``.register_hook``). Nothing here changes the graph except
the hooks :func:`add_hook` adds on request (its handle's ``remove()`` takes them off again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import autodiff as ad

Node = ad.Node
Tensor = ad.Tensor


def is_node(x: Any) -> bool:
    return isinstance(x, ad.Node)


def inputs(node: Any) -> tuple:
    """One entry per input: a Node, a leaf Tensor that requires grad, or None (a constant)."""
    return tuple(node.inputs)


def scope(node: Any) -> Any:
    """What ``ad.scope(...)`` (e.g. an nn module call) was active when ``node`` was recorded."""
    return node.scope


def shape(node: Any) -> tuple:
    return tuple(node.shape)


def saved(node: Any) -> tuple | None:
    """The tensors ``node`` saved for its backward, in its ``saves`` order (its output among
    them when it saved it; None in a slot its VJP does not need this time), or None once a
    backward released them."""
    if node.released:
        return None
    return tuple(node.saved_tensors)


def output_slot(node: Any) -> int:
    """Where ``node``'s saved tensors hold its output (ops declaring ``saves = (..., "out")``),
    or -1."""
    names = tuple(getattr(type(node), "saves", None) or ())
    return names.index("out") if "out" in names else -1


def saved_output(node: Any) -> Any:
    """The output ``node`` saved, else None."""
    i = output_slot(node)
    got = saved(node) if i >= 0 else None
    return got[i] if got is not None and i < len(got) else None


def requires_grad(t: Any) -> bool:
    return bool(t.requires_grad)


def add_hook(node: Any, fn: Callable[[tuple, Any], None]) -> Any:
    """Call ``fn(grad_inputs, grad_output)`` right after ``node``'s VJP ran (in the order the
    engine applies them). Returns a handle with ``remove()``."""
    return node.register_hook(fn)
