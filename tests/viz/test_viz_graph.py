"""draw_graph: DOT structure against the recorded graph, clusters, labels, escaping, depth."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch

import autodiff as ad
import nn
import viz
from viz_support import (
    HAS_DOT,
    Net,
    chain_of,
    course_loss,
    course_net,
    labels,
    needs_dot,
    parse,
    recorded_counts,
    text_of,
)


def _source(*args, **kw) -> str:
    return viz.draw_graph(*args, **kw).source


# ---- structure ----------------------------------------------------------------------------------
def test_counts_equal_the_recorded_graph_course_network():
    model = course_net()
    loss, x, y = course_loss(model)
    ops, leaves, none_inputs, edges = recorded_counts([loss])
    dot = parse(_source(loss, model=model))
    assert (ops, leaves, none_inputs) == (8, 8, 2)
    assert len(dot.nodes) == ops + leaves + none_inputs
    assert len(dot.edges) == edges
    lab = labels(dot)
    assert sum(t.startswith("Linear |") for t in lab.values()) == 4
    assert sum(t.startswith("ReLU |") for t in lab.values()) == 3


def test_counts_with_shared_nodes_and_repeated_inputs():
    a = ad.randn(3, requires_grad=True)
    b = ad.randn(3, requires_grad=True)
    h = (a * b).tanh()
    out = (h * h + h.exp() * a).sum()  # h used three times, a twice, h*h has one parent twice
    ops, leaves, none_inputs, edges = recorded_counts([out])
    dot = parse(_source(out))
    assert none_inputs == 0
    assert len(dot.nodes) == ops + leaves
    assert len(dot.edges) == edges
    # one box per recorded node: each op name appears as often as it was recorded
    names = [t.split(" |")[0] for t in labels(dot).values()]
    assert names.count("Mul") == 3 and names.count("Tanh") == 1 and names.count("Add") == 1


def test_edges_run_from_inputs_to_the_root():
    x = ad.randn(2, requires_grad=True)
    y = x.exp().sum()
    dot = parse(_source(y))
    lab = labels(dot)
    ids = {t.split(" |")[0]: k for k, t in lab.items()}
    assert chain_of(dot, ids["input"]) == [ids["input"], ids["Exp"], ids["Sum"]]


def test_several_roots_share_one_drawing():
    x = ad.randn(3, requires_grad=True)
    h = x.tanh()
    a, b = h.sum(), (h * 2.0).mean()
    ops, leaves, _, edges = recorded_counts([a, b])
    dot = parse(_source([a, b]))
    assert len(dot.nodes) == ops + leaves == 5
    assert len(dot.edges) == edges
    roots = [k for k, v in dot.nodes.items() if 'penwidth="2.6"' in v]
    assert sorted(text_of(dot.nodes[k]).split(" |")[0] for k in roots) == ["Mean", "Sum"]


def test_backward_graph_of_create_graph_is_drawable():
    x = ad.tensor([[1.0, 2.0]], requires_grad=True)
    w = ad.randn(2, 3, requires_grad=True)
    y = (x @ w).tanh().sum()
    (g,) = ad.grad(y, x, create_graph=True)
    ops, leaves, none_inputs, edges = recorded_counts([g])
    dot = parse(_source(g, names={"x": x, "W": w}))
    assert len(dot.nodes) == ops + leaves + none_inputs
    assert len(dot.edges) == edges
    text = " ".join(labels(dot).values())
    assert "Tanh" in text and "MatMul" in text  # forward ops the backward pass reads
    assert "x | (1, 2)" in text and "W | (2, 3)" in text
    assert "seed ∇ (ones) | (1, 3)" in text  # the broadcast 1 that started the backward
    # a constant of ones in a forward graph is not mistaken for a seed
    ones = labels(parse(_source((x * ad.ones(1, 2)).sum())))
    assert not any("seed" in v for v in ones.values())


def test_a_leaf_root_and_bad_roots():
    x = ad.randn(2, requires_grad=True)
    dot = parse(_source(x))
    assert len(dot.nodes) == 1 and not dot.edges
    with pytest.raises(ValueError, match="no recorded graph"):
        viz.draw_graph(ad.randn(2))
    with pytest.raises(TypeError, match="autodiff Tensor"):
        viz.draw_graph(torch.randn(2))
    with pytest.raises(TypeError, match="draw_graph: .*got float"):
        viz.draw_graph(3.0)
    with pytest.raises(TypeError, match="watch_grads: .*got float"):
        viz.watch_grads(3.0)
    with pytest.raises(ValueError, match="no tensors"):
        viz.draw_graph([])
    with pytest.raises(ValueError, match="rankdir"):
        viz.draw_graph(x, rankdir="XY")
    with pytest.raises(ValueError, match="depth"):
        viz.draw_graph(x, depth=-1)


# ---- clusters -----------------------------------------------------------------------------------
def test_clusters_nest_like_the_module_calls():
    net = Net()
    loss = net(ad.randn(4, 2)).pow(2).mean()
    dot = parse(_source(loss, model=net))
    by_label = {c.label: c for c in dot.clusters.values()}
    fc0 = by_label["blocks.0.fc: Linear(8→8)"]
    assert fc0.parent.label == "blocks.0: Block"
    assert fc0.parent.parent.label == "blocks: Sequential"
    assert fc0.parent.parent.parent.label == "Net"
    assert fc0.parent.parent.parent.parent is None
    # parameters sit in their module's cluster, with their dotted names
    assert sorted(text_of(dot.nodes[n]).split(" |")[0] for n in fc0.nodes) == [
        "Linear",
        "blocks.0.fc.bias",
        "blocks.0.fc.weight",
    ]
    # a module call holding a single op is not boxed: the op names it instead
    tanh = [k for k, v in labels(dot).items() if v.startswith("Tanh")]
    assert len(tanh) == 2
    assert {labels(dot)[k].split(" | ")[1] for k in tanh} == {
        "blocks.0.act: Tanh",
        "blocks.1.act: Tanh",
    }
    assert {dot.home[k].label for k in tanh} == {"blocks.0: Block", "blocks.1: Block"}
    # ops outside any module (the loss) are outside every cluster
    mean = next(k for k, v in labels(dot).items() if v.startswith("Mean"))
    assert dot.home[mean] is None


def test_names_without_model_come_from_the_outermost_module():
    net = Net()
    loss = net(ad.randn(4, 2)).pow(2).mean()
    assert _source(loss) == _source(loss, model=net)


def test_module_called_twice_unfolded_numbers_calls_in_run_order():
    lin = nn.Linear(3, 3, generator=torch.Generator().manual_seed(0))
    x = ad.randn(2, 3)
    y = lin(lin(x).tanh()).sum()
    dot = parse(_source(y, model=lin, fold=False))
    # each call holds one op (the weight is shared, so it lives outside): no cluster, the op
    # says which call it belongs to
    assert not dot.clusters
    lab = labels(dot)
    start = next(k for k, v in lab.items() if v.startswith("x |"))
    path = [lab[k] for k in chain_of(dot, start)]
    assert [p.split(" | ")[:2] for p in path] == [
        ["x", "(2, 3)"],
        ["Linear", "Linear(3→3) (call 1)"],
        ["Tanh", "(2, 3)"],
        ["Linear", "Linear(3→3) (call 2)"],
        ["Sum", "()"],
    ]
    w = [k for k, v in lab.items() if v.startswith("weight")]
    assert len(w) == 1 and dot.home[w[0]] is None
    assert sum(1 for a, b, _ in dot.edges if a == w[0]) == 2


def test_repeated_calls_fold_into_one_cluster_with_a_loop():
    lin = nn.Linear(3, 3, generator=torch.Generator().manual_seed(0))
    h = ad.randn(2, 3)
    for _ in range(5):
        h = lin(h).tanh()
    dot = parse(_source(h.sum(), model=lin))
    assert [c.label for c in dot.clusters.values()] == ["Linear(3→3) ×5"]
    lab = labels(dot)
    ops = sorted(v.split(" |")[0] for v in lab.values())
    assert ops == ["Linear", "Sum", "Tanh", "bias", "weight", "x"]
    assert "×5" in next(v for v in lab.values() if v.startswith("Tanh"))  # folded outside
    loops = [(a, b) for a, b, at in dot.edges if "next call" in at]
    assert len(loops) == 1 and "×4" in next(at for *_, at in dot.edges if "next call" in at)
    a, b = loops[0]
    assert lab[a].startswith("Tanh") and lab[b].startswith("Linear")
    assert (
        'constraint="false"' in dot.edges[[e[:2] for e in dot.edges].index((a, b))][2]
        or "constraint=false" in dot.edges[[e[:2] for e in dot.edges].index((a, b))][2]
    )
    # unfolded: every call and its number, in run order along the chain
    full = parse(_source(h.sum(), model=lin, fold=False))
    assert sum(v.startswith("Linear") for v in labels(full).values()) == 5


class Step(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3, generator=torch.Generator().manual_seed(0))

    def forward(self, x, squash=True):
        y = self.fc(x)
        return y.tanh() if squash else y


def test_only_calls_that_recorded_the_same_ops_fold():
    step = Step()
    h = step(ad.randn(2, 3), squash=False)  # the first call records no tanh
    for _ in range(3):
        h = step(h)
    dot = parse(_source(h.sum(), model=step))
    assert [c.label for c in dot.clusters.values()] == ["Step ×3"]
    linears = sorted(v for v in labels(dot).values() if v.startswith("Linear"))
    assert linears == [
        "Linear | fc: Linear(3→3) (call 1) | (2, 3)",  # its own call
        "Linear | fc: Linear(3→3) | (2, 3)",
    ]  # the folded three
    assert len(parse(_source(h.sum(), model=step, fold=False)).clusters) == 3


def test_user_scopes_make_clusters_too():
    x = ad.randn(3, requires_grad=True)
    with ad.scope("encoder"):
        h = x.exp()
        with ad.scope(("attention", ad.current_scope())):
            h = h * h
            h = h.sin()
    dot = parse(_source(h.sum()))
    by_label = {c.label: c for c in dot.clusters.values()}
    assert by_label["attention"].parent is by_label["encoder"]


# ---- depth --------------------------------------------------------------------------------------
def test_depth_1_draws_the_course_network_as_a_chain_of_boxes():
    model = course_net()
    loss, x, y = course_loss(model)
    dot = parse(_source(loss, model=model, depth=1, names={"x": x, "target": y}))
    lab = labels(dot)
    start = next(k for k, v in lab.items() if v.startswith("x |"))
    chain = [lab[k].split(" |")[0] for k in chain_of(dot, start)]
    assert chain == [
        "x",
        "0: Linear(2→25)",
        "1: ReLU",
        "2: Linear(25→25)",
        "3: ReLU",
        "4: Linear(25→25)",
        "5: ReLU",
        "6: Linear(25→1)",
        "MSELoss",
    ]
    assert len(dot.nodes) == 10  # the chain, and the target feeding the loss
    assert len(dot.edges) == 9
    assert [c.label for c in dot.clusters.values()] == ["Sequential"]
    assert "(16, 25)" in lab[next(k for k, v in lab.items() if v.startswith("0: Linear"))]


def test_depth_0_and_full_detail():
    model = course_net()
    loss, _, _ = course_loss(model)
    dot0 = parse(_source(loss, model=model, depth=0))
    assert sorted(v.split(" |")[0] for v in labels(dot0).values()) == [
        "MSELoss",
        "Sequential",
        "target",
        "x",
    ]  # inputs named by the calls' arguments
    seq = next(v for v in labels(dot0).values() if v.startswith("Sequential"))
    assert "7 ops, 8 params" in seq
    assert _source(loss, model=model, depth=2) == _source(loss, model=model)


def test_depth_on_nested_modules():
    net = Net()
    loss = net(ad.randn(4, 2)).pow(2).mean()
    d1 = parse(_source(loss, model=net, depth=1))
    assert [c.label for c in d1.clusters.values()] == ["Net"]
    boxes = sorted(v.split(" |")[0] for v in labels(d1).values())
    assert boxes == [
        "Mean",
        "PowScalar",
        "ReLU",
        "blocks: Sequential",
        "inp: Linear(2→8)",
        "out: Linear(8→1)",
        "x",
    ]
    d2 = parse(_source(loss, model=net, depth=2))
    assert sorted(c.label for c in d2.clusters.values()) == [
        "Net",
        "blocks: Sequential",
        "inp: Linear(2→8)",
        "out: Linear(8→1)",
    ]
    assert sum(v.startswith("blocks.") and "Block" in v for v in labels(d2).values()) == 2


# ---- labels -------------------------------------------------------------------------------------
def test_labels_name_shapes_parameters_and_inputs():
    model = course_net()
    loss, x, y = course_loss(model)
    lab = labels(parse(_source(loss, model=model, names={"x": x, "target": y})))
    text = set(lab.values())
    assert "0.weight | (25, 2)" in text and "6.bias | (1,)" in text
    assert "x | (16, 2)" in text and "target | (16, 1)" in text
    assert "MSELoss | ()" in text
    assert "ReLU | 3: ReLU | (16, 25)" in text


def test_kinds_are_told_apart_by_shape_and_colour():
    model = course_net()
    loss, x, y = course_loss(model)
    dot = parse(_source(loss, model=model, names={"x": x}))
    by = {text_of(v).split(" |")[0]: v for v in dot.nodes.values()}
    op, param, inp, root = by["Linear"], by["0.weight"], by["x"], by["MSELoss"]
    assert 'shape="ellipse"' in inp and "dashed" in inp
    assert "shape=" not in param and 'style="filled"' in param  # square box
    fills = {re.search(r'fillcolor="(#\w+)"', v).group(1) for v in (op, param, inp, root)}
    assert len(fills) == 4
    assert 'penwidth="2.6"' in root and 'penwidth="2.6"' not in op


def test_dtype_and_requires_grad_leaf_annotations():
    model = course_net(dtype=torch.float64)
    loss, x, _ = course_loss(model, dtype=torch.float64)
    lab = labels(parse(_source(loss, model=model)))
    assert "Linear | (16, 25) float64" in set(lab.values())
    assert "0.weight | (25, 2) float64" in set(lab.values())
    z = ad.randn(3, requires_grad=True)
    lab = labels(parse(_source((z * 2.0).sum())))
    assert "input | (3,) | requires grad" in set(lab.values())
    # float32 on the cpu is the default and is not written
    lab = labels(parse(_source(course_loss(course_net())[0])))
    assert not any("float" in v for v in lab.values())


def test_cast_output_dtype_is_not_guessed_from_its_input():
    x = ad.randn(3, requires_grad=True)
    y = x.double().exp().sum()
    lab = labels(parse(_source(y)))
    assert lab["n1"].startswith("Exp") and "float64" in lab["n1"]
    assert "float64" in lab["n0"]  # the root's own dtype


def test_constant_inputs_are_named_and_shaped_until_backward_frees_them():
    model = course_net()
    loss, x, y = course_loss(model)
    before = labels(parse(_source(loss, model=model)))
    assert "x | (16, 2)" in before.values() and "target | (16, 1)" in before.values()
    loss.backward()
    # remembered from the first drawing
    assert labels(parse(_source(loss, model=model))) == before
    model2 = course_net()
    loss2, _, _ = course_loss(model2)
    loss2.backward()
    after = labels(parse(_source(loss2, model=model2)))
    assert sorted(v for v in after.values() if v.startswith(("input", "constant"))) == [
        "constant",
        "constant",
    ]


def test_show_saved_draws_saved_tensors():
    x = ad.randn(2, 3, requires_grad=True)
    w = ad.randn(3, 4, requires_grad=True)
    y = (x @ w).tanh().sum()
    dot = parse(_source(y, show_saved=True))
    saved = [k for k in dot.nodes if "_s" in k]
    texts = sorted(text_of(dot.nodes[k]) for k in saved)
    assert texts == ["saved output | (2, 4)", "saved | (2, 3)", "saved | (3, 4)"]
    y.backward()
    dot = parse(_source(y, show_saved=True))
    assert not [k for k in dot.nodes if "_s" in k]
    assert any("saved tensors freed" in v for v in labels(dot).values())


# ---- escaping and determinism --------------------------------------------------------------------
NASTY = 'we"ird <b>{x}|[y]\n& \\N end'


class Odd(nn.Module):
    def forward(self, x):
        return x.tanh()

    def extra_repr(self):
        return 'a"b<c>'


def test_labels_are_escaped():
    x = ad.randn(3, requires_grad=True)
    with ad.scope(NASTY):
        y = (Odd()(x) * 2.0).sum()
    src = _source(y, names={NASTY: x})
    body = "\n".join(l for l in src.splitlines() if "label=" in l)
    for raw in ('we"ird', "<b>", "{x}"):
        assert raw not in body
    assert not re.search(r"(?<!\\)\\N", body)  # \N would print the node's id
    assert "we&quot;ird &lt;b&gt;&#123;x&#125;&#124;&#91;y&#93;<BR/>&amp; \\\\N end" in src
    assert "Odd(a&quot;b&lt;c&gt;)" in src
    if HAS_DOT:
        svg = subprocess.run(["dot", "-Tsvg"], input=src.encode(), capture_output=True)
        assert svg.returncode == 0, svg.stderr
        out = svg.stdout.decode()
        assert "we&quot;ird &lt;b&gt;{x}|[y]" in out and "&amp; \\N end" in out


def test_same_graph_gives_the_same_dot_text():
    def build():
        model = course_net(seed=3)
        loss, x, y = course_loss(model, seed=4)
        return loss, model, x, y

    l1, m1, x1, y1 = build()
    l2, m2, x2, y2 = build()
    for kw in ({}, {"depth": 1}, {"depth": 0}, {"rankdir": "LR"}, {"show_saved": True}):
        s1 = _source(l1, model=m1, names={"x": x1}, **kw)
        assert s1 == _source(l1, model=m1, names={"x": x1}, **kw)  # drawing twice
        assert s1 == _source(l2, model=m2, names={"x": x2}, **kw)  # an identical graph
    assert "rankdir=LR" in _source(l1, rankdir="LR")
    assert not re.search(r"\d{8,}", _source(l1, model=m1))  # no id()s in the text


def test_drawing_does_not_change_the_graph():
    model = course_net()
    loss, _, _ = course_loss(model)
    nodes = []
    stack = [loss.grad_fn]
    while stack:
        n = stack.pop()
        nodes.append(n)
        stack.extend(p for p in n.next_functions if isinstance(p, ad.Node))

    def state():
        return [
            (
                n.released,
                n.next_functions,
                [None if s is None else s.data.data_ptr() for s in n.saved_tensors],
            )
            for n in nodes
        ]

    before = state()
    for kw in ({}, {"depth": 1}, {"show_grad": True}, {"show_saved": True}):
        viz.draw_graph(loss, model=model, **kw)
    assert state() == before
    assert all(p.grad is None for p in model.parameters())
    loss.backward()  # still back-propagates once (nothing was freed or run by the drawing)
    assert all(p.grad is not None for p in model.parameters())


@needs_dot
def test_rendered_layout_keeps_one_box_per_node():
    model = course_net()
    loss, _, _ = course_loss(model)
    src = _source(loss, model=model)
    out = subprocess.run(["dot", "-Tplain"], input=src.encode(), capture_output=True)
    assert out.returncode == 0
    laid = [l for l in out.stdout.decode().splitlines() if l.startswith("node ")]
    assert len(laid) == len(parse(src).nodes)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_is_written_when_not_cpu():
    model = course_net().to("cuda")
    x = ad.randn(4, 2).to("cuda")
    lab = labels(parse(_source(model(x).sum(), model=model)))
    assert "Linear | (4, 25) cuda:0" in set(lab.values())
    assert "0.weight | (25, 2) cuda:0" in set(lab.values())
