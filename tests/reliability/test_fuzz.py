"""Fuzzed gradients: random op programs (rel_programs.py) run by autodiff and by torch.autograd.

Default: a modest number of examples. Long run on demand:
``TAPEGRAD_FUZZ_EXAMPLES=5000 python -m pytest tests/reliability/test_fuzz.py`` or ``-m slow``.
``TAPEGRAD_FUZZ_STATS=path`` appends the ops of every program run to ``path`` (one per line).
"""

from __future__ import annotations

import os
import threading

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rel_programs import (
    CATALOGUE,
    Program,
    constants,
    programs,
    run,
    run_second_order,
    single_op_programs,
)

EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "120"))
CORNER_EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_CORNERS", "150"))
SECOND_EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_SECOND", "40"))
STATS = os.environ.get("TAPEGRAD_FUZZ_STATS")
QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def check(prog: Program) -> None:
    if STATS:
        with open(STATS, "a") as f:
            f.write(" ".join(prog.ops()) + "\n")
    ours_out, ours_g = run(prog, "ad")
    ref_out, ref_g = run(prog, "torch")
    for o, r in zip(ours_out, ref_out):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-12)
    for i, (g, r) in enumerate(zip(ours_g, ref_g)):
        if g is None or r is None:  # unused input: None on one side, zeros at most on the other
            assert (
                g if g is not None else r if r is not None else torch.zeros(())
            ).abs().max() == 0, i
            continue
        torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9, msg=lambda m, i=i: f"input {i}: {m}")


@settings(max_examples=EXAMPLES, suppress_health_check=QUIET)
@given(programs())
def test_random_programs_match_torch(prog):
    check(prog)


def _outcome(prog: Program, lib: str) -> tuple:
    try:
        return run(prog, lib), None
    except Exception as e:  # noqa: BLE001 - compared with the other library's outcome
        return None, e


def check_corners(prog: Program) -> None:
    """Same numbers as torch (NaN where torch has NaN), or an error where torch raises one."""
    if STATS:
        with open(STATS, "a") as f:
            f.write(" ".join(prog.ops()) + "\n")
    ours, our_err = _outcome(prog, "ad")
    ref, ref_err = _outcome(prog, "torch")
    if ref_err is not None or our_err is not None:
        assert ref_err is not None and our_err is not None, (
            f"tapegrad {'raised ' + repr(our_err) if our_err else 'did not raise'}, "
            f"torch {'raised ' + repr(ref_err) if ref_err else 'did not raise'}"
        )
        return
    for o, r in zip(ours[0], ref[0]):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-12, equal_nan=True)
    for i, (g, r) in enumerate(zip(ours[1], ref[1])):
        if g is None or r is None:
            other = g if g is not None else r
            assert other is None or bool((other == 0).all()), i
            continue
        torch.testing.assert_close(
            g, r, rtol=1e-7, atol=1e-9, equal_nan=True, msg=lambda m, i=i: f"input {i}: {m}"
        )


@settings(max_examples=CORNER_EXAMPLES, suppress_health_check=QUIET)
@given(programs(corners=True))
def test_corner_programs_match_torch(prog):
    """Kinks, ties, ±inf/NaN inputs and upstream gradients, size-0 dims, dim=()."""
    check_corners(prog)


def check_second_order(prog: Program) -> None:
    if STATS:
        with open(STATS, "a") as f:
            f.write("second-order " + " ".join(prog.ops()) + "\n")
    ours = run_second_order(prog, "ad")
    ref = run_second_order(prog, "torch")
    for i, (g, r) in enumerate(zip(ours, ref)):
        if g is None or r is None:
            other = g if g is not None else r
            assert other is None or bool((other == 0).all()), i
            continue
        torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9, msg=lambda m, i=i: f"input {i}: {m}")


@settings(max_examples=SECOND_EXAMPLES, suppress_health_check=QUIET)
@given(programs(max_steps=5))
def test_second_order_of_random_programs_matches_torch(prog):
    """Hessian-vector products through create_graph=True, against torch's double backward."""
    check_second_order(prog)


MISUSE_EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_MISUSE", "60"))


@settings(max_examples=MISUSE_EXAMPLES, suppress_health_check=QUIET)
@given(programs())
def test_constants_mutated_after_use_fail_like_torch(prog):
    """Indices, masks, conditions and constant operands changed in place between forward and
    backward: tapegrad raises exactly where torch does (the VJP reads them)."""
    if not constants(prog):
        return
    ours, our_err = _outcome_with(prog, "ad", mutate_constants=True)
    ref, ref_err = _outcome_with(prog, "torch", mutate_constants=True)
    assert (our_err is None) == (ref_err is None), (our_err, ref_err)
    if our_err is not None:
        assert "modified by an in-place operation" in str(our_err)


def _outcome_with(prog: Program, lib: str, **kw) -> tuple:
    try:
        return run(prog, lib, **kw), None
    except Exception as e:  # noqa: BLE001 - compared with the other library's outcome
        return None, e


@settings(max_examples=MISUSE_EXAMPLES, suppress_health_check=QUIET)
@given(programs())
def test_hooks_mutating_their_gradient_match_torch_and_leak_nothing(prog):
    """A hook on every output doubles its gradient in place; the next, hook-free run of the
    same program must be unaffected (a shared root seed would carry the doubling over)."""
    check_hooks(prog)


def check_hooks(prog: Program) -> None:
    def double(g):
        g.mul_(2)

    for hook in (double, None):
        ours = _outcome_with(prog, "ad", root_hook=hook)
        ref = _outcome_with(prog, "torch", root_hook=hook)
        assert (ours[1] is None) == (ref[1] is None), (ours[1], ref[1])
        if ours[1] is None:
            for g, r in zip(ours[0][1], ref[0][1]):
                if g is not None and r is not None:
                    torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9)


@settings(max_examples=max(EXAMPLES // 10, 4), suppress_health_check=QUIET)
@given(st.lists(programs(max_steps=5), min_size=4, max_size=4))
def test_programs_in_concurrent_threads_match_torch(progs):
    """Four programs run (forward and backward) at once in four threads."""
    expected = [run(p, "torch") for p in progs]
    got: list = [None] * len(progs)
    errors: list = []
    start = threading.Barrier(len(progs))

    def work(i):
        try:
            start.wait()
            got[i] = run(progs[i], "ad")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(progs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (o, g), (ro, rg) in zip(got, expected):
        for a, b in zip(o + g, ro + rg):
            if a is not None and b is not None:
                torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("op", CATALOGUE)
def test_every_catalogue_op_alone_matches_torch(op):
    @settings(max_examples=3, suppress_health_check=QUIET)
    @given(single_op_programs(op))
    def inner(prog):
        assert op in prog.ops()
        check(prog)

    inner()


@pytest.mark.slow
@settings(max_examples=3000, suppress_health_check=QUIET)
@given(programs(max_steps=14, max_inputs=4))
def test_random_programs_match_torch_long(prog):
    check(prog)


@pytest.mark.parametrize("op", ["amax", "max_dim"])
def test_reducing_an_empty_tensor_along_a_non_empty_dim(op):  # found by the long fuzz run
    from rel_programs import Leaf, Step

    prog = Program(
        [
            Leaf(torch.zeros(0, 3, dtype=torch.float64)),
            Step(op, (0,), {"dim": 1, "keepdim": False}),
        ],
        (1,),
        (torch.zeros(0, dtype=torch.float64),),
        False,
    )
    check(prog)


def test_clamp_with_crossed_tensor_bounds():  # found by the fuzzer: hi wins, as in torch
    from rel_programs import Leaf, Step

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    prog = Program(
        [Leaf(t(0.5734)), Leaf(t(1.3148)), Leaf(t(1.2903)), Step("clamp_tensor", (0, 1, 2), {})],
        (3,),
        (t(0.3586),),
        False,
    )
    check(prog)


@pytest.mark.parametrize("x", [0.0, 1.0])
def test_bce_target_gradient_at_a_saturated_input(x):
    """Found by the fuzzer: at an input of exactly 0 or 1 the target's gradient is ±inf, as
    torch's (unclamped logs; the forward's clamp at -100 is the loss's own)."""
    from rel_programs import Leaf, Step

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    prog = Program(
        [Leaf(t(x)), Leaf(t(0.6637)), Step("bce", (0, 1), {"reduction": "mean", "squash": False})],
        (2,),
        (t(1.0),),
        False,
    )
    check_corners(prog)


@pytest.mark.parametrize("shape", [(), (3,)])
def test_t_of_fewer_than_two_dims_is_a_new_node(shape):
    """Found by the fuzzer: t() of a 0-d or 1-d tensor is a new recorded view (torch's
    TBackward0), so a hook on it is not the input's."""
    from rel_programs import Leaf, Step

    prog = Program(
        [Leaf(torch.full(shape, -0.4252, dtype=torch.float64)), Step("t", (0,), {})],
        (1,),
        (torch.full(shape, 2.0516, dtype=torch.float64),),
        False,
    )
    check_hooks(prog)


def test_batch_norm_of_an_empty_batch():
    """Found by the fuzzer: torch refuses only N·H·W == 1; empty gives x·w[0] + b[0]."""
    from rel_programs import Leaf, Step

    kw = {"affine": "", "training": True, "eps": 1e-5, "running_mean": None, "running_var": None}
    prog = Program(
        [Leaf(torch.zeros(0, 2, dtype=torch.float64)), Step("batch_norm", (0,), kw)],
        (1,),
        (torch.zeros(0, 2, dtype=torch.float64),),
        False,
    )
    check_corners(prog)


def test_max_pool_with_a_dilated_window_wider_than_the_input():
    """Found by the fuzzer: ceil_mode's output size."""
    from rel_programs import Leaf, Step

    kw = {"kernel_size": (1, 2), "stride": None, "padding": (0, 0), "ceil_mode": True}
    prog = Program(
        [
            Leaf(torch.tensor([[[1.5410, -0.2934]]], dtype=torch.float64)),
            Step("max_pool2d", (0,), {**kw, "dilation": (1, 2)}),
        ],
        (1,),
        (torch.tensor([[[-2.1788]]], dtype=torch.float64),),
        False,
    )
    check_corners(prog)


def test_sdpa_bool_mask_changed_after_use():
    """Found by the fuzzer: the backward reads no mask."""
    import autodiff as ad
    import nn.functional as nnF

    def outcome(lib):
        mask = torch.tensor([[False, True]])
        x = torch.tensor([[1.5410, -0.2934], [0.25, 1.0]], dtype=torch.float64)
        if lib == "ad":
            q = ad.tensor(x, requires_grad=True)
            out = nnF.scaled_dot_product_attention(q, q, q, attn_mask=mask)
        else:
            q = x.clone().requires_grad_(True)
            out = torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask)
        mask.copy_(mask.clone())  # same values, a new version
        try:
            out.sum().backward()
        except Exception as e:  # noqa: BLE001 - compared below
            return e
        return None

    ours, ref = outcome("ad"), outcome("torch")
    assert (ours is None) == (ref is None), (ours, ref)


def test_sdpa_with_an_empty_value_and_a_nan_query():
    """Found by the fuzzer: torch's Σ · 0 early return."""
    from rel_programs import Leaf, Step

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    prog = Program(
        [
            Leaf(t([[float("nan")]])),
            Leaf(t([[-0.2934]])),
            Leaf(torch.zeros(1, 0, dtype=torch.float64)),
            Step("sdpa", (0, 1, 2), {}),
        ],
        (3,),
        (torch.zeros(1, 0, dtype=torch.float64),),
        False,
    )
    check_corners(prog)


def test_sdpa_with_no_keys_and_an_infinite_query():
    """Found by the fuzzer: torch's Σ · 0 early return."""
    from rel_programs import Leaf, Step

    prog = Program(
        [
            Leaf(torch.tensor([[-float("inf")]], dtype=torch.float64)),
            Leaf(torch.zeros(0, 1, dtype=torch.float64)),
            Leaf(torch.zeros(0, 1, dtype=torch.float64)),
            Step("sdpa", (0, 1, 2), {}),
        ],
        (3,),
        (torch.tensor([[0.5507]], dtype=torch.float64),),
        False,
    )
    check_corners(prog)


def test_sdpa_of_an_empty_feature_dim():
    """Found by the fuzzer: the default scale 1/√0 = inf."""
    from rel_programs import Leaf, Step

    prog = Program(
        [
            Leaf(torch.zeros(1, 1, 0, dtype=torch.float64)),
            Leaf(torch.zeros(1, 0, 0, dtype=torch.float64)),
            Leaf(torch.zeros(1, 0, 0, dtype=torch.float64)),
            Step("sdpa", (0, 1, 2), {}),
        ],
        (3,),
        (torch.zeros(1, 1, 0, dtype=torch.float64),),
        False,
    )
    check_corners(prog)


def test_sdpa_masked_key_under_an_infinite_upstream_gradient():
    """Found by the fuzzer: 0 · inf = NaN."""
    from rel_programs import Leaf, Step

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    prog = Program(
        [
            Leaf(t([[1.5410]])),
            Leaf(t([[-0.2934], [-2.1788]])),
            Leaf(t([[0.5684], [-1.0845]])),
            Step("sdpa", (0, 1, 2), {"is_causal": True}),
        ],
        (3,),
        (t([[float("inf")]]),),
        False,
    )
    check_corners(prog)


def test_norm_p0_sends_no_gradient_upstream():
    """Found by the long corner run: norm(p=0) counts, so torch sends no gradient back at all;
    a zero gradient sent on would meet the -inf derivative of 2.5 / (-0) upstream as NaN."""
    from rel_programs import Leaf, Step

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    prog = Program(
        [
            Leaf(t([0.0, 0.0, 0.0])),
            Step("neg", (0,), {}),
            Step("rdiv_scalar", (1,), {"c": 2.5}),
            Step("reshape", (2,), {"shape": (1, 3)}),
            Leaf(t([[-1.3986], [0.6035], [0.8110]])),
            Step("mm", (3, 4), {}),
            Step("norm", (5,), {"p": 0, "dim": (), "keepdim": False}),
        ],
        (6,),
        (t(-0.0451),),
        False,
    )
    check_corners(prog)


def test_prod_of_several_zeros_under_an_infinite_gradient():
    """Found by the long corner run: with two or more zeros torch's first-order prod gradient is
    0 outright (every product of the others is 0), not g * 0 = NaN for an infinite g."""
    from rel_programs import Leaf, Step

    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    prog = Program(
        [
            Leaf(t([[-0.6065, -0.2613], [0.0, 0.0]])),
            Step("prod", (0,), {"dim": None, "keepdim": False}),
        ],
        (1,),
        (t(float("inf")),),
        False,
    )
    check_corners(prog)
