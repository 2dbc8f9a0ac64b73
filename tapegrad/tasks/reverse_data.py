"""Digit sequences to reverse, generated on the fly.

A sequence of ``length`` digits d₁…d_L is written as one row of tokens

    d₁ d₂ … d_L  SEP  d_L … d₂ d₁          (2L + 1 tokens; SEP = 10)

The model reads the row without its last token and predicts each next token (teacher forcing);
only the L predictions after SEP are scored. At evaluation the first L + 1 tokens are given and
the answer is decoded greedily, one token at a time. Held-out sequences come from their own
generator, and training batches never contain one of them.
"""

from __future__ import annotations

import torch

SEP = 10
VOCAB = 11  # the digits 0-9 and SEP
MAX_LENGTH = 18  # a sequence as one base-10 int64 (for the held-out check) needs L <= 18


def with_answers(digits: torch.Tensor) -> torch.Tensor:
    """(N, L) digits -> (N, 2L + 1) rows ``digits, SEP, reversed digits``."""
    sep = torch.full((digits.shape[0], 1), SEP, dtype=digits.dtype, device=digits.device)
    return torch.cat([digits, sep, digits.flip(1)], 1)


def _codes(digits: torch.Tensor) -> torch.Tensor:
    """Each row of digits as one integer (base 10), to test membership quickly."""
    powers = 10 ** torch.arange(digits.shape[1] - 1, -1, -1, dtype=torch.int64)
    return (digits.to(torch.int64) * powers).sum(1)


def held_out(n: int, length: int, seed: int) -> torch.Tensor:
    """``n`` distinct evaluation rows (N, 2L + 1), the same for the same ``seed`` (at most
    half of the 10**L sequences, so that training has the other half)."""
    if not 1 <= n <= 10**length // 2:  # at least half of all sequences are left to train on
        raise ValueError(f"held_out: n must be in [1, 10**{length} / 2], got {n}")
    g = torch.Generator().manual_seed(seed)
    rows: list[torch.Tensor] = []
    seen: set[int] = set()
    while len(rows) < n:  # draw until n distinct ones (duplicates only matter for short L)
        digits = torch.randint(0, 10, (n, length), generator=g)
        for row, code in zip(digits, _codes(digits).tolist()):
            if code not in seen and len(rows) < n:
                seen.add(code)
                rows.append(row)
    return with_answers(torch.stack(rows))


def training_batch(
    batch_size: int, length: int, generator: torch.Generator, excluded: torch.Tensor
) -> torch.Tensor:
    """``batch_size`` fresh rows (N, 2L + 1); any whose digits equal a row of ``excluded`` (the
    held-out rows) is drawn again."""
    digits = torch.randint(0, 10, (batch_size, length), generator=generator)
    banned = _codes(excluded[:, :length])
    clash = torch.isin(_codes(digits), banned)
    while bool(clash.any()):
        digits[clash] = torch.randint(0, 10, (int(clash.sum()), length), generator=generator)
        clash = torch.isin(_codes(digits), banned)
    return with_answers(digits)
