"""Loss modules. Course style: ``loss.forward(pred, target)``, then ``loss.backward()`` returns
the gradient w.r.t. ``pred``, so ``model.backward(loss.backward())`` trains the model."""

from __future__ import annotations

from typing import Any

from autodiff import Tensor

from . import functional as F
from .module import Module


class _Loss(Module):
    _course_inputs = 1  # backward() returns d loss / d prediction only
    # Where a single output column splits the two classes (None: judged from the targets, see
    # nn.train.default_threshold); a loss on logits declares 0 (sigmoid(0) = 1/2).
    decision_threshold: float | None = None

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', "
                f"got {reduction!r}"
            )
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Squared error (x - t)²."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class BCELoss(_Loss):
    """Binary cross entropy on probabilities (after a Sigmoid)."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on logits (Sigmoid fused in, numerically stable)."""

    decision_threshold = 0.0

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross entropy; targets are class indices or class probabilities."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.reduction)
