"""A small transformer that learns to reverse digit sequences (format: ``reverse_data``).

    tokens (B, T) -> tok Embedding(11, 64) + pos Embedding(2L, 64)
                  -> 2 x Block:  x + MultiheadAttention(LayerNorm(x)), causal mask, 4 heads
                                 x + Linear(256, 64)(GELU(Linear(64, 256)(LayerNorm(x))))
                  -> LayerNorm -> Linear(64, 11)       next-token logits (B, T, 11)

Trained with teacher forcing on fresh batches (cross entropy on the L answer positions), Adam
with a cosine-decaying learning rate per epoch (an epoch is ``n_train`` sequences); evaluated by
greedy decoding: the share of held-out sequences whose L decoded digits are all right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

import autodiff as ad
import nn
from nn.train import History

from ..presets import ConfigError, TrainConfig
from . import reverse_data
from .common import check_common, seeded, sub_seeds
from .loop import train_epochs


@dataclass
class ReverseConfig:
    """One reverse run (reproducible from ``seed``)."""

    length: int = 8  # digits per sequence
    d_model: int = 64
    heads: int = 4
    blocks: int = 2
    epochs: int = 20
    n_train: int = 1280  # sequences per epoch (fresh ones every epoch): 20 steps of 64
    n_test: int = 1000  # held-out sequences
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def replace(self, **changes: Any) -> ReverseConfig:
        return dataclasses.replace(self, **changes)

    def check(self) -> ReverseConfig:
        check_common(self)
        TrainConfig(n_train=self.n_train, n_test=self.n_test).check()  # their ranges, messages
        if not 1 <= self.length <= reverse_data.MAX_LENGTH:
            raise ConfigError(
                "length",
                f"invalid length {self.length!r}; accepted: an integer "
                f"in [1, {reverse_data.MAX_LENGTH}]",
            )
        if self.n_test > 10**self.length // 2:
            raise ConfigError(
                "n_test",
                f"invalid n_test {self.n_test}; accepted: at most half "
                f"of the 10**{self.length} sequences",
            )
        return self


Config = ReverseConfig  # the name command.py and seeds.py look up in each task module


def causal_mask(t: int, device: Any = None) -> torch.Tensor:
    """(t, t) booleans, True above the diagonal: position i may not attend to j > i."""
    return torch.ones(t, t, dtype=torch.bool, device=device).triu(1)


class BlockLayout:
    """Pre-LayerNorm transformer block: causal self-attention, then a GELU MLP, each residual.

    Written once for two layer libraries: ``Block`` takes its layers from tapegrad's ``nn``, the
    torch twin's from ``torch.nn`` (same names, so the same state_dict keys).
    """

    lib: Any = nn

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        lib = self.lib
        self.ln1 = lib.LayerNorm(d_model)
        self.attn = lib.MultiheadAttention(d_model, heads, batch_first=True)
        self.ln2 = lib.LayerNorm(d_model)
        self.mlp = lib.Sequential(
            lib.Linear(d_model, 4 * d_model), lib.GELU(), lib.Linear(4 * d_model, d_model)
        )

    def forward(self, x: Any) -> Any:
        h = self.ln1(x)
        mask = causal_mask(h.shape[1], h.device)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TransformerLayout:
    """Token and position embeddings, ``blocks`` Blocks, a final LayerNorm and the output head
    (``lib`` and ``block`` name the layer library and block class, as in ``BlockLayout``)."""

    lib: Any = nn
    block: Any = None

    def __init__(self, cfg: ReverseConfig) -> None:
        super().__init__()
        lib, d = self.lib, cfg.d_model
        self.tok = lib.Embedding(reverse_data.VOCAB, d)
        self.pos = lib.Embedding(2 * cfg.length, d)
        # Direct children block0, block1, ... (not one Sequential): the graph picture at depth=1
        # then draws each block as a box.
        self.n_blocks = cfg.blocks
        for i in range(cfg.blocks):
            setattr(self, f"block{i}", self.block(d, cfg.heads))
        self.ln_f = lib.LayerNorm(d)
        self.head = lib.Linear(d, reverse_data.VOCAB)

    def forward(self, tokens: Any) -> Any:
        tokens = tokens.data if isinstance(tokens, ad.Tensor) else tokens
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        for i in range(self.n_blocks):
            x = getattr(self, f"block{i}")(x)
        return self.head(self.ln_f(x))


# nn.Module takes the forward a class defines itself (it wraps it for the course interface), not
# one inherited from a plain mixin, hence the explicit ``forward =``.
class Block(BlockLayout, nn.Module):
    lib = nn
    forward = BlockLayout.forward


class ReverseTransformer(TransformerLayout, nn.Module):
    lib, block = nn, Block
    forward = TransformerLayout.forward


def loss_of(model: Any, inputs: Any, targets: Any) -> Any:
    """Cross entropy of the answer positions: the last L of the 2L predictions."""
    length = targets.shape[1]
    logits = model(inputs)[:, -length:]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def split(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (N, 2L + 1) -> model inputs (N, 2L) and answer targets (N, L)."""
    length = (rows.shape[1] - 1) // 2
    return rows[:, :-1], rows[:, length + 1 :]


def greedy_answers(model: Any, prompts: torch.Tensor, length: int) -> torch.Tensor:
    """Decode ``length`` tokens after each prompt (N, L + 1), each the argmax given the previous
    ones; returns them (N, L). Call under no_grad in eval mode."""
    tokens = prompts
    for _ in range(length):
        logits = model(tokens)
        nxt = logits.data[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, nxt], 1)
    return tokens[:, -length:]


def sequence_error(model: Any, rows: torch.Tensor, chunk: int = 1000) -> float:
    """Share (%) of rows whose greedily decoded answer has at least one wrong digit."""
    length = (rows.shape[1] - 1) // 2
    wrong = 0
    for i in range(0, rows.shape[0], chunk):
        part = rows[i : i + chunk]
        got = greedy_answers(model, part[:, : length + 1], length)
        wrong += int((got != part[:, length + 1 :]).any(1).sum())
    return 100.0 * wrong / max(rows.shape[0], 1)


@dataclass
class ReverseRun:
    """The outcome of :func:`run`: the trained model, its history and the held-out rows."""

    config: ReverseConfig
    model: Any
    history: History
    test: torch.Tensor
    optimizer: Any = field(repr=False, default=None)


def prepare(cfg: ReverseConfig) -> tuple:
    """Held-out rows, model, optimizer, scheduler and batch seed of a run."""
    cfg.check()
    data_seed, init_seed, batch_seed = sub_seeds(cfg.seed)
    test = reverse_data.held_out(cfg.n_test, cfg.length, data_seed).to(cfg.device)
    model = seeded(init_seed, lambda: ReverseTransformer(cfg))
    model.to(device=cfg.device, dtype=getattr(torch, cfg.dtype))
    opt = nn.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = nn.optim.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return test, model, opt, sched, batch_seed


def batches_of(
    cfg: ReverseConfig, test: torch.Tensor, batch_seed: int
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Epoch ``e``'s ``n_train`` fresh sequences as (inputs, targets) batches (raw tensors), drawn
    from a generator seeded by ``(batch_seed, e)``, none equal to a held-out one."""

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed((batch_seed * 1_000_003 + epoch) % 2**63)
        excluded = test.cpu()
        for i in range(0, cfg.n_train, cfg.batch_size):
            n = min(cfg.batch_size, cfg.n_train - i)
            rows = reverse_data.training_batch(n, cfg.length, g, excluded).to(cfg.device)
            yield split(rows)

    return batches


def evaluator(model: Any, test: torch.Tensor) -> Callable[[Any], tuple[float, float]]:
    """Greedy-decoding sequence error (%) of the epoch's last batch and of the held-out rows."""

    def evaluate(last: Any) -> tuple[float, float]:
        test_error = sequence_error(model, test)
        if last is None:
            return float("nan"), test_error
        inputs, targets = last
        rows = torch.cat([inputs, targets[:, -1:]], 1)
        return sequence_error(model, rows), test_error

    return evaluate


def run(
    cfg: ReverseConfig, progress: bool = False, on_epoch: Callable[[dict], None] | None = None
) -> ReverseRun:
    """Train one configuration; returns the model and its history."""
    test, model, opt, sched, batch_seed = prepare(cfg)
    history = train_epochs(
        model,
        opt,
        sched,
        cfg.epochs,
        batches_of(cfg, test, batch_seed),
        loss_of,
        evaluator(model, test),
        progress=progress,
        on_epoch=on_epoch,
    )
    return ReverseRun(cfg, model, history, test, opt)
