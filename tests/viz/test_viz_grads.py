"""The gradient view: norms against torch.autograd, all-zero (dead) layers, the legend."""

from __future__ import annotations

import colorsys
import math
import re

import pytest
import torch

import autodiff as ad
import nn
import viz
from viz.graph_grads import grad_stat, op_stat, record_of
from viz_support import course_loss, course_net, dead_layer_net, labels, parse, text_of


def _norm_in(label: str) -> float:
    m = re.search(r"\|∇\| = ([0-9.e+-]+)", label)
    return float(m.group(1))


def _torch_course(model, x, y):
    """The course network in torch with autograd: pre-activation and parameter gradients."""
    params = {n: p.data.clone().requires_grad_(True) for n, p in model.named_parameters()}
    h = torch.as_tensor(x.data)
    pre = []
    for i in (0, 2, 4, 6):
        h = torch.nn.functional.linear(h, params[f"{i}.weight"], params[f"{i}.bias"])
        h.retain_grad()
        pre.append(h)
        if i < 6:
            h = torch.relu(h)
    loss = torch.nn.functional.mse_loss(h, y.data)
    loss.backward()
    return pre, params


def test_op_and_parameter_norms_match_torch():
    model = course_net()
    loss, x, y = course_loss(model)
    nodes = []
    n = loss.grad_fn
    while n is not None:  # MSELoss <- Linear <- ReLU <- ... along input 0
        nodes.append(n)
        n = next((p for p in n.next_functions if isinstance(p, ad.Node)), None)
    watch = viz.watch_grads(loss)
    loss.backward()
    watch.remove()
    pre, params = _torch_course(model, x, y)
    linears = [n for n in nodes if n.name == "Linear"][::-1]  # input side first
    for node, t in zip(linears, pre):
        s = op_stat(node)
        assert s.norm == pytest.approx(float(t.grad.norm()), rel=1e-5)
        dead = int((t.grad == 0).all(0).sum())
        assert s.dead == dead and s.units == (t.shape[1] if t.shape[1] > 1 else 0)
    lab = labels(parse(viz.draw_graph(loss, model=model, show_grad=True).source))
    for name, p in params.items():
        label = next(v for v in lab.values() if v.startswith(name + " |"))
        assert _norm_in(label) == pytest.approx(float(p.grad.norm()), rel=5e-3)  # 3 digits shown
    assert len(viz.watch_grads(loss)) == len(nodes)  # removed: the ops can be watched again


def test_dead_layer_is_marked_at_full_detail():
    model = dead_layer_net(2)
    loss, x, y = course_loss(model)
    viz.watch_grads(loss)
    loss.backward()
    dot = parse(viz.draw_graph(loss, model=model, show_grad=True).source)
    by = {text_of(v).split(" |")[0]: v for v in dot.nodes.values()}
    zero = lambda v: 'color="#d7191c"' in v and "all zeros" in text_of(v)
    # the dead layer, everything before it, and the weight right after it get no gradient
    for name in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight"):
        assert zero(by[name]), name
    for name in ("4.bias", "6.weight", "6.bias", "MSELoss"):
        assert not zero(by[name]) and "|∇| = " in text_of(by[name]), name
    # grads really are zero / non-zero there
    assert not model[2].weight.grad.data.any() and model[4].bias.grad.data.any()
    assert "legend" in dot.nodes and "log scale" in text_of(dot.nodes["legend"])


def test_dead_layer_is_marked_at_depth_1():
    model = dead_layer_net(2)
    loss, x, y = course_loss(model)
    viz.watch_grads(loss)
    loss.backward()
    dot = parse(viz.draw_graph(loss, model=model, depth=1, show_grad=True).source)
    by = {text_of(v).split(" |")[0]: v for v in dot.nodes.values()}
    dead = [k for k, v in by.items() if 'color="#d7191c"' in v]
    assert sorted(dead) == ["0: Linear(2→25)", "1: ReLU", "2: Linear(25→25)"]
    assert "|∇ params| = 0 (all zeros)" in text_of(by["2: Linear(25→25)"])
    assert "|∇ out| = " in text_of(by["4: Linear(25→25)"])
    assert "watch_grads" not in text_of(dot.nodes["legend"])
    d0 = parse(viz.draw_graph(loss, model=model, depth=0, show_grad=True).source)
    assert "watch_grads" not in text_of(d0.nodes["legend"])


def test_colours_follow_a_log_scale():
    scale = viz.graph_style.LogScale([1e-4, 1.0])
    assert (scale.lo, scale.hi) == (-4, 0)
    assert scale(1e-4) == viz.graph_style.palette(0) and scale(1.0) == viz.graph_style.palette(1)
    assert scale(1e-2) == viz.graph_style.palette(0.5)
    x = ad.tensor([1.0, 1.0], requires_grad=True)
    y = (x * 1e-4).sum()  # |dy/dx| = 1.4e-4, the gradient reaching the product is 1.41
    viz.watch_grads(y)
    y.backward()
    dot = parse(viz.draw_graph(y, show_grad=True).source)
    legend = text_of(dot.nodes["legend"])
    assert "1e-4" in legend and "1e1" in legend and "1e-5" not in legend
    scale = viz.graph_style.LogScale([math.sqrt(2) * 1e-4, math.sqrt(2), 1.0])
    fill = lambda v: re.search(r'fillcolor="(#\w+)"', v).group(1)
    by = {text_of(v).split(" |")[0]: v for v in dot.nodes.values()}
    assert fill(by["input"]) == scale(math.sqrt(2) * 1e-4)
    assert fill(by["MulScalar"]) == scale(math.sqrt(2))


def test_no_gradient_colour_looks_like_the_grey_of_no_gradient():
    """Mid-range norms used to come out grey/beige, like the legend's "grey: no gradient"."""

    def hsv(h):
        return colorsys.rgb_to_hsv(*(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)))

    assert hsv(viz.graph_style.NOGRAD[0])[1] < 0.05  # the no-gradient fill is grey
    sats = [hsv(viz.graph_style.palette(k / 400))[1] for k in range(401)]
    assert min(sats) > 0.4
    low, high = hsv(viz.graph_style.palette(0))[0], hsv(viz.graph_style.palette(1))[0]
    assert 0.55 < low < 0.72 and min(high, 1 - high) < 0.03  # blue at the bottom, red on top


def test_without_watch_ops_say_so_and_leaves_still_show():
    model = course_net()
    loss, _, _ = course_loss(model)
    loss.backward()
    dot = parse(viz.draw_graph(loss, model=model, show_grad=True).source)
    lab = labels(dot)
    assert all("no gradient recorded" in v for v in lab.values() if v.startswith("ReLU"))
    assert all("|∇| = " in v for k, v in lab.items() if ".weight" in v)
    assert "watch_grads" in text_of(dot.nodes["legend"])


def test_before_backward_the_legend_says_so():
    model = course_net()
    loss, _, _ = course_loss(model)
    dot = parse(viz.draw_graph(loss, model=model, show_grad=True).source)
    assert "call backward() first" in text_of(dot.nodes["legend"])
    assert all("grad is None" in v for v in labels(dot).values() if ".bias" in v)


def test_non_finite_gradients_are_flagged():
    x = ad.tensor([0.0, 1.0], requires_grad=True)
    y = x.sqrt().sum()
    viz.watch_grads(y)
    y.backward()
    lab = labels(parse(viz.draw_graph(y, show_grad=True).source))
    assert "NaN/Inf" in next(v for v in lab.values() if v.startswith("input"))


def test_grad_stat_units():
    g = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    s = grad_stat(g, -1)
    assert (s.dead, s.units, s.zero, s.finite) == (2, 3, False, True)
    assert s.norm == pytest.approx(math.sqrt(5))
    w = torch.zeros(4, 3)
    w[1] = 1.0
    s = grad_stat(w, 0)
    assert (s.dead, s.units) == (3, 4)
    assert grad_stat(torch.zeros(3), 0).zero


def test_watch_sees_create_graph_backward_and_is_idempotent():
    x = ad.randn(3, requires_grad=True)
    h = x.tanh()
    y = (h * h).sum()
    w1 = viz.watch_grads(y)
    w2 = viz.watch_grads(y)
    assert len(w1) == 3 and len(w2) == 0
    (g,) = ad.grad(y, x, create_graph=True)
    s = op_stat(h.grad_fn)
    assert s.norm == pytest.approx(float((2 * h.data).norm()), rel=1e-5)
    step = record_of(h.grad_fn).step
    w1.remove()
    ad.grad(y, x)  # unwatched now: nothing more is recorded
    assert record_of(h.grad_fn).step == step


def test_folded_loop_shows_each_calls_share_of_a_parameters_gradient():
    """The per-call spread of a folded weight against torch.autograd, where each step uses its
    own clone of the weight (so each clone's .grad is that call's share)."""
    lin = nn.Linear(3, 3, generator=torch.Generator().manual_seed(0))
    h0 = torch.linspace(-1, 1, 6).reshape(2, 3)
    h = ad.tensor(h0)
    for _ in range(6):
        h = lin(h).tanh()
    loss = h.pow(2).sum()
    watch = viz.watch_grads(loss)
    loss.backward()
    watch.remove()
    lab = labels(parse(viz.draw_graph(loss, model=lin, show_grad=True).source))
    w = next(v for v in lab.values() if v.startswith("weight |"))
    m = re.search(r"per call: first ([0-9.e+-]+) → last ([0-9.e+-]+) \(6 calls\)", w)
    W = lin.weight.data.clone()
    clones = [W.clone().requires_grad_(True) for _ in range(6)]
    t = h0
    for Wt in clones:
        t = torch.tanh(t @ Wt.T + lin.bias.data)
    t.pow(2).sum().backward()
    first, last = (float(c.grad.norm()) for c in (clones[0], clones[-1]))
    assert first < last  # the gradient fades going back in time
    assert float(m.group(1)) == pytest.approx(first, rel=5e-3)  # 3 digits shown
    assert float(m.group(2)) == pytest.approx(last, rel=5e-3)
    assert _norm_in(w) == pytest.approx(float(sum(c.grad for c in clones).norm()), rel=5e-3)
