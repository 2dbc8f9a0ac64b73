"""Every op in the table: (a) gradcheck in float64, (b) values and gradients equal torch's."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ad_op_table import OPS
from ad_support import check_against_torch, generators, gradcheck_op

_ids = [op.name for op in OPS]


def test_op_names_are_unique():
    assert len(set(_ids)) == len(_ids)


@pytest.mark.parametrize("op", OPS, ids=_ids)
@given(data=st.data())
def test_gradcheck_float64(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    gradcheck_op(op.fn, xs, op.gc, **kw)


@pytest.mark.parametrize("op", OPS, ids=_ids)
@given(data=st.data())
def test_matches_torch_autograd(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    check_against_torch(op.fn, xs, data.draw(generators(), label="cotangent seed"), **kw)
