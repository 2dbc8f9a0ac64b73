"""Timing: implementations measured in alternation (rotating order each round), medians reported.

Alternating spreads slow phases of a noisy machine over all implementations instead of
penalising whichever happened to run during them.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Callable

import torch

Measure = Callable[[], dict]  # one measurement: {phase: seconds}


def syncer(device: str) -> Callable[[], None]:
    """A function that waits for queued device work (GPU kernels run asynchronously)."""
    if str(device).startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def block_timer(fn: Callable[[], object], inner: int, sync: Callable[[], None]) -> Measure:
    """A measurement of ``inner`` back-to-back calls of ``fn``: seconds per call."""

    def measure() -> dict:
        sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        return {"step": (time.perf_counter() - t0) / inner}

    return measure


def calibrate(
    fn: Callable[[], object],
    sync: Callable[[], None],
    warmup_s: float,
    block_s: float,
    min_warmup: int = 3,
    max_inner: int = 100_000,
) -> tuple[int, float]:
    """Warm ``fn`` up for about ``warmup_s``; return how many calls fill ``block_s``, and the
    seconds per call seen meanwhile."""
    sync()
    t0 = time.perf_counter()
    calls = 0
    while calls < min_warmup or time.perf_counter() - t0 < warmup_s:
        fn()
        calls += 1
        if calls >= min_warmup and time.perf_counter() - t0 > 10 * max(warmup_s, block_s):
            break  # a very slow call: enough warm-up
    sync()
    per_call = (time.perf_counter() - t0) / calls
    return max(1, min(max_inner, round(block_s / per_call))), per_call


def fit_rounds(rounds: int, round_s: float, budget_s: float, at_least: int) -> int:
    """``rounds``, or fewer (but ``at_least``) when a round takes ``round_s`` and all of them
    would overrun ``budget_s`` (a loaded machine, or threads fighting over busy cores)."""
    if round_s <= 0:
        return rounds
    return max(at_least, min(rounds, int(budget_s / round_s)))


def alternate(measures: dict[str, Measure], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Run each measurement ``rounds`` times, the order rotating every round."""
    names = list(measures)
    samples: dict = {n: {} for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()  # garbage from the previous implementation is not billed to this one
            for phase, secs in measures[name]().items():
                samples[name].setdefault(phase, []).append(secs)
    return samples


def summarise(xs: list[float]) -> dict:
    xs = sorted(xs)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {"median": statistics.median(xs), "min": xs[0], "q1": q1, "q3": q3, "n": len(xs)}
