"""DistributedDataParallel and DistributedSampler.

Two gloo processes on 127.0.0.1 run every scenario in one spawn (starting processes costs
seconds); the single-process references are computed here, in the test process.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.distributed as dist

import autodiff as ad
import nn
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.data import BatchLoader, DistributedSampler
from nn.parallel import DistributedDataParallel as DDP
from nn.parallel import spawn
from nn.train import fit

F64 = torch.float64
STEPS, BATCH = 20, 16
SMALL = ["--epochs", "2", "--n-train", "64", "--n-test", "32", "--batch-size", "16", "--no-graph"]
CAP = 40  # float64 numbers per bucket in the first scenario


def _model(seed: int, device: str = "cpu") -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 8, generator=g, dtype=F64),
        nn.Tanh(),
        nn.Linear(8, 8, generator=g, dtype=F64),
        nn.Tanh(),
        nn.Linear(8, 1, generator=g, dtype=F64),
    ).to(device)


def _data(micro: int) -> list:
    """STEPS steps of ``micro`` micro-batches of BATCH points (seeded, the same everywhere)."""
    g = torch.Generator().manual_seed(7)
    x = torch.rand(STEPS, micro, BATCH, 2, generator=g, dtype=F64)
    return [(xs, (xs**2).sum(-1, keepdim=True)) for xs in x]


def _train(
    model: nn.Module,
    params: list,
    micro: int,
    part: slice,
    ddp: DDP | None = None,
    device: str = "cpu",
) -> list:
    """SGD with momentum; each step accumulates ``micro`` micro-batches (all but the last inside
    ``no_sync()`` when wrapped), each restricted to rows ``part`` (a rank's half)."""
    opt = nn.optim.SGD(params, lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    for xs, ys in _data(micro):
        opt.zero_grad()
        for m in range(micro):
            x, y = ad.Tensor(xs[m, part].to(device)), ad.Tensor(ys[m, part].to(device))
            last = m == micro - 1
            with ddp.no_sync() if ddp is not None and not last else _nothing():
                loss = loss_fn(model(x), y)
                with ad.no_grad():
                    model(x)  # an evaluation between forward and backward changes nothing
                loss.backward()
        opt.step()
    return [p.data.cpu().clone() for p in params]


class _nothing:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


class _TwoBranch(nn.Module):
    """``a`` always used; ``b`` only when asked; ``c`` never."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a = nn.Linear(2, 1, generator=g, dtype=F64)
        self.b = nn.Linear(2, 1, generator=g, dtype=F64)
        self.c = nn.Linear(2, 1, generator=g, dtype=F64)
        self.use_b = True

    def forward(self, x):
        return self.a(x) + self.b(x) if self.use_b else self.a(x)


class _Pair(nn.Module):
    """Returns two outputs; backward through the first leaves ``second`` without a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(2, 1, dtype=F64)
        self.second = nn.Linear(2, 1, dtype=F64)

    def forward(self, x):
        return self.first(x), self.second(x)


def _node_reaching(node, leaf):
    """The node whose inputs include ``leaf`` (public graph reading: ``next_functions``)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if any(p is leaf for p in n.next_functions):
            return n
        stack.extend(p for p in n.next_functions if p is not None and not isinstance(p, ad.Tensor))
    raise AssertionError("leaf not in the graph")


def _branch_input(rank: int) -> ad.Tensor:
    return ad.Tensor(torch.arange(6, dtype=F64).reshape(3, 2) + rank)


def _scenarios(folder: str, device: str = "cpu") -> dict:
    """Runs in each spawned process."""
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    out: dict = {}
    # A different initialisation per rank: the construction broadcast must replace it by rank 0's.
    model = _model(seed=100 + rank, device=device)
    ddp = DDP(model, bucket_cap_mb=CAP * 8 / 2**20)
    out["buckets"] = [b.names for b in ddp.buckets]
    out["synced"] = _train(ddp, list(ddp.parameters()), 1, part, ddp, device)
    out["launch_order"] = ddp.launch_order
    model = _model(seed=100 + rank, device=device)
    ddp = DDP(model)
    out["accumulated"] = _train(ddp, list(ddp.parameters()), 2, part, ddp, device)
    if rank == 0:
        save_checkpoint(f"{folder}/ddp.pt", ddp, config="ddp test")
    if device != "cpu":
        return out

    # fit(replay=True) on a DDP model: replay cannot run the averaging hooks, so it must fall back
    # (with a warning) rather than train the replicas apart. Each rank sees other samples.
    model = _model(seed=100 + rank)
    ddp = DDP(model)
    xs, ys = _data(1)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(
            ddp,
            nn.MSELoss(),
            nn.optim.SGD(ddp.parameters(), lr=0.1),
            (xs[0], ys[0]),
            epochs=2,
            batch_size=4,
            sampler=DistributedSampler(xs[0]),
            progress=False,
            replay=True,
        )
    out["replay"] = [p.data.clone() for p in model.parameters()]
    out["replay_warnings"] = [str(w.message) for w in caught]

    # tapegrad train as torchrun starts it (the group's environment is set): each rank its own
    # --out, to see that rank 1 writes nothing at all.
    from tapegrad import cli

    out["cli"] = cli.main(["train", "--out", f"{folder}/cli{rank}", "--quiet", *SMALL])

    # find_unused_parameters: rank 1 skips b; c is unused everywhere.
    two = _TwoBranch()
    two.use_b = rank == 0
    ddp = DDP(two, find_unused_parameters=True, bucket_cap_mb=1e-5)
    ddp(_branch_input(rank)).sum().backward()
    out["unused_grads"] = {
        n: None if p.grad is None else p.grad.data.clone() for n, p in two.named_parameters()
    }
    # The same without find_unused_parameters: refused at forward, on every rank (no hang).
    ddp = DDP(_TwoBranch())
    try:
        ddp.module.use_b = False
        ddp(_branch_input(rank))
    except RuntimeError as e:
        out["unused_error"] = str(e)
    # An output left out of the loss: the next forward says which parameter got no gradient.
    pair = DDP(_Pair(), bucket_cap_mb=1e-5)
    pair(_branch_input(rank))[0].sum().backward()
    try:
        pair(_branch_input(rank))
    except RuntimeError as e:
        out["no_grad_error"] = str(e)
    # Overlap: by the time the first layer's VJP runs, the last layer's bucket has been sent.
    model = _model(seed=1)
    ddp = DDP(model, bucket_cap_mb=1e-5)
    loss = ddp(_branch_input(rank)).sum()
    first = _node_reaching(loss.grad_fn, model[0].weight)
    before = ddp.comm_seconds
    sent: list = []
    first.register_hook(lambda grad_inputs, grad_output: sent.append(ddp.comm_seconds > before))
    loss.backward()
    out["sent_before_first_layer"] = sent
    # Different models on the ranks, and a model with nothing to train: refused at construction.
    errors = []
    for m in (nn.Linear(2, 3 + rank), nn.Linear(2, 3).requires_grad_(False)):
        try:
            DDP(m)
        except RuntimeError as e:
            errors.append(str(e))
    out["construction_errors"] = errors
    return out


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    return folder, spawn(_scenarios, 2, (str(folder),), timeout=60)


def _reference(micro: int, device: str = "cpu") -> list:
    model = _model(seed=100, device=device)
    return _train(model, list(model.parameters()), micro, slice(None), None, device)


@pytest.mark.parametrize("key, micro", [("synced", 1), ("accumulated", 2)])
def test_two_halves_match_one_process_on_the_whole_batch(ran, key, micro):
    _, (r0, r1) = ran
    ref = _reference(micro)
    start = [p.data for p in _model(seed=100).parameters()]
    for a, b, want, p0 in zip(r0[key], r1[key], ref, start):
        assert torch.equal(a, b)  # the replicas stay identical
        assert not torch.allclose(want, p0)  # 20 steps moved every parameter
        torch.testing.assert_close(a, want, rtol=0, atol=1e-6)


def test_fit_with_replay_falls_back_and_keeps_replicas_identical(ran):
    _, (r0, r1) = ran
    start = [p.data for p in _model(seed=100).parameters()]
    for a, b, p0 in zip(r0["replay"], r1["replay"], start):
        assert torch.equal(a, b) and not torch.equal(a, p0)
    assert any("without replay" in w for w in r0["replay_warnings"])


def test_buckets_run_in_reverse_parameter_order_and_respect_the_cap(ran):
    _, (r0, _) = ran
    sizes = {n: p.numel() for n, p in _model(0).named_parameters()}
    flat = [n for b in r0["buckets"] for n in b]
    assert flat == list(sizes)[::-1]
    for b, nxt in zip(r0["buckets"], r0["buckets"][1:]):
        total = sum(sizes[n] for n in b)
        assert total <= CAP or len(b) == 1  # a parameter bigger than the cap travels alone
        assert total + sizes[nxt[0]] > CAP  # a bucket closes only when the next would overflow
    assert len(r0["buckets"]) == 3  # [4.*, 2.bias] (17), [2.weight] (64), [0.*] (24)
    # Launched in order, each by a gradient of its own bucket or of an earlier one it waited for.
    order = r0["launch_order"]
    assert [k for k, _ in order] == [0, 1, 2]
    bucket_of = {n: k for k, b in enumerate(r0["buckets"]) for n in b}
    assert all(bucket_of[name] <= k for k, name in order)


def test_checkpoint_written_under_ddp_loads_in_one_process(ran):
    folder, (r0, _) = ran
    model = _model(seed=5)
    extra = load_checkpoint(folder / "ddp.pt", model)
    assert extra == {"config": "ddp test"}
    for p, want in zip(model.parameters(), r0["accumulated"]):
        assert torch.equal(p.data, want)


def test_find_unused_parameters_averages_with_zeros_and_keeps_none(ran):
    _, (r0, r1) = ran
    # The expected gradients, from rank 0's and rank 1's forward passes in one process.
    grads = []
    for rank in (0, 1):
        m = _TwoBranch()
        m.use_b = rank == 0
        m(_branch_input(rank)).sum().backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    for got in (r0["unused_grads"], r1["unused_grads"]):
        for n in ("a.weight", "a.bias"):
            torch.testing.assert_close(got[n], (grads[0][n].data + grads[1][n].data) / 2)
        for n in ("b.weight", "b.bias"):
            assert grads[1][n] is None
            torch.testing.assert_close(got[n], grads[0][n].data / 2)
        assert got["c.weight"] is None and got["c.bias"] is None  # unused on every rank


def test_unused_parameter_without_find_unused_is_a_clear_error(ran):
    _, (r0, r1) = ran
    for r in (r0, r1):
        msg = r["unused_error"]
        assert "'b.weight'" in msg and "'c.weight'" in msg and "find_unused_parameters=True" in msg


def test_output_without_gradient_is_named_at_the_next_forward(ran):
    _, (r0, r1) = ran
    for r in (r0, r1):
        msg = r["no_grad_error"]
        assert "previous backward" in msg and "'second.weight'" in msg
        assert "'first.weight'" not in msg


def test_buckets_leave_while_the_backward_pass_runs(ran):
    _, (r0, r1) = ran
    assert r0["sent_before_first_layer"] == [True] and r1["sent_before_first_layer"] == [True]


def test_different_models_or_nothing_to_train_are_refused(ran):
    _, (r0, r1) = ran
    for r in (r0, r1):
        different, frozen = r["construction_errors"]
        assert "different models" in different and "requires grad" in frozen
    assert "9 elements" in r0["construction_errors"][0]  # 2*3 + 3: each rank names its own
    assert "12 elements" in r1["construction_errors"][0]


def test_ddp_needs_an_initialised_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="process group is not initialised.*init_process_group"):
        DDP(_model(0))


@pytest.mark.parametrize(
    "n, world, drop_last",
    [(10, 3, False), (10, 3, True), (2, 3, False), (9, 3, False), (1, 1, True)],
)
def test_sampler_shards_cover_the_epoch_once(n, world, drop_last):
    shards = [DistributedSampler(n, world, r, seed=4, drop_last=drop_last) for r in range(world)]
    for s in shards:
        s.set_epoch(2)
    idx = [s.indices() for s in shards]
    assert len({len(i) for i in idx}) == 1 and len(idx[0]) == len(shards[0])
    everything = torch.cat(idx)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(4 + 2))
    if drop_last:
        assert len(everything) == n - n % world
        assert sorted(everything.tolist()) == sorted(order[: n - n % world].tolist())
    else:
        assert len(everything) == -(-n // world) * world
        assert set(everything.tolist()) == set(range(n))  # every sample at least once
        counts = torch.bincount(everything, minlength=n)
        # padding repeats only a few samples
        assert int(counts.max()) - int(counts.min()) <= 1 + (world > n) * world


def test_sampler_same_shuffle_on_every_rank_new_each_epoch():
    a, b = DistributedSampler(12, 2, 0, seed=1), DistributedSampler(12, 2, 1, seed=1)
    first = torch.cat([a.indices(), b.indices()])
    assert sorted(first.tolist()) == list(range(12))
    a.set_epoch(1)
    assert not torch.equal(a.indices(), first[:6])
    a.set_epoch(0)
    assert torch.equal(a.indices(), first[:6])
    unshuffled = DistributedSampler(5, 2, 1, shuffle=False)
    assert unshuffled.indices().tolist() == [1, 3, 0]  # padded with the first index


def test_batch_loader_follows_the_sampler():
    x = torch.arange(10, dtype=F64).reshape(10, 1)
    s = DistributedSampler(10, 2, 1, seed=0)
    loader = BatchLoader(x, x * 2, batch_size=2, sampler=s)
    xs = torch.cat([xb.data for xb, _ in loader]).reshape(-1)
    assert xs.tolist() == s.indices().to(F64).tolist() and len(loader) == 3
    ys = torch.cat([yb.data for _, yb in loader]).reshape(-1)
    assert torch.equal(ys, xs * 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_replicas": 0, "rank": 0}, "num_replicas"),
        ({"num_replicas": 2, "rank": 2}, "rank"),
        ({"num_replicas": 2, "rank": -1}, "rank"),
        ({}, "process group"),
        ({"num_replicas": 5, "rank": 0, "drop_last": True}, "empty"),
    ],
)
def test_sampler_refuses_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        DistributedSampler(3, **kwargs)


def test_sampler_takes_a_count_a_tensor_or_a_pair():
    x = torch.zeros(7, 2)
    for data in (7, x, ad.Tensor(x), (x, torch.zeros(7, 1))):
        assert DistributedSampler(data, 2, 0).n == 7
    with pytest.raises(TypeError, match="number of samples"):
        DistributedSampler([1, 2, 3], 2, 0)


def test_loader_refuses_a_sampler_of_another_size():
    with pytest.raises(ValueError, match="sampler covers 4 samples but x has 3"):
        BatchLoader(torch.zeros(3, 1), torch.zeros(3, 1), sampler=DistributedSampler(4, 2, 0))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nccl_world_size_one_matches_one_process(tmp_path):
    (r0,) = spawn(_scenarios, 1, (str(tmp_path), "cuda"), device="cuda", timeout=60)
    # One rank holds the whole batch: DDP must be a no-op on the numbers.
    for key, micro in (("synced", 1), ("accumulated", 2)):
        for a, want in zip(r0[key], _reference(micro, "cuda")):
            torch.testing.assert_close(a, want, rtol=0, atol=1e-6)


# ---- tapegrad train on several processes --------------------------------------------------------
RUNS = ["curves.png", "decision_map.png", "history.json", "model.pt"]


def test_cli_under_a_launcher_rank_0_alone_writes(ran):
    from tapegrad.presets import build_model, preset

    folder, (r0, r1) = ran
    assert r0["cli"] == 0 and r1["cli"] == 0
    assert sorted(p.name for p in (folder / "cli0").iterdir()) == RUNS
    assert not (folder / "cli1").exists()
    load_checkpoint(folder / "cli0" / "model.pt", build_model(preset("default")))


@pytest.mark.slow
def test_cli_nproc_trains_and_rank_0_alone_writes(tmp_path, capfd, request):
    if "slow" not in (request.config.getoption("-m") or "") and not os.environ.get("TAPEGRAD_SLOW"):
        pytest.skip("slow (starts 2 processes): run with -m slow or TAPEGRAD_SLOW=1")
    from tapegrad import cli
    from tapegrad.presets import build_model, preset

    out = tmp_path / "run"
    assert cli.main(["train", "--nproc", "2", "--out", str(out), *SMALL]) == 0
    text = capfd.readouterr().out  # the workers print through the same file descriptor
    assert text.count("final: train error") == 1 and text.count("| 2 |") == 1
    assert sorted(p.name for p in out.iterdir()) == RUNS
    model = build_model(preset("default"))
    load_checkpoint(out / "model.pt", model)  # a DDP run's checkpoint loads in one process
    assert not dist.is_initialized()


@pytest.mark.parametrize(
    "extra, option",
    [
        (["--nproc", "0"], "--nproc"),
        (["--nproc", "2", "--batch-size", "15"], "--batch-size"),
        (["--nproc", "2", "--replay"], "--replay"),
        (["--nproc", "3", "--batch-size", "3", "--n-train", "2"], "--n-train"),
    ],
)
def test_cli_nproc_bad_combinations_are_one_line_errors(tmp_path, capsys, extra, option):
    from tapegrad import cli

    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {option}:" in err
    assert not out.exists()
