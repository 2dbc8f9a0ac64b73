"""``autodiff.Op``: the one class an operation is, read like a line of a calculus table.

    class Exp(Op):
        \"\"\"y = exp(x);  dx = g * y\"\"\"
        saves = ("out",)
        forward = staticmethod(torch.exp)

        def vjp(self, g, y):
            return g * y

    y = Exp.apply(x)          # records an Exp node when x requires grad

- ``forward(*raw_inputs, **fields)`` computes the output from raw torch tensors; ``replay``
  calls the very same function.
- ``args`` names the tensor inputs (default ``("x",)``); ``saves`` names what the VJP reads:
  inputs by name and ``"out"``; they arrive as ``vjp(g, *saved)`` in that order. ``reads``
  (optional) says which saved tensors each input's gradient needs, so that only those are kept
  and version-checked: ``reads = {"a": ("b",), "b": ("a",)}`` for a product.
- ``fields`` names the op's constants (``Op.apply(x, negative_slope=0.1)`` stores
  ``node.negative_slope``).
- ``vjp(g, *saved)`` returns one gradient per input (or a single one for one input; None where
  no gradient flows). ``self.needs_input_grad`` says which are wanted. The engine sums a
  broadcast gradient back to its input's shape and checks shape and dtype: VJPs never do.

A VJP is written with operators and methods that torch.Tensor and autodiff.Tensor share, so it
runs on raw tensors on the first-order path and is recorded (differentiable again) under
``create_graph=True``.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import is_not
from typing import TYPE_CHECKING, Any

import torch

from . import engine
from .errors import DeviceError, ShapeError
from .tensor_base import TensorBase


class _OpType(type):
    """Turns an op's declarations (``args``, ``saves``, ``reads``, ``fields``) into the plan the
    engine follows when recording: which input (or the output) each saved slot holds."""

    if TYPE_CHECKING:  # what every op class has (declared on ``Op``), for type checkers
        args: tuple
        saves: tuple
        reads: dict | None
        save_plan: tuple
        out_index: int
        save_users: tuple
        reads_cache: dict
        all_read: bool

    def __new__(mcs, name: str, bases: tuple, ns: dict) -> Any:
        ns.setdefault("__slots__", tuple(ns.get("fields", ())))
        # the name errors use: the function users call (``Add`` -> "add", ``LeakyReLU`` ->
        # "leaky_relu"); variants (``MulScalar``) name theirs explicitly
        ns.setdefault("opname", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower())
        cls = super().__new__(mcs, name, bases, ns)
        args, saves = cls.args, cls.saves
        for s in saves:
            if s != "out" and s not in args:
                raise TypeError(
                    f"{name}.saves names {s!r}, which is neither an input {args} nor 'out'"
                )
        cls.save_plan = tuple(-1 if s == "out" else args.index(s) for s in saves)
        cls.out_index = saves.index("out") if "out" in saves else -1
        if cls.reads is not None:
            users: dict = {s: [] for s in saves}
            for arg, needed in cls.reads.items():
                for s in needed:
                    users[s].append(args.index(arg))
            cls.save_users = tuple(tuple(users[s]) for s in saves)
            cls.reads_cache = {}  # which inputs want a gradient -> which saved slots are read
            # when every input wants a gradient, is every slot read? (then nothing to decide)
            cls.all_read = all(cls.save_users)
        return cls


_record = engine.record
_NONES = repeat(None)


class Op(engine.Node, metaclass=_OpType):
    """Base class of every differentiable operation (see the module docstring)."""

    __slots__ = ()
    args: tuple = ("x",)
    saves: tuple = ()
    reads: dict | None = None
    fields: tuple = ()
    opname: str = "op"
    save_plan: tuple = ()
    save_users: tuple = ()
    reads_cache: dict = {}

    forward: Any = None

    if TYPE_CHECKING:
        # An op's constants are slots named by its ``fields`` (``node.negative_slope``): made by
        # the metaclass, so type checkers learn of them here.
        def __getattr__(self, name: str) -> Any: ...

    @classmethod
    def apply(cls, *inputs: Any, **fields: Any) -> Any:
        """Compute ``forward`` on the inputs' data and record a node when one requires grad.

        Inputs are autodiff Tensors, or raw torch tensors for constants (indices, masks)."""
        try:
            if len(inputs) == 1:  # the common case, without building a list
                x = inputs[0].data
                out = cls.forward(x, **fields) if fields else cls.forward(x)
            else:
                # an explicit loop: a comprehension is a function call of its own (Python 3.11)
                raws = []
                for x in inputs:
                    raws.append(x.data if isinstance(x, TensorBase) else x)
                out = cls.forward(*raws, **fields) if fields else cls.forward(*raws)
        except (RuntimeError, TypeError, ValueError, IndexError) as e:
            raise explain(cls.opname, e, *inputs) from None
        return _record(cls, out, inputs, fields)

    @classmethod
    def reads_for(cls, edges: tuple) -> tuple:
        """Which saved slots the VJP will read, given which inputs want a gradient."""
        wanted = tuple(map(is_not, edges, _NONES))  # (e is not None for e in edges), in C
        needed = cls.reads_cache.get(wanted)
        if needed is None:  # first time for this pattern (at most 2^inputs of them)
            needed = cls.reads_cache[wanted] = tuple(
                any(wanted[i] for i in users) for users in cls.save_users
            )
        return needed


def shape_str(shape: Any) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def broadcast_mismatch(*shapes: Any) -> str:
    """Explain which dimension stops ``shapes`` from broadcasting together."""
    n = max(len(s) for s in shapes)
    for d in range(-1, -n - 1, -1):
        sizes = [s[d] for s in shapes if len(s) >= -d]
        if len({x for x in sizes if x != 1}) > 1:
            return (
                f"shapes {' and '.join(shape_str(s) for s in shapes)} cannot be broadcast "
                f"together: at dimension {d} the sizes are {' and '.join(map(str, sizes))} "
                "(sizes must match or be 1)"
            )
    return "shapes " + " and ".join(shape_str(s) for s in shapes) + " cannot be broadcast together"


def explain(op: str, err: BaseException, *operands: Any) -> BaseException:
    """Turn a torch failure inside ``op``'s forward into an error naming op, shapes and devices."""
    ts = [o.data if isinstance(o, TensorBase) else o for o in operands]
    ts = [t for t in ts if isinstance(t, torch.Tensor)]
    devices = {t.device for t in ts if t.dim() > 0}
    if len(devices) > 1:
        desc = " and ".join(f"{shape_str(t.shape)} on {t.device}" for t in ts)
        return DeviceError(
            f"{op}: operands are on different devices: {desc}. Move them to one "
            "device with .to(device) first."
        )
    if len(ts) >= 2:
        try:
            torch.broadcast_shapes(*(t.shape for t in ts))
        except RuntimeError:
            return ShapeError(f"{op}: {broadcast_mismatch(*(t.shape for t in ts))}")
    shapes = " and ".join(shape_str(t.shape) for t in ts)
    return type(err)(f"{op} (operand shapes {shapes}): {err}")
