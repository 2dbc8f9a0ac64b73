"""Repeated calls of one module: the order they ran in, and folding them into one drawn call.

A recurrent cell called 200 times in a Python loop records 200 copies of the same ops. With
folding, the first call (in run order) stands for all of them: every item of a later call maps
to the item at the same place in the first one (``rep``), the cluster is marked ``×N``, and the
edges that carried state from one call to the next become a loop on the folded cluster.

Calls fold together when they are calls of the same module, inside the same (unfolded) parent
call, and recorded the same ops in the same order (their *signature*); a call whose ops differ
(a first step that skips a branch) stays on its own. Items outside the calls whose every
consumer was folded (the ``xs[t]`` slices feeding the cell) fold with them.
"""

from __future__ import annotations

import heapq

from .graph_modules import Call
from .graph_walk import OP, PARAM, Graph, Item


def run_ranks(g: Graph) -> list[int]:
    """Each item's place in an order in which the recorded ops could have run (inputs first).

    Kahn's algorithm; among ready items the one farthest from the output (largest walk index)
    goes first, so the order is deterministic and a loop's steps come out in time order.
    """
    waiting = [len(it.parents) for it in g.items]
    heap = [-i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(heap)
    rank = [0] * len(g.items)
    r = 0
    while heap:
        i = -heapq.heappop(heap)
        rank[i] = r
        r += 1
        for k in g.items[i].consumers:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(heap, -k)
    return rank


def ops_of_calls(g: Graph, calls: list[Call], of_item: list, rank: list[int]) -> dict:
    """``{id(call): [op items recorded in it or in its sub-calls, in run order]}``."""
    inside: dict = {id(c): [] for c in calls}
    for it in g.items:
        c = of_item[it.index]
        if it.kind == OP and c is not None:
            for a in c.chain:
                inside[id(a)].append(it.index)
    for v in inside.values():
        v.sort(key=rank.__getitem__)
    return inside


def number_calls(calls: list[Call], inside: dict, rank: list[int]) -> None:
    """Set ``call.first`` (run rank of its first op) and number repeated calls of a module
    1, 2, ... in the order they ran (``call.repeat``; 0 when called once)."""
    by_module: dict = {}
    for c in calls:
        ops = inside[id(c)]
        c.first = rank[ops[0]] if ops else 0
        by_module.setdefault(id(c.module), []).append(c)
    for group in by_module.values():
        if len(group) > 1:
            for n, c in enumerate(sorted(group, key=lambda c: c.first), 1):
                c.repeat = n


class Fold:
    """``rep[i]``: the item drawn for item ``i`` (itself when not folded); ``copies[r]``: the
    items drawn as ``r`` in run order; ``group[i]``/``instance[i]``: the folded group item ``i``
    belongs to (-1: none) and which of its calls (0 for the first); ``members[id(call)]``: the
    calls a folded call stands for, in run order."""

    def __init__(self, n: int) -> None:
        self.rep = list(range(n))
        self.group = [-1] * n
        self.instance = [0] * n
        self.copies: dict = {}
        self.members: dict = {}

    @property
    def any(self) -> bool:
        return bool(self.members)

    def is_loop(self, src: int, dst: int) -> bool:
        """Whether edge ``src -> dst`` carries something from one call of a group to another."""
        gs = self.group[src]
        return gs >= 0 and gs == self.group[dst] and self.instance[src] != self.instance[dst]


def fold_calls(
    g: Graph, calls: list[Call], of_item: list, inside: dict, rank: list[int], enabled: bool
) -> Fold:
    """Fold the repeated calls (see the module docstring); ``enabled=False`` folds nothing."""
    f = Fold(len(g.items))
    if not enabled:
        return f
    items = g.items
    mapped: set = set()  # ids of calls that stand for nothing (folded into another)

    def signature(c: Call) -> tuple:
        return tuple((items[i].obj.name, len(of_item[i].chain) - c.level) for i in inside[id(c)])

    for level in sorted({c.level for c in calls}):
        groups: dict = {}
        for c in sorted((c for c in calls if c.level == level), key=lambda c: c.first):
            if id(c) in mapped or (c.parent is not None and id(c.parent) in mapped):
                mapped.add(id(c))  # inside a call that was folded away
                continue
            if not inside[id(c)]:
                continue
            key = (id(c.module), id(c.parent), signature(c))
            groups.setdefault(key, []).append(c)
        for group in groups.values():
            if len(group) < 2:
                continue
            first = group[0]
            first.fold = len(group)
            f.members[id(first)] = group
            for n, m in enumerate(group):
                if n:
                    mapped.add(id(m))
                for i, r in zip(inside[id(m)], inside[id(first)]):
                    if f.group[i] < 0:  # the outermost folded group decides
                        f.rep[i], f.group[i], f.instance[i] = r, first.index, n
    order = sorted(range(len(items)), key=rank.__getitem__)
    _fold_outside(g, f, order)
    _fold_outside(g, f, order[::-1], consumers=True)
    # A folded call may itself hold folded calls: follow rep to the item actually drawn.
    for i in range(len(items)):
        r = f.rep[i]
        while f.rep[r] != r:
            r = f.rep[r]
        f.rep[i] = r
    for i in order:
        if f.rep[i] != i:
            f.copies.setdefault(f.rep[i], [f.rep[i]]).append(i)
    return f


def _fold_outside(g: Graph, f: Fold, order: list[int], consumers: bool = False) -> None:
    """Fold the items around folded calls that repeat with them: an op applied to each call's
    output (``lin(h).tanh()``: the tanh), taken in run order, and then (``consumers=True``,
    reverse run order) an input feeding only folded items (the ``xs[t]`` slice of each step),
    each onto the item at the same place around the first call."""
    items = g.items
    for j in order:
        it = items[j]
        if f.rep[j] != j or f.group[j] >= 0 or it.kind == PARAM:
            continue
        if consumers:
            if it.is_root or not it.consumers or any(f.rep[k] == k for k in it.consumers):
                continue
            k = it.consumers[0]
            c = items[f.rep[k]].parents[items[k].parents.index(j)]
            src = k
        else:
            if it.kind != OP:
                continue
            q = next((q for q, p in enumerate(it.parents) if f.rep[p] != p), None)
            if q is None:
                continue
            p = it.parents[q]
            c = next(
                (
                    c
                    for c in items[f.rep[p]].consumers
                    if items[c].parents[q] == f.rep[p] and _alike(g, f, j, c)
                ),
                None,
            )
            if c is None:
                continue
            src = p
        if c == j or not _same(it, items[c]):
            continue
        f.rep[j], f.group[j], f.instance[j] = c, f.group[src], f.instance[src]
        f.group[c] = f.group[src]


def _same(a: Item, b: Item) -> bool:
    return a.kind == b.kind and (a.kind != OP or a.obj.name == b.obj.name)


def _alike(g: Graph, f: Fold, j: int, c: int) -> bool:
    """Op ``j`` does to a later call what op ``c`` does to the first: same op, and each input
    either the copy of ``c``'s input or an unfolded input of the same kind."""
    a, b = g.items[j], g.items[c]
    if c == j or f.rep[c] != c or not _same(a, b) or len(a.parents) != len(b.parents):
        return False
    return all(
        f.rep[p] == q or (f.rep[p] == p and p != q and _same(g.items[p], g.items[q]))
        for p, q in zip(a.parents, b.parents)
    )
