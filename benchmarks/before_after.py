"""Before/after: the same workloads on this tree and on a base checkout, side by side.

```bash
python -m benchmarks.before_after                 # vs the commit before the engine redesign
python -m benchmarks.before_after --base HEAD     # vs the last commit (a temporary worktree)
python -m benchmarks.before_after --base /path/to/checkout --quick
```

Each tree runs in its own subprocess (the tree first on ``sys.path``, 1 thread). Both processes
stay alive and the parent asks them in turn for one short block of measurements (A B B A A B ...,
the order rotating each round), so a slow phase of a shared machine is spread over both. Per
row: the median seconds per step (or per op) of each tree, the ratio of the medians new/base, and
the median and quartiles of the per-round ratios (each round's two blocks ran back to back).
Times are process CPU time (what a loaded machine's descheduling does not inflate); wall-clock
medians are in the JSON.

Workloads: the course network 2-25-25-25-1 (Tanh, MSE, SGD with momentum) from
``benchmarks.workloads``/``tapegrad_impl``: an eager training step at batch 1, 16, 128, 1000 and
a replayed step (``autodiff.replay``) at batch 16 and 1000; and the 10^5-op chain (tanh and neg
alternating), recording and backward per op, with the garbage collector as in ``benchmarks.run``
(start-up objects frozen, a collection before each measurement, enabled while timing).

A full run (no ``--quick``, every workload) writes ``benchmarks/results/before_after.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_DEFAULT = "5041203"  # the last commit before the engine redesign (issue 10)
RESULT_MD = ROOT / "benchmarks" / "results" / "before_after.md"
EAGER_BATCHES = (1, 16, 128, 1000)
REPLAY_BATCHES = (16, 1000)
CHAIN_N = 100_000

# Run in each subprocess with its tree first on sys.path: reads one JSON request per line, answers
# one JSON line. Only names both trees have: benchmarks.workloads / tapegrad_impl's Trainer.
WORKER = r"""
import gc, json, sys, time
tree = sys.argv[1]
sys.path.insert(0, tree)
import torch
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
import autodiff as ad
from benchmarks import tapegrad_impl as T, workloads as W

def trainer(mode, batch):
    t = T.Trainer(W.COURSE, W.init_weights(W.COURSE), "cpu", mode=mode)
    b = t.batch(*W.random_batch(batch, W.COURSE.sizes[0]))
    step = t.step
    return lambda: step(b)

steps = {}
for b in (1, 16, 128, 1000):
    steps[f"eager/{b}"] = trainer("nn", b)
for b in (16, 1000):
    steps[f"replay/{b}"] = trainer("replay", b)
for f in steps.values():
    for _ in range(20):
        f()
raw = W.chain_input()

def chain(n):
    leaf = T.chain_leaf(raw)
    c0, w0 = time.process_time(), time.perf_counter()
    out = T.chain_forward(leaf, n)
    c1, w1 = time.process_time(), time.perf_counter()
    T.chain_backward(out, leaf)
    c2, w2 = time.process_time(), time.perf_counter()
    del out, leaf
    return {"record": (c1 - c0) / n, "backward": (c2 - c1) / n,
            "record_wall": (w1 - w0) / n, "backward_wall": (w2 - w1) / n}

chain(1000)
gc.freeze()  # start-up objects stay out of the collections, as in benchmarks.run
print(json.dumps({"ready": ad.__file__}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    gc.collect()
    if req["w"] == "chain":
        res = chain(req["n"])
    else:
        f, k = steps[req["w"]], req["reps"]
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(k):
            f()
        res = {"step": (time.process_time() - c0) / k, "step_wall": (time.perf_counter() - w0) / k}
    print(json.dumps(res), flush=True)
"""


class Worker:
    """One subprocess holding the workloads of one tree."""

    def __init__(self, tree: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tree)],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = json.loads(self._line())
        if not Path(ready["ready"]).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"before_after: {tree} imported autodiff from {ready['ready']}")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"before_after: a worker exited (status {self.proc.wait()})")
        return line

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def commit(tree: Path) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=tree,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (out or "?") + (" + uncommitted changes" if dirty else "")


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def measure(
    a: Worker, b: Worker, rows: list[tuple[str, dict]], rounds: int, block_s: float, log
) -> dict:
    """rows: (label, request). Returns {label: {"base": [...], "new": [...]} per phase}."""
    reps = {}
    for label, req in rows:  # calibrate on the base tree: both run the same number of steps
        if req["w"] != "chain":
            per = a.ask(**req, reps=5)["step"]
            reps[label] = max(5, round(block_s / max(per, 1e-7)))
    samples: dict = {label: {} for label, _ in rows}
    for r in range(rounds):
        for label, req in rows:
            pair = [("base", a), ("new", b)] if r % 2 == 0 else [("new", b), ("base", a)]
            for side, w in pair:
                res = w.ask(**req, reps=reps.get(label, 0))
                for phase, v in res.items():
                    samples[label].setdefault(phase, {}).setdefault(side, []).append(v)
        log(f"  round {r + 1}/{rounds} done, load {loadavg()}")
    return samples


def table(samples: dict, rows: list[tuple[str, dict]]) -> list[str]:
    lines = [
        "| workload | base median | new median | new/base (medians) "
        "| per-round ratio: median [q1, q3] | n |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, req in rows:
        phases = ("record", "backward") if req["w"] == "chain" else ("step",)
        for ph in phases:
            base, new = samples[label][ph]["base"], samples[label][ph]["new"]
            ratios = [n / b for n, b in zip(new, base)]
            q1, q2, q3 = quartiles(ratios)
            mb, mn = statistics.median(base), statistics.median(new)
            name = label if ph == "step" else f"{label}, {ph} per op"
            lines.append(
                f"| {name} | {mb * 1e6:.2f} µs | {mn * 1e6:.2f} µs | {mn / mb:.3f} | "
                f"{q2:.3f} [{q1:.3f}, {q3:.3f}] | {len(ratios)} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.before_after",
        description="this tree vs a base checkout, side by side",
    )
    p.add_argument(
        "--base",
        default=BASE_DEFAULT,
        help=f"a checkout's path, or a git revision (default {BASE_DEFAULT}, the last "
        "commit before the engine redesign; checked out in a temporary worktree)",
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="alternation rounds (default 20; 3 with --quick)"
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: few rounds, a 10^4 chain")
    p.add_argument(
        "--workloads",
        default="eager,replay,chain",
        help="comma-separated subset of eager,replay,chain",
    )
    a = p.parse_args(argv)
    if a.rounds is not None and a.rounds < 1:
        p.error("argument --rounds: must be at least 1")
    chosen = [w.strip() for w in a.workloads.split(",") if w.strip()]
    bad = [w for w in chosen if w not in ("eager", "replay", "chain")]
    if bad or not chosen:
        p.error(
            f"argument --workloads: unknown workload {bad[0] if bad else '(none)'!r} "
            "(choose from eager, replay, chain)"
        )
    rounds = a.rounds or (3 if a.quick else 20)
    n_chain = 10_000 if a.quick else CHAIN_N
    full = not a.quick and a.rounds is None and set(chosen) == {"eager", "replay", "chain"}

    rows: list[tuple[str, dict]] = []
    if "eager" in chosen:
        rows += [(f"eager step, batch {b}", {"w": f"eager/{b}"}) for b in EAGER_BATCHES]
    if "replay" in chosen:
        rows += [(f"replay step, batch {b}", {"w": f"replay/{b}"}) for b in REPLAY_BATCHES]
    if "chain" in chosen:
        rows.append((f"chain of {n_chain:,} ops", {"w": "chain", "n": n_chain}))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    base_path = Path(a.base)
    tmp = None
    if not base_path.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix="tapegrad-base-")) / "tree"
        r = subprocess.run(
            ["git", "worktree", "add", "--detach", str(tmp), a.base],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if r.returncode:
            p.error(f"argument --base: {a.base!r} is neither a directory nor a git revision")
        base_path = tmp
    workers: list[Worker] = []
    try:
        load0 = loadavg()
        log(f"base {base_path} ({commit(base_path)}), new {ROOT} ({commit(ROOT)}); load {load0}")
        workers = [Worker(base_path), Worker(ROOT)]
        t0 = time.perf_counter()
        samples = measure(workers[0], workers[1], rows, rounds, 0.15 if a.quick else 0.25, log)
        elapsed = time.perf_counter() - t0
        load1 = loadavg()
    finally:
        for w in workers:
            w.close()
        if tmp is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tmp)], cwd=ROOT, capture_output=True
            )
            tmp.parent.rmdir()
    cmd = "python -m benchmarks.before_after" + (
        f" {' '.join(argv or sys.argv[1:])}" if (argv or sys.argv[1:]) else ""
    )
    lines = [
        f"# Before/after: {commit(ROOT)} vs base {a.base} ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`{cmd}`: {rounds} rounds alternating the two trees (separate processes, 1 thread), "
        f"{elapsed:.0f} s; load average {load0} at start, {load1} at end "
        f"({os.cpu_count()} CPUs). Process CPU time per step (per op for the chain); "
        "ratios above 1 mean the new tree is slower.",
        "",
    ]
    lines += table(samples, rows)
    md = "\n".join(lines) + "\n"
    print(md)
    if full:
        RESULT_MD.write_text(md)
        log(f"wrote {RESULT_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
