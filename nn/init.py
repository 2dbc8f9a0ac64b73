"""Weight initialisation, in place, with torch's formulas (and an optional ``torch.Generator``).

Each function fills ``tensor.data`` without recording anything and returns the tensor.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from autodiff import Tensor


def _raw(tensor: Any, fn: str) -> torch.Tensor:
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, torch.Tensor):
        return tensor
    raise TypeError(f"nn.init.{fn}: expected a Tensor, got {type(tensor).__name__}")


def _fans(t: torch.Tensor, fn: str) -> tuple[int, int]:
    if t.dim() < 2:
        raise ValueError(
            f"nn.init.{fn}: fan in and fan out need a tensor with at least 2 dims, "
            f"got shape {tuple(t.shape)}"
        )
    receptive = t[0][0].numel() if t.dim() > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for an activation (torch's table)."""
    if nonlinearity in ("linear", "identity", "sigmoid", "conv1d", "conv2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nn.init.calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def uniform_(
    tensor: Any, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None
) -> Any:
    """Fill with U(a, b)."""
    _raw(tensor, "uniform_").uniform_(a, b, generator=generator)
    return tensor


def normal_(
    tensor: Any, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None
) -> Any:
    """Fill with N(mean, std²)."""
    _raw(tensor, "normal_").normal_(mean, std, generator=generator)
    return tensor


def constant_(tensor: Any, val: float) -> Any:
    _raw(tensor, "constant_").fill_(val)
    return tensor


def zeros_(tensor: Any) -> Any:
    return constant_(tensor, 0.0)


def ones_(tensor: Any) -> Any:
    return constant_(tensor, 1.0)


def xavier_uniform_(
    tensor: Any, gain: float = 1.0, generator: torch.Generator | None = None
) -> Any:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = _fans(_raw(tensor, "xavier_uniform_"), "xavier_uniform_")
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Any, gain: float = 1.0, generator: torch.Generator | None = None) -> Any:
    """N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_raw(tensor, "xavier_normal_"), "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str, fn: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init.{fn}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(_raw(tensor, fn), fn)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Any:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015). nn.Linear uses a = sqrt(5)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Any:
    """N(0, std²) with std = gain / sqrt(fan)."""
    return normal_(
        tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_"), generator
    )
