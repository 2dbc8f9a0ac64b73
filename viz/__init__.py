"""viz: pictures of what the engine recorded, and of training.

    import viz
    viz.render(loss, "graph.png", model=model, depth=1)   # the recorded graph (Graphviz)
    watch = viz.watch_grads(loss); loss.backward()
    viz.render(loss, "grads.png", model=model, show_grad=True)

``draw_graph`` returns a ``graphviz.Digraph`` (shown inline in Jupyter). Training plots live in
``viz.plots`` (matplotlib), imported on demand.
"""
from .graph import FORMATS, GraphvizNotFoundError, draw_graph, render
from .graph_grads import GradStat, GradWatch, watch_grads

__all__ = ["draw_graph", "render", "watch_grads", "GradWatch", "GradStat",
           "GraphvizNotFoundError", "FORMATS"]
