"""The HTML page: self-contained, its backward steps in the engine's order, and (in Chromium)
tooltips, depth switching and the stepper."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch

import autodiff as ad
import nn
import viz
from viz_support import needs_dot, parse

CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
        if p and os.path.exists(p)
    ),
    None,
)


def _two_paths():
    """x -> Linear -> Tanh -> (Exp, Mul) -> Mul -> Sum: the Tanh's gradient is the sum of two
    paths; every op name is different, so a box is told by its name."""
    lin = nn.Linear(3, 3, generator=torch.Generator().manual_seed(0))
    x = ad.tensor(torch.linspace(-1, 1, 6).reshape(2, 3))
    h = lin(x).tanh()
    y = (h.exp() * h).sum()
    watch = viz.watch_grads(y)
    y.backward()
    return lin, y, watch


def _data(text: str) -> dict:
    blob = re.search(r'<script type="application/json" id="tg-data">(.*?)</script>', text, re.S)
    return json.loads(blob.group(1).replace("<\\/", "</"))


@needs_dot
def test_page_is_self_contained_and_steps_follow_the_engine(tmp_path):
    lin, y, watch = _two_paths()
    path = viz.render(y, tmp_path / "graph.html", model=lin, title="two paths")
    text = path.read_text(encoding="utf-8")
    # nothing fetched from anywhere: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text
    data = _data(text)
    order = watch.order()
    assert [s["name"] for s in data["steps"]] == [n.name for n in order]
    # a valid engine order: every op runs after all the ops using its output
    pos = {n: k for k, n in enumerate(order)}
    for n in order:
        for p in n.next_functions:
            if isinstance(p, ad.Node):
                assert pos[p] > pos[n]
    summed = {s["name"]: s["summed"] for s in data["steps"]}
    assert summed["Tanh"] == 2 and summed["Exp"] == 1 and summed["Sum"] == 0
    # one picture per depth, the same boxes as draw_graph draws at that depth
    assert data["depths"] == ["0", "all"]
    assert (
        len(data["boxes"]["all"])
        == len(parse(viz.draw_graph(y, model=lin, show_grad=True).source).nodes) - 1
    )
    w = data["boxes"]["all"][
        next(k for k, b in data["boxes"]["all"].items() if b["title"] == "weight")
    ]
    assert w["grad"]["norm"] == pytest.approx(float(lin.weight.grad.data.norm()), rel=1e-6)
    assert w["value"]["max"] == pytest.approx(float(lin.weight.data.max()))
    assert sum(w["value"]["hist"]) == 9 and sum(w["grad"]["hist"]) == 9
    watch.remove()


def _open(page_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("no chromium browser installed (apt-get install chromium)")
    pw = sync_api.sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    except Exception as e:  # a browser that cannot start here (sandbox, missing libraries)
        pw.stop()
        pytest.skip(f"chromium does not start: {e}")
    page = browser.new_page()
    errors: list = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    return pw, browser, page, errors


@needs_dot
def test_page_in_chromium(tmp_path):
    lin, y, watch = _two_paths()
    path = viz.render(y, tmp_path / "graph.html", model=lin, depth=None)
    order = [n.name for n in watch.order()]
    pw, browser, page, errors = _open(path)
    try:
        assert page.evaluate("tapegrad.depth") == "all"
        # hovering a parameter shows its tooltip: name, shape, the norm of its gradient
        page.locator("#tg-view-all g.node").filter(has_text="weight").first.hover()
        tip = page.locator("#tg-tip").inner_text()
        assert "weight" in tip and "(3, 3)" in tip and "parameter" in tip
        norm = float(re.search(r"gradient\s+norm ([0-9.e+-]+)", tip).group(1))
        assert norm == pytest.approx(float(lin.weight.grad.data.norm()), rel=1e-3)
        # depth 0 draws the Linear call as one box: fewer boxes than every op
        n_all = page.locator("#tg-view-all g.node").count()
        page.click('[data-depth="0"]')
        assert page.locator("#tg-view-0").is_visible()
        assert not page.locator("#tg-view-all").is_visible()
        n_0 = page.locator("#tg-view-0 g.node").count()
        assert n_0 < n_all
        assert n_0 == len(parse(viz.draw_graph(y, model=lin, depth=0, show_grad=True).source).nodes)
        # the stepper: the k-th highlighted box is the k-th op the engine applied
        page.click('[data-depth="all"]')
        for k, name in enumerate(order, 1):
            page.click("#tg-next")
            lit = page.locator("#tg-view-all g.node.tg-step")
            assert lit.count() == 1
            assert lit.locator("text").first.text_content() == name
            info = page.locator("#tg-step-info").inner_text()
            assert info.startswith(f"step {k}/{len(order)}: {name}")
            assert ("sum of 2 paths" in info) == (name == "Tanh")
        page.click("#tg-prev")
        assert page.evaluate("tapegrad.step") == len(order) - 2
        # the search box highlights a parameter by name
        page.fill("#tg-search", "bias")
        found = page.locator("#tg-view-all g.node.tg-found")
        assert found.count() == 1 and found.locator("text").first.text_content() == "bias"
        assert not errors
    finally:
        browser.close()
        pw.stop()
        watch.remove()
