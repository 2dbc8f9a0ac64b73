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
from .graph_modules import Placement, find_calls, name_things
from .graph_walk import as_roots, mark_parameters, walk

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
    roots = as_roots("draw_graph", tensors)
    if not roots:
        raise ValueError("draw_graph: no tensors given")
    g = walk(roots)
    calls, of_item = find_calls(g)
    pnames, owners = name_things(calls, model)
    mark_parameters(g, pnames)
    place = Placement(g, calls, of_item, owners, depth)
    return Drawing(g, calls, pnames, place, names, depth, show_grad, show_saved, rankdir,
                   max_nodes, title).digraph()


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
