"""Thread safety: grad mode, scopes and anomaly mode are per thread; two threads training two
models at once get exactly what the same trainings get one after the other."""

from __future__ import annotations

import threading

import pytest
import torch

import autodiff as ad
from rel_course import make_step, one_thread  # noqa: F401 (fixture)

STEPS = 150


def _train(kind: str, seed: int, start: threading.Barrier | None = None) -> tuple[list, list]:
    step, params = make_step(kind, seed)
    if start is not None:
        start.wait()
    losses = [step(i).item() for i in range(STEPS)]
    return losses, params()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", ["nn", "ad"])
def test_two_threads_train_like_one_after_the_other(kind):
    alone = [_train(kind, seed) for seed in (1, 2)]
    together: dict = {}
    start = threading.Barrier(2)
    errors: list = []

    def worker(seed):
        try:
            together[seed] = _train(kind, seed, start)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for seed, (losses, params) in zip((1, 2), alone):
        t_losses, t_params = together[seed]
        assert t_losses == losses  # bit for bit
        for p, q in zip(params, t_params):
            assert torch.equal(p, q)
    assert alone[0][0] != alone[1][0]  # the two trainings really differ


def _in_other_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_no_grad_in_one_thread_does_not_reach_another():
    inside = threading.Event()
    done = threading.Event()
    seen: dict = {}

    def quiet():
        with ad.no_grad():
            seen["quiet_enabled"] = ad.is_grad_enabled()
            inside.set()
            done.wait(10)
            w = ad.ones(2, requires_grad=True)
            seen["quiet_records"] = (w * 2).requires_grad

    t = threading.Thread(target=quiet)
    t.start()
    assert inside.wait(10)
    # the other thread sits inside no_grad() right now
    w = ad.ones(2, requires_grad=True)
    y = (w * 3).sum()
    assert ad.is_grad_enabled() and y.requires_grad
    y.backward()
    done.set()
    t.join()
    assert w.grad.tolist() == [3.0, 3.0]
    assert seen == {"quiet_enabled": False, "quiet_records": False}


def test_thread_state_starts_fresh_in_a_new_thread():
    with ad.no_grad(), ad.scope("outer"), ad.detect_anomaly():
        state = _in_other_thread(
            lambda: (ad.is_grad_enabled(), ad.grad_mode.state.scope, ad.is_anomaly_enabled())
        )
        assert not ad.is_grad_enabled()
    assert state == (True, None, False)


def test_set_grad_enabled_is_per_thread():
    ad.set_grad_enabled(False)
    try:
        assert _in_other_thread(ad.is_grad_enabled) is True
        assert not ad.is_grad_enabled()
    finally:
        ad.set_grad_enabled(True)


def test_scopes_recorded_in_parallel_stay_with_their_thread():
    start = threading.Barrier(2)

    def record(tag):
        w = ad.ones(3, requires_grad=True)
        start.wait()
        nodes = []
        with ad.scope(tag):
            for _ in range(300):
                nodes.append((w * 2).grad_fn)
        return {n.scope for n in nodes}

    results: dict = {}
    threads = [
        threading.Thread(target=lambda t=t: results.__setitem__(t, record(t))) for t in ("a", "b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": {"a"}, "b": {"b"}}
