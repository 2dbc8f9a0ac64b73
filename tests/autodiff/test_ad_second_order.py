"""Second derivatives: gradgradcheck, and torch's double backward as the oracle."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from ad_op_table import OPS
from ad_support import AD, double_backward_against_torch, first_tensor, ad_leaves, generators

SECOND = [op for op in OPS if op.second]
_ids = [op.name for op in SECOND]


@pytest.mark.parametrize("op", SECOND, ids=_ids)
@given(data=st.data())
def test_gradgradcheck(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    inputs = ad_leaves(xs)
    assert ad.gradgradcheck(lambda *a: first_tensor(op.fn(AD, *a, **kw)), inputs)


@pytest.mark.parametrize("op", SECOND, ids=_ids)
@given(data=st.data())
def test_double_backward_matches_torch(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    double_backward_against_torch(op.fn, xs, data.draw(generators(), label="seed"), **kw)
