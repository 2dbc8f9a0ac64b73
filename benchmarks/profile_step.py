"""Where a tapegrad training step spends its time (course network, batch 16, 1 thread).

    python -m benchmarks.profile_step [--batch 16] [--steps 3000] [--top 25]

Three views: (1) phase times of the step (zero_grad, forward, loss, backward, optimizer step)
without a profiler, for tapegrad and torch eager, medians; (2) cProfile's functions by own time,
and own time summed by source file; (3) torch calls per step (each is one kernel launch or
more), tapegrad vs the lower bound.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

import torch

from . import lower_bound, tapegrad_impl, torch_eager
from . import workloads as W


def _phases(tr, b, steps: int) -> dict:
    """Median seconds per phase of ``steps`` instrumented steps (nn-style trainers)."""
    x, y = b
    pc = time.perf_counter
    out: dict = defaultdict(list)
    for _ in range(steps):
        t0 = pc()
        tr.opt.zero_grad()
        t1 = pc()
        pred = tr.model(x)
        t2 = pc()
        loss = tr.loss_fn(pred, y)
        t3 = pc()
        loss.backward()
        t4 = pc()
        tr.opt.step()
        t5 = pc()
        for k, a, c in (
            ("zero_grad", t0, t1),
            ("forward (model call)", t1, t2),
            ("loss", t2, t3),
            ("backward", t3, t4),
            ("optimizer step", t4, t5),
            ("whole step", t0, t5),
        ):
            out[k].append(c - a)
    return {k: statistics.median(v) for k, v in out.items()}


def _trainer(mod, batch: int):
    X, Y = W.disc_data()
    tr = mod.Trainer(W.COURSE, W.init_weights(W.COURSE), "cpu")
    return tr, tr.batch(X[:batch], Y[:batch])


def _by_file(stats: pstats.Stats, steps: int) -> list[tuple[str, float, int]]:
    own: dict = defaultdict(float)
    calls: dict = defaultdict(int)
    for (file, _, func), (_, nc, tt, _, _) in stats.stats.items():
        if file == "~":
            key = "torch C calls" if ("torch" in func or "TensorBase" in func) else "other builtins"
        else:
            parts = Path(file).parts
            key = (
                "/".join(parts[-2:])
                if any(p in ("autodiff", "nn", "benchmarks", "ops") for p in parts)
                else "other Python (stdlib, torch Python)"
            )
        own[key] += tt / steps
        calls[key] += nc // steps
    return sorted(((k, v, calls[k]) for k, v in own.items()), key=lambda r: -r[1])


def _torch_calls(mod, batch: int, steps: int) -> tuple[int, list]:
    tr, b = _trainer(mod, batch)
    for _ in range(5):
        tr.step(b)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        tr.step(b)
    prof.disable()
    st = pstats.Stats(prof)
    names = [
        (func, nc // steps)
        for (file, _, func), (_, nc, *_r) in st.stats.items()
        if file == "~" and ("torch" in func or "TensorBase" in func) and nc >= steps
    ]
    return sum(n for _, n in names), sorted(names, key=lambda r: -r[1])


def _per_call(fn, n: int = 2000, repeat: int = 15) -> float:
    for _ in range(n // 10):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def _op_costs(batch: int) -> list[tuple[str, float, float, float, float]]:
    """(op, raw torch, autodiff without recording, autodiff recording, nn module call) seconds."""
    import autodiff as ad

    nn = tapegrad_impl.nn
    x = torch.rand(batch, 25)
    w, b = torch.rand(25, 25), torch.rand(25)
    xa = ad.Tensor(x, requires_grad=True)
    wa, ba = ad.Tensor(w, requires_grad=True), ad.Tensor(b, requires_grad=True)
    xc, wc, bc = ad.Tensor(x), ad.Tensor(w), ad.Tensor(b)
    lin = nn.Linear(25, 25) if nn else None
    tanh = nn.Tanh() if nn else None
    rows = [
        (
            "linear (addmm)",
            _per_call(lambda: torch.nn.functional.linear(x, w, b)),
            _per_call(lambda: ad.linear(xc, wc, bc)),
            _per_call(lambda: ad.linear(xa, wa, ba)),
            _per_call(lambda: lin(xa)) if lin else float("nan"),
        ),
        (
            "tanh",
            _per_call(lambda: torch.tanh(x)),
            _per_call(lambda: ad.tanh(xc)),
            _per_call(lambda: ad.tanh(xa)),
            _per_call(lambda: tanh(xa)) if tanh else float("nan"),
        ),
    ]
    return rows


def _backward_costs(batch: int) -> list[tuple[str, float, float]]:
    """(graph, backward() of that graph, the same VJP kernels called directly) seconds."""
    import autodiff as ad

    x = torch.rand(batch, 25)
    w, b = torch.rand(25, 25), torch.rand(25)
    tb = torch.ops.aten.tanh_backward.default
    out = []
    xa, wa, ba = (ad.Tensor(t, requires_grad=True) for t in (x, w, b))

    def tape_tanh():
        ad.tanh(xa).sum().backward()
        xa.grad = None

    def raw_tanh():
        y = torch.tanh(x)
        y.sum()
        tb(torch.ones_like(y), y)

    def tape_linear():
        ad.linear(xa, wa, ba).sum().backward()
        xa.grad = wa.grad = ba.grad = None

    def raw_linear():
        y = torch.addmm(b, x, w.t())
        y.sum()
        g = torch.ones_like(y)
        g.mm(w), g.t().mm(x), g.sum(0)

    out.append(("tanh then sum: record + backward", _per_call(tape_tanh), _per_call(raw_tanh)))
    out.append(
        ("linear then sum: record + backward", _per_call(tape_linear), _per_call(raw_linear))
    )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_step", description=__doc__.split("\n")[0]
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"# Profile of a training step: course network {W.COURSE.sizes}, batch {a.batch}, "
        f"1 thread, tapegrad built with {tapegrad_impl.MODE!r}\n"
    )

    print("## Phases (median over steps, no profiler)\n")
    print("| phase | tapegrad | torch eager | tapegrad/eager |\n| --- | ---: | ---: | ---: |")
    res = {}
    for name, mod in (("tapegrad", tapegrad_impl), ("torch eager", torch_eager)):
        tr, b = _trainer(mod, a.batch)
        _phases(tr, b, 200)  # warm-up
        res[name] = _phases(tr, b, a.steps)
    for k in res["tapegrad"]:
        t, e = res["tapegrad"][k], res["torch eager"][k]
        print(f"| {k} | {t * 1e6:.1f} µs | {e * 1e6:.1f} µs | {t / e:.2f}x |")

    print(f"\n## One op, batch {a.batch} x 25 (median per call)\n")
    print(
        "| op | raw torch | autodiff, nothing requires grad | autodiff, recording | nn module "
        "call, recording |\n| --- | ---: | ---: | ---: | ---: |"
    )
    for name, *ts in _op_costs(a.batch):
        print(f"| {name} | " + " | ".join(f"{t * 1e6:.2f} µs" for t in ts) + " |")
    print(
        "\n| graph | tapegrad (forward, record, backward, leaf grads) | raw torch, same kernels "
        "| overhead |\n| --- | ---: | ---: | ---: |"
    )
    for name, t, r in _backward_costs(a.batch):
        print(f"| {name} | {t * 1e6:.1f} µs | {r * 1e6:.1f} µs | {(t - r) * 1e6:.1f} µs |")

    tr, b = _trainer(tapegrad_impl, a.batch)
    for _ in range(200):
        tr.step(b)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(a.steps):
        tr.step(b)
    prof.disable()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values()) / a.steps
    print(
        f"\n## cProfile: own time per step by file (total {total * 1e6:.0f} µs per step "
        "under the profiler; the profiler inflates Python-heavy code most)\n"
    )
    print("| where | own time per step | share | calls per step |\n| --- | ---: | ---: | ---: |")
    for k, v, n in _by_file(st, a.steps):
        print(f"| {k} | {v * 1e6:.1f} µs | {100 * v / total:.0f}% | {n} |")
    print(f"\n## cProfile: top {a.top} functions by own time (per step)\n")
    print(
        "| function | calls/step | own µs/step | cumulative µs/step |\n| --- | ---: | ---: | ---: |"
    )
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[: a.top]
    for (file, line, func), (_, nc, tt, ct, _) in rows:
        where = (
            func if file == "~" else f"{Path(file).parent.name}/{Path(file).name}:{line}({func})"
        )
        own, cum = tt / a.steps * 1e6, ct / a.steps * 1e6
        print(f"| `{where}` | {nc / a.steps:.0f} | {own:.1f} | {cum:.1f} |")

    print("\n## torch calls per step (C functions and tensor methods called from Python)\n")
    for name, mod in (("tapegrad", tapegrad_impl), ("lower bound", lower_bound)):
        n, names = _torch_calls(mod, a.batch, 200)
        print(f"- {name}: {n} per step: " + ", ".join(f"{f} x{c}" for f, c in names))


if __name__ == "__main__":
    main()
