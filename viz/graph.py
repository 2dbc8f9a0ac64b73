"""Graphviz pictures of a recorded graph: ``draw_graph`` (a ``graphviz.Digraph``) and ``render``.

    loss = nn.MSELoss()(model(x), y)
    viz.render(loss, "graph.png", model=model, depth=1)     # one box per layer
    watch = viz.watch_grads(loss); loss.backward()
    viz.render(loss, "grads.png", model=model, show_grad=True)

Edges follow the data: from inputs and parameters to the output. Drawing only reads the graph.
"""
from __future__ import annotations

import os
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Mapping, Sequence

import graphviz
import torch

from autodiff import Tensor

from . import graph_style as st
from .graph_grads import GradStat, combine, leaf_stat, op_stat
from .graph_modules import Call, Placement, exit_item, find_calls, name_things
from .graph_walk import CONST, LEAF, OP, PARAM, Graph, walk

FORMATS = ("png", "svg", "pdf", "dot")

INSTALL_HELP = ("Install Graphviz (it provides `dot`): Debian/Ubuntu: `sudo apt-get install "
                "graphviz`; macOS: `brew install graphviz`; conda: `conda install graphviz`. "
                "Then make sure `dot -V` works in this shell (`dot` must be on PATH).")


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is missing; the DOT source was written instead."""


def draw_graph(tensors: Tensor | Sequence[Tensor], model: Any = None, *,
               names: Mapping[str, Tensor] | None = None, depth: int | None = None,
               show_grad: bool = False, show_saved: bool = False, rankdir: str = "TB",
               max_nodes: int | None = 1000, title: str | None = None) -> graphviz.Digraph:
    """Draw the graph recorded behind ``tensors`` (one Tensor or several).

    - ``model``: an ``nn.Module`` whose ``named_modules()``/``named_parameters()`` name the
      clusters and parameters (``layers.0.weight``); without it, names come from the outermost
      module that has parameters.
    - ``names``: ``{"x": x, "target": y}`` labels for inputs (or any tensor of the graph).
    - ``depth``: draw modules nested deeper than ``depth`` (0: outermost calls) as one box each;
      ``None`` draws every op.
    - ``show_grad``: colour boxes by gradient norm (log scale), mark all-zero gradients; op
      gradients need :func:`viz.watch_grads` before ``backward()``.
    - ``show_saved``: also draw the tensors each op saved for its backward.
    - ``rankdir``: ``"TB"`` (top to bottom) or ``"LR"``.
    - ``max_nodes``: draw at most this many boxes (those nearest the output) and say how many
      were left out; ``None`` draws all (graphs of thousands of boxes take long to lay out).
    """
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"draw_graph: rankdir must be 'TB' or 'LR' (or 'BT', 'RL'), got {rankdir!r}")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise ValueError(f"draw_graph: depth must be None or an int >= 0, got {depth!r}")
    if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < 1):
        raise ValueError(f"draw_graph: max_nodes must be None or an int >= 1, got {max_nodes!r}")
    if isinstance(tensors, Tensor):
        roots = [tensors]
    elif isinstance(tensors, (list, tuple)):
        roots = list(tensors)
    else:
        raise TypeError(f"draw_graph: expected an autodiff Tensor or a list of them, got "
                        f"{type(tensors).__name__}")
    if not roots:
        raise ValueError("draw_graph: no tensors given")
    g = walk(roots)
    calls, of_item = find_calls(g)
    pnames, owners = name_things(calls, model)
    place = Placement(g, calls, of_item, owners, depth)
    return _Drawing(g, calls, of_item, pnames, place, names, depth, show_grad, show_saved,
                    rankdir, max_nodes, title).digraph()


def render(tensors: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write the picture of ``tensors``' graph (or of a ``graphviz.Digraph``) to ``path``; the
    format comes from the extension: .png, .svg, .pdf, or .dot / .gv (the DOT source).

    Keyword arguments go to :func:`draw_graph`. Without Graphviz's ``dot`` program, raises
    :class:`GraphvizNotFoundError` saying how to install it, after writing the ``.dot`` source
    next to ``path``.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise ValueError(f"render: cannot tell the format of {str(path)!r}; use a file name "
                         f"ending in .png, .svg, .pdf or .dot")
    if isinstance(tensors, graphviz.Digraph):
        if kwargs:
            raise TypeError(f"render: options {sorted(kwargs)} are for draw_graph; they cannot "
                            "change an already drawn Digraph")
        dot = tensors
    else:
        dot = draw_graph(tensors, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(dot.source, encoding="utf-8")
        return path
    try:
        data = _pipe(dot, fmt)
    except graphviz.ExecutableNotFound:
        src = path.with_suffix(".dot")
        src.write_text(dot.source, encoding="utf-8")
        raise GraphvizNotFoundError(
            f"render: cannot write {str(path)!r}: Graphviz's `dot` program was not found on "
            f"PATH. {INSTALL_HELP} The graph's DOT source was written to {str(src)!r} "
            f"(render it later with `dot -T{fmt} {src} -o {path}`).") from None
    except graphviz.CalledProcessError as e:
        src = path.with_suffix(".dot")
        src.write_text(dot.source, encoding="utf-8")
        err = (e.stderr or b"").decode("utf-8", "replace").strip()
        raise RuntimeError(f"render: Graphviz failed to lay out {str(path)!r} ({err}); the DOT "
                           f"source was written to {str(src)!r}.") from None
    path.write_bytes(data)
    return path


def _pipe(dot: graphviz.Digraph, fmt: str) -> bytes:
    try:
        return dot.pipe(format=fmt)
    except graphviz.CalledProcessError:
        if "ordering" not in dot.graph_attr:
            raise
    # Some Graphviz versions fail on ordering=in inside clusters: lay out without it.
    plain = dot.copy()
    del plain.graph_attr["ordering"]
    return plain.pipe(format=fmt)


def _ids(n: int) -> str:
    return f"n{n}"


class _Drawing:
    """One picture in the making: labels, styles and the DOT lines."""

    def __init__(self, g: Graph, calls: list[Call], of_item: list, pnames: dict,
                 place: Placement, names: Mapping[str, Tensor] | None, depth: int | None,
                 show_grad: bool, show_saved: bool, rankdir: str, max_nodes: int | None,
                 title: str | None) -> None:
        self.g, self.calls, self.of_item, self.pnames, self.place = g, calls, of_item, pnames, place
        self.depth, self.show_grad, self.show_saved = depth, show_grad, show_saved
        self.rankdir, self.max_nodes, self.title = rankdir, max_nodes, title
        self.user_names: dict = {}
        for n, t in (names or {}).items():
            if not isinstance(t, Tensor):
                raise TypeError(f"draw_graph: names[{n!r}] is a {type(t).__name__}, not a Tensor")
            self.user_names[id(t.grad_fn if t.grad_fn is not None else t)] = str(n)
        self.facts = _facts(g)
        self.stats: list = [None] * len(place.units)
        self.lines: list[str] = []

    # ---- the whole picture -----------------------------------------------------------------
    def digraph(self) -> graphviz.Digraph:
        units = self.place.units
        n_units = len(units)
        keep = n_units if self.max_nodes is None else min(n_units, self.max_nodes)
        if self.show_grad:
            self._grad_stats(keep)
        scale = st.LogScale([s.norm for s in self.stats[:keep] if s is not None])
        home, annotate, children = self._clusters(keep)

        body = self.lines
        blocks: dict = {}
        for u in reversed(range(keep)):  # inputs first: dot lays out in declaration order
            blocks.setdefault(home[u], []).append(u)
        # Top-level boxes, then each cluster (outermost first), nested with an explicit stack.
        for u in blocks.get(None, ()):
            self._node(u, scale, annotate.get(u), "\t")
        stack = [(c, 1) for c in reversed(children.get(None, ()))]
        open_levels: list = []
        while stack:
            c, lvl = stack.pop()
            while open_levels and open_levels[-1] >= lvl:
                open_levels.pop()
                body.append("\t" * (len(open_levels) + 1) + "}")
            ind = "\t" * (lvl + 1)
            fill = st.CLUSTER_FILLS[min(c.level, len(st.CLUSTER_FILLS) - 1)]
            body.append("\t" * lvl + f"subgraph cluster_{c.index} {{")
            body.append(f"{ind}label={st.cluster_label(c.title())} "
                        f'labeljust=l style="rounded,filled" fillcolor="{fill}" '
                        f'color="{st.CLUSTER_BORDER}" fontsize=10 margin=10')
            open_levels.append(lvl)
            for u in blocks.get(c, ()):
                self._node(u, scale, annotate.get(u), ind)
            stack.extend((k, lvl + 1) for k in reversed(children.get(c, ())))
        while open_levels:
            open_levels.pop()
            body.append("\t" * (len(open_levels) + 1) + "}")

        more = self._edges(keep)
        if keep < n_units:
            self._more_note(n_units - keep, more)
        if self.show_grad:
            self._legend(scale)

        dot = graphviz.Digraph(
            graph_attr={"rankdir": self.rankdir, "fontname": st.FONT, "fontsize": "11",
                        "ranksep": "0.32", "nodesep": "0.28", "newrank": "true", "pad": "0.15",
                        "ordering": "in",
                        "bgcolor": "white"},
            node_attr={"fontname": st.FONT, "fontsize": "11", "shape": "box",
                       "style": "rounded,filled", "height": "0.3", "margin": "0.12,0.05",
                       "penwidth": "1.2"},
            edge_attr={"color": st.EDGE, "arrowsize": "0.6", "penwidth": "1.1"})
        if self.title:
            head, *rest = self.title.split("\n")
            dot.attr(label=st.html_label(st.esc(head, 200), [st.esc(r, 200) for r in rest],
                                         size=11), labelloc="t", fontsize="13")
        dot.body.extend(line if line.endswith("\n") else line + "\n" for line in body)
        return dot

    # ---- clusters ------------------------------------------------------------------------------
    def _clusters(self, keep: int) -> tuple[list, dict, dict]:
        """Effective cluster of every kept unit, after dropping clusters that would hold a single
        op and nothing else (a ReLU module around its relu): that op is labelled with the module."""
        place = self.place
        home = list(place.cluster_of[:keep])
        content: dict = {}
        for u in range(keep):
            if home[u] is not None:
                content.setdefault(id(home[u]), []).append(u)
        drawn = {id(c) for c in self.calls if id(c) in content}
        for c in self.calls:  # clusters holding only clusters are drawn too
            if id(c) in drawn:
                p = c.parent
                while p is not None and id(p) not in drawn:
                    drawn.add(id(p))
                    p = p.parent
        n_child: dict = {}
        for c in self.calls:
            if id(c) in drawn and c.parent is not None:
                n_child[id(c.parent)] = n_child.get(id(c.parent), 0) + 1
        annotate: dict = {}
        for c in sorted(self.calls, key=lambda c: -c.level):
            if id(c) not in drawn:
                continue
            units = content.get(id(c), [])
            if (not n_child.get(id(c)) and len(units) == 1 and place.units[units[0]][0] == "item"
                    and self.g.items[place.units[units[0]][1]].kind == OP):
                u = units[0]
                drawn.discard(id(c))
                annotate.setdefault(u, c)
                home[u] = c.parent
                if c.parent is not None:
                    content.setdefault(id(c.parent), []).append(u)
                    n_child[id(c.parent)] -= 1
        children: dict = {}
        for c in reversed(self.calls):
            if id(c) in drawn:
                children.setdefault(c.parent, []).append(c)
        # Units of an elided cluster moved up: map back to the nearest drawn ancestor.
        for u in range(keep):
            c = home[u]
            while c is not None and id(c) not in drawn:
                c = c.parent
            home[u] = c
        return home, annotate, children

    # ---- nodes ---------------------------------------------------------------------------------
    def _node(self, u: int, scale: st.LogScale, module: Call | None, ind: str) -> None:
        kind, ref = self.place.units[u]
        if kind == "box":
            title, lines, style = self._box(u, ref)
        else:
            title, lines, style = self._item(u, self.g.items[ref], module)
        if self.show_grad and style.pop("_gradable", False):
            self._grad_style(style, self.stats[u], scale)
        style.pop("_gradable", None)
        if kind == "item" and self.g.items[ref].is_root:
            style["penwidth"] = "2.6"
            if not self.show_grad:
                style["fillcolor"], style["color"] = st.ROOT
            elif style.get("color") != st.ZERO_BORDER:
                style["color"] = st.ROOT[1]
        sub = "#e6e6e6" if style.get("fontcolor") == "#ffffff" else st.SUBTLE
        label = st.html_label(title, lines, color=sub)
        self.lines.append(f"{ind}{_ids(u)} {st.attrs(label=label, **style)}")
        if self.show_saved and kind == "item" and self.g.items[ref].kind == OP:
            self._saved(u, self.g.items[ref].obj, ind)

    def _shape_line(self, i: int) -> str:
        it = self.g.items[i]
        shape = it.shape
        if shape is None:
            return ""
        text = st.shape_text(shape)
        fact = self.facts[i]
        if fact is not None:
            dtype, device = fact
            if dtype != torch.float32:
                text += " " + str(dtype).replace("torch.", "")
            if device.type != "cpu":
                text += f" {device}"
        return st.esc(text)

    def _item(self, u: int, it: Any, module: Call | None) -> tuple[str, list, dict]:
        user = self.user_names.get(id(it.obj)) if it.obj is not None else None
        grad_lines = self._grad_lines(u)
        if it.kind == OP:
            node = it.obj
            lines = []
            if module is not None:
                head = module.title()
                if module.name or head.lower() != node.name.lower():
                    lines.append(st.esc(head))
            if user:
                lines.append(st.esc(user))
            lines.append(self._shape_line(it.index))
            if self.show_saved and node.saved is None:
                lines.append("saved tensors freed")
            fill, border = st.OP
            return (st.esc(node.name), lines + grad_lines,
                    {"fillcolor": fill, "color": border, "_gradable": True})
        if it.kind == PARAM:
            name = user or self.pnames.get(id(it.obj)) or "parameter"
            fill, border = st.PARAM
            return (st.esc(name), [self._shape_line(it.index)] + grad_lines,
                    {"fillcolor": fill, "color": border, "style": "filled", "_gradable": True})
        if it.kind == LEAF:
            fill, border = st.LEAF
            return (st.esc(user or "input"), [self._shape_line(it.index), "requires grad"] + grad_lines,
                    {"fillcolor": fill, "color": border, "shape": "ellipse", "style": "filled",
                     "_gradable": True})
        fill, border = st.CONST
        title = user or ("input" if it.obj is not None else "constant")
        return (st.esc(title), [self._shape_line(it.index)],
                {"fillcolor": fill, "color": border, "shape": "ellipse",
                 "style": "filled,dashed"})

    def _box(self, u: int, call: Call) -> tuple[str, list, dict]:
        items = self.place.box_items[u]
        lines = [self._shape_line(exit_item(self.g, items))]
        n_ops = sum(1 for i in items if self.g.items[i].kind == OP)
        n_par = sum(1 for i in items if self.g.items[i].kind == PARAM)
        if n_ops > 1:
            lines.append(f"{n_ops} ops" + (f", {n_par} params" if n_par else ""))
        lines += self._grad_lines(u, box=True)
        fill, border = st.MODULE
        return (st.esc(call.title()), lines,
                {"fillcolor": fill, "color": border, "style": "rounded,filled,bold",
                 "_gradable": True, "tooltip": _tooltip(call.module)})

    def _saved(self, u: int, node: Any, ind: str) -> None:
        saved = node.saved
        if saved is None:
            return
        entries = list(saved) + ([node.out] if node.out is not None else [])
        for j, s in enumerate(entries):
            if not isinstance(s, (Tensor, torch.Tensor)):
                continue
            d = s.data if isinstance(s, Tensor) else s
            what = "saved output" if node.out is not None and j == len(entries) - 1 else "saved"
            text = st.shape_text(d.shape)
            if d.dtype != torch.float32:
                text += " " + str(d.dtype).replace("torch.", "")
            sid = f"{_ids(u)}_s{j}"
            fill, border = st.SAVED
            self.lines.append(
                f"{ind}{sid} {st.attrs(label=st.html_label(what, [st.esc(text)], bold=False), shape='note', style='filled', fillcolor=fill, color=border, fontsize='9')}")
            self.lines.append(f"{ind}{sid} -> {_ids(u)} [style=dashed color=\"{border}\" "
                              f"arrowhead=none]")

    # ---- edges ---------------------------------------------------------------------------------
    def _edges(self, keep: int) -> list[int]:
        """Edge lines between kept units; returns the kept units fed by left-out ones."""
        unit_of, units, items = self.place.unit_of, self.place.units, self.g.items
        collapse = self.depth is not None
        seen: set = set()
        fed_by_rest: list = []
        for src, dst in self.g.edges:
            a, b = unit_of[src], unit_of[dst]
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
            k = items[src].kind if units[a][0] == "item" else OP
            if k == PARAM:
                self.lines.append(f'\t{_ids(a)} -> {_ids(b)} [color="{st.PARAM[1]}"]')
            elif k == CONST:
                self.lines.append(f'\t{_ids(a)} -> {_ids(b)} [color="{st.CONST[1]}" style=dashed]')
            else:
                self.lines.append(f"\t{_ids(a)} -> {_ids(b)}")
        return fed_by_rest

    def _more_note(self, left_out: int, fed: list[int]) -> None:
        msg = (f"{left_out:,} more boxes not drawn (max_nodes={self.max_nodes}): pass depth=1 "
               "(or 0) to draw whole modules as single boxes, or max_nodes=None to draw "
               "everything (slow to lay out)")
        warnings.warn(f"draw_graph: {msg}", stacklevel=4)
        fill, border = st.MORE
        self.lines.append(
            f"\tmore {st.attrs(label=st.html_label(st.esc(f'… {left_out:,} more boxes'), ['not drawn: max_nodes=' + str(self.max_nodes), 'use depth= to collapse modules']), shape='box', style='filled,dashed', fillcolor=fill, color=border)}")
        for b in fed:
            self.lines.append(f'\tmore -> {_ids(b)} [style=dashed color="{border}"]')

    # ---- gradients -----------------------------------------------------------------------------
    def _grad_stats(self, keep: int) -> None:
        place, items = self.place, self.g.items
        for u in range(keep):
            kind, ref = place.units[u]
            if kind == "item":
                it = items[ref]
                if it.kind == OP:
                    self.stats[u] = op_stat(it.obj)
                elif it.kind in (PARAM, LEAF):
                    self.stats[u] = leaf_stat(it.obj)
            else:
                inner = place.box_items[u]
                params = [leaf_stat(items[i].obj) for i in inner if items[i].kind == PARAM]
                ps = combine(s for s in params if s is not None)
                out = op_stat(items[exit_item(self.g, inner)].obj)
                self.stats[u] = ps if ps is not None else out
                self._box_out = getattr(self, "_box_out", {})
                self._box_out[u] = out

    def _grad_lines(self, u: int, box: bool = False) -> list[str]:
        if not self.show_grad:
            return []
        s = self.stats[u]
        kind, ref = self.place.units[u]
        if box:
            out = getattr(self, "_box_out", {}).get(u)
            has_params = any(self.g.items[i].kind == PARAM for i in self.place.box_items[u])
            lines = []
            if out is not None:
                lines.append("|∇ out| = " + _norm_text(out))
                if out.dead and not out.zero:
                    lines.append(f"{out.dead}/{out.units} units: ∇ = 0")
            if has_params:
                lines.append("|∇ params| = " + (_norm_text(s) if s is not None else "none"))
            return [_zero_mark(line) for line in lines] or ["no gradient recorded"]
        if s is None:
            it = self.g.items[ref]
            return ["grad is None" if it.kind != OP else "no gradient recorded"]
        lines = ["|∇| = " + _norm_text(s)]
        if s.dead and not s.zero and self.g.items[ref].kind == OP:
            lines.append(f"{s.dead}/{s.units} units: ∇ = 0")
        return [_zero_mark(line) for line in lines]

    def _grad_style(self, style: dict, s: GradStat | None, scale: st.LogScale) -> None:
        if s is None:
            style["fillcolor"], style["color"] = st.NOGRAD
            style["fontcolor"] = "#777777"
        elif not s.finite:
            style["fillcolor"], style["color"] = st.NONFINITE
            style["fontcolor"] = "#ffffff"
        elif s.zero:
            style["fillcolor"] = "#ffffff"
            style["color"] = st.ZERO_BORDER
            style["penwidth"] = "2.6"
        else:
            fill = scale(s.norm)
            style["fillcolor"] = fill
            style["fontcolor"] = st.text_on(fill)

    def _legend(self, scale: st.LogScale) -> None:
        ticks = scale.ticks()
        cells = "".join(
            f'<TD BGCOLOR="{scale(10.0 ** t)}" WIDTH="34"><FONT COLOR="{st.text_on(scale(10.0 ** t))}"'
            f' POINT-SIZE="9">1e{t}</FONT></TD>' for t in ticks)
        n = len(ticks)
        notes = [f'<TD COLSPAN="{n}" BORDER="0" ALIGN="LEFT"><FONT POINT-SIZE="9">'
                 f'<FONT COLOR="{st.ZERO_BORDER}"><B>red border</B></FONT>: gradient all zeros'
                 f' · <FONT COLOR="#888888"><B>grey</B></FONT>: no gradient</FONT></TD>']
        if not any(self.stats[u] is not None for u, (k, r) in enumerate(self.place.units)
                   if u < len(self.stats) and k == "item" and self.g.items[r].kind == OP):
            notes.append(f'<TD COLSPAN="{n}" BORDER="0" ALIGN="LEFT"><FONT POINT-SIZE="9">'
                         "op gradients: call viz.watch_grads(loss) before backward()</FONT></TD>")
        if scale.empty:
            notes.append(f'<TD COLSPAN="{n}" BORDER="0" ALIGN="LEFT"><FONT POINT-SIZE="9">'
                         "no gradients found: call backward() first</FONT></TD>")
        rows = "".join(f"<TR>{c}</TR>" for c in notes)
        table = (f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
                 f'<TR><TD COLSPAN="{n}" BORDER="0"><B>gradient norm |∇| (log scale)</B></TD></TR>'
                 f"<TR>{cells}</TR>{rows}</TABLE>>")
        self.lines.append(f"\tlegend [shape=plaintext style=\"\" margin=0 label={table}]")
        if self.g.roots and self.place.unit_of[self.g.roots[0]] < len(self.stats):
            self.lines.append(f"\t{_ids(self.place.unit_of[self.g.roots[0]])} -> legend "
                              "[style=invis]")


def _norm_text(s: GradStat) -> str:
    if not s.finite:
        return "NaN/Inf"
    if s.zero:
        return "0 (all zeros)"
    return st.fmt_norm(s.norm)


def _zero_mark(line: str) -> str:
    if "all zeros" in line or "NaN/Inf" in line:
        return f'<FONT COLOR="{st.ZERO_BORDER}"><B>{line}</B></FONT>'
    return line


def _tooltip(module: Any) -> str:
    try:
        text = repr(module)
    except Exception:
        text = type(module).__name__
    return text if len(text) <= 400 else text[:399] + "…"


def _facts(g: Graph) -> list:
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
        if node.out is not None:
            facts[it.index] = (node.out.dtype, node.out.device)
        for s in node.saved or ():
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
