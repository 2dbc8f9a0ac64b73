"""Module calls behind the recorded nodes: clusters, names, and collapsing with ``depth=``.

``node.scope`` is ``(module, parent_scope)`` for the innermost module call that was running when
the node was recorded (set by ``nn.Module.__call__``), or whatever object a user gave
``autodiff.scope(obj)``. One scope tuple is one call, so a module called twice gives two calls.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import graph_api as api
from .graph_walk import OP, PARAM, Graph


class Call:
    """One module call: a cluster in the picture, or one box when collapsed by ``depth=``."""

    __slots__ = (
        "module",
        "parent",
        "level",
        "index",
        "chain",
        "name",
        "desc",
        "repeat",
        "first",
        "fold",
    )

    def __init__(self, module: Any, parent: Call | None, index: int) -> None:
        self.module = module
        self.parent = parent
        self.level = 0 if parent is None else parent.level + 1
        self.chain: tuple = (self,) if parent is None else (*parent.chain, self)
        self.index = index
        self.name = ""  # dotted name in the model, '' when unknown (or the model itself)
        self.desc = describe(module)
        self.repeat = 0  # 1, 2, ... in run order when the same module is called more than once
        self.first = 0  # run rank of its first op (set by graph_fold.number_calls)
        self.fold = 0  # N when this call stands for N folded calls

    def title(self) -> str:
        head = f"{self.name}: {self.desc}" if self.name else self.desc
        if self.fold > 1:
            return f"{head} ×{self.fold}"
        if any(c.fold > 1 for c in self.chain):  # inside a folded call: it stands for them all
            return head
        return f"{head} (call {self.repeat})" if self.repeat else head


def describe(module: Any) -> str:
    """``Linear(2→25)``, ``LeakyReLU(negative_slope=0.1)``, ``Sequential``, or the scope's text."""
    if isinstance(module, (str, int, float)):
        return str(module)
    cls = type(module).__name__
    fin, fout = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if isinstance(fin, int) and isinstance(fout, int):
        return f"{cls}({fin}→{fout})"
    extra = getattr(module, "extra_repr", None)
    if callable(extra) and not getattr(module, "_modules", None):
        try:
            e = str(extra())
        except Exception:  # a broken extra_repr must not stop a picture
            e = ""
        if e and len(e) <= 32 and "\n" not in e:
            return f"{cls}({e})"
    return cls


def _split(scope: Any) -> tuple[Any, Any]:
    if scope.__class__ is tuple and len(scope) == 2:
        return scope[0], scope[1]
    return scope, None


def find_calls(g: Graph) -> tuple[list[Call], list]:
    """All module calls, outermost first in walk order, and each item's innermost call."""
    calls: list[Call] = []
    known: dict = {}  # id(scope object) -> Call; the nodes keep the scopes alive meanwhile
    of_item: list = [None] * len(g.items)
    for it in g.items:
        if it.kind != OP or api.scope(it.obj) is None:
            continue
        s = api.scope(it.obj)
        pending = []
        while s is not None and id(s) not in known:
            pending.append(s)
            s = _split(s)[1]
        parent = known.get(id(s)) if s is not None else None
        for s in reversed(pending):
            c = Call(_split(s)[0], parent, len(calls))
            calls.append(c)
            known[id(s)] = c
            parent = c
        of_item[it.index] = known[id(api.scope(it.obj))]
    return calls, of_item


def argument_name(g: Graph, i: int, of_item: list) -> str | None:
    """The name of the argument through which input item ``i`` entered the innermost module
    call using it, read from that call's ``forward`` signature (``x`` for PyTorch's generic
    ``input``): a layer's ``x``, a loss's ``target``. None when it entered no call or the
    argument cannot be told."""
    it = g.items[i]
    if not it.consumers:
        return None
    k = it.consumers[0]
    call = of_item[k]
    if call is None:
        return None
    try:
        sig = inspect.signature(call.module.forward)
    except (TypeError, ValueError, AttributeError):
        return None
    params = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    op_inputs = g.items[k].parents
    if len(params) == 1:
        name = params[0]
    elif len(op_inputs) == len(params):  # an op taking the call's arguments in order
        name = params[op_inputs.index(i)]
    else:
        return None
    return "x" if name == "input" else name


def _named(model: Any, what: str, **kw: Any) -> list:
    fn = getattr(model, what, None)
    if not callable(fn):
        return []
    try:
        return list(fn(**kw))
    except Exception:  # a model object we cannot traverse: fall back to class names
        return []


def name_things(calls: list[Call], model: Any) -> tuple[dict, dict]:
    """Set ``call.name``; return ``{id(param): dotted name}`` and ``{id(param): owner module}``.

    Names come from ``model.named_modules()`` / ``named_parameters()``; without a model, from
    the outermost module that has parameters (when there is exactly one), else from the
    attribute names of the parameters in their owner modules.
    """
    owners: dict = {}
    attr: dict = {}
    for c in calls:
        for n, p in _named(c.module, "named_parameters", recurse=False):
            if p is not None:
                owners.setdefault(id(p), c.module)
                attr.setdefault(id(p), n)
    if model is None:
        tops = []
        for c in calls:
            if (
                c.parent is None
                and all(m is not c.module for m in tops)
                and _named(c.module, "named_parameters")
            ):
                tops.append(c.module)
        model = tops[0] if len(tops) == 1 else None
    pnames = dict(attr)
    if model is not None:
        mnames = {id(m): n for n, m in _named(model, "named_modules")}
        for c in calls:
            c.name = mnames.get(id(c.module), "")
        for n, p in _named(model, "named_parameters"):
            pnames[id(p)] = n
    return pnames, owners


class Placement:
    """Where each item goes: a visible unit in a cluster, or inside a collapsed module box.

    ``unit_of[i]`` is the unit drawing item ``i``; units are numbered in order of first use
    (walk order), which makes DOT ids deterministic. A unit is ``("item", i)`` or
    ``("box", call)``; ``cluster_of[u]`` is the Call whose cluster holds unit ``u`` (or None).
    """

    def __init__(
        self,
        g: Graph,
        calls: list[Call],
        of_item: list,
        owners: dict,
        depth: int | None,
        rep: list[int],
    ) -> None:
        self.units: list[tuple] = []
        self.cluster_of: list = []
        self.unit_of: list[int] = [0] * len(g.items)
        self.box_items: dict = {}  # unit -> item indices inside the box
        box_unit: dict = {}  # id(call) -> unit

        def box(call: Call) -> int:
            u = box_unit.get(id(call))
            if u is None:
                u = box_unit[id(call)] = len(self.units)
                self.units.append(("box", call))
                self.cluster_of.append(call.parent)
                self.box_items[u] = []
            return u

        for it in g.items:
            if rep[it.index] != it.index:  # a folded copy: drawn as its representative
                continue
            home = None
            if it.kind == OP:
                home = of_item[it.index]
            elif it.kind == PARAM:
                home = self._param_home(g, it, of_item, owners, rep)
            if home is not None and depth is not None and home.level >= depth:
                u = box(home.chain[depth])
                self.box_items[u].append(it.index)
            else:
                u = len(self.units)
                self.units.append(("item", it.index))
                self.cluster_of.append(home)
            self.unit_of[it.index] = u
        for i, r in enumerate(rep):
            self.unit_of[i] = self.unit_of[r]

    @staticmethod
    def _param_home(g: Graph, it: Any, of_item: list, owners: dict, rep: list[int]) -> Call | None:
        owner = owners.get(id(it.obj))
        if owner is None:
            return None
        home = None
        for k in it.consumers:
            c = of_item[rep[k]]
            while c is not None and c.module is not owner:
                c = c.parent
            if c is None or (home is not None and c is not home):
                return None  # used outside its module, or by several calls of it
            home = c
        return home


def exit_item(g: Graph, items: list[int]) -> int:
    """The item whose output leaves a collapsed box (the first such in walk order)."""
    inside = set(items)
    for i in items:
        it = g.items[i]
        if it.kind == OP and (it.is_root or any(k not in inside for k in it.consumers)):
            return i
    return items[0]


def visible_clusters(
    g: Graph, calls: list[Call], place: Placement, keep: int
) -> tuple[list, dict, dict]:
    """Effective cluster of every kept unit, after dropping clusters that would hold a single
    op and nothing else (a ReLU module around its relu): that op is labelled with the module.

    Returns ``(home, annotate, children)``: the drawn cluster (Call or None) of each unit, the
    Call to name on each op whose cluster was dropped, and the drawn child clusters of each
    drawn cluster (key None: the top level), listed input side first.
    """
    home = list(place.cluster_of[:keep])
    content: dict = {}
    for u in range(keep):
        if home[u] is not None:
            content.setdefault(id(home[u]), []).append(u)
    drawn = {id(c) for c in calls if id(c) in content}
    for c in calls:  # clusters holding only clusters are drawn too
        if id(c) in drawn:
            p = c.parent
            while p is not None and id(p) not in drawn:
                drawn.add(id(p))
                p = p.parent
    n_child: dict = {}
    for c in calls:
        if id(c) in drawn and c.parent is not None:
            n_child[id(c.parent)] = n_child.get(id(c.parent), 0) + 1
    annotate: dict = {}
    for c in sorted(calls, key=lambda c: -c.level):
        if id(c) not in drawn:
            continue
        units = content.get(id(c), [])
        if (
            not n_child.get(id(c))
            and len(units) == 1
            and place.units[units[0]][0] == "item"
            and g.items[place.units[units[0]][1]].kind == OP
        ):
            u = units[0]
            drawn.discard(id(c))
            annotate.setdefault(u, c)
            home[u] = c.parent
            if c.parent is not None:
                content.setdefault(id(c.parent), []).append(u)
                n_child[id(c.parent)] -= 1
    children: dict = {}
    for c in reversed(calls):
        if id(c) in drawn:
            children.setdefault(c.parent, []).append(c)
    # Units of an elided cluster moved up: map back to the nearest drawn ancestor.
    for u in range(keep):
        c = home[u]
        while c is not None and id(c) not in drawn:
            c = c.parent
        home[u] = c
    return home, annotate, children
