"""Normalisation layers: ``BatchNorm1d``/``BatchNorm2d`` (running statistics, train/eval) and
``LayerNorm``, with torch's parameter and buffer names, so state dicts copy both ways."""

from __future__ import annotations

from typing import Any

import torch

from autodiff import ShapeError, Tensor, as_tensor

from . import init
from .module import Module
from .norm import batch_norm, layer_norm
from .parameter import Parameter


class _BatchNorm(Module):
    """y = w (x - μ) / sqrt(var + eps) + b per channel (dim 1): in training with the batch's
    statistics (then running_mean/var ← (1 - momentum) · running + momentum · batch, the variance
    unbiased; ``momentum=None`` is a cumulative average), in evaluation with the running ones.
    ``affine=False``: no w, b; ``bias=False``: no b."""

    _dims: tuple = ()
    _expects = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(
                f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}"
            )
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.has_bias = affine and bias
        if affine:
            self.weight = Parameter(torch.ones(num_features, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(torch.zeros(num_features, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer(
                "running_mean", torch.zeros(num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "running_var", torch.ones(num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        if x.ndim not in self._dims:
            raise ShapeError(
                f"{type(self).__name__}: expected {self._expects} input, got shape {tuple(x.shape)}"
            )
        use_batch = self.training or self.running_mean is None
        # the statistics and their count are updated by the op itself (a replay updates them)
        return batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_batch,
            self.momentum,
            self.eps,
            num_batches_tracked=self.num_batches_tracked,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.has_bias}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__ + "\n\n    Input (N, C) or (N, C, L)."
    _dims = (2, 3)
    _expects = "an (N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__ + "\n\n    Input (N, C, H, W)."
    _dims = (4,)
    _expects = "an (N, C, H, W)"


class LayerNorm(Module):
    """y = w (x - μ) / sqrt(var + eps) + b with μ, var over the last dims (``normalized_shape``);
    w = 1 and b = 0 initially (``elementwise_affine=False``: none; ``bias=False``: no b)."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = ns, eps
        self.elementwise_affine = elementwise_affine
        self.has_bias = elementwise_affine and bias
        if elementwise_affine:
            self.weight = Parameter(torch.ones(ns, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(torch.zeros(ns, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Any) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.has_bias}"
        )
