"""The gradient view of a drawing: each box's gradient summary, its label lines, its colours and
the legend. Colours follow a log scale of the gradient norm; all-zero gradients get a red border."""

from __future__ import annotations

from . import graph_style as st
from .graph_fold import Fold
from .graph_grads import GradStat, combine, leaf_stat, op_stat, record_of
from .graph_modules import Placement, exit_item
from .graph_walk import LEAF, OP, PARAM, Graph


class GradView:
    """Gradient facts for the first ``keep`` units of ``place``."""

    def __init__(self, g: Graph, place: Placement, keep: int, folded: Fold, of_item: list) -> None:
        self.g, self.place, self.folded = g, place, folded
        self.stats: list = [None] * keep  # what colours the box
        self.box_out: dict = {}  # collapsed box -> stat of its output gradient
        self.per_call: dict = {}  # unit -> gradient norms of each folded call
        items = g.items
        for u in range(keep):
            kind, ref = place.units[u]
            if kind == "item":
                it = items[ref]
                if it.kind == OP:
                    self.stats[u] = self._op(u, ref)
                elif it.kind in (PARAM, LEAF):
                    self.stats[u] = leaf_stat(it.obj)
                    if it.kind == PARAM and folded.any:
                        self._param_calls(u, ref)
                continue
            inner = place.box_items[u]
            params = combine(
                s
                for s in (leaf_stat(items[i].obj) for i in inner if items[i].kind == PARAM)
                if s is not None
            )
            out = self._op(u, exit_item(g, inner))
            self.box_out[u] = out
            # a layer is judged by its parameters' gradient when it has parameters
            self.stats[u] = params if params is not None else out
        self.scale = st.LogScale([s.norm for s in self.stats if s is not None])
        # were op gradients watched at all? (boxes hide ops, so look at every op)
        self.any_op = any(op_stat(it.obj) is not None for it in items if it.kind == OP)

    def _op(self, u: int, i: int) -> GradStat | None:
        """An op's gradient; for a folded op, all its calls' gradients taken together."""
        copies = self.folded.copies.get(i)
        if not copies:
            return op_stat(self.g.items[i].obj)
        stats = [op_stat(self.g.items[k].obj) for k in copies]
        if any(s is not None for s in stats):
            self.per_call[u] = [None if s is None else s.norm for s in stats]
        return combine(s for s in stats if s is not None)

    def _param_calls(self, u: int, i: int) -> None:
        """Each folded call's share of a parameter's gradient (what its ops sent to it)."""
        items, folded = self.g.items, self.folded
        parts: dict = {}
        for k in dict.fromkeys(items[i].consumers):
            rec = record_of(items[k].obj)
            if rec is None:
                continue
            for pos, p in enumerate(items[k].parents):
                t = rec.to_leaf.get(pos) if p == i else None
                if t is not None:
                    n = folded.instance[k]
                    parts[n] = t if n not in parts else parts[n] + t
        if len(parts) > 1:
            self.per_call[u] = [float(parts[n].double().norm()) for n in sorted(parts)]

    def lines(self, u: int) -> list[str]:
        """Label lines (HTML fragments) for unit ``u``."""
        kind, ref = self.place.units[u]
        s = self.stats[u]
        if kind == "box":
            out = self.box_out.get(u)
            lines = []
            if out is not None:
                lines.append("|∇ out| = " + _norm_text(out))
                if self.per_call.get(u):
                    lines.append(spread_text(self.per_call[u]))
                if out.dead and not out.zero:
                    lines.append(f"{out.dead}/{out.units} units: ∇ = 0")
            if any(self.g.items[i].kind == PARAM for i in self.place.box_items[u]):
                lines.append("|∇ params| = " + (_norm_text(s) if s is not None else "none"))
            return [_mark(line) for line in lines] or ["no gradient recorded"]
        it = self.g.items[ref]
        if s is None:
            return ["no gradient recorded" if it.kind == OP else "grad is None"]
        calls = self.per_call.get(u)
        lines = [("|∇| all calls = " if calls and it.kind == OP else "|∇| = ") + _norm_text(s)]
        if calls:
            lines.append(spread_text(calls))
        if s.dead and not s.zero and it.kind == OP:
            lines.append(f"{s.dead}/{s.units} units: ∇ = 0")
        return [_mark(line) for line in lines]

    def style(self, style: dict, u: int) -> None:
        """Fill and border of unit ``u`` by its gradient."""
        s: GradStat | None = self.stats[u]
        if s is None:
            style["fillcolor"], style["color"] = st.NOGRAD
            style["fontcolor"] = "#777777"
        elif not s.finite:
            style["fillcolor"], style["color"] = st.NONFINITE
            style["fontcolor"] = "#ffffff"
        elif s.zero:
            style["fillcolor"], style["color"] = "#ffffff", st.ZERO_BORDER
            style["penwidth"] = "2.6"
        else:
            fill = self.scale(s.norm)
            style["fillcolor"], style["fontcolor"] = fill, st.text_on(fill)

    def legend(self) -> str:
        """A DOT node statement: the colour scale and what the borders mean."""
        scale = self.scale
        ticks = scale.ticks()
        n = len(ticks)
        cells = "".join(
            f'<TD BGCOLOR="{scale(10.0**t)}" WIDTH="34"><FONT COLOR='
            f'"{st.text_on(scale(10.0**t))}" POINT-SIZE="9">1e{t}</FONT></TD>'
            for t in ticks
        )
        notes = [
            f'<FONT COLOR="{st.ZERO_BORDER}"><B>red border</B></FONT>: gradient all zeros'
            ' · <FONT COLOR="#888888"><B>grey</B></FONT>: no gradient'
        ]
        if not self.any_op:
            notes.append("op gradients: call viz.watch_grads(loss) before backward()")
        if scale.empty:
            notes.append("no gradients found: call backward() first")
        rows = "".join(
            f'<TR><TD COLSPAN="{n}" BORDER="0" ALIGN="LEFT"><FONT POINT-SIZE="9">'
            f"{note}</FONT></TD></TR>"
            for note in notes
        )
        table = (
            f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
            f'<TR><TD COLSPAN="{n}" BORDER="0"><B>gradient norm |∇| (log scale)</B>'
            f"</TD></TR><TR>{cells}</TR>{rows}</TABLE>>"
        )
        return f'legend [shape=plaintext style="" margin=0 label={table}]'


def spread_text(norms: list) -> str:
    """``per call: first 1.2e-05 → last 0.31 (200 calls)``: how the gradient changes from the
    first call in time to the last (vanishing gradients through time show as a small first)."""
    known = [n for n in norms if n is not None]
    if not known:
        return ""
    return (
        f"per call: first {st.fmt_norm(known[0])} → last {st.fmt_norm(known[-1])} "
        f"({len(norms)} calls)"
    )


def _norm_text(s: GradStat) -> str:
    if not s.finite:
        return "NaN/Inf"
    if s.zero:
        return "0 (all zeros)"
    return st.fmt_norm(s.norm)


def _mark(line: str) -> str:
    if "all zeros" in line or "NaN/Inf" in line:
        return f'<FONT COLOR="{st.ZERO_BORDER}"><B>{line}</B></FONT>'
    return line
