"""Turn a walked, placed graph into DOT text: boxes, nested clusters, edges, notes.

Statements are written straight into ``graphviz.Digraph.body`` with our own quoting (see
``graph_style``), which keeps a 5,000-box graph well under a second. Box ids are ``n<unit>``
with units numbered in walk order, so the same graph always gives the same text.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import graphviz
import torch

from . import graph_api as api
from . import graph_style as st
from .graph_api import Tensor
from .graph_fold import Fold
from .graph_gradview import GradView
from .graph_layout import layout_attrs
from .graph_modules import Call, Placement, argument_name, exit_item, visible_clusters
from .graph_walk import CONST, LEAF, OP, PARAM, Graph, tensor_facts

GRAPH_ATTR = {
    "rankdir": "TB",
    "fontname": st.FONT,
    "fontsize": "11",
    "ranksep": "0.32",
    "nodesep": "0.28",
    "newrank": "true",
    "pad": "0.15",
    "bgcolor": "white",
    "ordering": "in",
}  # ordering: an op's inputs left to right in input order
NODE_ATTR = {
    "fontname": st.FONT,
    "fontsize": "11",
    "shape": "box",
    "style": "rounded,filled",
    "height": "0.3",
    "margin": "0.12,0.05",
    "penwidth": "1.2",
}
EDGE_ATTR = {"color": st.EDGE, "arrowsize": "0.6", "penwidth": "1.1", "fontname": st.FONT}
SHARE_ABOVE = 150  # boxes; bigger pictures draw a widely shared input at each use


def _id(u: int) -> str:
    return f"n{u}"


class Drawing:
    """One picture in the making."""

    def __init__(
        self,
        g: Graph,
        calls: list[Call],
        pnames: dict,
        place: Placement,
        names: Mapping[str, Tensor] | None,
        depth: int | None,
        show_grad: bool,
        show_saved: bool,
        rankdir: str,
        max_nodes: int | None,
        title: str | None,
        folded: Fold,
        of_item: list,
    ) -> None:
        self.g, self.calls, self.pnames, self.place = g, calls, pnames, place
        self.folded, self.of_item = folded, of_item
        self.depth, self.show_saved = depth, show_saved
        self.rankdir, self.max_nodes, self.title = rankdir, max_nodes, title
        self.user_names: dict = {}
        for n, t in (names or {}).items():
            if not isinstance(t, Tensor):
                raise TypeError(f"draw_graph: names[{n!r}] is a {type(t).__name__}, not a Tensor")
            self.user_names[id(t.grad_fn if t.grad_fn is not None else t)] = str(n)
        self.facts = tensor_facts(g)
        n = len(place.units)
        self.keep = n if max_nodes is None else min(n, max_nodes)
        self.grads = GradView(g, place, self.keep, folded, of_item) if show_grad else None
        self.lines: list[str] = []

    def digraph(self) -> graphviz.Digraph:
        self.shared = self._shared_inputs()
        self.node_attrs: dict = {}
        self.copies: set = set()
        home, annotate, children = visible_clusters(self.g, self.calls, self.place, self.keep)
        blocks: dict = {}
        for u in reversed(range(self.keep)):  # inputs first: dot places in declaration order
            blocks.setdefault(home[u], []).append(u)
        for u in blocks.get(None, ()):
            self._node(u, annotate.get(u), "\t")
        # Clusters nested with an explicit stack: (cluster, nesting level among drawn ones).
        stack = [(c, 1) for c in reversed(children.get(None, ()))]
        open_levels: list = []
        while stack:
            c, lvl = stack.pop()
            while open_levels and open_levels[-1] >= lvl:
                open_levels.pop()
                self.lines.append("\t" * (len(open_levels) + 1) + "}")
            ind = "\t" * (lvl + 1)
            fill = st.CLUSTER_FILLS[min(c.level, len(st.CLUSTER_FILLS) - 1)]
            self.lines.append("\t" * lvl + f"subgraph cluster_{c.index} {{")
            self.lines.append(
                f"{ind}label={st.cluster_label(c.title())} labeljust=l "
                f'style="rounded,filled" fillcolor="{fill}" '
                f'color="{st.CLUSTER_BORDER}" fontsize=10 margin=10'
            )
            open_levels.append(lvl)
            for u in blocks.get(c, ()):
                self._node(u, annotate.get(u), ind)
            stack.extend((k, lvl + 1) for k in reversed(children.get(c, ())))
        while open_levels:
            open_levels.pop()
            self.lines.append("\t" * (len(open_levels) + 1) + "}")

        fed_by_rest = self._edges()
        if self.keep < len(self.place.units):
            self._more_note(len(self.place.units) - self.keep, fed_by_rest)
        if self.grads is not None:
            self.lines.append("\t" + self.grads.legend())
            root = self.place.unit_of[self.g.roots[0]]
            if root < self.keep:  # keeps the legend below (TB) or beside (LR) the output
                self.lines.append(f"\t{_id(root)} -> legend [style=invis]")

        attrs = {**GRAPH_ATTR, "rankdir": self.rankdir}
        fast = layout_attrs(self.keep)
        if fast:
            del attrs["ordering"]
        dot = graphviz.Digraph(
            graph_attr={**attrs, **fast}, node_attr=NODE_ATTR, edge_attr=EDGE_ATTR
        )
        if self.title:
            head, *rest = self.title.split("\n")
            dot.attr(
                label=st.html_label(st.esc(head, 200), [st.esc(r, 200) for r in rest], size=11),
                labelloc="t",
                fontsize="13",
            )
        dot.body.extend(line + "\n" for line in self.lines)
        return dot

    # ---- boxes -------------------------------------------------------------------------------
    def _node(self, u: int, module: Call | None, ind: str) -> None:
        kind, ref = self.place.units[u]
        if kind == "box":
            title, lines, style = self._box(u, ref)
        else:
            title, lines, style = self._item(self.g.items[ref], module)
        gradable = style.pop("_gradable", False)
        if self.grads is not None and gradable:
            lines = lines + self.grads.lines(u)
            self.grads.style(style, u)
        if kind == "item" and self.g.items[ref].is_root:
            style["penwidth"] = "2.6"
            if self.grads is None:
                style["fillcolor"], style["color"] = st.ROOT
            elif style.get("color") != st.ZERO_BORDER:
                style["color"] = st.ROOT[1]
        sub = "#e6e6e6" if style.get("fontcolor") == "#ffffff" else st.SUBTLE
        if u in self.shared:
            lines = lines + [f"used {len(self.shared[u])} times: drawn at each use"]
        text = st.attrs(label=st.html_label(title, lines, color=sub), **style)
        if u in self.shared:
            self.node_attrs[u] = text
        self.lines.append(f"{ind}{_id(u)} {text}")
        if self.show_saved and kind == "item" and self.g.items[ref].kind == OP:
            self._saved(u, self.g.items[ref].obj, ind)

    def _shape_line(self, i: int) -> str:
        shape = self.g.items[i].shape
        if shape is None:
            return ""
        return st.esc(st.shape_text(shape) + _dtype_text(self.facts[i]))

    def _item(self, it: Any, module: Call | None) -> tuple[str, list, dict]:
        user = self.user_names.get(id(it.obj)) if it.obj is not None else None
        shape = self._shape_line(it.index)
        n = len(self.folded.copies.get(it.index, ()))
        home = self.of_item[it.index]
        if n > 1 and not (home is not None and any(c.fold > 1 for c in home.chain)):
            shape += f" ×{n}"  # folded with a loop's calls, drawn outside their cluster
        if it.kind == OP:
            node = it.obj
            lines = []
            if module is not None:  # the op is all its module call did: name the module here
                head = module.title()
                if module.name or head.lower() != node.name.lower():
                    lines.append(st.esc(head))
            if user:
                lines.append(st.esc(user))
            lines.append(shape)
            if self.show_saved and api.saved(node) is None:
                lines.append("saved tensors freed")
            fill, border = st.OP
            return st.esc(node.name), lines, {"fillcolor": fill, "color": border, "_gradable": True}
        if it.kind == PARAM:
            fill, border = st.PARAM
            name = user or self.pnames.get(id(it.obj)) or "parameter"
            return (
                st.esc(name),
                [shape],
                {"fillcolor": fill, "color": border, "style": "filled", "_gradable": True},
            )
        if it.kind == LEAF:
            fill, border = st.LEAF
            return (
                st.esc(user or self.input_name(it.index)),
                [shape, "requires grad"],
                {
                    "fillcolor": fill,
                    "color": border,
                    "shape": "ellipse",
                    "style": "filled",
                    "_gradable": True,
                },
            )
        fill, border = st.CONST
        title = user or (self.input_name(it.index) if it.obj is not None else "constant")
        return (
            st.esc(title),
            [shape],
            {"fillcolor": fill, "color": border, "shape": "ellipse", "style": "filled,dashed"},
        )

    def input_name(self, i: int) -> str:
        """A name for an input the caller did not name: the argument it was passed as, or
        the seed gradient of a ``create_graph`` graph."""
        t = self.g.items[i].obj
        if t is not None and is_seed(t.data):
            return "seed ∇ (ones)"
        return argument_name(self.g, i, self.of_item) or "input"

    def _box(self, u: int, call: Call) -> tuple[str, list, dict]:
        items = self.place.box_items[u]
        lines = [self._shape_line(exit_item(self.g, items))]
        n_ops = sum(1 for i in items if self.g.items[i].kind == OP)
        n_par = sum(1 for i in items if self.g.items[i].kind == PARAM)
        if n_ops > 1:
            lines.append(f"{n_ops} ops" + (f", {n_par} params" if n_par else ""))
        fill, border = st.MODULE
        return (
            st.esc(call.title()),
            lines,
            {
                "fillcolor": fill,
                "color": border,
                "style": "rounded,filled,bold",
                "_gradable": True,
                "tooltip": _tooltip(call.module),
            },
        )

    def _saved(self, u: int, node: Any, ind: str) -> None:
        entries = api.saved(node)
        if entries is None:
            return
        out = api.output_slot(node)
        fill, border = st.SAVED
        for j, s in enumerate(entries):
            if not isinstance(s, (Tensor, torch.Tensor)):
                continue
            d = s.data if isinstance(s, Tensor) else s
            what = "saved output" if j == out else "saved"
            text = st.shape_text(d.shape) + _dtype_text((d.dtype, d.device))
            label = st.html_label(what, [st.esc(text)], bold=False)
            sid = f"{_id(u)}_s{j}"
            self.lines.append(
                f"{ind}{sid} "
                + st.attrs(
                    label=label,
                    shape="note",
                    style="filled",
                    fillcolor=fill,
                    color=border,
                    fontsize=9,
                )
            )
            self.lines.append(
                f'{ind}{sid} -> {_id(u)} [style=dashed color="{border}" arrowhead=none]'
            )

    def _shared_inputs(self) -> dict:
        """``{unit: [the units it feeds]}`` for inputs drawn once per use: in a big picture, a
        parameter or input feeding more than two boxes. One box with edges to uses far apart
        (a weight shared by the 200 calls of an unfolded loop) costs Graphviz minutes; a copy
        next to each use costs nothing."""
        if self.keep <= SHARE_ABOVE:
            return {}
        unit_of, units, items = self.place.unit_of, self.place.units, self.g.items
        uses: dict = {}
        for src, dst in self.g.edges:
            a, b = unit_of[src], unit_of[dst]
            if (
                a < self.keep
                and b < self.keep
                and a != b
                and units[a][0] == "item"
                and items[units[a][1]].kind in (PARAM, LEAF, CONST)
            ):
                seen = uses.setdefault(a, [])
                if b not in seen:
                    seen.append(b)
        return {a: bs for a, bs in uses.items() if len(bs) > 2}

    def _edge_source(self, a: int, b: int) -> str:
        """The box an edge from unit ``a`` to ``b`` leaves: ``a``, or its copy next to ``b``."""
        uses = self.shared.get(a)
        if not uses or b == uses[0]:
            return _id(a)
        copy = f"{_id(a)}_u{b}"
        if copy not in self.copies:
            self.copies.add(copy)
            self.lines.append(f"\t{copy} {self.node_attrs[a]}")
        return copy

    # ---- edges -------------------------------------------------------------------------------
    def _edges(self) -> list[int]:
        """Edges between kept boxes (one per recorded input; merged inside collapsed modules
        and folded calls). Returns the kept boxes that left-out boxes feed.

        An edge of a folded copy is drawn as the first call's edge it copies; one that has no
        such counterpart carried something from one call to the next: drawn as a loop."""
        unit_of, units, items, keep = self.place.unit_of, self.place.units, self.g.items, self.keep
        folded = self.folded
        rep = folded.rep
        collapse = self.depth is not None
        seen: set = set()
        plain = {(unit_of[a], unit_of[b]) for a, b in self.g.edges if rep[a] == a and rep[b] == b}
        loops: dict = {}
        fed_by_rest: list = []
        for src, dst in self.g.edges:
            a, b = unit_of[src], unit_of[dst]
            if (rep[src] != src or rep[dst] != dst) and b < keep and a < keep:
                if folded.is_loop(src, dst):
                    loops[(a, b)] = loops.get((a, b), 0) + 1
                    continue
                if (a, b) in plain:
                    continue
                plain.add((a, b))  # an edge of the last call only (leaving the loop)
            if b >= keep:
                continue
            if a >= keep:
                if b not in seen:
                    seen.add(b)
                    fed_by_rest.append(b)
                continue
            if collapse:
                if a == b or (a, b) in seen:
                    continue
                seen.add((a, b))
            kind = items[src].kind if units[a][0] == "item" else OP
            head = self._edge_source(a, b) if a in self.shared else _id(a)
            if kind == PARAM:
                self.lines.append(f'\t{head} -> {_id(b)} [color="{st.PARAM[1]}"]')
            elif kind == CONST:
                self.lines.append(f'\t{head} -> {_id(b)} [color="{st.CONST[1]}" style=dashed]')
            else:
                self.lines.append(f"\t{head} -> {_id(b)}")
        for (a, b), n in loops.items():
            self.lines.append(
                f'\t{_id(a)} -> {_id(b)} [color="{st.LOOP}" penwidth=1.8 '
                f'constraint=false label=<<FONT POINT-SIZE="9" COLOR="{st.LOOP}">'
                f"to the next call ×{n}</FONT>>]"
            )
        return fed_by_rest

    def _more_note(self, left_out: int, fed: list[int]) -> None:
        warnings.warn(
            f"draw_graph: {left_out:,} more boxes not drawn (max_nodes={self.max_nodes}): pass "
            "depth=1 (or 0) to draw whole modules as single boxes, or max_nodes=None to draw "
            "everything (slow to lay out)",
            stacklevel=4,
        )
        fill, border = st.MORE
        label = st.html_label(
            st.esc(f"… {left_out:,} more boxes"),
            [f"not drawn: max_nodes={self.max_nodes}", "use depth= to collapse modules"],
        )
        self.lines.append(
            "\tmore "
            + st.attrs(
                label=label, shape="box", style="filled,dashed", fillcolor=fill, color=border
            )
        )
        for b in fed:
            self.lines.append(f'\tmore -> {_id(b)} [style=dashed color="{border}"]')


def is_seed(d: torch.Tensor) -> bool:
    """A broadcast 1: how the seed gradient ``ones`` of ``backward``/``grad`` enters a graph
    recorded with ``create_graph=True`` (a sum's VJP expands it, every element one value)."""
    if d.numel() == 0 or not d.is_floating_point():
        return False
    if not all(st == 0 for st, n in zip(d.stride(), d.shape) if n > 1):
        return False
    return bool((d.reshape(-1)[:1] == 1).all())


def _dtype_text(fact: tuple | None) -> str:
    """`` float64``, `` cuda:0``: only what differs from float32 on the cpu."""
    if fact is None:
        return ""
    dtype, device = fact
    text = "" if dtype == torch.float32 else " " + str(dtype).replace("torch.", "")
    return text if device.type == "cpu" else f"{text} {device}"


def _tooltip(module: Any) -> str:
    try:
        text = repr(module)
    except Exception:  # a broken repr must not stop a picture
        text = type(module).__name__
    return text if len(text) <= 400 else text[:399] + "…"
