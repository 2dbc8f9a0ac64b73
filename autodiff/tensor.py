"""``autodiff.Tensor``: the tensor state and plumbing (``tensor_base.py``) plus the methods that
each op module declares next to its ops."""

from __future__ import annotations

from .ops.creation import CreationMethods
from .ops.elementwise import ElementwiseMethods
from .ops.indexing import IndexingMethods
from .ops.inplace import InplaceMethods
from .ops.linalg import LinalgMethods
from .ops.reductions import ReductionMethods
from .ops.shape import ShapeMethods
from .tensor_base import TensorBase


class Tensor(
    TensorBase,
    ElementwiseMethods,
    ReductionMethods,
    ShapeMethods,
    IndexingMethods,
    LinalgMethods,
    InplaceMethods,
    CreationMethods,
):
    """A recorded tensor. ``data`` is the underlying ``torch.Tensor`` (never requiring torch grad).

    ``Tensor(torch_tensor)`` wraps without copying; ``autodiff.tensor(values)`` copies.
    """

    __slots__ = ()
    __hash__ = object.__hash__  # identity: tensors are graph keys (``==`` is elementwise)
