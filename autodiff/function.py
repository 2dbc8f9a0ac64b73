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

from . import engine
from .tensor import Tensor


class FunctionCtx:
    """Scratch space shared by a Function's forward and backward."""

    def __init__(self) -> None:
        self.to_save: tuple = ()
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.to_save = tensors


class FunctionNode(engine.Node):
    """A node whose VJP is a user Function's ``backward``; its results are held to the same
    contract as a built-in op's (count, type, device here; shape and dtype by the engine)."""

    __slots__ = ("fn", "ctx", "map", "devices", "out_index")
    # the slots, declared for type checkers (set by ``Function.apply``)
    fn: type[Function]
    ctx: FunctionCtx
    map: tuple
    devices: tuple
    returns_foreign = True

    @property
    def name(self) -> str:
        return self.fn.__name__

    def vjp(self, g: Any, *saved: Any) -> tuple:
        ctx = self.ctx
        ctx.saved_tensors = tuple(
            saved[i] if i is not None else c for i, c in zip(self.map, ctx.to_save)
        )
        grads = self.fn.backward(ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != len(self.inputs):
            raise TypeError(
                f"{self.name}.backward returned {len(grads)} gradients but forward "
                f"took {len(self.inputs)} tensor inputs"
            )
        first_order = g.__class__ is torch.Tensor
        out: list = []
        for i, (gi, dev) in enumerate(zip(grads, self.devices)):
            if gi is None or self.inputs[i] is None:
                out.append(None)
                continue
            if isinstance(gi, Tensor):
                gi = gi.data if first_order else gi
            elif isinstance(gi, torch.Tensor):
                # a tensor the user may hold: the engine copies it before it becomes a .grad
                gi = gi if first_order else Tensor._make(gi)
            else:
                raise TypeError(
                    f"{self.name}.backward returned a {type(gi).__name__} as the "
                    f"gradient of input {i}; expected a tensor or None"
                )
            raw = gi if first_order else gi.data
            if raw.device != dev:
                raise engine.DeviceError(
                    f"{self.name}.backward returned a gradient on "
                    f"{raw.device} for input {i}, which is on {dev}"
                )
            out.append(gi)
        return tuple(out)

    def release(self) -> None:
        self.saved = None
        self.ctx.to_save = ()  # the tensors forward saved go with the node's, as torch frees them
        self.ctx.saved_tensors = ()


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
            raise TypeError(
                f"{cls.__name__}.forward must return a torch.Tensor, got {type(out).__name__}"
            )
        t = engine.record(FunctionNode, out, tensors)
        node = t.grad_fn
        if node is None:
            return t
        # Saved raw tensors that are an input's data are saved as that input (so that they are
        # differentiable under create_graph); the output is saved as the node's output.
        saved: list = []
        index: list = []
        node.out_index = -1
        for s in ctx.to_save:
            match = next((x for x in tensors if x.data is s), None)
            if match is not None:
                index.append(len(saved))
                saved.append(match)
            elif s is out:
                index.append(len(saved))
                node.out_index = len(saved)
                saved.append(out)
            elif isinstance(s, torch.Tensor):  # another tensor: saved and version-checked too
                index.append(len(saved))
                saved.append(s)
            else:
                index.append(None)
        node.saved = tuple(saved)
        node.versions = tuple(engine._version(x) for x in saved)
        node.fn = cls
        node.ctx = ctx
        node.map = tuple(index)
        node.devices = tuple(x.data.device for x in tensors)
        return t
