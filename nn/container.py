"""Containers: ``Sequential`` (modules applied one after the other), ``ModuleList`` and
``ModuleDict`` (modules held by position or name, registered so their parameters are found)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping

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

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: {type(module).__name__} is not an nn.Module")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
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


class ModuleList(Module):
    """Modules held in a list: ``layers[0]``, ``append``, ``extend``, ``insert``, iteration.

    Children are named by position (``'0'``, ``'1'``, ...; renumbered after an insert or a
    delete, as in torch), so parameters read ``layers.0.weight``. It has no ``forward``.
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise TypeError(f"ModuleList indices must be int or slice, not {type(idx).__name__}")
        if not -n <= idx < n:
            raise IndexError(f"ModuleList index {idx} is out of range for {n} modules")
        return idx % n

    def _renumber(self, mods: list) -> None:
        for name in list(self._modules):
            del self._modules[name]
            self.__dict__.pop(name, None)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __getitem__(self, idx: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(self._index(idx)), _checked("ModuleList", module))

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[self._index(idx)]
        self._renumber(mods)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(list(self) + list(other))

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), _checked("ModuleList", module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(
                "ModuleList.extend: expects an iterable of modules, got the module "
                f"{type(modules).__name__}; use append"
            )
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, _checked("ModuleList", module))
        self._renumber(mods)


class ModuleDict(Module):
    """Modules held by name: ``heads['a']``, ``update``, ``keys``/``values``/``items``, ``in``.

    Names keep their insertion order; parameters read ``heads.a.weight``. It has no ``forward``.
    """

    def __init__(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r} (it has {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__} {key!r}")
        self.add_module(key, _checked("ModuleDict", module))

    def __delitem__(self, key: str) -> None:
        self[key]  # the KeyError naming the keys
        del self._modules[key]
        self.__dict__.pop(key, None)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()

    def pop(self, key: str) -> Module:
        m = self[key]
        del self[key]
        return m

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        if isinstance(modules, Module) and not isinstance(modules, ModuleDict):
            raise TypeError(
                f"ModuleDict.update: expects a mapping or (name, module) pairs, got "
                f"the module {type(modules).__name__}"
            )
        pairs = modules.items() if hasattr(modules, "items") else modules
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(
                    f"ModuleDict.update: element {i} should be a (name, module) "
                    f"pair, got {pair!r:.60}"
                )
            self[pair[0]] = pair[1]


def _checked(owner: str, module: Any) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: {type(module).__name__} is not an nn.Module")
    return module
