"""GELU, x Φ(x) (Φ the standard normal CDF), exact or with torch's tanh approximation, and the
``Erf`` op its composite VJP is written with (so that every order works).

    exact:  y = x Φ(x),  Φ(x) = (1 + erf(x / √2)) / 2;
            y' = Φ(x) + x φ(x),  φ(x) = e^{-x²/2} / √(2π)
    tanh:   y = x (1 + tanh u) / 2,  u = √(2/π) (x + 0.044715 x³);
            y' = (1 + tanh u) / 2 + x (1 - tanh² u) √(2/π) (1 + 3 · 0.044715 x²) / 2
"""

from __future__ import annotations

import math
from typing import Any

import torch

import autodiff as ad
from autodiff import Tensor, as_tensor

from .conv import check_floats

_RAW = torch.Tensor
_gelu_backward = torch.ops.aten.gelu_backward.default
_K = math.sqrt(2.0 / math.pi)
_C = 0.044715


class Erf(ad.Op):
    """y = erf(x);  dx = g · 2/√π · e^{-x²}"""

    saves = ("x",)
    forward = staticmethod(torch.erf)

    def vjp(self, g, x):
        return g * ((-(x * x)).exp() * (2.0 / math.sqrt(math.pi)))


def erf(x: Any) -> Tensor:
    """The error function, 2/√π ∫₀ˣ e^{-t²} dt."""
    return Erf.apply(as_tensor(x))


def _gelu(x: torch.Tensor, approximate: str) -> torch.Tensor:
    return torch._C._nn.gelu(x, approximate=approximate)


class GELU(ad.Op):
    """y = x Φ(x) (or its tanh approximation);  dx = g y'(x) (see the module docstring)"""

    saves = ("x",)
    fields = ("approximate",)
    forward = staticmethod(_gelu)

    def vjp(self, g, x):
        if g.__class__ is _RAW:  # first order: torch's fused kernel
            return _gelu_backward(g, x, approximate=self.approximate)
        if self.approximate == "tanh":
            t = ((x + x * x * x * _C) * _K).tanh()
            slope = (t + 1) * 0.5 + x * (1 - t * t) * ((x * x * (3 * _C) + 1) * (_K * 0.5))
        else:
            cdf = (erf(x * (1 / math.sqrt(2.0))) + 1) * 0.5
            pdf = (x * x * -0.5).exp() * (1 / math.sqrt(2 * math.pi))
            slope = cdf + x * pdf
        return g * slope


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """x Φ(x); ``approximate="tanh"`` uses torch's tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = as_tensor(input)
    check_floats("gelu", input=x)
    return GELU.apply(x, approximate=approximate)
