"""One source of truth for the op catalogue: docs/ops.md is generated, and every op is tested."""

import re

from op_catalogue import DOC, all_ops, coverage, differentiable, render


def test_docs_ops_md_is_current():
    assert DOC.read_text() == render(), (
        "docs/ops.md is stale: run `python tests/autodiff/op_catalogue.py` and commit it"
    )


def test_every_op_is_in_a_test_table():
    cover = coverage()
    missing = [
        f"{c.__module__}.{c.__name__}" for c in all_ops() if c not in cover and differentiable(c)
    ]
    assert not missing, (
        "ops that no test-table entry records (add a line to "
        "tests/autodiff/ad_op_table.py): " + ", ".join(missing)
    )


def test_every_op_has_a_formula_docstring():
    # the calculus-table line: the forward, then the gradient of an input ("dx = ...")
    bad = [
        c.__name__
        for c in all_ops()
        if differentiable(c) and not re.search(r"\bd\w+ = ", c.__doc__ or "")
    ]
    assert not bad, "ops without a VJP formula in their docstring: " + ", ".join(bad)
