"""``autodiff.grad``: gradients of outputs w.r.t. chosen inputs, without touching ``.grad``."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from . import engine
from .errors import GraphError
from .tensor import Tensor


def _as_list(x: Any) -> list:
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple:
    """Return ``(d outputs / d input for input in inputs)`` as a tuple of Tensors.

    ``grad_outputs`` are the vectors of the vector-Jacobian products (may be omitted for scalar
    outputs). With ``create_graph=True`` the results are recorded, so they can be differentiated
    again (Hessian-vector products, gradient penalties). Leaves' ``.grad`` is left alone.
    """
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    if not outs:
        raise ValueError("grad: outputs must not be empty")
    for x in ins:
        if not isinstance(x, Tensor):
            raise TypeError(f"grad: inputs must be autodiff Tensors, got {type(x).__name__}")
        if not x.requires_grad:
            raise GraphError(
                f"grad: an input (shape {tuple(x.shape)}) does not require grad, so "
                "no gradient can be computed for it."
            )
    if grad_outputs is None:
        gos: list = [None] * len(outs)
    else:
        single = isinstance(grad_outputs, (Tensor, torch.Tensor))
        gos = [grad_outputs] if single else list(grad_outputs)
        if len(gos) != len(outs):
            raise ValueError(f"grad: got {len(gos)} grad_outputs for {len(outs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    roots, root_grads = [], []
    for o, g in zip(outs, gos):
        engine.check_differentiable(o, "grad")
        roots.append(o)
        root_grads.append(engine.root_grad(o, g, create_graph))
    return engine.run_backward(
        roots, root_grads, retain_graph, create_graph, inputs=ins, allow_unused=allow_unused
    )
