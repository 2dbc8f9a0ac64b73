"""Where tapegrad deliberately differs from PyTorch: the one list (README, "Differences from
PyTorch", shows the same entries; tests that use another oracle name the key they rely on)."""

DIFFERENCES = {
    "var_std_empty_dim": (
        "`var`/`std` with `dim=()`: torch's forward reduces every dim but its backward does not "
        "agree with it (wrong or infinite gradients); tapegrad gives the gradient of the value it "
        "computed, the same as naming every dim."
    ),
    "float_promotion": (
        "Mixing float32 and float64 operands is an error naming the op, where torch promotes "
        "silently."
    ),
    "inplace_views": (
        "An in-place op on a view (or on a tensor something views) while recording is refused "
        "rather than rebased onto the base."
    ),
    "leaf_inplace": (
        "As in torch, an in-place change of a leaf that requires grad is refused while "
        "recording; tapegrad also refuses it under `autodiff.enable_grad()` inside "
        "`torch.no_grad()` (both grad modes must be on to record)."
    ),
    "unknown_torch_functions": (
        "A torch function tapegrad has no op for raises a TypeError naming it when an argument "
        "requires grad; without one it runs on the values."
    ),
    "logsumexp_empty_dim": (
        "`logsumexp(x, dim=())` reduces every dim (as `sum`); torch refuses it."
    ),
    "mha_is_causal": (
        "`nn.MultiheadAttention(..., is_causal=True)` works without an `attn_mask`; torch "
        "requires one."
    ),
    "maxpool_padding_window": (
        "`max_pool2d` refuses a dilated window that lies entirely in the padding; torch returns "
        "-inf with an index outside the input."
    ),
    "norm_p0_inf": (
        "`norm(p=±inf)` with an infinite upstream gradient gives 0 (not NaN) to the elements "
        "that are not the extreme."
    ),
    "clip_grad_norm_result": (
        "`nn.utils.clip_grad_norm_` returns the total norm as an autodiff Tensor (0 for no "
        "parameters)."
    ),
    "hook_on_leaf_output": (
        "A hook on a leaf that is also an output of `autodiff.grad` sees the output's own "
        "gradient too (torch passes that one by)."
    ),
    "compiled_tanh": (
        "`replay(..., compile=True)` hands the compiler tanh as expm1(2x) / (expm1(2x) + 2) "
        "(float32, float64): within 2.5 ulp of the exact value in float32, where torch's tanh is "
        "within 0.51; eager and the plain replay use torch's tanh."
    ),
}
