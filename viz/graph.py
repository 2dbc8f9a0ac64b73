"""Graphviz pictures of a recorded graph: ``draw_graph`` (a ``graphviz.Digraph``) and ``render``.

    loss = nn.MSELoss()(model(x), y)
    viz.render(loss, "graph.png", model=model, depth=1)     # one box per layer
    watch = viz.watch_grads(loss); loss.backward()
    viz.render(loss, "grads.png", model=model, show_grad=True)

Edges follow the data: from inputs and parameters to the output. Drawing only reads the graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import graphviz

from .graph_api import Tensor
from .graph_dot import Drawing
from .graph_fold import fold_calls, number_calls, ops_of_calls, run_ranks
from .graph_grads import record_of
from .graph_html import depth_keys, page
from .graph_modules import Placement, find_calls, name_things
from .graph_walk import OP, as_roots, mark_parameters, walk

FORMATS = ("png", "svg", "pdf", "dot", "html")

INSTALL_HELP = (
    "Install Graphviz (it provides `dot`): Debian/Ubuntu: `sudo apt-get install "
    "graphviz`; macOS: `brew install graphviz`; conda: `conda install graphviz`. "
    "Then make sure `dot -V` works in this shell (`dot` must be on PATH)."
)


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is missing; the DOT source was written instead."""


def draw_graph(
    tensors: Tensor | Sequence[Tensor],
    model: Any = None,
    *,
    names: Mapping[str, Tensor] | None = None,
    depth: int | None = None,
    show_grad: bool = False,
    show_saved: bool = False,
    rankdir: str = "TB",
    max_nodes: int | None = 1000,
    title: str | None = None,
    fold: bool = True,
) -> graphviz.Digraph:
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
      were left out; ``None`` draws all.
    - ``fold``: draw the repeated calls of a module (a cell called in a Python loop) as one
      cluster marked ``×N``, the state passed from call to call as a loop edge; the gradient
      view then gives each folded box the gradient of its first and last call.
      ``fold=False`` draws every call.

    Layout settings follow the size of the picture (see ``graph_layout``), so that Graphviz lays
    out even thousands of boxes in seconds.
    """
    return build(
        tensors,
        model,
        names=names,
        depth=depth,
        show_grad=show_grad,
        show_saved=show_saved,
        rankdir=rankdir,
        max_nodes=max_nodes,
        title=title,
        fold=fold,
    ).digraph()


def build(
    tensors: Tensor | Sequence[Tensor],
    model: Any = None,
    *,
    names: Mapping[str, Tensor] | None = None,
    depth: int | None = None,
    show_grad: bool = False,
    show_saved: bool = False,
    rankdir: str = "TB",
    max_nodes: int | None = 1000,
    title: str | None = None,
    fold: bool = True,
) -> Drawing:
    """The :class:`Drawing` behind :func:`draw_graph` (its boxes, for the HTML page)."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(
            f"draw_graph: rankdir must be 'TB' or 'LR' (or 'BT', 'RL'), got {rankdir!r}"
        )
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise ValueError(f"draw_graph: depth must be None or an int >= 0, got {depth!r}")
    if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < 1):
        raise ValueError(f"draw_graph: max_nodes must be None or an int >= 1, got {max_nodes!r}")
    roots = as_roots("draw_graph", tensors)
    if not roots:
        raise ValueError("draw_graph: no tensors given")
    g = walk(roots)
    calls, of_item = find_calls(g)
    pnames, owners = name_things(calls, model)
    mark_parameters(g, pnames)
    rank = run_ranks(g)
    inside = ops_of_calls(g, calls, of_item, rank)
    number_calls(calls, inside, rank)
    folded = fold_calls(g, calls, of_item, inside, rank, fold)
    place = Placement(g, calls, of_item, owners, depth, folded.rep)
    return Drawing(
        g,
        calls,
        pnames,
        place,
        names,
        depth,
        show_grad,
        show_saved,
        rankdir,
        max_nodes,
        title,
        folded,
        of_item,
    )


def render(tensors: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write the picture of ``tensors``' graph (or of a ``graphviz.Digraph``) to ``path``; the
    format comes from the extension: .png, .svg, .pdf, .dot / .gv (the DOT source), or .html:
    one self-contained page with every depth, tooltips, a parameter search and a backward
    stepper (see ``graph_html``; ``depth=`` picks the depth shown first).

    Keyword arguments go to :func:`draw_graph`. Without Graphviz's ``dot`` program, raises
    :class:`GraphvizNotFoundError` saying how to install it, after writing the ``.dot`` source
    next to ``path``.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise ValueError(
            f"render: cannot tell the format of {str(path)!r}; use a file name "
            f"ending in .png, .svg, .pdf, .dot or .html"
        )
    if fmt == "html" and not isinstance(tensors, graphviz.Digraph):
        return _render_page(tensors, path, kwargs)
    if isinstance(tensors, graphviz.Digraph):
        if fmt == "html":
            raise TypeError(
                "render: an HTML page is made from the tensors, not from a drawn "
                "Digraph; pass the tensors"
            )
        if kwargs:
            raise TypeError(
                f"render: options {sorted(kwargs)} are for draw_graph; they cannot "
                "change an already drawn Digraph"
            )
        dot = tensors
    else:
        dot = draw_graph(tensors, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(dot.source, encoding="utf-8")
        return path
    path.write_bytes(_layout(dot, path, fmt))
    return path


def _layout(dot: graphviz.Digraph, path: Path, fmt: str) -> bytes:
    """``dot``'s output in ``fmt``; without Graphviz, the DOT source is written next to
    ``path`` and :class:`GraphvizNotFoundError` says how to install it."""
    try:
        return _pipe(dot, fmt)
    except graphviz.ExecutableNotFound:
        src = path.with_suffix(".dot")
        src.write_text(dot.source, encoding="utf-8")
        raise GraphvizNotFoundError(
            f"render: cannot write {str(path)!r}: Graphviz's `dot` program was not found on "
            f"PATH. {INSTALL_HELP} The graph's DOT source was written to {str(src)!r} "
            f"(render it later with `dot -T{fmt} {src} -o {path}`)."
        ) from None
    except graphviz.CalledProcessError as e:
        src = path.with_suffix(".dot")
        src.write_text(dot.source, encoding="utf-8")
        err = (e.stderr or b"").decode("utf-8", "replace").strip()
        raise RuntimeError(
            f"render: Graphviz failed to lay out {str(path)!r} ({err}); the DOT "
            f"source was written to {str(src)!r}."
        ) from None


def _render_page(tensors: Any, path: Path, kwargs: dict) -> Path:
    start = kwargs.pop("depth", "default")
    if "show_grad" not in kwargs:  # colour by gradient whenever a backward has run
        probe = build(tensors, **kwargs)
        kwargs["show_grad"] = any(
            (it.kind == OP and record_of(it.obj) is not None)
            or (it.kind != OP and it.obj is not None and it.obj.grad is not None)
            for it in probe.g.items
        )
    full = build(tensors, depth=None, **kwargs)
    keys = depth_keys(max((c.level + 1 for c in full.calls), default=0))
    drawings = {k: full if k == "all" else build(tensors, depth=int(k), **kwargs) for k in keys}
    svgs = {}
    for k, d in drawings.items():
        dot = d.digraph()
        svgs[k] = _layout(dot, path, "svg").decode("utf-8")
    title = kwargs.get("title") or "recorded graph"
    key = None if start == "default" else "all" if start is None else str(start)
    text = page(drawings, svgs, title.split("\n")[0], key if key in keys else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
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
