"""Measure a task over several seeds: ``python -m tapegrad.tasks.seeds digits --seeds 5``
(``--twin``: one full run against its torch twin instead).

Prints (and with ``--out`` writes) a Markdown table: per seed the final test accuracy, training
loss and wall time, then mean ± std (sample standard deviation) and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from . import task_module


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )


def measure(task: str, seeds: int, first_seed: int = 0) -> list[dict]:
    mod = task_module(task)
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        t0, c0 = time.perf_counter(), time.process_time()
        r = mod.run(mod.Config(seed=seed))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        f = r.history.final
        rows.append(
            {
                "seed": seed,
                "accuracy": 100 - f["test_error"],
                "loss": f["loss"],
                "seconds": wall,
                "cpu": cpu,
                "epochs": len(r.history),
                "steps": len(r.history.step_losses),
            }
        )
        print(
            f"seed {seed}: accuracy {rows[-1]['accuracy']:.2f}% ({wall:.1f} s wall, "
            f"{cpu:.1f} s CPU)",
            flush=True,
        )
    return rows


def twin(task: str, seed: int = 0) -> str:
    """One default run with tapegrad and with its torch twin: how far apart the losses get."""
    from . import twins

    pair = twins.digits_pair if task == "digits" else twins.reverse_pair
    ours, theirs = pair(task_module(task).Config(seed=seed))
    a, b = torch.tensor(ours.step_losses), torch.tensor(theirs.step_losses)
    diff = (a - b).abs()
    rel = diff / b.abs().clamp_min(1e-12)
    return (
        f"{task}, seed {seed}, default configuration: {a.numel()} steps; largest |loss "
        f"difference| {float(diff.max()):.2e} (step {int(diff.argmax()) + 1}), largest "
        f"relative {float(rel.max()):.2e}; final test error tapegrad "
        f"{ours.final['test_error']:.2f}%, torch {theirs.final['test_error']:.2f}%."
    )


def table(task: str, rows: list[dict]) -> str:
    what = {
        "digits": "test accuracy (360 images)",
        "reverse": "held-out exact-sequence accuracy (greedy decoding)",
    }[task]
    out = [
        f"| seed | {what} % | final training loss | epochs | steps | wall s | CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['seed']} | {r['accuracy']:.2f} | {r['loss']:.4f} | {r['epochs']} | "
            f"{r['steps']} | {r['seconds']:.1f} | {r['cpu']:.1f} |"
        )

    def ms(key: str, fmt: str) -> str:
        v = [r[key] for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return f"{format(statistics.mean(v), fmt)} ± {format(sd, fmt)}"

    out.append(
        f"| mean ± std | {ms('accuracy', '.2f')} | {ms('loss', '.4f')} | | | "
        f"{ms('seconds', '.1f')} | {ms('cpu', '.1f')} |"
    )
    out.append("")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    out.append(
        f"Machine: {machine()}; measured {time.strftime('%Y-%m-%d %H:%M %Z')}; load "
        f"average at the end {load} (1, 5, 15 min; a machine shared with other jobs: "
        "wall times are upper bounds, CPU seconds say what one run costs)."
    )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tapegrad.tasks.seeds")
    p.add_argument("task", choices=("digits", "reverse"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--twin",
        action="store_true",
        help="instead: seed 0 against its torch twin (largest loss difference)",
    )
    p.add_argument("--out", help="also write the Markdown table to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    text = twin(args.task) if args.twin else table(args.task, measure(args.task, args.seeds))
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
