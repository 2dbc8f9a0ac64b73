"""detect_anomaly(): the first NaN/Inf in a forward output or a backward gradient raises, naming
the op and the user line that created it; off by default, per thread, and leak-free."""

from __future__ import annotations

import gc
import inspect
import threading

import pytest
import torch

import autodiff as ad
from autodiff import anomaly
from autodiff.anomaly import AnomalyError

HERE = __file__


def _line() -> int:
    return inspect.currentframe().f_back.f_lineno


def test_forward_nan_names_op_and_user_line():
    x = ad.tensor([1.0, -1.0, 4.0], requires_grad=True)
    with ad.detect_anomaly():
        y = x * 2.0
        with pytest.raises(AnomalyError, match=r"Log produced NaN.*shape \(3,\), 1 of 3") as e:
            line = _line() + 1
            y.log()
    msg = str(e.value)
    assert f'{HERE}", line {line}' in msg and "y.log()" in msg


def test_forward_inf_is_reported_too():
    x = ad.tensor([1000.0], dtype=torch.float32, requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(AnomalyError, match=r"Exp produced Inf"):
        x.exp()


def test_backward_inf_names_op_input_and_creation_line():
    x = ad.tensor([0.0, 4.0], requires_grad=True)
    w = ad.tensor([1.0, 1.0], requires_grad=True)
    with ad.detect_anomaly():
        line = _line() + 1
        y = (x.sqrt() * w).sum()  # forward is finite; d sqrt/dx at 0 is Inf
        with pytest.raises(
            AnomalyError,
            match=r"backward of Sqrt returned Inf in the gradient "
            r"for its input 0 \(of 1; shape \(2,\), 1 of 2",
        ) as e:
            y.backward()
    msg = str(e.value)
    assert f'{HERE}", line {line}' in msg and "y = (x.sqrt() * w).sum()" in msg


def test_backward_names_which_input_of_a_binary_op():
    a = ad.tensor([1.0, -1.0], requires_grad=True)
    b = ad.tensor([2.0, 2.0], requires_grad=True)
    with ad.detect_anomaly():
        y = (a**b).sum()  # forward finite; d/db = a**b * log(a) is NaN at a = -1
        with pytest.raises(
            AnomalyError,
            match=r"backward of Pow returned NaN in the gradient for "
            r"its input 1 \(of 2",
        ):
            y.backward()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torch_flags_the_same_op_and_output():
    a = torch.tensor([1.0, -1.0], requires_grad=True)
    b = torch.tensor([2.0, 2.0], requires_grad=True)
    with torch.autograd.detect_anomaly(), pytest.raises(RuntimeError, match=r"Pow.*1th output"):
        (a**b).sum().backward()


def test_nested_module_style_call_reports_chain_of_frames():
    def layer(x):
        return (x * 0.0).log()  # log(0) = -Inf

    def model(x):
        return layer(x) + 1.0

    x = ad.tensor([1.0], requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(AnomalyError) as e:
        model(x)
    msg = str(e.value)
    assert "in layer: return (x * 0.0).log()" in msg
    assert "called from" in msg and "in model: return layer(x) + 1.0" in msg


def test_off_by_default_and_restored_after_block_and_errors():
    assert not ad.is_anomaly_enabled()
    x = ad.tensor([-1.0], requires_grad=True)
    y = x.log()  # no error: NaN propagates as in torch
    assert torch.isnan(y.data).all()
    with pytest.raises(AnomalyError):
        with ad.detect_anomaly():
            assert ad.is_anomaly_enabled()
            x.log()
    assert not ad.is_anomaly_enabled()
    with ad.detect_anomaly():
        with ad.set_detect_anomaly(False):
            x.log()
        assert ad.is_anomaly_enabled()


def test_decorator_form():
    @ad.detect_anomaly()
    def f(x):
        return x.log()

    with pytest.raises(AnomalyError, match="Log produced NaN"):
        f(ad.tensor([-1.0], requires_grad=True))
    assert not ad.is_anomaly_enabled()


def test_graph_recorded_before_the_mode_reports_unknown_site():
    x = ad.tensor([0.0], requires_grad=True)
    y = x.sqrt().sum()
    with ad.detect_anomaly(), pytest.raises(AnomalyError, match="unknown place"):
        y.backward()


def test_no_grad_ops_are_not_checked():
    # Only recorded ops are checked: anomaly mode debugs gradients, not plain computations.
    with ad.detect_anomaly(), ad.no_grad():
        y = ad.tensor([-1.0], requires_grad=True).log()
    assert torch.isnan(y.data).all()


def test_finite_program_is_unchanged_under_anomaly_mode():
    gen = torch.Generator().manual_seed(0)
    W = ad.randn(3, 4, generator=gen, requires_grad=True)
    x = ad.randn(5, 4, generator=gen)
    (ad.linear(x, W).tanh().sum()).backward()
    g0 = W.grad.data.clone()
    W.grad = None
    with ad.detect_anomaly():
        (ad.linear(x, W).tanh().sum()).backward()
    torch.testing.assert_close(W.grad.data, g0, rtol=0, atol=0)


def test_anomaly_mode_is_per_thread():
    seen = {}

    def other():
        x = ad.tensor([-1.0], requires_grad=True)
        seen["enabled"] = ad.is_anomaly_enabled()
        seen["y"] = x.log()  # must not raise: the mode is on in the main thread only

    with ad.detect_anomaly():
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["enabled"] is False and torch.isnan(seen["y"].data).all()


def test_creation_sites_are_freed_with_the_graph():
    gc.collect()
    before = len(anomaly._sites)
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    with ad.detect_anomaly():
        y = (x * 2.0).exp().sum()
        assert len(anomaly._sites) == before + 3
        y.backward()
    del y
    assert len(anomaly._sites) == before  # freed by refcounting, no gc needed
