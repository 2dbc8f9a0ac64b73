"""Helpers shared by the reliability tests: run one snippet with autodiff and with torch."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import torch

import autodiff as ad

# Two namespaces with the few names the snippets need, so one snippet runs on both libraries.
AD = SimpleNamespace(
    name="ad",
    tensor=lambda v, rg=False: ad.tensor(v, dtype=torch.float64, requires_grad=rg),
    no_grad=ad.no_grad,
    grad=ad.grad,
    Error=ad.GraphError,
)
TORCH = SimpleNamespace(
    name="torch",
    tensor=lambda v, rg=False: torch.tensor(v, dtype=torch.float64, requires_grad=rg),
    no_grad=torch.no_grad,
    grad=torch.autograd.grad,
    Error=RuntimeError,
)


def raw(x: Any) -> Any:
    """A plain torch tensor (detached) from an autodiff or torch tensor, recursively."""
    if isinstance(x, ad.Tensor):
        return x.data.detach().clone()
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(raw(v) for v in x)
    return x


def run_both(fn: Callable[[SimpleNamespace], Any]) -> tuple[Any, Any]:
    """``fn(AD)`` and ``fn(TORCH)`` as plain torch values; exceptions are returned, not raised."""
    out = []
    for lib in (AD, TORCH):
        try:
            out.append(raw(fn(lib)))
        except Exception as e:  # noqa: BLE001 - the caller compares outcomes
            out.append(e)
    return out[0], out[1]


def assert_close_tree(a: Any, b: Any) -> None:
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close_tree(x, y)
    elif isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert a is not None and b is not None, (a, b)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    else:
        assert a == b
