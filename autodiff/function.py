"""User-defined primitives: a forward on raw torch tensors and its hand-written VJP.

    class Cube(autodiff.Function):
        @staticmethod
        def forward(ctx, x):              # x is a torch.Tensor
            ctx.save_for_backward(x)
            return x ** 3
        @staticmethod
        def backward(ctx, g):             # dx = g * 3x²
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2

    y = Cube.apply(t)                      # records a node named "Cube"

``backward`` receives raw tensors on the first-order path. Under ``create_graph=True`` it
receives recorded Tensors (saved inputs and the output are reconnected to the graph), so a
backward written with operators and tensor methods is differentiable again for free.
"""
from __future__ import annotations

from typing import Any

import torch

from .engine import Node, record
from .tensor import Tensor


class FunctionCtx:
    """Scratch space shared by a Function's forward and backward."""

    def __init__(self) -> None:
        self.to_save: tuple = ()
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.to_save = tensors


class FunctionNode(Node):
    """A node whose VJP is a user Function's ``backward``."""

    __slots__ = ("fn", "ctx", "map")

    @property
    def name(self) -> str:
        return self.fn.__name__

    def vjp(self, g: Any, *saved: Any) -> tuple:
        ctx = self.ctx
        ctx.saved_tensors = tuple(saved[i] if i is not None else c
                                  for i, c in zip(self.map, ctx.to_save))
        grads = self.fn.backward(ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != len(self.parents):
            raise RuntimeError(f"{self.name}.backward returned {len(grads)} gradients but "
                               f"forward took {len(self.parents)} tensor inputs")
        return grads


class Function:
    """Base class for custom differentiable primitives (see the module docstring)."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Tensor:
        tensors = [a for a in args if isinstance(a, Tensor)]
        raw_args = [a.data if isinstance(a, Tensor) else a for a in args]
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(t.requires_grad for t in tensors)
        out = cls.forward(ctx, *raw_args)
        if isinstance(out, Tensor):
            out = out.data
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{cls.__name__}.forward must return a torch.Tensor, got {type(out).__name__}")
        # Saved raw tensors that are an input's data are saved as that input (so that they are
        # differentiable under create_graph); the output is saved as the node's output.
        saved: list = []
        index: list = []
        save_out = False
        for s in ctx.to_save:
            match = next((t for t in tensors if t.data is s), None)
            if match is not None:
                index.append(len(saved))
                saved.append(match)
            elif s is out:
                save_out = True
                index.append(-1)
            else:
                index.append(None)
        t = record(FunctionNode, out, tensors, tuple(saved), save_out=save_out)
        node = t.grad_fn
        if node is not None:
            node.fn = cls
            node.ctx = ctx
            node.map = tuple(len(saved) if i == -1 else i for i in index)
        return t
