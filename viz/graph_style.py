"""Colours, shapes and HTML-like labels of the graph pictures.

Every label is a Graphviz HTML-like label built here; text from the graph (names, reprs) goes
through :func:`esc`, so quotes, ``<``, ``>``, ``{``, ``&`` or newlines in a name cannot break the
DOT source.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

FONT = "Helvetica"

# Fill / border colours by kind of box.
OP = ("#dbe8f7", "#6a8fbf")  # recorded operation: rounded, blue
PARAM = ("#dff2d8", "#5f9a4f")  # parameter: square corners, green
LEAF = ("#fff1c2", "#b8962e")  # leaf input that requires grad: ellipse, yellow
CONST = ("#f2f2f2", "#9a9a9a")  # input / constant without grad: dashed ellipse, grey
MODULE = ("#ebe3f6", "#8a73b0")  # a module collapsed by depth=: double border, lavender
ROOT = ("#fde0c5", "#d0782a")  # the tensor drawn from (e.g. the loss): bold, orange
SAVED = ("#fffbe8", "#c9b36b")  # a tensor saved for backward (show_saved=True)
MORE = ("#ffffff", "#b04040")  # the "N more nodes" note when max_nodes cuts the graph
NOGRAD = ("#f4f4f4", "#b8b8b8")  # gradient view: nothing known about this gradient
CLUSTER_FILLS = ("#f7f7fa", "#eeeef4", "#e6e6ef", "#dedee9")
CLUSTER_BORDER = "#a7a7bd"
ZERO_BORDER = "#d7191c"  # gradient view: an all-zero gradient
NONFINITE = ("#ff66cc", "#8b0057")  # gradient view: NaN or Inf in the gradient
EDGE = "#6b6b6b"
LOOP = "#c05a00"  # the state passed from one folded call to the next
SUBTLE = "#555555"

# Log-scale palette for gradient norms: blue (small, vanishing) -> teal -> green -> yellow ->
# orange -> red (large). No stop and no blend between neighbours is grey, so no gradient norm
# looks like the grey of "no gradient" (neighbouring stops are close in hue, never opposite).
_STOPS = ("#2c3e9e", "#1f8fd1", "#27b3a0", "#7cc743", "#f2d43d", "#f0892a", "#b2182b")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def esc(text: Any, limit: int = 80) -> str:
    """Text made safe for an HTML-like label: entities for & < > " ', newlines as <BR/>."""
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("\t", " ")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    # Graphviz expands \N, \G, \L... even inside HTML-like labels: double every backslash.
    s = (
        s.replace("\\", "\\\\")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
        .replace("{", "&#123;")
        .replace("}", "&#125;")
        .replace("[", "&#91;")
        .replace("]", "&#93;")
        .replace("|", "&#124;")
    )
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return "<BR/>".join(s.split("\n"))


def shape_text(shape: Sequence[int]) -> str:
    dims = tuple(int(d) for d in shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def html_label(
    title: str,
    lines: Sequence[str] = (),
    *,
    bold: bool = True,
    size: int = 9,
    title_color: str | None = None,
    color: str = SUBTLE,
) -> str:
    """``<B>title</B>`` over smaller lines; arguments are already escaped HTML fragments."""
    head = f"<B>{title}</B>" if bold else title
    if title_color:
        head = f'<FONT COLOR="{title_color}">{head}</FONT>'
    rest = "".join(
        f'<BR/><FONT POINT-SIZE="{size}" COLOR="{color}">{ln}</FONT>' for ln in lines if ln
    )
    return f"<{head}{rest}>"


def cluster_label(title: str) -> str:
    """A cluster's title, top left, followed by blank space as wide as itself: the cluster is
    then at least twice as wide as the title, so an edge entering a chain of boxes at the
    middle of the cluster never runs through the title."""
    text = esc(title)
    spacer = int(len(title) * 6.5) + 16
    return (
        f'<<TABLE BORDER="0" CELLPADDING="0" CELLSPACING="0"><TR><TD ALIGN="LEFT">'
        f'<B>{text}</B></TD><TD WIDTH="{spacer}"> </TD></TR></TABLE>>'
    )


def attrs(**kw: Any) -> str:
    """``[k=v, ...]`` for a node/edge line; HTML labels (``<...>``) are kept as they are."""
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        v = str(v)
        if k == "label" and v.startswith("<") and v.endswith(">"):
            parts.append(f"{k}={v}")
        else:
            v = v.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
            parts.append(f'{k}="' + v.replace("\n", "\\n") + '"')
    return "[" + " ".join(parts) + "]" if parts else ""


# ---- gradient colours ----------------------------------------------------------------------
def _rgb(h: str) -> tuple[float, float, float]:
    return tuple(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in rgb)


def palette(t: float) -> str:
    """Colour at ``t`` in [0, 1] along the blue -> green -> yellow -> red palette."""
    t = max(0.0, min(1.0, t))
    pos = t * (len(_STOPS) - 1)
    i = min(int(pos), len(_STOPS) - 2)
    a, b = _rgb(_STOPS[i]), _rgb(_STOPS[i + 1])
    f = pos - i
    return _hex([x + (y - x) * f for x, y in zip(a, b)])


def text_on(fill: str) -> str:
    """Black or white text, whichever reads better on ``fill``."""
    r, g, b = _rgb(fill)
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#000000"


class LogScale:
    """Maps gradient norms to colours on a log10 scale spanning whole decades."""

    def __init__(self, norms: Sequence[float]) -> None:
        pos = [n for n in norms if n > 0 and math.isfinite(n)]
        if pos:
            self.lo = math.floor(math.log10(min(pos)) + 1e-9)
            self.hi = math.ceil(math.log10(max(pos)) - 1e-9)
        else:
            self.lo, self.hi = -3, 0
        if self.hi <= self.lo:
            self.hi = self.lo + 1
        self.empty = not pos

    def __call__(self, norm: float) -> str:
        return palette((math.log10(norm) - self.lo) / (self.hi - self.lo))

    def ticks(self, most: int = 7) -> list[int]:
        step = max(1, math.ceil((self.hi - self.lo) / (most - 1)))
        ticks = list(range(self.lo, self.hi + 1, step))
        if ticks[-1] != self.hi:
            ticks.append(self.hi)
        return ticks


def fmt_norm(x: float) -> str:
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    return f"{x:.2e}".replace("e-0", "e-").replace("e+0", "e+")
