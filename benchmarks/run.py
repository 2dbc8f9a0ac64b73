"""The benchmark: tapegrad vs PyTorch eager vs the hand-written lower bound, in one process run,
with the compiled peers (tapegrad's compiled replay, jax.jit, torch.compile) in the 1-thread pass.

    python -m benchmarks.run                     # everything (several minutes)
    python -m benchmarks.run --quick             # a smoke run (seconds; no compiled peers)
    python -m benchmarks.run --workloads course,chain --threads 1 --device cpu

Writes benchmarks/results/latest.json and latest.md (a ``--quick`` run: results/quick/, so the
committed full results stay; ``--json`` / ``--md`` to change, ``-`` to skip) and prints the
Markdown tables (a full run also logs each result to stderr as it is measured).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

import torch

from . import (
    compile_time,
    jax_jit,
    lower_bound,
    memory,
    report,
    tapegrad_compiled,
    tapegrad_impl,
    tapegrad_replay,
    timing,
    torch_compile,
    torch_eager,
)
from . import workloads as W

IMPLS = {"tapegrad": tapegrad_impl, "torch_eager": torch_eager, "lower_bound": lower_bound}
# added when autodiff.replay exists (not with --no-replay)
REPLAY = {"tapegrad_replay": tapegrad_replay}
# Compiled steps: their first calls compile (seconds), so they run in the 1-thread pass only and
# not in --quick runs; each is left out, with the reason, when it cannot run here.
PEERS = {"tapegrad_compiled": tapegrad_compiled, "jax_jit": jax_jit, "torch_compile": torch_compile}
WORKLOADS = ("course", "epochs", "wide", "chain", "memory", "compile")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Config:
    quick: bool
    rounds: int  # alternating rounds per per-step measurement
    warmup_s: float
    block_s: float  # length of one timed block of steps
    epochs: int
    epoch_rounds: int
    wide: W.MLPSpec
    wide_spec: str  # its name in memory.SPECS
    wide_batch: int
    wide_rounds: int
    chains: tuple
    chain_rounds: int
    budget_s: float = 60.0  # per measurement: fewer rounds (not fewer steps) beyond it
    course_batches: tuple = W.COURSE_BATCHES
    impls: dict = None  # name -> implementation module, in table order
    peers: dict = field(default_factory=dict)  # compiled peers, name -> module (1 thread only)
    notes: list = field(default_factory=list)  # what was skipped or cut short, and why

    @classmethod
    def make(cls, quick: bool) -> Config:
        if quick:
            return cls(
                True,
                rounds=3,
                warmup_s=0.01,
                block_s=0.005,
                epochs=1,
                epoch_rounds=1,
                wide=W.WIDE_QUICK,
                wide_spec="wide_quick",
                wide_batch=128,
                wide_rounds=2,
                chains=(100, 1000),
                chain_rounds=2,
                budget_s=5.0,
            )
        return cls(
            False,
            rounds=15,
            warmup_s=0.3,
            block_s=0.05,
            epochs=W.EPOCHS,
            epoch_rounds=3,
            wide=W.WIDE,
            wide_spec="wide",
            wide_batch=W.WIDE_BATCH,
            wide_rounds=7,
            chains=W.CHAIN_LENGTHS,
            chain_rounds=5,
        )


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_LOG_ROWS = True  # log each result as it is measured (off for --quick)


def log_result(msg: str) -> None:
    if _LOG_ROWS:
        log(msg)


# ---- machine -------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return (rev + ("+uncommitted changes" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cpus": cpus,
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _commit(),
        "loadavg_start": _loadavg(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


# ---- sanity: the three compute the same thing ----------------------------------------------------
def sanity_check(impls: dict, device: str, steps: int = 5) -> dict:
    """Same init and data: losses over a few steps, parameters after them, chain gradients."""
    x, y = W.disc_data()
    x, y = x[:16].to(device), y[:16].to(device)
    losses, params, grads = {}, {}, {}
    raw = W.chain_input().to(device)
    for name, mod in impls.items():
        tr = mod.Trainer(W.COURSE, W.init_weights(W.COURSE), device)
        b = tr.batch(x, y)
        losses[name] = [mod.loss_value(tr.step(b)) for _ in range(steps)]
        params[name] = [p.detach().cpu().clone() for p in tr.params()]
        if not hasattr(mod, "chain_forward"):
            continue
        leaf = mod.chain_leaf(raw)
        mod.chain_backward(mod.chain_forward(leaf, 101), leaf)
        grads[name] = mod.chain_grad(leaf).cpu().clone()
    ref = "torch_eager"
    out: dict = {
        "losses": losses,
        "max_loss_diff": {},
        "max_param_diff": {},
        "max_chain_grad_rel_diff": {},
    }
    for name in impls:
        if name == ref:
            continue
        out["max_loss_diff"][name] = max(abs(a - b) for a, b in zip(losses[name], losses[ref]))
        out["max_param_diff"][name] = max(
            float((a - b).abs().max()) for a, b in zip(params[name], params[ref])
        )
        if name in grads:
            g, gr = grads[name], grads[ref]
            out["max_chain_grad_rel_diff"][name] = float(((g - gr).abs() / gr.abs()).max())
    worst = max(max(out["max_loss_diff"].values()), max(out["max_param_diff"].values()))
    out["ok"] = bool(worst < 1e-4 and max(out["max_chain_grad_rel_diff"].values()) < 1e-3)
    out["summary"] = (
        ("OK" if out["ok"] else "MISMATCH") + f": {steps} course steps at batch 16 "
        "from the same init; vs torch eager: "
        + "; ".join(
            f"{n} max |loss diff| {out['max_loss_diff'][n]:.1e}, max |param diff| "
            f"{out['max_param_diff'][n]:.1e}"
            + (
                f", chain grad rel diff {out['max_chain_grad_rel_diff'][n]:.1e}"
                if n in out["max_chain_grad_rel_diff"]
                else ""
            )
            for n in out["max_loss_diff"]
        )
    )
    return out


def _probe(mod) -> str | None:
    """Why an optional implementation cannot run the course step (None: it can)."""
    if not getattr(mod, "AVAILABLE", True):
        return getattr(mod, "WHY_NOT", None) or "not available in this version of tapegrad"
    try:
        tr = mod.Trainer(W.COURSE, W.init_weights(W.COURSE), "cpu")
        b = tr.batch(*W.random_batch(4, 2))
        for _ in range(3):
            mod.loss_value(tr.step(b))
    except Exception as e:  # report it and carry on with the others
        return f"{type(e).__name__}: {e}"
    return getattr(tr, "why_not_compiled", lambda: None)()


FIRST_CALLS = 3  # calls timed apart for implementations that compile on their first calls


# ---- workloads -----------------------------------------------------------------------------------
def _timing_row(
    label: str,
    workload: str,
    device: str,
    threads: object,
    samples: dict,
    phase: str = "step",
    **extra,
) -> dict:
    res = {k: timing.summarise(v[phase]) for k, v in samples.items()}
    row = {
        "label": label,
        "workload": workload,
        "device": device,
        "threads": threads,
        "unit": "s",
        "results": res,
        **extra,
    }
    row["ratios"] = report.ratios({k: v["median"] for k, v in res.items()})
    return row


def _impls(cfg: Config, threads: object, device: str) -> dict:
    """The implementations of this pass: the compiled peers in the 1-thread pass only (jax.jit
    on the CPU only: the bench extra installs jax's CPU build)."""
    if threads != 1 or not cfg.peers:
        return cfg.impls
    peers = [(k, m) for k, m in cfg.peers.items() if k != "jax_jit" or device == "cpu"]
    names = list(cfg.impls)
    at = names.index("torch_eager") if "torch_eager" in names else len(names)
    return dict([*list(cfg.impls.items())[:at], *peers, *list(cfg.impls.items())[at:]])


def step_rows(
    cfg: Config,
    spec: W.MLPSpec,
    batches: list,
    device: str,
    threads: object,
    rounds: int,
    workload: str,
) -> list[dict]:
    sync = timing.syncer(device)
    rows = []
    for batch, x, y in batches:
        measures, round_s, first = {}, 0.0, {}
        for name, mod in _impls(cfg, threads, device).items():
            tr = mod.Trainer(spec, W.init_weights(spec), device)
            b = tr.batch(x.to(device), y.to(device))
            fn = lambda tr=tr, b=b: tr.step(b)
            if getattr(mod, "COMPILES", False):
                sync()
                t0 = time.perf_counter()
                for _ in range(FIRST_CALLS):
                    fn()
                sync()
                first[name] = time.perf_counter() - t0
            inner, per_call = timing.calibrate(fn, sync, cfg.warmup_s, cfg.block_s)
            measures[name] = timing.block_timer(fn, inner, sync)
            round_s += inner * per_call
        samples = timing.alternate(
            measures, timing.fit_rounds(rounds, round_s, cfg.budget_s, min(3, rounds))
        )
        label = f"{workload} {'-'.join(map(str, spec.sizes))}, batch {batch}, per step"
        row = _timing_row(label, workload, device, threads, samples, batch=batch)
        if first:  # compile time: the first calls minus as many steady steps
            row["compile_s"] = {
                k: t - FIRST_CALLS * row["results"][k]["median"] for k, t in first.items()
            }
        rows.append(row)
        log_row(rows[-1])
    return rows


def course_rows(cfg: Config, device: str, threads: object) -> list[dict]:
    X, Y = W.disc_data()
    batches = [(b, X[:b], Y[:b]) for b in cfg.course_batches]
    return step_rows(cfg, W.COURSE, batches, device, threads, cfg.rounds, "course")


def wide_rows(cfg: Config, device: str, threads: object) -> list[dict]:
    x, y = W.random_batch(cfg.wide_batch, cfg.wide.sizes[0])
    return step_rows(
        cfg, cfg.wide, [(cfg.wide_batch, x, y)], device, threads, cfg.wide_rounds, "wide"
    )


def epoch_rows(cfg: Config, device: str, threads: object) -> list[dict]:
    """A whole run: fresh model, ``epochs`` shuffled epochs at batch 16 over the 1000 points."""
    sync = timing.syncer(device)
    X, Y = (t.to(device) for t in W.disc_data())
    final: dict = {}

    def run(name: str, mod, epochs: int) -> float:
        tr = mod.Trainer(W.COURSE, W.init_weights(W.COURSE), device)
        loss = None
        for idx in W.epoch_batches(len(X), W.EPOCH_BATCH, epochs):
            idx = idx.to(device)
            loss = tr.step(tr.batch(X[idx], Y[idx]))
        return mod.loss_value(loss)

    def measure(name: str, mod):
        def m() -> dict:
            sync()
            t0 = time.perf_counter()
            final[name] = run(name, mod, cfg.epochs)
            return {"step": time.perf_counter() - t0}

        return m

    impls = _impls(cfg, threads, device)
    round_s = 0.0
    for name, mod in impls.items():
        t0 = time.perf_counter()
        run(name, mod, 1)  # warm-up (compiled peers: a first compile, which fills the caches)
        round_s += (time.perf_counter() - t0) * (
            1 if getattr(mod, "COMPILES", False) else cfg.epochs
        )
    if round_s > 10 * cfg.budget_s:
        note = (
            f"{cfg.epochs}-epoch run on {device} with {threads} threads skipped: one round "
            f"of the three would take about {round_s:.0f} s (busy machine?)"
        )
        cfg.notes.append(note)
        log(note)
        return []
    rounds = timing.fit_rounds(cfg.epoch_rounds, round_s, 2 * cfg.budget_s, 1)
    samples = timing.alternate({n: measure(n, m) for n, m in impls.items()}, rounds)
    label = (
        f"course, {cfg.epochs} epochs at batch {W.EPOCH_BATCH} on {W.N_POINTS} points, whole run"
    )
    if len(impls) > len(cfg.impls):
        label += " (compiled: compile included)"
    row = _timing_row(
        label, "epochs", device, threads, samples, epochs=cfg.epochs, final_loss=final
    )
    log_row(row)
    log("  final losses after the run: " + ", ".join(f"{k} {v:.6g}" for k, v in final.items()))
    return [row]


def chain_rows(cfg: Config, device: str, threads: object) -> list[dict]:
    sync = timing.syncer(device)
    raw = W.chain_input().to(device)
    rows = []

    def measure(mod, n: int):
        def m() -> dict:
            leaf = mod.chain_leaf(raw)
            sync()
            t0 = time.perf_counter()
            out = mod.chain_forward(leaf, n)
            sync()
            t1 = time.perf_counter()
            mod.chain_backward(out, leaf)
            sync()
            t2 = time.perf_counter()
            del out, leaf
            sync()
            t3 = time.perf_counter()
            return {
                "forward": (t1 - t0) / n,
                "backward": (t2 - t1) / n,
                "free": (t3 - t2) / n,
                "total": (t3 - t0) / n,
            }

        return m

    for n in cfg.chains:
        measures = {
            name: measure(mod, n)
            for name, mod in cfg.impls.items()
            if hasattr(mod, "chain_forward")
        }
        round_s = sum(m()["total"] * n for m in measures.values())  # warm-up
        samples = timing.alternate(
            measures, timing.fit_rounds(cfg.chain_rounds, round_s, cfg.budget_s, 2)
        )
        row = _timing_row(
            f"chain of {n:,} elementwise ops, record + backward + free, per op",
            "chain",
            device,
            threads,
            samples,
            phase="total",
            n=n,
        )
        row["phases"] = {
            k: {p: timing.summarise(v[p])["median"] for p in v} for k, v in samples.items()
        }
        log_row(row)
        rows.append(row)
    return rows


def memory_rows(cfg: Config, device: str, inprocess: bool) -> tuple[list, list]:
    def get(args: list) -> dict:
        if inprocess:
            fn = memory.step_peak if args[0] == "step" else memory.chain_memory
            conv = (
                [args[1], args[2], int(args[3]), args[4]]
                if args[0] == "step"
                else [args[1], int(args[2]), args[3]]
            )
            return fn(*conv)
        return memory.in_subprocess(args)

    steps = []
    for spec_name, spec, batch in (
        ("course", W.COURSE, 1000),
        (cfg.wide_spec, cfg.wide, cfg.wide_batch),
    ):
        res = {name: get(["step", name, spec_name, batch, device]) for name in cfg.impls}
        label = f"{'-'.join(map(str, spec.sizes))}, batch {batch}"
        steps.append(
            {"label": label, "device": device, "results": res, "method": res["tapegrad"]["method"]}
        )
        fb = report.fmt_bytes
        log_result(
            f"memory {label} ({device}): "
            + ", ".join(
                f"{k} step {fb(v['step_bytes'])} total {fb(v['total_bytes'])}"
                for k, v in res.items()
            )
        )
    n = max(cfg.chains)
    chains = [
        get(["chain", name, n, device])
        for name, mod in cfg.impls.items()
        if hasattr(mod, "chain_forward")
    ]
    for r in chains:
        log_result(
            f"memory chain {n} {r['impl']} ({device}): built {report.fmt_bytes(r['built_bytes'])}, "
            f"after backward {report.fmt_bytes(r['after_backward_bytes'])}, after delete "
            f"{report.fmt_bytes(r['after_delete_bytes'])}"
        )
    return steps, chains


def log_row(r: dict) -> None:
    if not _LOG_ROWS:
        return
    med = {k: report.fmt_time(v["median"]) for k, v in r["results"].items()}
    rat = r["ratios"]
    log(
        f"{r['label']} [{r['device']}, threads {r['threads']}]: "
        + ", ".join(f"{k} {v}" for k, v in med.items())
        + "; "
        + ", ".join(f"{k} {report.fmt_ratio(v)}" for k, v in rat.items())
    )


# ---- command line --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (few rounds, small sizes)")
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, or auto (cpu, and cuda when available); comma-separated list ok",
    )
    p.add_argument(
        "--threads",
        default=None,
        help="CPU thread counts to run, e.g. '1', 'default', '1,4' (default: "
        "'1,default'; '1' with --quick)",
    )
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    p.add_argument(
        "--json",
        help="JSON output ('-': none; default results/latest.json, "
        "results/quick/latest.json with --quick)",
    )
    p.add_argument(
        "--md",
        help="Markdown output ('-': none; default results/latest.md, "
        "results/quick/latest.md with --quick)",
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="override alternating rounds per step workload"
    )
    p.add_argument(
        "--no-replay",
        action="store_true",
        help="leave out the tapegrad replay column (autodiff.replay)",
    )
    p.add_argument(
        "--peers",
        default=None,
        help=f"compiled peers to run in the 1-thread pass, from {','.join(PEERS)} "
        "(default: all of them; none with --quick; 'none': none)",
    )
    p.add_argument(
        "--memory-inprocess",
        action="store_true",
        help="measure memory in this process (fast, less fair; for tests)",
    )
    a = p.parse_args(argv)
    folder = RESULTS / "quick" if a.quick else RESULTS  # a smoke run never replaces a full one
    a.json = a.json or str(folder / "latest.json")
    a.md = a.md or str(folder / "latest.md")
    global _LOG_ROWS
    _LOG_ROWS = not a.quick  # a quick run's tables come seconds later: log each result once
    if a.threads is None:
        a.threads = "1" if a.quick else "1,default"
    if a.peers is None:
        a.peers = "none" if a.quick else ",".join(PEERS)
    a.peers = [] if a.peers == "none" else [x.strip() for x in a.peers.split(",") if x.strip()]
    bad = [x for x in a.peers if x not in PEERS]
    if bad:
        p.error(f"--peers: unknown {bad}; choose from {','.join(PEERS)} or 'none'")
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    bad = [w for w in a.workloads if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workloads {bad}; choose from {','.join(WORKLOADS)}")
    if a.device == "auto":
        a.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        a.devices = [d.strip() for d in a.device.split(",")]
        if any(d.startswith("cuda") for d in a.devices) and not torch.cuda.is_available():
            p.error("--device cuda: no CUDA device is available")
    return a


def thread_settings(spec: str, default: int) -> list:
    out = []
    for t in spec.split(","):
        t = t.strip()
        out.append(("default", default) if t == "default" else (int(t), int(t)))
    return out


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    cfg = Config.make(a.quick)
    if a.rounds:
        cfg.rounds = a.rounds
    cfg.impls = dict(IMPLS)
    left_out = {}
    if not a.no_replay:
        why = _probe(tapegrad_replay)
        if why is None:
            cfg.impls = {
                "tapegrad": tapegrad_impl,
                **REPLAY,
                "torch_eager": torch_eager,
                "lower_bound": lower_bound,
            }
        else:
            left_out["tapegrad_replay"] = why
            log(f"tapegrad replay left out: {why}")
    for name in a.peers:
        log(f"probing {name} (compiles)")
        why = _probe(PEERS[name])
        if why is None:
            cfg.peers[name] = PEERS[name]
        else:
            left_out[name] = why
            log(f"{name} left out: {why}")
    default_threads = torch.get_num_threads()
    res: dict = {
        "machine": machine_info(),
        "config": {
            "quick": cfg.quick,
            "workloads": a.workloads,
            "devices": a.devices,
            "threads": a.threads,
            "rounds": cfg.rounds,
            "tapegrad_mode": tapegrad_impl.MODE,
            "implementations": list(cfg.impls),
            "peers": list(cfg.peers),
            "left_out": left_out,
        },
        "sanity": {},
        "timing": [],
        "chains": [],
        "memory": [],
        "chain_memory": [],
        "compile_starts": [],
    }
    log(f"machine: {report.machine_line(res['machine'])}")
    try:
        for device in a.devices:
            res["sanity"][device] = s = sanity_check(_impls(cfg, 1, device), device)
            log(f"sanity ({device}): {s['summary']}")
            # Everything alive now (torch, with what its first uses imported) stays alive: keep it
            # out of the collections between measurements (a full one takes ~0.1 s otherwise).
            gc.freeze()
            settings = (
                thread_settings(a.threads, default_threads)
                if device == "cpu"
                else [("default", default_threads)]
            )
            for label, n in settings:
                torch.set_num_threads(n)
                threads = n if label != "default" else f"default ({n})"
                if "course" in a.workloads:
                    res["timing"] += course_rows(cfg, device, threads)
                if "epochs" in a.workloads:
                    res["timing"] += epoch_rows(cfg, device, threads)
                if "wide" in a.workloads:
                    res["timing"] += wide_rows(cfg, device, threads)
                if "chain" in a.workloads:
                    rows = chain_rows(cfg, device, threads)
                    res["timing"] += rows
                    res["chains"] += rows
            torch.set_num_threads(default_threads)
            if "memory" in a.workloads:
                steps, chains = memory_rows(cfg, device, a.memory_inprocess)
                res["memory"] += steps
                res["chain_memory"] += chains
            if "compile" in a.workloads and cfg.peers:
                for name in cfg.peers:
                    if name == "jax_jit":
                        continue  # XLA keeps no compile cache across processes by default
                    r = compile_time.process_starts(name, device)
                    log(
                        f"course job in a fresh process, {name} ({device}): compile "
                        f"{r['cold_s']:.2f} s then {r['warm_s']:.2f} s with the cache; whole "
                        f"job {r['cold_run_s']:.2f} s then {r['warm_run_s']:.2f} s"
                    )
                    res["compile_starts"].append(r)
    finally:
        torch.set_num_threads(default_threads)
        gc.unfreeze()
    res["machine"]["loadavg_end"] = _loadavg()
    res["notes"] = cfg.notes
    md = report.write(res, None if a.json == "-" else a.json, None if a.md == "-" else a.md)
    print(md)
    return res


if __name__ == "__main__":
    main()
