"""Memory: process RSS (CPU) or torch.cuda's allocator statistics (GPU), each measurement in a
fresh subprocess so one implementation's heap does not colour the next one's numbers.

    python -m benchmarks.memory step IMPL SPEC BATCH DEVICE   # peak memory of training steps
    python -m benchmarks.memory chain IMPL N DEVICE           # an N-op graph before/after backward

Each prints one JSON line. tracemalloc cannot see torch's allocations, hence RSS; freed heap
memory is handed back to the OS (``malloc_trim``) before every reading, so RSS falls when
memory is actually released.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

from . import workloads as W

IMPLS = {
    "tapegrad": "benchmarks.tapegrad_impl",
    "torch_eager": "benchmarks.torch_eager",
    "lower_bound": "benchmarks.lower_bound",
    "tapegrad_replay": "benchmarks.tapegrad_replay",
}
SPECS = {"course": W.COURSE, "wide": W.WIDE, "wide_quick": W.WIDE_QUICK}
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
try:
    _libc = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: RSS may then stay high after frees
    _libc = None


def rss_bytes() -> int:
    """Resident set size now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def trim() -> None:
    """Collect garbage and return freed heap pages to the OS, so RSS reflects live memory."""
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def step_peak(impl: str, spec_name: str, batch: int, device: str, steps: int = 3) -> dict:
    """Peak memory of training steps (after two warm-up steps created the optimizer state).

    ``step_bytes``: peak during the measured steps minus memory just before them (the transient
    memory of a step); ``total_bytes``: that peak minus memory before the model was built
    (parameters, gradients, optimizer state, data and the step's transients).
    """
    torch.set_num_threads(1)
    mod = importlib.import_module(IMPLS[impl])
    cuda = _cuda(device)
    # Prime the libraries (lazy imports, autograd engine start-up, allocator pools) on a tiny
    # network, so the baseline excludes one-time costs that are not the training step's memory.
    tiny = W.MLPSpec("tiny", (2, 2, 1), "tanh")
    primer = mod.Trainer(tiny, W.init_weights(tiny), device)
    pb = primer.batch(*(t.to(device) for t in W.random_batch(2, 2)))
    for _ in range(2):
        mod.loss_value(primer.step(pb))
    del primer, pb
    trim()
    base = torch.cuda.memory_allocated() if cuda else rss_bytes()
    spec = SPECS[spec_name]
    trainer = mod.Trainer(spec, W.init_weights(spec), device)
    x, y = W.random_batch(batch, spec.sizes[0])
    b = trainer.batch(x.to(device), y.to(device))
    for _ in range(2):
        loss = trainer.step(b)
    del loss
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        method = "torch.cuda.max_memory_allocated"
    else:
        trim()
        before = rss_bytes()
        method = "VmHWM after clear_refs" if reset_peak() else "ru_maxrss (lifetime peak)"
    for _ in range(steps):
        loss = trainer.step(b)
    mod.loss_value(loss)  # waits for the device
    peak = torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()
    out = {
        "impl": impl,
        "spec": spec_name,
        "batch": batch,
        "device": device,
        "method": method,
        "step_bytes": peak - before,
        "total_bytes": peak - base,
        "peak_bytes": peak,
    }
    del trainer, b, loss
    if not cuda:  # RSS also counts the allocator's habits: count tensor bytes too
        out.update(tensor_peak(mod, spec, batch, device, steps))
    return out


def tensor_peak(mod, spec: W.MLPSpec, batch: int, device: str, steps: int = 3) -> dict:
    """Live tensor bytes from torch's profiler (allocations and frees of torch's CPU allocator)
    while a model is built and trained: the peak over it all, and the most a step (after the
    first) adds to what was live when it began."""
    from torch.profiler import ProfilerActivity, profile, record_function

    x, y = W.random_batch(batch, spec.sizes[0])
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer = mod.Trainer(spec, W.init_weights(spec), device)
        b = trainer.batch(x.to(device), y.to(device))
        for i in range(steps):
            with record_function(f"benchmark_step_{i}"):
                loss = trainer.step(b)
            mod.loss_value(loss)
        del trainer, b, loss
    events = sorted(prof.profiler.kineto_results.events(), key=lambda e: e.start_ns())
    spans = [
        (e.start_ns(), e.end_ns())
        for e in events
        if e.name().startswith("benchmark_step_") and not e.name().endswith("_0")
    ]
    live = peak = 0
    step_peak, at_start, current = 0, 0, None
    for e in events:
        if e.name() != "[memory]":
            continue
        t = e.start_ns()
        inside = next((i for i, (a, z) in enumerate(spans) if a <= t <= z), None)
        if inside is not None and inside != current:
            current, at_start = inside, live
        live += e.nbytes()  # negative for a free
        peak = max(peak, live)
        if inside is not None:
            step_peak = max(step_peak, live - at_start)
    return {"tensor_total_bytes": peak, "tensor_step_bytes": step_peak}


def chain_memory(impl: str, n: int, device: str) -> dict:
    """Memory of an n-op graph: built, after backward (saved tensors released), after deletion."""
    torch.set_num_threads(1)
    mod = importlib.import_module(IMPLS[impl])
    cuda = _cuda(device)

    def now() -> int:
        trim()
        return torch.cuda.memory_allocated() if cuda else rss_bytes()

    raw = W.chain_input().to(device)
    warm = mod.chain_leaf(raw)
    mod.chain_backward(mod.chain_forward(warm, 10), warm)
    del warm
    base = now()
    leaf = mod.chain_leaf(raw)
    out = mod.chain_forward(leaf, n)
    built = now()
    extra = {}
    if hasattr(mod, "graph_saved_bytes"):
        extra["graph_nodes"], extra["saved_bytes_built"] = mod.graph_saved_bytes(out)
    mod.chain_backward(out, leaf)
    after_backward = now()
    if hasattr(mod, "graph_saved_bytes"):
        extra["saved_bytes_after_backward"] = mod.graph_saved_bytes(out)[1]
    del out, leaf
    freed = now()
    return {
        "impl": impl,
        "n": n,
        "device": device,
        "method": "torch.cuda.memory_allocated" if cuda else "RSS after malloc_trim",
        "built_bytes": built - base,
        "after_backward_bytes": after_backward - base,
        "after_delete_bytes": freed - base,
        **extra,
    }


def in_subprocess(args: list[str], timeout: float = 600) -> dict:
    """Run ``python -m benchmarks.memory ARGS`` in a fresh interpreter and parse its JSON line."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", *map(str, args)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if p.returncode != 0:
        raise RuntimeError(f"benchmarks.memory {' '.join(map(str, args))} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    kind, impl, *rest = argv
    gc.freeze()  # the imported libraries stay: keep them out of the collections in trim()
    if kind == "step":
        spec, batch, device = rest
        r = step_peak(impl, spec, int(batch), device)
    elif kind == "chain":
        n, device = rest
        r = chain_memory(impl, int(n), device)
    else:
        raise SystemExit(f"benchmarks.memory: unknown measurement {kind!r} (step or chain)")
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:])
