"""One self-contained HTML page of a recorded graph: ``viz.render(loss, "graph.html", ...)``.

The page holds the SVG pictures (``dot -Tsvg``) of the graph at each depth, a tooltip on every
box (shape, dtype, device, min/mean/max and a histogram of the value and of the gradient when
known), a search box that highlights parameters by name, and a backward stepper that walks the
ops in the order the engine applied their VJPs in the latest watched ``backward()`` (recorded
by :func:`viz.watch_grads`): the op, the gradient it received, what it sent to each input, and
where the gradients of several paths were summed. No network access is needed to view it.
"""

from __future__ import annotations

import html
import json

import torch

from . import graph_api as api
from . import graph_style as st
from .graph_api import Tensor
from .graph_dot import Drawing
from .graph_grads import GradStat, grad_stat, record_of, value_summary
from .graph_gradview import spread_text
from .graph_modules import exit_item
from .graph_walk import CONST, OP, PARAM, Graph
from .page_assets import CSS, JS


def page(drawings: dict, svgs: dict, title: str, start: str | None = None) -> str:
    """The page for ``{depth key: Drawing}`` and their ``{depth key: svg text}``, showing
    depth ``start`` first (default: one box per layer, or every op for a flat graph)."""
    keys = list(drawings)
    first = next(iter(drawings.values()))
    values = known_values(first.g)
    data = {
        "depths": keys,
        "start": start or (keys[-1] if len(keys) < 3 else keys[1]),
        "boxes": {k: boxes(d, values) for k, d in drawings.items()},
        "steps": steps(drawings),
    }
    buttons = "".join(
        f'<button data-depth="{k}">{html.escape(_depth_name(k))}</button>' for k in keys
    )
    views = "".join(
        f'<div class="tg-view" id="tg-view-{k}" hidden>{_svg_body(svgs[k])}</div>' for k in keys
    )
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f"<span>depth {buttons}</span>"
        f'<span><input id="tg-search" type="search" placeholder="find a parameter">'
        f' <span id="tg-found"></span></span>'
        f'<span>backward <button id="tg-prev">◀ previous</button>'
        f'<button id="tg-next">next ▶</button><button id="tg-play">play</button></span>'
        f'</header><div id="tg-step-info"></div>{views}<div id="tg-tip"></div>'
        f'<script type="application/json" id="tg-data">{blob}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


def _depth_name(key: str) -> str:
    return "all ops" if key == "all" else key


def _svg_body(svg: str) -> str:
    """The ``<svg>`` element alone (no XML prolog or doctype, which HTML does not take)."""
    i = svg.find("<svg")
    return svg[i:] if i >= 0 else svg


def depth_keys(max_level: int) -> list:
    """The depths worth pre-rendering: 0, 1, ... up to the deepest module call, and every op."""
    return [str(d) for d in range(min(max_level, 4))] + ["all"]


# ---- what the tooltips show ------------------------------------------------------------------
def known_values(g: Graph) -> dict:
    """``{item index: torch tensor}`` for every item whose value is still at hand: leaves,
    constants, roots, and ops whose output some op saved for its backward."""
    out: dict = {}
    where = {}
    for it in g.items:
        if it.kind == OP:
            where[it.obj] = it.index
        elif it.obj is not None:
            out[it.index] = it.obj.data
    for it in g.items:
        if it.kind != OP:
            continue
        s_out = api.saved_output(it.obj)
        if s_out is not None:
            out[it.index] = s_out.data if isinstance(s_out, Tensor) else s_out
        for s in api.saved(it.obj) or ():
            if isinstance(s, Tensor) and s.grad_fn is not None and s.grad_fn in where:
                out.setdefault(where[s.grad_fn], s.data)
    for i, t in zip(g.roots, g.root_tensors):
        out[i] = t.data
    return out


def _value(d: torch.Tensor) -> dict:
    lo, hi, hist = value_summary(d)
    mean = None
    if d.numel() and (d.is_floating_point() or d.is_complex()):
        mean = float(d.detach().to(torch.float64).mean().real)
    elif d.numel():
        mean = float(d.detach().to(torch.float64).mean())
    return {"min": lo, "max": hi, "mean": mean, "hist": hist}


def _grad(s: GradStat | None) -> dict | None:
    if s is None:
        return None
    return {"norm": s.norm, "min": s.lo, "max": s.hi, "hist": s.hist}


def _item_grad(d: Drawing, i: int) -> GradStat | None:
    it = d.g.items[i]
    if it.kind == OP:
        rec = record_of(it.obj)
        return None if rec is None else rec.received
    if it.obj is not None and it.kind != CONST and it.obj.grad is not None:
        return grad_stat(it.obj.grad, 0)
    return None


def boxes(d: Drawing, values: dict) -> dict:
    """``{box id: tooltip facts}`` for the drawn boxes of ``d``."""
    out = {}
    g, place = d.g, d.place
    for u in range(d.keep):
        kind, ref = place.units[u]
        if kind == "box":
            inner = place.box_items[u]
            i = exit_item(g, inner)
            title = ref.title()
            params = [
                d.pnames.get(id(g.items[k].obj), "parameter")
                for k in inner
                if g.items[k].kind == PARAM
            ]
            what = f"module call ({sum(g.items[k].kind == OP for k in inner)} ops)"
        else:
            i = ref
            it = g.items[i]
            params = [d.pnames.get(id(it.obj), "parameter")] if it.kind == PARAM else []
            title = (
                it.obj.name
                if it.kind == OP
                else (
                    params[0] if params else d.input_name(i) if it.obj is not None else "constant"
                )
            )
            user = d.user_names.get(id(it.obj)) if it.obj is not None else None
            title = user or title
            what = {
                "op": "op",
                "param": "parameter",
                "leaf": "leaf (requires grad)",
                "const": "input (no grad)",
            }[it.kind]
        shape = g.items[i].shape
        fact = d.facts[i]
        v = values.get(i)
        box = {
            "title": title,
            "kind": what,
            "params": params,
            "shape": None if shape is None else st.shape_text(shape),
            "dtype": None if fact is None else str(fact[0]).replace("torch.", ""),
            "device": None if fact is None else str(fact[1]),
            "value": None if v is None else _value(v),
            "grad": _grad(_item_grad(d, i)),
        }
        copies = d.folded.copies.get(i)
        if copies:
            box["calls"] = len(copies)
        if d.grads is not None and d.grads.per_call.get(u):
            box["per_call"] = spread_text(d.grads.per_call[u])
        out[f"n{u}"] = box
    return out


# ---- the backward stepper ------------------------------------------------------------------------
def steps(drawings: dict) -> list:
    """The watched VJP applications of the graph in the engine's order, each with the box that
    holds its op at every depth, the gradient received, what was sent, and how many paths'
    gradients were summed into what it received."""
    first = next(iter(drawings.values()))
    g = first.g
    recs = [(record_of(it.obj), it.index) for it in g.items if it.kind == OP]
    done = sorted((r.step, i) for r, i in recs if r is not None)
    arrived: dict = {}  # item -> number of gradients that reached it so far
    out = []
    for _, i in done:
        it = g.items[i]
        rec = record_of(it.obj)
        sent = []
        for k, p in enumerate(it.parents):
            what = _input_text(first, p)
            s = rec.sent[k]
            if g.items[p].kind == CONST:
                continue
            if s is None:
                sent.append(f"{what}: nothing (no gradient needed)")
            else:
                arrived[p] = arrived.get(p, 0) + 1
                extra = f", summed with {arrived[p] - 1} earlier" if arrived[p] > 1 else ""
                sent.append(f"{what}: ∇ {_stat_text(s)}{extra}")
        out.append(
            {
                "name": it.obj.name,
                "received": _stat_text(rec.received),
                "sent": sent,
                "summed": arrived.get(i, 0),
                "item": i,
                "box": {k: f"n{d.place.unit_of[i]}" for k, d in drawings.items()},
            }
        )
    return out


def _input_text(d: Drawing, p: int) -> str:
    it = d.g.items[p]
    if it.kind == OP:
        name = it.obj.name
    elif it.kind == PARAM:
        name = d.pnames.get(id(it.obj), "parameter")
    else:
        name = d.user_names.get(id(it.obj)) or d.input_name(p)
    shape = it.shape
    return name + ("" if shape is None else " " + st.shape_text(shape))


def _stat_text(s: GradStat | None) -> str:
    if s is None:
        return "none"
    shape = "" if s.shape is None else st.shape_text(s.shape) + " "
    return f"{shape}norm {st.fmt_norm(s.norm)}" + ("" if s.finite else " (NaN/Inf!)")
