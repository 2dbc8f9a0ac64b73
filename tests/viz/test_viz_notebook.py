"""docs/tour.ipynb runs top to bottom and every drawn graph shows inline as SVG."""

from __future__ import annotations

from pathlib import Path

import pytest

from viz_support import needs_dot

TOUR = Path(__file__).resolve().parents[2] / "docs" / "tour.ipynb"


@needs_dot
def test_tour_notebook_runs_and_shows_graphs_inline(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra (nbconvert)")
    execute = pytest.importorskip(
        "nbconvert.preprocessors", reason="needs the notebook extra (nbconvert)"
    )
    pytest.importorskip("ipykernel", reason="needs the notebook extra (ipykernel)")
    nb = nbformat.read(TOUR, as_version=4)
    execute.ExecutePreprocessor(timeout=120, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(tmp_path)}}
    )
    drawn = [c for c in nb.cells if c.cell_type == "code" and "draw_graph" in c.source]
    assert len(drawn) == 3
    for cell in drawn:
        svg = [o for o in cell.outputs if "image/svg+xml" in o.get("data", {})]
        assert len(svg) == 1, cell.source
        assert "<svg" in svg[0]["data"]["image/svg+xml"]
    last = drawn[-1].outputs[0]["data"]["image/svg+xml"]
    assert "×50" in last and "per call: first" in last
