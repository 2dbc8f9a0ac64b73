"""The course reports' experiments as Markdown tables, each over several seeds (mean ± std).

(a) this engine vs the same network trained with torch.nn + torch.optim from the same initial
weights and batches; (b) batch sizes; (c) optimizers; (d) hidden activations. Every variant is
the ``default`` preset with one thing changed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from .presets import TrainConfig, fit_prepared, prepare, preset, threshold

BATCH_SIZES = (4, 8, 16, 32, 64, 128)
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")


def optimizer_variants(base: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """SGD, SGD with momentum and Adam, each with a learning rate suited to it."""
    return [
        ("SGD (lr 0.5)", base.replace(optimizer="sgd", momentum=0.0, lr=0.5)),
        ("SGD + momentum 0.9 (lr 0.05)", base.replace(optimizer="sgd", momentum=0.9, lr=0.05)),
        ("Adam (lr 0.001)", base.replace(optimizer="adam", lr=1e-3)),
    ]


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` (sample standard deviation) with two decimals."""
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.2f} ± {s:.2f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary(h: Any) -> dict:
    """Final train/test error (%) and training seconds of a run's history."""
    return {
        "train_error": h.final["train_error"],
        "test_error": h.final["test_error"],
        "seconds": sum(h["seconds"]),
    }


def run_one(cfg: TrainConfig) -> dict:
    """Final train/test error (%) and training seconds of one run of ``cfg``."""
    return _summary(fit_prepared(cfg, prepare(cfg), progress=False))


def _worker_init() -> None:
    torch.set_num_threads(1)  # the networks are tiny: processes, not threads, give the speed-up


class Runner:
    """Runs configurations over seeds, in ``jobs`` processes, remembering results by config."""

    def __init__(self, seeds: Sequence[int], jobs: int = 1, bar: Any = None) -> None:
        self.seeds = list(seeds)
        self.jobs = jobs
        self.cache: dict = {}
        self.bar = bar  # a tqdm bar counting training runs, or None

    def map(
        self, fn: Callable[[TrainConfig], Any], cfgs: Sequence[TrainConfig], runs_each: int = 1
    ) -> list:
        """``fn`` over ``cfgs`` (in ``jobs`` processes), advancing the bar as each one ends."""
        steps = [runs_each * training_steps(c) for c in cfgs]
        if self.jobs > 1 and len(cfgs) > 1:
            with ProcessPoolExecutor(self.jobs, initializer=_worker_init) as pool:
                results = []
                for r, n in zip(pool.map(fn, cfgs), steps):
                    results.append(r)
                    self._advance(n)
            return results
        results = []
        for c, n in zip(cfgs, steps):
            results.append(fn(c))
            self._advance(n)
        return results

    def _advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def many(self, cfgs: Sequence[TrainConfig]) -> list[list[dict]]:
        todo = [c.replace(seed=s) for c in cfgs for s in self.seeds]
        missing = list({repr(c): c for c in todo if repr(c) not in self.cache}.values())
        for c, r in zip(missing, self.map(run_one, missing)):
            self.cache[repr(c)] = r
        n = len(self.seeds)
        flat = [self.cache[repr(c)] for c in todo]
        return [flat[i * n : (i + 1) * n] for i in range(len(cfgs))]


def seconds_text(s: float) -> str:
    """Seconds: whole above 10 s, else with decimals (a quick run takes a fraction of one)."""
    return f"{s:.0f}" if s >= 10 else f"{s:.1f}" if s >= 1 else f"{s:.2f}"


def _row(label: str, results: list[dict]) -> list[str]:
    return [
        label,
        mean_std([r["train_error"] for r in results]),
        mean_std([r["test_error"] for r in results]),
        seconds_text(statistics.fmean(r["seconds"] for r in results)),
    ]


HEADERS = ("train error %", "test error %", "seconds per run")


def compare_with_torch(cfg: TrainConfig) -> dict:
    """One seed, both implementations from the same weights and batches."""
    from .torch_twin import torch_fit

    prepared = prepare(cfg)
    train, test, model, _, _, _, batch_seed = prepared
    init = {k: v.clone() for k, v in model.state_dict().items()}
    ours = fit_prepared(cfg, prepared, progress=False)
    _, ref = torch_fit(cfg, init, train, test, batch_seed, threshold(cfg))
    rel = max(
        (abs(a - b) / max(abs(b), 1e-30) for a, b in zip(ours.step_losses, ref.step_losses)),
        default=0.0,
    )
    return {
        "ours": _summary(ours),
        "torch": _summary(ref),
        "max_rel_loss_diff": rel,
        "steps": len(ours.step_losses),
    }


def table_engine_vs_torch(base: TrainConfig, runner: Runner) -> str:
    cfgs = [base.replace(seed=s) for s in runner.seeds]
    res = runner.map(compare_with_torch, cfgs, runs_each=2)
    for c, r in zip(cfgs, res):  # the engine's runs of the base config serve the other tables
        runner.cache.setdefault(repr(c), r["ours"])
    worst = max(r["max_rel_loss_diff"] for r in res)
    steps = sum(r["steps"] for r in res)
    rows = [
        _row("tapegrad (autodiff + nn)", [r["ours"] for r in res]),
        _row("PyTorch (torch.nn + torch.optim)", [r["torch"] for r in res]),
    ]
    return (
        markdown_table(("implementation", *HEADERS), rows)
        + f"\n\nSame initial weights and batches; largest relative difference between the two "
        f"training losses over all {steps} steps: {worst:.1e}."
    )


def table_batch_sizes(base: TrainConfig, runner: Runner, sizes: Sequence[int] = BATCH_SIZES) -> str:
    results = runner.many([base.replace(batch_size=b) for b in sizes])
    rows = [_row(str(b), r) for b, r in zip(sizes, results)]
    return markdown_table(("batch size", *HEADERS), rows)


def table_optimizers(base: TrainConfig, runner: Runner) -> str:
    variants = optimizer_variants(base)
    results = runner.many([c for _, c in variants])
    rows = [_row(n, r) for (n, _), r in zip(variants, results)]
    return markdown_table(("optimizer", *HEADERS), rows)


def table_activations(base: TrainConfig, runner: Runner, names: Sequence[str] = ACTIVATIONS) -> str:
    results = runner.many([base.replace(activation=a) for a in names])
    rows = [_row(a, r) for a, r in zip(names, results)]
    return markdown_table(("hidden activation", *HEADERS), rows)


def describe(cfg: TrainConfig) -> str:
    sched = {"none": "constant lr", "cosine": "cosine-decayed lr", "step": "step-decayed lr"}[
        cfg.schedule
    ]
    if cfg.schedule == "cosine" and cfg.warmup:
        sched += f" after {cfg.warmup} warm-up epochs"
    opt = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}.get(cfg.optimizer, cfg.optimizer)
    if cfg.optimizer == "sgd" and cfg.momentum:
        opt += f" + momentum {cfg.momentum}"
    hidden = " -> ".join(str(h) for h in cfg.hidden)
    loss = "BCEWithLogitsLoss" if cfg.loss == "bce" else "MSELoss"
    return (
        f"{cfg.n_train} train / {cfg.n_test} test points, 2 -> {hidden} -> 1, "
        f"{cfg.activation}, "
        f"{loss}, {opt} (lr {cfg.lr:g}, {sched}), batch {cfg.batch_size}, {cfg.epochs} epochs"
    )


def training_steps(cfg: TrainConfig) -> int:
    """Optimizer steps of one run: the progress bar's unit (a step costs about the same at every
    batch size of this small network, so the time left is estimated well)."""
    return cfg.epochs * -(-cfg.n_train // cfg.batch_size)


def planned_steps(base: TrainConfig, seeds: Sequence[int], only: Sequence[str]) -> int:
    """How many training steps ``run_all`` will take (table (a) trains two networks per seed;
    the base configuration's runs are shared between the tables)."""
    variants = {
        "b": [base.replace(batch_size=b) for b in BATCH_SIZES],
        "c": [c for _, c in optimizer_variants(base)],
        "d": [base.replace(activation=a) for a in ACTIVATIONS],
    }
    twin = [base.replace(seed=s) for s in seeds] if "a" in only else []
    runs = {repr(c): c for c in twin}
    for key in only:
        runs.update(
            (repr(c), c) for v in variants.get(key, []) for c in (v.replace(seed=s) for s in seeds)
        )
    return sum(map(training_steps, twin)) + sum(map(training_steps, runs.values()))


def run_all(
    quick: bool = False,
    seeds: int | None = None,
    jobs: int = 1,
    base: TrainConfig | None = None,
    emit: Callable[[str], None] = print,
    only: Sequence[str] = ("a", "b", "c", "d"),
    progress: bool = False,
) -> None:
    """Print the four tables (``quick``: 3 seeds and 10 epochs, for a smoke test).

    ``progress``: a tqdm bar on stderr counting the training steps, with the time left.
    """
    base = base or preset("default")
    if quick:
        base = base.replace(epochs=min(base.epochs, 10))
    n = seeds if seeds is not None else (3 if quick else 10)
    if not progress:
        return _run_tables(base, Runner(range(n), jobs), n, emit, only)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=planned_steps(base, range(n), only),
        unit="step",
        unit_scale=True,
        desc="training",
        smoothing=0.05,
    )

    def emit_above_bar(text: str) -> None:
        with tqdm.external_write_mode():
            emit(text)

    try:
        _run_tables(base, Runner(range(n), jobs, bar), n, emit_above_bar, only)
    finally:
        bar.close()


def _run_tables(
    base: TrainConfig, runner: Runner, n: int, emit: Callable[[str], None], only: Sequence[str]
) -> None:
    emit(
        f"Base configuration: {describe(base)}. Errors are final-epoch percentages, mean ± "
        f"std over {n} seeds (seed changes data, initial weights and batch order).\n"
    )
    sections = {
        "a": ("(a) tapegrad vs PyTorch", lambda: table_engine_vs_torch(base, runner)),
        "b": ("(b) batch size", lambda: table_batch_sizes(base, runner)),
        "c": ("(c) optimizer", lambda: table_optimizers(base, runner)),
        "d": ("(d) hidden activation", lambda: table_activations(base, runner)),
    }
    for key in only:
        title, make = sections[key]
        t0 = time.perf_counter()
        body = make()
        emit(f"### {title}\n\n{body}\n\n_({seconds_text(time.perf_counter() - t0)} s)_\n")


def summarize(cfg: TrainConfig, seeds: Sequence[int], jobs: int = 1) -> dict:
    """Mean/std of the final errors of ``cfg`` over ``seeds`` (used to measure the presets)."""
    res = Runner(seeds, jobs).many([cfg])[0]
    te = [r["test_error"] for r in res]
    tr = [r["train_error"] for r in res]
    return {
        "test_mean": statistics.fmean(te),
        "test_std": statistics.stdev(te) if len(te) > 1 else 0.0,
        "train_mean": statistics.fmean(tr),
        "test": te,
        "train": tr,
        "seconds": statistics.fmean(r["seconds"] for r in res),
    }
