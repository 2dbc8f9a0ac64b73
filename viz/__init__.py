"""viz: pictures of what the engine recorded, and of training.

    import viz
    viz.render(loss, "graph.png", model=model, depth=1)   # the recorded graph (Graphviz)
    watch = viz.watch_grads(loss); loss.backward()
    viz.render(loss, "grads.png", model=model, show_grad=True)
    viz.render(loss, "graph.html", model=model)   # tooltips, depths, search, backward stepper

``draw_graph`` returns a ``graphviz.Digraph`` (shown inline in Jupyter); repeated calls of a
module (a cell in a loop) are folded into one cluster marked ``×N`` (``fold=False`` unrolls).
Training plots live in ``viz.plots`` (matplotlib), imported on demand.
"""

from .graph import FORMATS, GraphvizNotFoundError, draw_graph, render
from .graph_grads import GradStat, GradWatch, watch_grads

__all__ = [
    "draw_graph",
    "render",
    "watch_grads",
    "GradWatch",
    "GradStat",
    "GraphvizNotFoundError",
    "FORMATS",
]
