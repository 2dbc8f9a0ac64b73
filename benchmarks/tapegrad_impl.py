"""tapegrad: the network built with ``nn`` and trained with ``nn.optim``, as a user writes it.

Other modes of the same Trainer: ``"replay"`` runs the step through ``autodiff.replay`` (tape
recorded once, replayed as straight-line kernels; see tapegrad_replay.py); ``"compiled"`` replays
the whole step, optimizer included, compiled by torch.compile (tapegrad_compiled.py); ``"ops"``
(also the fallback when ``nn`` is missing) builds the network from raw autodiff ops (``ad.linear``,
``ad.tanh``, a hand-written momentum update), which isolates the cost of the nn layers.
"""

from __future__ import annotations

import torch

import autodiff as ad

from .workloads import MLPSpec

try:
    import nn
except ImportError:  # nn not available: fall back to raw ops
    nn = None

NAME = "tapegrad"
MODE = "nn" if nn is not None else "ops"


class Trainer:
    def __init__(self, spec: MLPSpec, weights: list, device: str, mode: str | None = None) -> None:
        self.mode = mode or MODE
        if self.mode in ("nn", "replay", "compiled"):
            layers = []
            for i, (w, b) in enumerate(weights):
                lin = nn.Linear(w.shape[1], w.shape[0], device=device)
                lin.weight.data.copy_(w)
                lin.bias.data.copy_(b)
                layers.append(lin)
                if i < len(weights) - 1:
                    layers.append(nn.ReLU() if spec.act == "relu" else nn.Tanh())
            self.model = nn.Sequential(*layers)
            self.loss_fn = nn.MSELoss()
            self.opt = nn.optim.SGD(self.model.parameters(), lr=spec.lr, momentum=spec.momentum)
            self.step = self._step_nn
            if self.mode == "replay":
                self._replayed = ad.replay(lambda x, y: self.loss_fn(self.model(x), y))
                self.step = self._step_replay
            elif self.mode == "compiled":
                self._replayed = ad.replay(
                    lambda x, y: self.loss_fn(self.model(x), y), optimizer=self.opt, compile=True
                )
                self.step = self._step_compiled
        else:
            self.layers = [
                (
                    ad.Tensor(w.to(device, copy=True), requires_grad=True),
                    ad.Tensor(b.to(device, copy=True), requires_grad=True),
                )
                for w, b in weights
            ]
            self.act = ad.relu if spec.act == "relu" else ad.tanh
            self.bufs: list = [None] * (2 * len(weights))
            self.lr, self.mom = spec.lr, spec.momentum
            self.step = self._step_ops

    def params(self) -> list[torch.Tensor]:
        if self.mode != "ops":
            return [p.data for p in self.model.parameters()]
        return [t.data for pair in self.layers for t in pair]

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        return ad.Tensor(x), ad.Tensor(y)

    def _step_nn(self, batch: tuple) -> ad.Tensor:
        x, y = batch
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def _step_replay(self, batch: tuple) -> ad.Tensor:
        x, y = batch
        self.opt.zero_grad()
        loss = self._replayed(x, y)  # forward + backward from the tape recorded at the first call
        self.opt.step()
        return loss

    def _step_compiled(self, batch: tuple) -> ad.Tensor:
        return self._replayed(*batch)  # forward, backward, update and zero_grad in one call

    def why_not_compiled(self) -> str | None:
        """Why the compiled mode runs the plain replay instead (None: it is compiled)."""
        if self.mode != "compiled":
            return None
        for plan in self._replayed._plans.values():
            if plan.compiled is False or plan.compiled is None:
                return "the step was not compiled (see the warning above)"
            if plan.compiled.failed:
                return plan.compiled.failed
        return None

    def _step_ops(self, batch: tuple) -> ad.Tensor:
        x, y = batch
        params = [t for pair in self.layers for t in pair]
        for p in params:
            p.grad = None
        h = x
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            h = ad.linear(h, w, b)
            if i < last:
                h = self.act(h)
        loss = ((h - y) ** 2).mean()
        loss.backward()
        for i, p in enumerate(params):  # torch's momentum rule; buf = g at the first step
            g = p.grad.data
            buf = self.bufs[i]
            if buf is None:
                buf = self.bufs[i] = g.clone()
            else:
                buf.mul_(self.mom).add_(g)
            p.data.add_(buf, alpha=-self.lr)
        return loss


def loss_value(loss: ad.Tensor) -> float:
    return loss.item()


# ---- deep chains: tanh and neg alternating, then a sum ------------------------------------------
def chain_leaf(raw: torch.Tensor) -> ad.Tensor:
    return ad.Tensor(raw.clone(), requires_grad=True)


def chain_forward(leaf: ad.Tensor, n: int) -> ad.Tensor:
    y = leaf
    for i in range(n):
        y = y.tanh() if i % 2 == 0 else -y
    return y.sum()


def chain_backward(out: ad.Tensor, leaf: ad.Tensor) -> None:
    out.backward()


def chain_grad(leaf: ad.Tensor) -> torch.Tensor:
    return leaf.grad.data


def graph_saved_bytes(out: ad.Tensor) -> tuple[int, int]:
    """(nodes, bytes of the tensors the graph behind ``out`` still holds for its backward)."""
    seen, stack, storages = set(), [out.grad_fn], {}
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen or isinstance(n, ad.Tensor):
            continue
        seen.add(id(n))
        for s in _saved(n):
            raw = s.data if isinstance(s, ad.Tensor) else s
            if isinstance(raw, torch.Tensor):
                st = raw.untyped_storage()
                storages[st.data_ptr()] = st.nbytes()  # a storage saved twice counts once
        stack.extend(getattr(n, "inputs", None) or n.next_functions)
    return len(seen), sum(storages.values())


def _saved(node) -> tuple:
    """What a node still holds for its backward (nothing once released)."""
    if hasattr(type(node), "saved_tensors"):  # the public Node API
        try:
            return tuple(t for t in node.saved_tensors if t is not None)
        except ad.GraphError:  # released by backward
            return ()
    return (node.saved or ()) + ((node.out,) if node.out is not None else ())  # before it
