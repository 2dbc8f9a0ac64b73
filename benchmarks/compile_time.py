"""Compile time at process start: the course step at batch 16 in a fresh process with an empty
Inductor cache, then in a second fresh process that finds the cache the first one left.

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
MODULES = {"tapegrad_compiled": "benchmarks.tapegrad_compiled",
           "torch_compile": "benchmarks.torch_compile"}
FIRST_CALLS = 3


def measure(name: str, device: str) -> dict:
    """In this process: seconds of the first calls (compiling) minus as many steady steps."""
    t0 = time.perf_counter()
    import torch

    from . import workloads as W
    torch.set_num_threads(1)
    mod = importlib.import_module(MODULES[name])
    imported = time.perf_counter() - t0
    x, y = W.disc_data()
    tr = mod.Trainer(W.COURSE, W.init_weights(W.COURSE), device)
    b = tr.batch(x[:16].to(device), y[:16].to(device))
    t0 = time.perf_counter()
    for _ in range(FIRST_CALLS):
        tr.step(b)
    first = time.perf_counter() - t0
    steady = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            tr.step(b)
        steady.append((time.perf_counter() - t0) / 20)
    step = statistics.median(steady)
    return {"import_s": imported, "first_calls_s": first, "step_s": step,
            "compile_s": first - FIRST_CALLS * step}


def process_starts(name: str, device: str, timeout: float = 600) -> dict:
    """Two fresh processes sharing a new, empty Inductor cache directory."""
    with tempfile.TemporaryDirectory(prefix="tapegrad-inductor-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-m", "benchmarks.compile_time", name, device],
                                 cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=timeout)
            if out.returncode:
                raise RuntimeError(f"compile_time {name}: {out.stderr.strip()[-500:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"impl": name, "device": device, "cold_s": runs[0]["compile_s"],
            "warm_s": runs[1]["compile_s"], "first": runs[0], "second": runs[1]}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")))
