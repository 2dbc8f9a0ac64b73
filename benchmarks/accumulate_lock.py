"""What the thread-safe leaf accumulation costs one thread: course-net eager steps with the
engine's ``accumulate`` (under its lock) and with the same code without the lock, alternating in
one process (1 thread), medians of short blocks.

```bash
python -m benchmarks.accumulate_lock [--rounds 30]
```
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

import torch

import autodiff as ad
from autodiff import engine  # the benchmark swaps the engine's function: private on purpose

from . import tapegrad_impl as T
from . import workloads as W


def _unlocked(leaf, g, create_graph, foreign=None):
    """``engine.accumulate`` without the lock (the single-thread baseline)."""
    if create_graph:
        leaf._grad = g if leaf._grad is None else leaf._grad + g
    elif leaf._grad is None:
        leaf._grad = ad.Tensor._make(engine._owned(g, foreign if foreign is not None else set()))
    else:
        leaf._grad = ad.Tensor._make(leaf._grad.data + g)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.accumulate_lock")
    p.add_argument("--rounds", type=int, default=30, help="alternation rounds (default 30)")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("argument --rounds: must be at least 1")
    torch.set_num_threads(1)
    steps = {}
    for b in (1, 16):
        tr = T.Trainer(W.COURSE, W.init_weights(W.COURSE), "cpu", mode="nn")
        steps[b] = (tr.step, tr.batch(*W.random_batch(b, W.COURSE.sizes[0])))
    for f, batch in steps.values():
        for _ in range(50):
            f(batch)
    gc.freeze()
    locked, variants = engine.accumulate, {"lock": engine.accumulate, "no lock": _unlocked}
    samples: dict = {}
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        for r in range(a.rounds):
            for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
                engine.accumulate = variants[name]
                for b, (f, batch) in steps.items():
                    gc.collect()
                    c0 = time.process_time()
                    for _ in range(300):
                        f(batch)
                    samples.setdefault((b, name), []).append((time.process_time() - c0) / 300)
    finally:
        engine.accumulate = locked
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"`python -m benchmarks.accumulate_lock --rounds {a.rounds}`: process CPU time per "
        f"eager step, 1 thread; load average {load0} at start, {load1} at end\n"
    )
    print(
        "| course net | with the lock | without | ratio (medians) "
        "| per-round ratio: median [q1, q3] |"
    )
    print("|---|---:|---:|---:|---:|")
    for b in steps:
        with_, without = samples[(b, "lock")], samples[(b, "no lock")]
        q1, q2, q3 = statistics.quantiles(
            [x / y for x, y in zip(with_, without)], n=4, method="inclusive"
        )
        m1, m0 = statistics.median(with_), statistics.median(without)
        print(
            f"| batch {b} | {m1 * 1e6:.2f} µs | {m0 * 1e6:.2f} µs | {m1 / m0:.4f} | "
            f"{q2:.4f} [{q1:.4f}, {q3:.4f}] |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
