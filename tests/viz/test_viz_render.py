"""render(): files by extension, the missing-`dot` error, big graphs, and `tapegrad graph`."""

from __future__ import annotations

import argparse
import sys

import pytest
import torch

import autodiff as ad
import nn
import viz
from tapegrad import graph_command
from viz_support import course_loss, course_net, needs_dot, parse, recorded_counts, text_of

PNG = b"\x89PNG\r\n\x1a\n"


def _no_dot(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_missing_dot_explains_how_to_install_and_writes_the_source(monkeypatch, tmp_path):
    model = course_net()
    loss, _, _ = course_loss(model)
    _no_dot(monkeypatch, tmp_path)
    target = tmp_path / "out" / "graph.png"
    with pytest.raises(viz.GraphvizNotFoundError) as e:
        viz.render(loss, target, model=model, depth=1)
    msg = str(e.value)
    for hint in (
        "apt-get install graphviz",
        "brew install graphviz",
        "conda install graphviz",
        "graph.dot",
    ):
        assert hint in msg
    src = (tmp_path / "out" / "graph.dot").read_text(encoding="utf-8")
    assert src == viz.draw_graph(loss, model=model, depth=1).source
    assert not target.exists()
    assert isinstance(e.value, RuntimeError)


def test_dot_files_need_no_graphviz(monkeypatch, tmp_path):
    model = course_net()
    loss, _, _ = course_loss(model)
    _no_dot(monkeypatch, tmp_path)
    for name in ("g.dot", "g.gv"):
        p = viz.render(loss, tmp_path / name, model=model)
        assert p.read_text(encoding="utf-8").startswith("digraph {")
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf, \.dot or \.html"):
        viz.render(loss, tmp_path / "g.jpeg")
    with pytest.raises(TypeError, match="depth"):
        viz.render(viz.draw_graph(loss), tmp_path / "g.dot", depth=1)


@needs_dot
@pytest.mark.parametrize("ext,magic", [("png", PNG), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_real_files(tmp_path, ext, magic):
    model = course_net()
    loss, x, y = course_loss(model)
    p = viz.render(loss, tmp_path / f"graph.{ext}", model=model, names={"x": x, "target": y})
    data = p.read_bytes()
    assert data.startswith(magic)
    assert len(data) > 5000
    assert not (tmp_path / "graph.dot").exists()


@needs_dot
def test_png_of_gradient_view_and_a_digraph(tmp_path):
    model = course_net()
    loss, _, _ = course_loss(model)
    viz.watch_grads(loss)
    loss.backward()
    dot = viz.draw_graph(loss, model=model, show_grad=True, rankdir="LR")
    p = viz.render(dot, tmp_path / "grad.png")
    assert p.read_bytes().startswith(PNG) and p.stat().st_size > 5000
    assert "image/svg+xml" in dot._repr_mimebundle_()  # shows inline in Jupyter


def test_a_100k_op_chain_gives_its_dot_without_recursion_error():
    x = ad.randn(2, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    limit = sys.getrecursionlimit()
    src = viz.draw_graph(y, max_nodes=None).source
    assert sys.getrecursionlimit() == limit
    assert src.count(" -> ") == 100_000
    assert src.count("[label=<<B>MulScalar</B>") == 100_000
    # the default cap keeps the part next to the output and says what was left out
    with pytest.warns(UserWarning, match="99,001 more boxes not drawn.*depth="):
        dot = parse(viz.draw_graph(y).source)
    assert len(dot.nodes) == 1001 and "more" in dot.nodes
    assert "use depth= to collapse modules" in dot.nodes["more"]


def test_big_pictures_draw_a_widely_shared_input_at_each_use():
    lin = nn.Linear(3, 3, generator=torch.Generator().manual_seed(0))
    h = ad.randn(2, 3)
    for _ in range(80):  # unfolded: 164 boxes
        h = lin(h).tanh()
    ops, leaves, none_inputs, edges = recorded_counts([h.sum()])
    with pytest.warns(UserWarning, match="more boxes not drawn"):
        small = parse(viz.draw_graph(h.sum(), model=lin, fold=False, max_nodes=100).source)
    big = parse(viz.draw_graph(h.sum(), model=lin, fold=False, max_nodes=None).source)
    assert len(big.edges) == edges  # every use keeps its edge
    weights = [k for k in big.nodes if text_of(big.nodes[k]).startswith("weight")]
    assert len(weights) == 80 and all(sum(a == w for a, _, _ in big.edges) == 1 for w in weights)
    assert "used 80 times: drawn at each use" in text_of(big.nodes[weights[0]])
    # a small picture keeps one weight box with an edge to each use
    w = [k for k in small.nodes if text_of(small.nodes[k]).startswith("weight")]
    assert len(w) == 1 and sum(a == w[0] for a, _, _ in small.edges) > 2
    assert "mclimit" in viz.draw_graph(h.sum(), model=lin, fold=False, max_nodes=None).source
    assert "mclimit" not in viz.draw_graph(h.sum(), model=lin).source  # folded: 7 boxes


def test_max_nodes_keeps_whole_edges_only():
    x = ad.randn(2, requires_grad=True)
    h = x
    for _ in range(30):
        h = (h * h).tanh()
    ops, leaves, _, edges = recorded_counts([h.sum()])
    with pytest.warns(UserWarning):
        dot = parse(viz.draw_graph(h.sum(), max_nodes=10).source)
    assert len(dot.nodes) == 11
    assert all(a in dot.nodes and b in dot.nodes for a, b, _ in dot.edges)
    assert len(parse(viz.draw_graph(h.sum(), max_nodes=None).source).nodes) == ops + leaves


# ---- tapegrad graph ---------------------------------------------------------------------------
def _args(tmp_path, *extra):
    p = argparse.ArgumentParser()
    graph_command.add_arguments(p)
    return p.parse_args(["--out", str(tmp_path), *extra])


def test_graph_command_writes_dot_sources(tmp_path, capsys):
    assert graph_command.run(_args(tmp_path, "--format", "dot", "--direction", "LR")) == 0
    fwd = parse((tmp_path / "graph_forward.dot").read_text(encoding="utf-8"))
    grad = (tmp_path / "graph_grad.dot").read_text(encoding="utf-8")
    assert len(fwd.nodes) == 10  # depth 1 by default: the chain of 9 boxes and the target
    assert "rankdir=LR" in grad and "legend" in grad and "|∇| = " in grad
    assert "graph_forward.dot" in capsys.readouterr().out


def test_graph_command_without_dot(monkeypatch, tmp_path, capsys):
    _no_dot(monkeypatch, tmp_path)
    out = tmp_path / "pics"
    assert graph_command.run(_args(out, "--depth", "2")) == 1
    assert (out / "graph_forward.dot").exists() and (out / "graph_grad.dot").exists()
    assert "apt-get install graphviz" in capsys.readouterr().err


@needs_dot
def test_graph_command_pngs(tmp_path):
    assert graph_command.run(_args(tmp_path, "--activation", "tanh", "--batch-size", "8")) == 0
    for name in ("graph_forward.png", "graph_grad.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000


@needs_dot
def test_graph_command_html_page(tmp_path, capsys):
    assert graph_command.run(_args(tmp_path, "--format", "html")) == 0
    text = (tmp_path / "graph.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="tg-step-info"' in text
    assert '"name":"MSELoss"' in text  # the recorded backward, first step
    assert not (tmp_path / "graph_forward.png").exists()
    assert "graph.html" in capsys.readouterr().out


def test_graph_command_rejects_bad_options(tmp_path, capsys):
    assert graph_command.run(_args(tmp_path, "--activation", "nope")) == 2
    assert "unknown activation" in capsys.readouterr().err
    assert graph_command.run(_args(tmp_path, "--depth", "-1")) == 2
    assert "--depth must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args(tmp_path, "--direction", "XY")
