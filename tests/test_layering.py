"""The layers talk through public names only: ``autodiff`` knows nothing of nn, viz or the app;
nn and viz import only autodiff's public API; viz does not import nn; the app sits on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import autodiff

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = set(autodiff.__all__) | {"errors"}  # autodiff.errors: the error classes, public


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                yield node.lineno, node.module, a.name


def _files(pkg: str):
    return sorted((ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", ["nn", "viz", "tapegrad"])
def test_only_public_autodiff_names_are_imported(pkg):
    bad = []
    for f in _files(pkg):
        for line, module, name in _imports(f):
            where = f"{f.relative_to(ROOT)}:{line}"
            if module == "autodiff" and name is not None and name not in PUBLIC:
                bad.append(f"{where}: from autodiff import {name}")
            elif module.startswith("autodiff.") and module != "autodiff.errors":
                bad.append(f"{where}: {module}")
        src = f.read_text()
        for private in ("._make(", "._requires_grad", "._hooks", "grad_mode.state"):
            if private in src:
                bad.append(f"{f.relative_to(ROOT)}: uses {private}")
    assert not bad, "private autodiff names used:\n" + "\n".join(bad)


def test_autodiff_knows_nothing_of_the_layers_above():
    bad = [
        f"{f.relative_to(ROOT)}:{line}: {module}"
        for f in _files("autodiff")
        for line, module, _ in _imports(f)
        if module.split(".")[0] in {"nn", "viz", "tapegrad"}
    ]
    assert not bad, "\n".join(bad)


def test_viz_does_not_import_nn():
    bad = [
        f"{f.relative_to(ROOT)}:{line}: {module}"
        for f in _files("viz")
        for line, module, _ in _imports(f)
        if module.split(".")[0] in {"nn", "tapegrad"}
    ]
    assert not bad, "\n".join(bad)


def test_libraries_do_not_import_the_app():
    bad = [
        f"{f.relative_to(ROOT)}:{line}: {module}"
        for pkg in ("nn", "viz", "autodiff")
        for f in _files(pkg)
        for line, module, _ in _imports(f)
        if module.split(".")[0] == "tapegrad"
    ]
    assert not bad, "\n".join(bad)


def test_no_library_code_runs_torch_autograd():
    allowed = {ROOT / "tapegrad" / "torch_twin.py"}  # the PyTorch twin of the comparisons
    bad = []
    for pkg in ("autodiff", "nn", "viz", "tapegrad"):
        for f in _files(pkg):
            if f in allowed:
                continue
            src = f.read_text()
            for needle in ("torch.autograd", "torch.enable_grad", "torch.set_grad_enabled(True"):
                if needle in src:
                    bad.append(f"{f.relative_to(ROOT)}: {needle}")
    assert not bad, "\n".join(bad)
