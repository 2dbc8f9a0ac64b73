"""Graphviz layout settings chosen by the size of the picture.

``dot`` spends its time in two searches: the crossing minimisation (``mclimit`` scales its
iterations) and the network simplex that ranks and places the boxes (``nslimit1`` and
``nslimit`` bound its iterations per box). Their defaults give the best pictures of small
graphs, but minutes on a few hundred boxes with long edges (a parameter shared by 200 calls of
a recurrent cell). Bigger pictures get fewer iterations, no input ordering constraint and, for
the biggest, straight edges; README's "Big graphs" table lists the measured times.
"""

from __future__ import annotations

# (most boxes, settings): the first tier whose bound is not exceeded applies.
TIERS: tuple = (
    (150, {}),
    (600, {"mclimit": "0.1", "nslimit": "1", "nslimit1": "1", "remincross": "false"}),
    (
        None,
        {
            "mclimit": "0.01",
            "nslimit": "0.01",
            "nslimit1": "0.01",
            "remincross": "false",
            "searchsize": "1",
            "splines": "line",
        },
    ),
)


def layout_attrs(boxes: int) -> dict:
    """Graph attributes for a picture of ``boxes`` boxes (``ordering`` is dropped from the
    second tier on: keeping each op's inputs in order costs the most on big graphs)."""
    for bound, attrs in TIERS:
        if bound is None or boxes <= bound:
            return dict(attrs)
    return {}
