"""``nn.Parameter``: a leaf Tensor that requires grad and registers itself on a Module."""

from __future__ import annotations

from typing import Any

import torch

from autodiff import Tensor


class Parameter(Tensor):
    """A trainable tensor: assigning one to a Module attribute registers it in ``parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = torch.empty(0)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: int) -> Any:
        return (Parameter, (self.data, self.requires_grad))
