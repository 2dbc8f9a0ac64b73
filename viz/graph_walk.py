"""Read a recorded graph into a flat list of items and edges (iterative: any depth).

Items are numbered in breadth-first order from the roots, so the same graph always gives the
same numbering (and the same DOT text); nothing is keyed by ``id()`` in the output.
Nothing here changes the graph.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Any, Iterable

from . import graph_api as api
from .graph_api import Tensor

OP, PARAM, LEAF, CONST = "op", "param", "leaf", "const"

# node -> {input index: constant Tensor}: remembered while a node still holds its saved tensors
# (watch_grads and draw_graph fill it) so a picture drawn after backward() freed them can still
# name and shape the constant inputs.
_CONSTANTS: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


class Item:
    """One box: a recorded op (``obj`` is its Node), a leaf Tensor, or a constant input."""

    __slots__ = ("kind", "obj", "index", "parents", "consumers", "is_root")

    def __init__(self, kind: str, obj: Any, index: int) -> None:
        self.kind = kind
        self.obj = obj  # Node, leaf Tensor, constant Tensor, or None (unknown constant)
        self.index = index
        self.parents: list[int] = []  # item indices of the inputs, in input order (ops only)
        self.consumers: list[int] = []  # item indices of the ops using this item
        self.is_root = False

    @property
    def shape(self) -> tuple | None:
        if self.kind == OP:
            return api.shape(self.obj)
        return None if self.obj is None else tuple(self.obj.shape)


class Graph:
    """Items (``items[i].index == i``) and edges ``(src, dst)`` in walk order."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.edges: list[tuple[int, int]] = []
        self.roots: list[int] = []
        self.root_tensors: list[Tensor] = []

    def add(self, kind: str, obj: Any) -> Item:
        it = Item(kind, obj, len(self.items))
        self.items.append(it)
        return it


def mark_parameters(g: Graph, pnames: dict) -> None:
    """Leaves named by a module's ``named_parameters()`` are drawn as parameters (duck-typed:
    no class is checked)."""
    for it in g.items:
        if it.kind == LEAF and id(it.obj) in pnames:
            it.kind = PARAM


def constant_inputs(node: Any) -> dict:
    """``{i: Tensor}`` for inputs ``i`` that need no grad and that ``node`` saved.

    Ops save their inputs first, in input order, when their VJP needs them (Linear saves
    ``(x, weight)``, Mul ``(a, b)``; a slot not needed this time is None). That alignment is
    trusted only when every differentiable input in the saved prefix is where it should be;
    otherwise nothing is claimed.
    """
    known = _CONSTANTS.get(node)
    saved = api.saved(node)
    if not saved:
        return known or {}
    found = {}
    for i, (p, s) in enumerate(zip(api.inputs(node), saved)):
        if s is None:  # a slot the VJP does not need this time
            continue
        if not isinstance(s, Tensor):
            if p is not None:
                return known or {}
            continue
        if p is None:
            if s.grad_fn is None and not api.requires_grad(s):
                found[i] = s
        elif not (p is s or s.grad_fn is p):
            return known or {}
    if found:
        _CONSTANTS[node] = found
    return found


def _root_key(t: Any) -> Any:
    if not isinstance(t, Tensor):
        raise TypeError(
            f"draw_graph: expected an autodiff Tensor (or a list of them), got {type(t).__name__}"
        )
    if t.grad_fn is not None:
        return t.grad_fn
    if api.requires_grad(t):
        return t
    raise ValueError(
        f"draw_graph: the tensor of shape {tuple(t.shape)} has no recorded graph: it does not "
        "require grad and has no grad_fn (was it computed under no_grad(), detached, or from "
        "inputs without requires_grad=True?)"
    )


def as_roots(op: str, tensors: Any) -> list[Tensor]:
    """A Tensor or a list/tuple of them, as a list (what draw_graph and watch_grads accept)."""
    if isinstance(tensors, Tensor):
        return [tensors]
    if isinstance(tensors, (list, tuple)):
        return list(tensors)
    raise TypeError(
        f"{op}: expected an autodiff Tensor or a list of them, got {type(tensors).__name__}"
    )


def walk(roots: Iterable[Tensor]) -> Graph:
    """Breadth-first from the roots' nodes to the leaves; one edge per recorded input."""
    g = Graph()
    index: dict = {}  # Node or Tensor -> item index (dict lookup, never printed)
    queue: deque = deque()

    def visit(obj: Any) -> int:
        i = index.get(obj)
        if i is None:
            if api.is_node(obj):
                it = g.add(OP, obj)
                queue.append(it)
            else:
                it = g.add(LEAF, obj)  # parameters are told apart once names are known
            i = index[obj] = it.index
        return i

    for t in roots:
        i = visit(_root_key(t))
        if i not in g.roots:
            g.roots.append(i)
            g.root_tensors.append(t)
            g.items[i].is_root = True

    items, edges = g.items, g.edges
    while queue:
        it = queue.popleft()
        node = it.obj
        consts = None
        for k, p in enumerate(api.inputs(node)):
            if p is None:
                if consts is None:
                    consts = constant_inputs(node)
                c = consts.get(k)
                if c is None:
                    j = g.add(CONST, None).index  # unknown constant: one box per use
                else:
                    j = index.get(c)
                    if j is None:
                        j = index[c] = g.add(CONST, c).index
            else:
                j = visit(p)
            it.parents.append(j)
            items[j].consumers.append(it.index)
            edges.append((j, it.index))
    return g


def tensor_facts(g: Graph) -> list:
    """(dtype, device) of every item's tensor where it can be told, else None.

    Exact for leaves, roots, ops that saved their output, and ops whose output a consumer
    saved; otherwise taken from the op's first input (ops keep their inputs' dtype, except
    casts, which stay unannotated).
    """
    items = g.items
    facts: list = [None] * len(items)
    where = {id(it.obj): it.index for it in items if it.kind == OP}
    for it in items:
        if it.kind != OP:
            if it.obj is not None:
                facts[it.index] = (it.obj.dtype, it.obj.device)
            continue
        node = it.obj
        out = api.saved_output(node)
        if out is not None:
            facts[it.index] = (out.dtype, out.device)
        for s in api.saved(node) or ():
            if isinstance(s, Tensor) and s.grad_fn is not None:
                j = where.get(id(s.grad_fn))
                if j is not None:
                    facts[j] = (s.data.dtype, s.data.device)
    for i, t in zip(g.roots, g.root_tensors):
        facts[i] = (t.dtype, t.device)
    # Kahn's order (inputs before the ops using them) to pass facts down, without recursion.
    waiting = [len(it.parents) for it in items]
    ready = deque(i for i, w in enumerate(waiting) if w == 0)
    while ready:
        i = ready.popleft()
        it = items[i]
        if facts[i] is None and it.kind == OP and it.obj.name != "Cast":
            for p in it.parents:
                if facts[p] is not None:
                    facts[i] = facts[p]
                    break
        for k in it.consumers:
            waiting[k] -= 1
            if waiting[k] == 0:
                ready.append(k)
    return facts
