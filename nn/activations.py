"""Activation modules (no parameters), each one recorded node."""

from __future__ import annotations

from typing import Any

import autodiff as ad
from autodiff import Tensor

from . import functional as F
from .gelu import gelu
from .module import Module


class ReLU(Module):
    """max(x, 0)"""

    def forward(self, input: Any) -> Tensor:
        return ad.relu(input)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x"""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(
                f"LeakyReLU: negative_slope must be a number, got "
                f"{type(negative_slope).__name__} {negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)

    def forward(self, input: Any) -> Tensor:
        return ad.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """tanh(x)"""

    def forward(self, input: Any) -> Tensor:
        return ad.tanh(input)


class Sigmoid(Module):
    """1 / (1 + exp(-x))"""

    def forward(self, input: Any) -> Tensor:
        return ad.sigmoid(input)


class SiLU(Module):
    """x * sigmoid(x) (also called swish)"""

    def forward(self, input: Any) -> Tensor:
        return F.silu(input)


class Softplus(Module):
    """log(1 + exp(x)), a smooth ReLU"""

    def forward(self, input: Any) -> Tensor:
        return F.softplus(input)


class GELU(Module):
    """x Φ(x), Φ the standard normal CDF (``approximate="tanh"``: torch's tanh approximation)"""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Any) -> Tensor:
        return gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
