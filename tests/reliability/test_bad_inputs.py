"""The bad-input table: wrong inputs across the public API, each refused at the call that caused it
with the right exception type and a message that names the problem. Rows marked xfail are known
bugs (reported, not fixed here: the code belongs to another part of the project)."""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch

import autodiff as ad
from autodiff.errors import DeviceError, DTypeError, GradcheckError, GraphError, ShapeError


@dataclass(frozen=True)
class Row:
    name: str
    call: Callable[[], Any]
    exc: Any  # exception type (or tuple) that must be raised
    pattern: str  # regex the message must match (it names the problem)
    bug: str | None = None  # known bug: the row is xfail with this reason


def _x() -> ad.Tensor:
    return ad.randn(2, 3, requires_grad=True)


def _backward_twice() -> None:
    y = (_x() * _x()).sum()
    y.backward()
    y.backward()


class _BadFn(ad.Function):
    @staticmethod
    def forward(ctx, a):
        return [1.0]

    @staticmethod
    def backward(ctx, g):  # pragma: no cover - never reached
        return g


ENGINE = [
    # construction and requires_grad
    Row("tensor_of_str", lambda: ad.tensor("abc"), TypeError, r"str"),
    Row("tensor_ragged", lambda: ad.tensor([[1.0, 2.0], [3.0]]), ValueError, r"length 2.*got 1"),
    Row("tensor_of_object", lambda: ad.Tensor(object()), TypeError, r"Tensor.*object"),
    Row(
        "int_requires_grad",
        lambda: ad.tensor([1, 2], requires_grad=True),
        DTypeError,
        r"floating point.*torch.int64",
    ),
    Row(
        "bool_requires_grad",
        lambda: ad.tensor([True], requires_grad=True),
        DTypeError,
        r"floating point.*torch.bool",
    ),
    Row(
        "set_requires_grad_on_int",
        lambda: setattr(ad.arange(3), "requires_grad", True),
        DTypeError,
        r"floating point.*torch.int64",
    ),
    Row(
        "requires_grad_not_bool",
        lambda: ad.tensor([1.0], requires_grad="yes"),
        TypeError,
        r"requires_grad must be a bool.*str",
    ),
    Row(
        "requires_grad_int_flag",
        lambda: ad.zeros(2, requires_grad=1),
        TypeError,
        r"requires_grad must be a bool.*int 1",
    ),
    Row(
        "nonleaf_requires_grad_false",
        lambda: setattr(_x() * 2, "requires_grad", False),
        GraphError,
        r"only change requires_grad of leaf.*MulScalar.*detach",
    ),
    Row("zeros_negative", lambda: ad.zeros(-1), RuntimeError, r"non-negative"),
    Row("randn_str_size", lambda: ad.randn("a"), TypeError, r"randn"),
    Row("full_str_value", lambda: ad.full((2,), "a"), TypeError, r"fill_value.*str"),
    Row("eye_negative", lambda: ad.eye(-2), RuntimeError, r"n must be greater or equal to 0.*-2"),
    Row("arange_zero_step", lambda: ad.arange(0, 5, 0), RuntimeError, r"step must be nonzero"),
    # shapes
    Row(
        "add_shapes",
        lambda: _x() + ad.randn(4),
        ShapeError,
        r"add: shapes \(2, 3\) and \(4,\).*dimension -1.*3 and 4",
    ),
    Row(
        "mul_shapes",
        lambda: _x() * ad.randn(3, 2),
        ShapeError,
        r"mul: shapes \(2, 3\) and \(3, 2\)",
    ),
    Row("matmul_shapes", lambda: _x() @ ad.randn(4, 5), ShapeError, r"matmul.*\(2, 3\).*\(4, 5\)"),
    Row("matmul_0d", lambda: _x() @ ad.tensor(2.0), ShapeError, r"matmul.*at least 1 dim.*\(\)"),
    Row(
        "linear_weight",
        lambda: ad.linear(_x(), ad.randn(4, 5)),
        ShapeError,
        r"linear.*\(2, 3\).*\(4, 5\)",
    ),
    Row(
        "linear_bias",
        lambda: ad.linear(_x(), ad.randn(4, 3), ad.randn(5)),
        ShapeError,
        r"linear.*bias \(5,\)",
    ),
    Row("reshape_size", lambda: _x().reshape(4), ShapeError, r"reshape.*\(2, 3\).*\[4\]"),
    Row("view_noncontiguous", lambda: _x().T.view(6), ShapeError, r"view.*\(3, 2\).*reshape"),
    Row("expand_bad", lambda: _x().expand(4, 3), ShapeError, r"expand.*\(2, 3\).*\(4, 3\)"),
    Row(
        "broadcast_to_bad", lambda: ad.broadcast_to(_x(), (3, 3)), ShapeError, r"\(2, 3\).*\(3, 3\)"
    ),
    Row(
        "sum_to_size_bad", lambda: _x().sum_to_size(4), ShapeError, r"sum_to_size.*\(2, 3\).*\(4,\)"
    ),
    Row(
        "cat_shapes", lambda: ad.cat([_x(), ad.randn(3, 2)]), ShapeError, r"cat.*\(2, 3\), \(3, 2\)"
    ),
    Row("cat_empty", lambda: ad.cat([]), (TypeError, ValueError), r"cat.*non-empty"),
    Row("stack_shapes", lambda: ad.stack([_x(), ad.randn(3, 2)]), ShapeError, r"stack.*same shape"),
    Row("permute_length", lambda: _x().permute(0), ValueError, r"permute.*\(0,\).*2 dims"),
    Row("permute_repeat", lambda: _x().permute(0, 0), ValueError, r"permute.*\(0, 0\)"),
    # dtypes
    Row(
        "float32_plus_float64",
        lambda: _x() + ad.randn(3, dtype=torch.float64),
        DTypeError,
        r"add.*torch.float32 and torch.float64",
    ),
    Row("mean_of_int", lambda: ad.arange(6).mean(), TypeError, r"mean.*floating.*torch.int64"),
    Row(
        "linear_int_input",
        lambda: ad.linear(ad.ones(4, 2, dtype=torch.int64), ad.randn(3, 2)),
        DTypeError,
        r"linear.*torch.int64.*torch.float32",
    ),
    Row(
        "where_float_condition",
        lambda: ad.where(ad.ones(2, 3), _x(), _x()),
        TypeError,
        r"where: condition must be a bool.*torch.float32",
    ),
    Row("neg_of_bool", lambda: -ad.tensor([True]), RuntimeError, r"bool"),
    # wrong types
    Row("add_str", lambda: _x() + "a", TypeError, r"add.*str"),
    Row("add_none", lambda: _x() + None, TypeError, r"add.*None"),
    Row("pow_str", lambda: _x() ** "a", TypeError, r"pow.*str"),
    Row(
        "leaky_relu_str_slope", lambda: ad.leaky_relu(_x(), "a"), TypeError, r"negative_slope.*str"
    ),
    Row("index_with_str", lambda: _x()["a"], TypeError, r"indexing.*\(2, 3\).*'a'"),
    Row("hook_not_callable", lambda: _x().register_hook(3), TypeError, r"callable.*int"),
    Row(
        "custom_function_returns_list",
        lambda: _BadFn.apply(_x()),
        TypeError,
        r"_BadFn.forward must return a torch.Tensor.*list",
    ),
    # dims and indices
    Row("sum_dim_out_of_range", lambda: _x().sum(5), IndexError, r"sum: dim 5.*2 dims"),
    Row("sum_dim_str", lambda: _x().sum("a"), TypeError, r"sum.*dim.*'a'"),
    Row(
        "var_dim_twice",
        lambda: _x().std(dim=(0, 0)),
        ValueError,
        r"dim \(0, 0\) names a dimension twice",
    ),
    Row("softmax_dim", lambda: _x().softmax(3), IndexError, r"softmax: dim 3"),
    Row("max_dim", lambda: _x().max(5), IndexError, r"max: dim 5"),
    Row("transpose_dim", lambda: _x().transpose(0, 4), IndexError, r"transpose.*0, 4.*\(2, 3\)"),
    Row("squeeze_dim", lambda: _x().squeeze(4), IndexError, r"squeeze.*\(2, 3\)"),
    Row("flatten_dim", lambda: _x().flatten(3), IndexError, r"flatten.*\(2, 3\)"),
    Row("index_out_of_bounds", lambda: _x()[5], IndexError, r"\(2, 3\).*index 5.*size 2"),
    Row("index_float_tensor", lambda: _x()[ad.tensor([0.5])], IndexError, r"\(2, 3\).*long, int"),
    Row("index_too_many", lambda: _x()[0, 0, 0], IndexError, r"too many indices"),
    Row("max_of_empty", lambda: ad.zeros(0).max(), ValueError, r"empty tensor of shape \(0,\)"),
    Row("clamp_no_bounds", lambda: _x().clamp(), ValueError, r"clamp.*min and max"),
    # backward and grad
    Row(
        "backward_non_scalar",
        lambda: (_x() * 2).backward(),
        GraphError,
        r"implicitly only for scalar.*\(2, 3\)",
    ),
    Row(
        "backward_no_graph",
        lambda: ad.ones(2).sum().backward(),
        GraphError,
        r"does not require grad and has no grad_fn",
    ),
    Row("backward_twice", _backward_twice, GraphError, r"second time.*Mul.*retain_graph=True"),
    Row(
        "backward_grad_shape",
        lambda: (_x() * 2).backward(ad.ones(3)),
        ShapeError,
        r"grad has shape \(3,\).*\(2, 3\)",
    ),
    Row(
        "backward_grad_dtype",
        lambda: (_x() * 2).backward(ad.ones(2, 3, dtype=torch.float64)),
        DTypeError,
        r"torch.float64.*torch.float32",
    ),
    Row(
        "grad_unused_input",
        lambda: ad.grad((_x() * 2).sum(), [_x()], allow_unused=False),
        GraphError,
        r"not used.*allow_unused=True",
    ),
    Row(
        "grad_non_tensor_input",
        lambda: ad.grad((_x() * 2).sum(), [3.0]),
        TypeError,
        r"grad: inputs must be autodiff Tensors, got float",
    ),
    Row(
        "grad_outputs_count",
        lambda: ad.grad([(_x() * 2).sum()], [_x()], grad_outputs=[ad.ones(()), ad.ones(())]),
        ValueError,
        r"2 grad_outputs for 1 outputs",
    ),
    Row(
        "hook_on_constant",
        lambda: ad.ones(2).register_hook(lambda g: g),
        GraphError,
        r"hook.*does not require grad",
    ),
    Row("pickle_non_leaf", lambda: pickle.dumps(_x() * 2), GraphError, r"non-leaf.*detach"),
    Row("item_of_many", lambda: _x().item(), RuntimeError, r"6 elements"),
    Row("len_of_0d", lambda: len(ad.tensor(1.0)), TypeError, r"0-d"),
    Row(
        "gradcheck_int_inputs",
        lambda: ad.gradcheck(lambda a: a * 2, (ad.arange(3),)),
        ValueError,
        r"gradcheck: no input requires grad",
    ),
    Row(
        "gradcheck_not_a_sequence",
        lambda: ad.gradcheck(lambda a: a * 2, 3.0),
        TypeError,
        r"gradcheck.*float",
    ),
    Row(
        "gradcheck_wrong_vjp",
        lambda: ad.gradcheck(
            _wrong_double, (ad.randn(3, dtype=torch.float64, requires_grad=True),)
        ),
        GradcheckError,
        r"Jacobian mismatch.*analytic 3.*numerical 2",
    ),
    # devices
    Row("to_unknown_device", lambda: _x().to("tpu"), RuntimeError, r"to.*device.*tpu"),
    # in-place
    Row(
        "inplace_on_leaf",
        lambda: _x().add_(1.0),
        GraphError,
        r"add_: a leaf tensor that requires grad",
    ),
    Row(
        "inplace_on_view_of_recorded",
        lambda: (_x() * 1.0)[0].mul_(2.0),
        GraphError,
        r"mul_.*shares memory",
    ),
    Row(
        "inplace_shape_grows",
        lambda: ad.zeros(3).add_(ad.ones(2, 3)),
        ShapeError,
        r"add_.*\(2, 3\).*\(3,\)",
    ),
    Row(
        "inplace_float_into_int",
        lambda: ad.arange(3).add_(0.5),
        DTypeError,
        r"add_.*0.5.*torch.int64",
    ),
    Row(
        "inplace_mixed_floats",
        lambda: ad.zeros(3).mul_(ad.ones(3, dtype=torch.float64)),
        DTypeError,
        r"mul_.*torch.float32.*torch.float64",
    ),
    Row(
        "setitem_wrong_shape",
        lambda: ad.zeros(2, 3).__setitem__(0, ad.ones(4)),
        ShapeError,
        r"setitem.*\(4,\).*\(3,\)",
    ),
    Row(
        "stale_saved_tensor",
        lambda: _stale(),
        GraphError,
        r"Tanh's backward.*modified by an in-place.*version 1.*version 0",
    ),
]


def _wrong_double(a):
    # A "primitive" whose recorded gradient (3) disagrees with its values (2a).
    y = a * 3.0
    return ad.Tensor._make(a.data * 2.0, y.grad_fn)


def _stale():
    x = _x()
    y = x.tanh()
    z = (y * 2.0).sum()
    y.data.zero_()
    z.backward()


if torch.cuda.is_available():
    ENGINE.append(
        Row(
            "devices_differ", lambda: ad.ones(3) + ad.ones(3).cuda(), DeviceError, r"add.*cpu.*cuda"
        )
    )
else:
    ENGINE.append(
        Row(
            "no_cuda_device", lambda: ad.ones(3).to("cuda"), (RuntimeError, AssertionError), r"CUDA"
        )
    )


# ---- nn, optim, data, checkpoint ---------------------------------------------------------------
def _model():
    import nn

    g = torch.Generator().manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4, generator=g), nn.Tanh(), nn.Linear(4, 1, generator=g))


def _nn_rows() -> list[Row]:
    import nn
    from nn import data as D

    def opt(cls, **kw):
        return lambda: getattr(nn.optim, cls)(_model().parameters(), **kw)

    lin = nn.Linear(2, 3)
    return [
        Row(
            "linear_wrong_in_features",
            lambda: lin(ad.randn(4, 5)),
            ShapeError,
            r"linear.*\(4, 5\).*\(3, 2\)",
        ),
        Row(
            "linear_wrong_dtype",
            lambda: lin(ad.randn(4, 2, dtype=torch.float64)),
            DTypeError,
            r"torch.float64.*torch.float32",
        ),
        Row(
            "linear_int_input_nn",
            lambda: lin(ad.ones(4, 2, dtype=torch.int64)),
            DTypeError,
            r"torch.int64",
        ),
        Row("linear_negative_size", lambda: nn.Linear(-1, 3), ValueError, r"in_features.*-1"),
        Row("linear_float_size", lambda: nn.Linear(2.5, 3), ValueError, r"in_features.*2.5"),
        Row(
            "sequential_non_module",
            lambda: nn.Sequential(nn.Linear(2, 2), "relu"),
            TypeError,
            r"str is not an nn.Module",
        ),
        Row(
            "mse_shapes",
            lambda: nn.MSELoss()(ad.randn(4, 1), ad.randn(4, 2)),
            ShapeError,
            r"\(4, 1\).*\(4, 2\)",
        ),
        Row("loss_reduction", lambda: nn.MSELoss(reduction="avg"), ValueError, r"reduction.*'avg'"),
        Row(
            "cross_entropy_class",
            lambda: nn.CrossEntropyLoss()(ad.randn(4, 3), ad.tensor([0, 1, 2, 5])),
            IndexError,
            r"target class.*\[0, 2\].*5",
        ),
        Row("dropout_p", lambda: nn.Dropout(1.5), ValueError, r"Dropout.*1.5"),
        Row(
            "leaky_relu_slope_str",
            lambda: nn.LeakyReLU("a"),
            (TypeError, ValueError),
            r"LeakyReLU.*'a'",
        ),
        # optim
        Row("sgd_negative_lr", opt("SGD", lr=-0.1), ValueError, r"SGD.*learning rate -0.1"),
        Row("sgd_nan_lr", opt("SGD", lr=float("nan")), ValueError, r"SGD.*learning rate nan"),
        Row("sgd_inf_lr", opt("SGD", lr=float("inf")), ValueError, r"SGD.*learning rate inf"),
        Row("sgd_str_lr", opt("SGD", lr="0.1"), ValueError, r"SGD.*learning rate '0.1'"),
        Row(
            "sgd_negative_momentum",
            opt("SGD", lr=0.1, momentum=-0.5),
            ValueError,
            r"SGD.*momentum -0.5",
        ),
        Row("adam_beta_one", opt("Adam", betas=(1.0, 0.999)), ValueError, r"Adam.*beta.*1.0"),
        Row(
            "adam_beta_negative", opt("Adam", betas=(-0.1, 0.999)), ValueError, r"Adam.*beta.*-0.1"
        ),
        Row("adam_betas_not_pair", opt("Adam", betas=(0.9,)), ValueError, r"Adam.*pair.*\(0.9,\)"),
        Row("adam_negative_eps", opt("Adam", eps=-1e-8), ValueError, r"Adam.*epsilon"),
        Row("adam_nan_lr", opt("Adam", lr=float("nan")), ValueError, r"Adam.*learning rate nan"),
        Row(
            "optimizer_no_params",
            lambda: nn.optim.SGD([], lr=0.1),
            ValueError,
            r"SGD.*empty parameter list",
        ),
        Row(
            "optimizer_module_without_params",
            lambda: nn.optim.SGD(nn.Tanh().parameters(), lr=0.1),
            ValueError,
            r"SGD.*empty parameter list",
        ),
        Row(
            "optimizer_floats",
            lambda: nn.optim.SGD([1.0, 2.0], lr=0.1),
            TypeError,
            r"SGD.*Tensors.*float",
        ),
        Row(
            "optimizer_torch_tensors",
            lambda: nn.optim.SGD([torch.ones(2)], lr=0.1),
            TypeError,
            r"SGD.*autodiff Tensors.*Tensor",
        ),
        Row(
            "optimizer_single_tensor",
            lambda: nn.optim.SGD(ad.ones(2, requires_grad=True), lr=0.1),
            TypeError,
            r"single tensor",
        ),
        Row(
            "optimizer_non_leaf",
            lambda: nn.optim.SGD([ad.ones(2, requires_grad=True) * 2], lr=0.1),
            ValueError,
            r"non-leaf",
        ),
        # data
        Row("data_n_zero", lambda: D.disc_dataset(0), ValueError, r"disc_dataset.*n.*0"),
        Row("data_n_negative", lambda: D.disc_dataset(-5), ValueError, r"disc_dataset.*-5"),
        Row("data_n_float", lambda: D.disc_dataset(10.5), ValueError, r"disc_dataset.*10.5"),
        Row(
            "data_labels_kind",
            lambda: D.disc_dataset(10, labels="onehotx"),
            ValueError,
            r"labels must be one of.*'onehotx'",
        ),
        Row(
            "loader_batch_zero",
            lambda: D.BatchLoader(ad.ones(4, 2), ad.ones(4, 1), batch_size=0),
            ValueError,
            r"batch_size.*0",
        ),
        Row(
            "loader_lengths_differ",
            lambda: D.BatchLoader(ad.ones(4, 2), ad.ones(3, 1)),
            ValueError,
            r"4 samples.*3",
        ),
        Row("split_negative", lambda: D.disc_split(-1, 10), ValueError, r"-1"),
    ]


def _ckpt_rows(tmp: str) -> list[Row]:
    import nn
    from nn.checkpoint import CheckpointError, load_checkpoint

    def write(name: str, data: bytes) -> str:
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def truncated():
        from nn.checkpoint import save_checkpoint

        p = os.path.join(tmp, "trunc.pt")
        save_checkpoint(p, _model())
        b = open(p, "rb").read()
        return load_checkpoint(write("trunc.pt", b[: len(b) // 2]), _model())

    def mismatched():
        from nn.checkpoint import save_checkpoint

        p = os.path.join(tmp, "other.pt")
        save_checkpoint(p, nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)))
        return load_checkpoint(p, _model())

    def foreign():
        p = os.path.join(tmp, "foreign.pt")
        torch.save({"weights": torch.ones(2)}, p)
        return load_checkpoint(p, _model())

    def wrong_optimizer():
        from nn.checkpoint import save_checkpoint

        m = _model()
        p = os.path.join(tmp, "opt.pt")
        save_checkpoint(p, m, nn.optim.SGD(m.parameters(), lr=0.1))
        m2 = _model()
        return load_checkpoint(p, m2, nn.optim.SGD([m2[0].weight], lr=0.1))

    def full_state(**over):
        sd = {
            "0.weight": torch.ones(4, 2),
            "0.bias": torch.ones(4),
            "2.weight": torch.ones(1, 4),
            "2.bias": torch.ones(1),
        }
        sd.update(over)
        return {k: v for k, v in sd.items() if v is not None}

    return [
        Row(
            "checkpoint_garbage",
            lambda: load_checkpoint(write("bad.pt", b"not a checkpoint"), _model()),
            CheckpointError,
            r"bad.pt is not a readable checkpoint",
        ),
        Row("checkpoint_truncated", truncated, CheckpointError, r"trunc.pt is not a readable"),
        Row("checkpoint_foreign", foreign, CheckpointError, r"not a tapegrad checkpoint"),
        Row(
            "checkpoint_other_model",
            mismatched,
            CheckpointError,
            r"does not fit the model.*size mismatch for '0.weight'.*\(5, 2\).*\(4, 2\)",
        ),
        Row(
            "checkpoint_other_optimizer",
            wrong_optimizer,
            CheckpointError,
            r"does not fit the optimizer",
        ),
        Row(
            "checkpoint_missing_file",
            lambda: load_checkpoint(os.path.join(tmp, "none.pt"), _model()),
            FileNotFoundError,
            r"no such file.*none.pt",
        ),
        Row(
            "state_dict_shape",
            lambda: _model().load_state_dict(full_state(**{"0.weight": torch.ones(3, 3)})),
            RuntimeError,
            r"size mismatch for '0.weight'.*\(3, 3\).*\(4, 2\)",
        ),
        Row(
            "state_dict_missing_key",
            lambda: _model().load_state_dict(full_state(**{"2.bias": None})),
            RuntimeError,
            r"missing keys: \['2.bias'\]",
        ),
        Row(
            "state_dict_unexpected_key",
            lambda: _model().load_state_dict(full_state(extra=torch.ones(1))),
            RuntimeError,
            r"unexpected keys: \['extra'\]",
        ),
        Row(
            "state_dict_int_dtype",
            lambda: _model().load_state_dict(
                full_state(**{"0.weight": torch.ones(4, 2, dtype=torch.int64)})
            ),
            RuntimeError,
            r"'0.weight' has dtype torch.int64",
        ),
        Row(
            "state_dict_not_mapping",
            lambda: _model().load_state_dict([1, 2]),
            TypeError,
            r"load_state_dict.*mapping.*list",
        ),
        Row(
            "checkpoint_unpicklable_extra",
            lambda: nn.checkpoint.save_checkpoint(
                os.path.join(tmp, "x.pt"), _model(), note=lambda: 0
            ),
            (pickle.PicklingError, TypeError, AttributeError),
            r"pickle.*lambda",
        ),
    ]


# ---- viz and the CLI ---------------------------------------------------------------------------
def _viz_rows(tmp: str) -> list[Row]:
    try:
        import viz
    except ImportError:  # pragma: no cover - viz not there yet
        return []
    if not hasattr(viz, "draw_graph"):  # pragma: no cover - viz only partly there
        return []
    y = (ad.randn(3, 2, requires_grad=True).tanh()).sum()
    rows = [
        Row("draw_no_tensors", lambda: viz.draw_graph([]), ValueError, r"draw_graph: no tensors"),
        Row(
            "draw_bad_rankdir",
            lambda: viz.draw_graph(y, rankdir="XX"),
            ValueError,
            r"rankdir.*'XX'",
        ),
        Row("draw_negative_depth", lambda: viz.draw_graph(y, depth=-1), ValueError, r"depth.*-1"),
        Row(
            "draw_zero_max_nodes",
            lambda: viz.draw_graph(y, max_nodes=0),
            ValueError,
            r"max_nodes.*0",
        ),
        Row(
            "render_unknown_format",
            lambda: viz.render(y, os.path.join(tmp, "g.xyz")),
            ValueError,
            r"format.*g.xyz",
        ),
        Row("draw_not_a_tensor", lambda: viz.draw_graph(3.0), TypeError, r"draw_graph.*float"),
    ]
    return rows


def _cli(*argv: str) -> Callable[[], None]:
    def call():
        from tapegrad.cli import main

        rc = main(list(argv))
        if rc:
            raise SystemExit(rc)

    return call


def _cli_rows(tmp: str) -> list[Row]:
    try:
        import tapegrad.cli  # noqa: F401
    except ImportError:  # pragma: no cover
        return []
    small = ("--n-train", "8", "--n-test", "8", "--quiet", "--no-graph", "--out", tmp)
    return [
        Row("cli_no_command", _cli(), SystemExit, r"required"),
        Row("cli_unknown_command", _cli("bogus"), SystemExit, r"invalid choice: 'bogus'"),
        Row("cli_lr_nan", _cli("train", "--lr", "nan", *small), SystemExit, r"invalid lr nan"),
        Row("cli_lr_negative", _cli("train", "--lr", "-1", *small), SystemExit, r"invalid lr -1"),
        Row(
            "cli_lr_text",
            _cli("train", "--lr", "abc", *small),
            SystemExit,
            r"--lr: invalid float value: 'abc'",
        ),
        Row(
            "cli_epochs_negative",
            _cli("train", "--epochs", "-3", *small),
            SystemExit,
            r"invalid epochs -3",
        ),
        Row(
            "cli_epochs_zero",
            _cli("train", "--epochs", "0", *small),
            SystemExit,
            r"invalid epochs 0",
        ),
        Row(
            "cli_batch_zero",
            _cli("train", "--batch-size", "0", *small),
            SystemExit,
            r"invalid batch_size 0",
        ),
        Row(
            "cli_n_train_zero",
            _cli("train", "--n-train", "0", *small[2:]),
            SystemExit,
            r"invalid n_train 0",
        ),
        Row(
            "cli_unknown_preset",
            _cli("train", "--preset", "nope", *small),
            SystemExit,
            r"invalid choice: 'nope'",
        ),
        Row(
            "cli_unknown_optimizer",
            _cli("train", "--optimizer", "rmsprop", *small),
            SystemExit,
            r"invalid choice: 'rmsprop'",
        ),
        Row(
            "cli_seed_text",
            _cli("train", "--seed", "x", *small),
            SystemExit,
            r"--seed: invalid int value: 'x'",
        ),
        Row(
            "cli_momentum_negative",
            _cli("train", "--momentum", "-1", "--epochs", "1", *small),
            SystemExit,
            r"momentum -1",
        ),
        Row(
            "cli_every_negative",
            _cli("train", "--every", "-1", "--epochs", "1", *small),
            SystemExit,
            r"every.*-1",
        ),
        Row(
            "cli_unwritable_out",
            _cli(
                "train",
                "--epochs",
                "1",
                "--n-train",
                "8",
                "--n-test",
                "8",
                "--quiet",
                "--no-graph",
                "--out",
                "/proc/no/such/dir",
            ),
            SystemExit,
            r"/proc/no/such/dir",
        ),
        Row(
            "cli_experiments_seeds_zero",
            _cli("experiments", "--seeds", "0"),
            SystemExit,
            r"--seeds.*>= 1",
        ),
        Row(
            "cli_experiments_only",
            _cli("experiments", "--only", "xyz"),
            SystemExit,
            r"--only.*'xyz'",
        ),
        Row(
            "cli_experiments_preset",
            _cli("experiments", "--preset", "nope"),
            SystemExit,
            r"--preset: invalid choice: 'nope'",
        ),
        Row(
            "cli_graph_format",
            _cli("graph", "--format", "xyz"),
            SystemExit,
            r"invalid choice: 'xyz'",
        ),
        Row(
            "cli_graph_depth_negative",
            _cli("graph", "--depth", "-1", "--out", tmp),
            SystemExit,
            r"depth.*-1",
        ),
    ]


# ---- the test ----------------------------------------------------------------------------------
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")

_TMP = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tapegrad-bad-inputs-{os.getpid()}")


def _all_rows() -> list[Row]:
    rows = list(ENGINE)
    try:
        rows += _nn_rows() + _ckpt_rows(_TMP)
    except ImportError:  # pragma: no cover - nn not there yet
        pass
    return rows + _viz_rows(_TMP) + _cli_rows(_TMP)


ROWS = _all_rows()


@pytest.fixture(scope="module", autouse=True)
def _scratch():
    yield
    import shutil

    shutil.rmtree(_TMP, ignore_errors=True)


def _param(r: Row) -> Any:
    marks = [pytest.mark.xfail(reason=r.bug, strict=False)] if r.bug else []
    return pytest.param(r, id=r.name, marks=marks)


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_bad_input_is_refused_clearly(row, capsys):
    os.makedirs(_TMP, exist_ok=True)
    try:
        with pytest.raises(row.exc) as info:
            row.call()
    except Exception as e:  # a different exception: show it in the failure
        pytest.fail(f"expected {row.exc}, got {type(e).__name__}: {e}")
    err = info.value
    msg = str(err)
    if isinstance(err, SystemExit):  # the CLI: non-zero exit, message on stderr, no traceback
        out = capsys.readouterr()
        assert err.code not in (0, None)
        msg = out.err + out.out
        assert "Traceback" not in msg
    assert re.search(row.pattern, msg, re.S), f"message does not name the problem: {msg!r}"


def test_the_table_is_large_and_names_are_unique():
    names = [r.name for r in ROWS]
    assert len(names) == len(set(names))
    assert len(ENGINE) >= 60


# ---- failed operations change nothing ------------------------------------------------------------
def _params(model) -> list:
    return [p.data.clone() for p in model.parameters()]


def test_failed_load_state_dict_leaves_the_model_as_it_was():
    model = _model()
    before = _params(model)
    bad = dict(model.state_dict())
    bad = {k: torch.full_like(v, 7.0) for k, v in bad.items()}
    bad["2.bias"] = torch.ones(3)  # one bad entry among good ones
    with pytest.raises(RuntimeError, match="2.bias"):
        model.load_state_dict(bad)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model)))


def test_failed_checkpoint_load_leaves_model_and_optimizer_as_they_were(tmp_path):
    import nn
    from nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    src = _model()
    for p in src.parameters():
        p.data.fill_(3.0)
    save_checkpoint(tmp_path / "c.pt", src, nn.optim.SGD(src.parameters(), lr=0.1, momentum=0.9))
    model = _model()
    opt = nn.optim.Adam(model.parameters(), lr=0.01)  # a different optimizer: its load fails
    before = _params(model)
    opt_before = opt.state_dict()
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "c.pt", model, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model)))
    assert opt.state_dict() == opt_before


def test_failed_checkpoint_write_leaves_the_old_file_intact(tmp_path):
    import pickle

    from nn.checkpoint import save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(path, _model(), step=1)
    old = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda cannot be pickled
        save_checkpoint(path, _model(), note=lambda: 0)  # fails while pickling
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]  # no temporary file left behind


def test_failed_checkpoint_write_on_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    from nn import checkpoint

    path = tmp_path / "model.pt"
    checkpoint.save_checkpoint(path, _model())
    old = path.read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_checkpoint(path, _model())
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]


def test_refused_optimizer_step_inputs_do_not_touch_parameters():
    import nn

    model = _model()
    before = _params(model)
    for kw in ({"lr": -1.0}, {"lr": float("nan")}, {"lr": 0.1, "momentum": -1.0}):
        with pytest.raises(ValueError):
            nn.optim.SGD(model.parameters(), **kw)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model)))
