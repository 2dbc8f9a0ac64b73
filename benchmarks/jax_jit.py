"""jax.jit of the whole training step (forward, backward by ``jax.grad``, the momentum update).

Only when jax is installed (``pip install -e ".[bench]"``). Parameters and momentum buffers are
donated to the jitted step, so XLA updates them in place as the others do. Each step runs on the
calling thread and waits for its result: every column is timed as a synchronous step. XLA's CPU
runtime is asked for one intra-op thread (its thread pools are fixed when jax starts, so the
"default threads" pass runs it single-threaded too).
"""

from __future__ import annotations

import os

import torch

from .workloads import MLPSpec

NAME = "jax.jit"
COMPILES = True  # the first call traces and compiles with XLA
if "XLA_FLAGS" not in os.environ:  # before jax starts its CPU client
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
try:
    import jax
    import jax.numpy as jnp
    import numpy as np
except ImportError:  # the optional `bench` extra is not installed
    jax = None
AVAILABLE = jax is not None
if AVAILABLE:
    # Run each step on the calling thread, as the torch columns do: with async dispatch every
    # step hands work to XLA's worker thread and back, which on a busy machine waits for the
    # scheduler (milliseconds) instead of measuring the step.
    jax.config.update("jax_cpu_enable_async_dispatch", False)
WHY_NOT = None if AVAILABLE else 'jax is not installed (pip install -e ".[bench]")'


def _loss(params: list, x, y, relu: bool):
    h = x
    last = len(params) - 1
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i < last:
            h = jax.nn.relu(h) if relu else jnp.tanh(h)
    return jnp.mean((h - y) ** 2)


def _make_step(relu: bool, lr: float, mom: float):
    def step(params, bufs, x, y):
        loss, grads = jax.value_and_grad(_loss)(params, x, y, relu)
        # torch's momentum rule; bufs start at 0, so the first step's buffer is the gradient
        bufs = jax.tree_util.tree_map(lambda b, g: mom * b + g, bufs, grads)
        params = jax.tree_util.tree_map(lambda p, b: p - lr * b, params, bufs)
        return params, bufs, loss

    return jax.jit(step, donate_argnums=(0, 1))


def _device(device: str):
    kind = "gpu" if str(device).startswith("cuda") else "cpu"
    try:
        return jax.devices(kind)[0]
    except RuntimeError:
        raise RuntimeError(f"jax has no {kind} device here") from None


class Trainer:
    def __init__(self, spec: MLPSpec, weights: list, device: str) -> None:
        if not AVAILABLE:
            raise RuntimeError(WHY_NOT)
        self.dev = _device(device)
        put = lambda t: jax.device_put(np.asarray(t.detach().cpu().numpy()), self.dev)  # noqa: E731
        self.p = [(put(w), put(b)) for w, b in weights]
        self.bufs = [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in self.p]
        self._step = _make_step(spec.act == "relu", spec.lr, spec.momentum)

    def params(self) -> list[torch.Tensor]:
        return [torch.from_numpy(np.array(t)) for pair in self.p for t in pair]

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        put = lambda t: jax.device_put(np.asarray(t.cpu().numpy()), self.dev)  # noqa: E731
        return put(x), put(y)

    def step(self, batch: tuple):
        self.p, self.bufs, loss = self._step(self.p, self.bufs, *batch)
        return loss.block_until_ready()


def loss_value(loss) -> float:
    return float(loss)
