"""No leaks: training the course network keeps the number of live graph nodes and tensors flat,
and every graph is freed by reference counting alone (no cycles for the cycle collector).

The 20,000-step run is ``slow`` (``-m slow``); it prints its counts (run with ``-s`` to see them).
"""

from __future__ import annotations

import gc
import os
import weakref

import pytest
import torch

import autodiff as ad
from autodiff.engine import Node
from rel_course import make_step, one_thread  # noqa: F401 (fixture)


def _live() -> dict:
    nodes = tensors = raw = 0
    for o in gc.get_objects():
        t = type(o)  # not isinstance: some module proxies warn when asked for __class__
        if issubclass(t, Node):
            nodes += 1
        elif issubclass(t, ad.Tensor):
            tensors += 1
        elif issubclass(t, torch.Tensor):
            raw += 1
    return {"nodes": nodes, "tensors": tensors, "torch_tensors": raw}


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def train_without_gc(kind: str, steps: int, checkpoints: int = 4) -> dict:
    step, _ = make_step(kind, seed=0)
    gc.collect()
    gc.disable()
    try:
        for i in range(20):  # warm-up: optimizer state, caches, lazily created objects
            loss = step(i)
        counts = [_live()]
        rss = [_rss_mb()]
        for i in range(steps):
            loss = step(20 + i)
            if (i + 1) % (steps // checkpoints) == 0:
                counts.append(_live())
                rss.append(_rss_mb())
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        cyclic = [
            type(o).__name__ for o in gc.garbage if isinstance(o, (Node, ad.Tensor, torch.Tensor))
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return {
        "counts": counts,
        "rss_mb": rss,
        "cyclic": cyclic,
        "collected": found,
        "loss": loss.item(),
    }


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", ["nn", "ad"])
def test_training_keeps_live_objects_flat_without_the_cycle_collector(kind):
    r = train_without_gc(kind, steps=2000)
    first, *rest = r["counts"]
    assert all(c == first for c in rest), r["counts"]
    assert 0 < first["nodes"] < 40  # only the last step's graph (held by `loss`) is alive
    assert r["cyclic"] == [], r["cyclic"][:10]
    assert r["loss"] < 0.25  # it did train (MSE of a constant 0.5 guess is 0.25)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_twenty_thousand_steps_stay_flat():
    r = train_without_gc("nn", steps=20000, checkpoints=10)
    _report(r)
    print(
        f"\nleak run: 20000 steps; live objects at start {r['counts'][0]}, at end "
        f"{r['counts'][-1]}; RSS {r['rss_mb'][0]:.1f} -> {r['rss_mb'][-1]:.1f} MB; cyclic "
        f"garbage {len(r['cyclic'])}; final loss {r['loss']:.4f}"
    )
    assert all(c == r["counts"][0] for c in r["counts"]), r["counts"]
    assert r["cyclic"] == []
    # A leak of even one activation (100 x 25 floats) per step would add ~200 MB here.
    assert r["rss_mb"][-1] - r["rss_mb"][1] < 50, r["rss_mb"]


def _report(r: dict) -> None:
    path = os.environ.get("TAPEGRAD_LEAK_REPORT")
    if path:
        import json

        with open(path, "w") as f:
            json.dump(r, f, indent=1)


@pytest.mark.parametrize(
    "case",
    [
        "backward",
        "retain_graph",
        "create_graph",
        "grad",
        "hooks",
        "retain_grad",
        "anomaly",
        "inplace",
        "no_backward",
    ],
)
def test_each_engine_feature_frees_its_graph_by_refcount(case):
    """Drop every reference to a graph: its nodes must die at once, with gc disabled."""
    gc.collect()
    gc.disable()
    try:
        w = ad.randn(4, 3, requires_grad=True)
        x = ad.randn(5, 4)
        refs = []

        def build():
            h = (x @ w).tanh()
            refs.append(weakref.ref(h.grad_fn))
            return (h * h).sum(), h

        if case == "anomaly":
            with ad.detect_anomaly():
                y, h = build()
                y.backward()
        else:
            y, h = build()
            refs.append(weakref.ref(y.grad_fn))
            if case == "backward":
                y.backward()
            elif case == "retain_graph":
                y.backward(retain_graph=True)
                y.backward()
            elif case == "create_graph":
                (g,) = ad.grad(y, w, create_graph=True)
                refs.append(weakref.ref(g.grad_fn))
                (g * g).sum().backward()
                del g
            elif case == "grad":
                ad.grad(y, [w, h])
            elif case == "hooks":
                h.register_hook(lambda g: g * 2)
                w.register_hook(lambda g: g + 1)
                y.backward()
                w._hooks = None
            elif case == "retain_grad":
                h.retain_grad()
                y.backward()
                assert h.grad is not None
            elif case == "inplace":
                h2 = h * 1.0
                h2.add_(w.sum())
                h2[0] = w[0, 0]
                refs.append(weakref.ref(h2.grad_fn))
                (h2.sum() + y).backward()
                del h2
        del y, h
        assert all(r() is None for r in refs), [r() for r in refs]
        w.grad = None
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, (Node, ad.Tensor))]
        assert cyclic == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_the_detector_sees_a_cycle_when_there_is_one(monkeypatch):
    """Control: a hook closing over its own tensor makes a cycle (in torch too); the counts grow
    while gc is off and the collector finds nodes, so the tests above can fail."""
    import rel_course

    real = rel_course.make_step

    def leaky(kind, seed):
        step, params = real(kind, seed)

        def wrapped(i):
            loss = step(i)
            loss.register_hook(lambda g, keep=loss: g)  # loss -> node -> hook -> loss
            return loss

        return wrapped, params

    monkeypatch.setattr(rel_course, "make_step", leaky)
    monkeypatch.setitem(globals(), "make_step", leaky)
    r = train_without_gc("ad", steps=40, checkpoints=2)
    assert r["counts"][-1]["nodes"] > r["counts"][0]["nodes"]
    assert r["cyclic"]
