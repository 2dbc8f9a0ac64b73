"""Tensor factories mirroring torch's (``requires_grad=`` makes a leaf that collects ``.grad``)."""

from __future__ import annotations

from typing import Any

import torch

from .tensor import Tensor


def _leaf(data: torch.Tensor, requires_grad: bool) -> Tensor:
    return Tensor(data, requires_grad=requires_grad)


def tensor(
    data: Any, *, dtype: torch.dtype | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """A new leaf holding a copy of ``data`` (nested lists, numbers, NumPy or torch arrays)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, torch.Tensor):
        t = data.detach().clone().to(dtype=dtype, device=device)
    else:
        t = torch.tensor(data, dtype=dtype, device=device)
    return _leaf(t, requires_grad)


def zeros(
    *size: Any, dtype: torch.dtype | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _leaf(torch.zeros(*size, dtype=dtype, device=device), requires_grad)


def ones(
    *size: Any, dtype: torch.dtype | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _leaf(torch.ones(*size, dtype=dtype, device=device), requires_grad)


def full(
    size: Any,
    fill_value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    return _leaf(torch.full(size, fill_value, dtype=dtype, device=device), requires_grad)


def empty(
    *size: Any, dtype: torch.dtype | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _leaf(torch.empty(*size, dtype=dtype, device=device), requires_grad)


def eye(
    n: int,
    m: int | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    return _leaf(torch.eye(n, n if m is None else m, dtype=dtype, device=device), requires_grad)


def randn(
    *size: Any,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal samples (``generator`` for reproducibility)."""
    return _leaf(torch.randn(*size, generator=generator, dtype=dtype, device=device), requires_grad)


def rand(
    *size: Any,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples in [0, 1) (``generator`` for reproducibility)."""
    return _leaf(torch.rand(*size, generator=generator, dtype=dtype, device=device), requires_grad)


def arange(
    *args: Any, dtype: torch.dtype | None = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _leaf(torch.arange(*args, dtype=dtype, device=device), requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    return _leaf(torch.linspace(start, end, steps, dtype=dtype, device=device), requires_grad)


def _like(fn: Any) -> Any:
    def like(
        x: Any,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
        requires_grad: bool = False,
        **kw: Any,
    ) -> Tensor:
        base = x.data if isinstance(x, Tensor) else x
        return _leaf(fn(base, dtype=dtype, device=device, **kw), requires_grad)

    like.__name__ = fn.__name__
    like.__doc__ = f"Like torch.{fn.__name__}: same shape (and by default dtype/device) as ``x``."
    return like


zeros_like = _like(torch.zeros_like)
ones_like = _like(torch.ones_like)
randn_like = _like(torch.randn_like)
rand_like = _like(torch.rand_like)
empty_like = _like(torch.empty_like)


def full_like(
    x: Any,
    fill_value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    base = x.data if isinstance(x, Tensor) else x
    return _leaf(torch.full_like(base, fill_value, dtype=dtype, device=device), requires_grad)


def from_numpy(array: Any) -> Tensor:
    """A leaf sharing memory with the NumPy ``array`` (changes to one show in the other), as
    torch.from_numpy."""
    return _leaf(torch.from_numpy(array), False)


def manual_seed(seed: int) -> torch.Generator:
    """Seed the generator that ``randn``, ``rand``, ``*_like`` and nn's initialisers draw from
    (torch's default generator, so ``torch.manual_seed`` is the same call); returns it."""
    return torch.manual_seed(seed)
