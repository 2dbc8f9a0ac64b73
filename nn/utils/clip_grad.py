"""Gradient clipping in place, as ``torch.nn.utils``: rescale every ``.grad`` so that their joint
norm is at most ``max_norm``, or clamp each gradient element to ``[-clip_value, clip_value]``."""

from __future__ import annotations

from typing import Any, Iterable

import torch

import autodiff as ad


def _grads(parameters: Any) -> list:
    params = [parameters] if isinstance(parameters, ad.Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[ad.Tensor] | ad.Tensor,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> ad.Tensor:
    """Scale the gradients by ``min(1, max_norm / (total + 1e-6))``, where ``total`` is the
    ``norm_type``-norm of all gradients taken as one vector; returns ``total`` (before clipping).

    ``foreach`` is accepted for torch's signature (the update is one loop either way)."""
    grads = _grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return ad.tensor(0.0)
    with ad.no_grad():
        norms = [torch.linalg.vector_norm(g.data, norm_type) for g in grads]
        device = grads[0].data.device
        total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), norm_type)
        if error_if_nonfinite and not bool(total.isfinite()):
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"{total.item()}, so they cannot be clipped; set error_if_nonfinite=False to "
                "scale them anyway"
            )
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:  # in place: an optimizer holding these .grad tensors sees the change
            g.data.mul_(scale.to(g.data.device, g.data.dtype))
    return ad.Tensor(total)


def clip_grad_value_(
    parameters: Iterable[ad.Tensor] | ad.Tensor, clip_value: float, foreach: bool | None = None
) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    with ad.no_grad():
        for g in _grads(parameters):
            g.data.clamp_(-clip_value, clip_value)
