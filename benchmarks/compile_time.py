"""Compile time at process start: the whole course job (100 epochs at batch 16 over the 1000
points, compile included) in a fresh process with an empty Inductor cache, then in a second fresh
process that finds the cache the first one left.

    python -m benchmarks.compile_time tapegrad_compiled cpu   # one process: prints JSON
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = {
    "tapegrad_compiled": "benchmarks.tapegrad_compiled",
    "torch_compile": "benchmarks.torch_compile",
}


def measure(name: str, device: str) -> dict:
    """In this process: the whole job's seconds, and its compile time (the job minus as many
    steady steps: both batch shapes, 16 and the last batch's 8, compile)."""
    t0 = time.perf_counter()
    import torch

    from . import workloads as W

    torch.set_num_threads(1)
    mod = importlib.import_module(MODULES[name])
    imported = time.perf_counter() - t0
    X, Y = (t.to(device) for t in W.disc_data())
    tr = mod.Trainer(W.COURSE, W.init_weights(W.COURSE), device)
    steps = 0
    t0 = time.perf_counter()
    for idx in W.epoch_batches(len(X), W.EPOCH_BATCH, W.EPOCHS):
        idx = idx.to(device)
        loss = tr.step(tr.batch(X[idx], Y[idx]))
        steps += 1
    final = mod.loss_value(loss)
    whole = time.perf_counter() - t0
    b = tr.batch(X[:16], Y[:16])
    steady = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(50):
            tr.step(b)
        steady.append((time.perf_counter() - t0) / 50)
    step = statistics.median(steady)
    return {
        "import_s": imported,
        "whole_run_s": whole,
        "steps": steps,
        "step_s": step,
        "compile_s": whole - steps * step,
        "final_loss": final,
    }


def process_starts(name: str, device: str, timeout: float = 600) -> dict:
    """Two fresh processes sharing a new, empty Inductor cache directory."""
    with tempfile.TemporaryDirectory(prefix="tapegrad-inductor-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.compile_time", name, device],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if out.returncode:
                raise RuntimeError(f"compile_time {name}: {out.stderr.strip()[-500:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "impl": name,
        "device": device,
        "cold_s": runs[0]["compile_s"],
        "warm_s": runs[1]["compile_s"],
        "cold_run_s": runs[0]["whole_run_s"],
        "warm_run_s": runs[1]["whole_run_s"],
        "first": runs[0],
        "second": runs[1],
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")))
