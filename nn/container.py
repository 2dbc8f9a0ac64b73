"""``Sequential``: modules applied one after the other."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator

from .module import Module


class Sequential(Module):
    """``Sequential(m1, m2, ...)``, ``Sequential([m1, m2])`` or ``Sequential(OrderedDict(...))``.

    Children are named ``'0'``, ``'1'``, ... so parameters read ``0.weight`` (``layers.0.weight``
    when the Sequential is the attribute ``layers`` of a bigger module).
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
            return
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        for m in modules:
            self.append(m)

    def forward(self, input: Any) -> Any:
        for m in self._modules.values():
            input = m(input)
        return input

    def append(self, module: Module) -> "Sequential":
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: {type(module).__name__} is not an nn.Module")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "Sequential":
        for m in modules:
            self.append(m)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(mods[idx])
        if not isinstance(idx, int):
            raise TypeError(f"Sequential indices must be int or slice, not {type(idx).__name__}")
        if not -len(mods) <= idx < len(mods):
            raise IndexError(f"Sequential index {idx} is out of range for {len(mods)} modules")
        return mods[idx]
