"""The ``tapegrad`` console script: ``train``, ``experiments`` and ``graph``.

    tapegrad train --out runs/disc          # the course experiment, curves + decision map
    tapegrad train --preset best            # the best configuration found
    tapegrad train --task digits            # other workloads: digits (CNN), reverse (transformer)
    tapegrad experiments --quick            # the course reports' tables (smoke-test size)
    tapegrad graph ...                      # pictures of the recorded graph (graph_command.py)

Every usage error is one line, ``tapegrad <command>: error: argument --<option>: ...`` with the
accepted values, exit status 2, and nothing written: all options are checked before --out is
created.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import distributed

PROG = "tapegrad"


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (no usage block): ``prog: error: message``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _fail(parser: argparse.ArgumentParser, option: str, message: str) -> NoReturn:
    parser.error(f"argument {option}: {message}")


# ---- shared -------------------------------------------------------------------------------------
def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads, >= 1 (default 1: the matrices are tiny, and extra "
        "threads only add synchronisation, badly so on a busy machine)",
    )


def _check_threads(parser: argparse.ArgumentParser, n: int) -> None:
    if n < 1:
        _fail(parser, "--threads", f"invalid value {n}; accepted: an integer >= 1")


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _check_folder(parser: argparse.ArgumentParser, option: str, path: Path) -> None:
    """Refuse an output folder that exists as a file, or whose nearest existing parent is not a
    writable folder (the folder itself is created only once everything else was checked)."""
    if path.exists():
        if not path.is_dir():
            _fail(parser, option, f"{path} exists and is not a folder; accepted: a folder path")
        if not os.access(path, os.W_OK | os.X_OK):
            _fail(parser, option, f"the folder {path} is not writable")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        _fail(parser, option, f"cannot create the folder {path}: {parent} is not a writable folder")


def _make_folder(parser: argparse.ArgumentParser, option: str, path: Path) -> list[Path]:
    """Create ``path`` (and missing parents); return the folders created, innermost first."""
    created = []
    p = path.absolute()
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_folders(created)
        _fail(parser, option, f"cannot create the folder {path}: {e.strerror or e}")
    return created


def _remove_folders(created: list[Path]) -> None:
    """Undo ``_make_folder`` after a failure (only folders still empty)."""
    for p in created:
        try:
            p.rmdir()
        except OSError:
            return


# ---- train ------------------------------------------------------------------------------------
def _preset_default(field: str) -> str:
    """``default: 0.05 (preset best: 0.01)``: the value each preset gives ``field``."""
    from .presets import PRESETS

    values = {
        name: format(getattr(cfg, field), "g" if field == "lr" else "")
        for name, cfg in PRESETS.items()
    }
    others = [
        f"preset {n}: {v}" for n, v in values.items() if n != "default" and v != values["default"]
    ]
    return f"default: {values['default']}" + (f" ({'; '.join(others)})" if others else "")


def _add_train(sub: Any) -> None:
    from .presets import ACTIVATIONS, DTYPES, LIMITS, LOSSES, OPTIMIZERS, PRESETS, SCHEDULES
    from .tasks import TASKS

    p = sub.add_parser(
        "train",
        help="train the disc classifier and write its plots",
        description="Train the course's disc classifier (1,000 points in [0,1]², "
        "2 -> 25 -> 25 -> 25 -> 1) and write curves.png, "
        "decision_map.png, history.json, model.pt and graph.png (the "
        "recorded graph of one step; --no-graph skips it) into --out.",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="starting configuration; the options below override it (default: default)",
    )
    p.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), help=f"({_preset_default('optimizer')})"
    )
    p.add_argument(
        "--lr",
        type=float,
        help=f"learning rate, in (0, {LIMITS['lr'][2]:g}] ({_preset_default('lr')})",
    )
    p.add_argument(
        "--momentum", type=float, help=f"SGD momentum, in [0, 1) ({_preset_default('momentum')})"
    )
    p.add_argument(
        "--weight-decay", type=float, help=f"in [0, 1] ({_preset_default('weight_decay')})"
    )
    p.add_argument("--batch-size", type=int, help=f"({_preset_default('batch_size')})")
    p.add_argument("--epochs", type=int, help=f"({_preset_default('epochs')})")
    p.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        help=f"hidden activation ({_preset_default('activation')})",
    )
    p.add_argument(
        "--loss",
        choices=list(LOSSES),
        help=f"bce: logits + BCEWithLogitsLoss; mse: MSE on 0/1 labels ({_preset_default('loss')})",
    )
    p.add_argument(
        "--schedule",
        choices=list(SCHEDULES),
        help=f"learning-rate schedule ({_preset_default('schedule')})",
    )
    p.add_argument(
        "--warmup",
        type=int,
        help=f"linear warm-up epochs of the cosine schedule ({_preset_default('warmup')})",
    )
    p.add_argument("--n-train", type=int, help="training points (default 1000)")
    p.add_argument("--n-test", type=int, help="test points (default 1000)")
    p.add_argument(
        "--seed",
        type=int,
        help="seed of data, initial weights and batch order, in [0, 2**63) (default 0)",
    )
    p.add_argument("--device", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", choices=DTYPES, help="(default float32)")
    p.add_argument(
        "--task",
        choices=TASKS,
        default="disc",
        help="disc (default), digits (a CNN on scikit-learn's 8x8 digits) or reverse "
        "(a small transformer reversing digit sequences); see tapegrad.tasks",
    )
    p.add_argument("--out", help="output folder (default runs/<task>, e.g. runs/disc)")
    p.add_argument(
        "--every",
        type=int,
        default=0,
        help="print every N-th epoch (default 0: about 25 rows in all)",
    )
    p.add_argument("--no-graph", action="store_true", help="do not draw graph.png")
    p.add_argument(
        "--replay",
        action="store_true",
        help="record the training step once and replay it (same numbers, faster)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final errors")
    p.add_argument(
        "--compile",
        action="store_true",
        help="replay the whole step, optimizer included, compiled by torch.compile "
        "(a few seconds to compile; same numbers up to float rounding)",
    )
    _add_threads(p)
    distributed.add_arguments(p)
    p.set_defaults(func=cmd_train, parser=p)


_OVERRIDES = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "epochs",
    "activation",
    "loss",
    "schedule",
    "warmup",
    "n_train",
    "n_test",
    "seed",
    "device",
    "dtype",
)


def _changes(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k, None) is not None}


def config_from_args(args: argparse.Namespace) -> Any:
    """The preset with the options given on the command line; raises ``ConfigError``."""
    from .presets import preset

    cfg = preset(args.preset)
    changes = _changes(args)
    cfg = cfg.replace(**changes)
    if "epochs" in changes and "warmup" not in changes and cfg.warmup >= cfg.epochs:
        cfg = cfg.replace(warmup=cfg.epochs // 10)  # keep the preset's warm-up share
    return cfg.check()


def run_name(args: argparse.Namespace) -> str:
    """``default preset`` or, with options given, ``default preset, lr 0.01, seed 4``."""
    changes = _changes(args)
    return ", ".join(
        [f"{args.preset} preset"] + [f"{k.replace('_', ' ')} {v}" for k, v in changes.items()]
    )


def _table_printer(epochs: int, every: int, write: Callable[[str], None]) -> Callable[[dict], None]:
    step = every if every > 0 else max(1, -(-epochs // 25))
    write("| epoch | loss | train error % | test error % | lr | seconds |")
    write("|---:|---:|---:|---:|---:|---:|")

    def on_epoch(r: dict) -> None:
        e = r["epoch"]
        if e == 1 or e % step == 0 or e == epochs:
            write(
                f"| {e} | {r['loss']:.4f} | {r['train_error']:.2f} | {r['test_error']:.2f} | "
                f"{r['lr']:.3g} | {r['seconds']:.3f} |"
            )

    return on_epoch


def _draw_graph(run: Any, out: Path) -> Path | None:
    """Best effort: the graph picture of one training step (needs viz.render and Graphviz)."""
    try:
        import viz

        from .presets import build_loss

        x, y = run.train
        xb, yb = x[:16], y[:16]
        loss = build_loss(run.config)(run.model(xb), yb)
        return viz.render(loss, out / "graph.png", model=run.model, names={"x": xb, "target": yb})
    except Exception as e:  # a missing `dot` must not spoil a finished training run
        print(f"{PROG} train: note: no graph picture ({type(e).__name__}: {e})", file=sys.stderr)
        return None


def cmd_train(args: argparse.Namespace) -> int:
    from .presets import ConfigError

    if args.task != "disc":
        from .tasks.command import run_task

        return run_task(args)
    parser = args.parser
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        _fail(parser, "--" + e.field.replace("_", "-"), str(e))
    if args.every < 0:
        _fail(
            parser,
            "--every",
            f"invalid value {args.every}; accepted: an integer >= 0 (0 prints about 25 rows)",
        )
    _check_threads(parser, args.threads)
    bad = distributed.problem(args, cfg)
    if bad is not None:
        _fail(parser, *bad)
    out = Path(args.out or "runs/disc")
    _check_folder(parser, "--out", out)
    # last check: a bad --out fails before training (rank 0 alone writes, under torchrun too)
    created = _make_folder(parser, "--out", out) if distributed.rank() == 0 else []
    try:
        if distributed.launches(args):  # --nproc N: N workers each run _train
            return distributed.launch(args, _train, cfg, out)
        return _train(args, cfg, out)
    except (RuntimeError, ValueError) as e:  # e.g. a diverging run, or out of memory
        _remove_folders(created)
        print(f"{PROG} train: error: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 1
    except BaseException:
        _remove_folders(created)
        raise


def _train(args: argparse.Namespace, cfg: Any, out: Path) -> int:
    from nn.checkpoint import save_checkpoint
    from viz.plots import plot_decision_map, plot_history

    from .experiments import describe
    from .presets import run as run_config
    from .presets import threshold

    _set_threads(args.threads)
    write: Callable[[str], None] = print
    progress: bool | None = None
    on_epoch = None
    name = run_name(args)
    if args.quiet or distributed.rank() != 0:
        progress = False
    else:
        from tqdm.auto import tqdm

        write = tqdm.write  # rows print above the progress bar instead of through it
        print(f"{PROG} train ({name}): {describe(cfg)}, {cfg.device}")
        on_epoch = _table_printer(cfg.epochs, args.every, write)
    t0 = time.perf_counter()
    if distributed.under_launcher():
        run = distributed.run(cfg, progress=progress, on_epoch=on_epoch)
        if distributed.rank() != 0:
            return 0  # rank 0 alone prints and writes the run's files
    else:
        run = run_config(
            cfg, progress=progress, on_epoch=on_epoch, replay=args.replay, compile=args.compile
        )
    wall = time.perf_counter() - t0
    h = run.history
    final = h.final
    print(
        f"final: train error {final['train_error']:.2f}%, test error "
        f"{final['test_error']:.2f}% after {len(h)} epochs ({wall:.1f} s)"
    )
    title = f"{name}: test error {final['test_error']:.2f}%"
    written = [
        plot_history(h, out / "curves.png", title=title),
        plot_decision_map(
            run.model, out / "decision_map.png", grid=100, threshold=threshold(cfg), points=run.test
        ),
    ]
    (out / "history.json").write_text(
        json.dumps({"config": vars(cfg) | {"hidden": list(cfg.hidden)}, **h.to_dict()})
    )
    written.append(out / "history.json")
    written.append(save_checkpoint(out / "model.pt", run.model, run.optimizer, config=repr(cfg)))
    if not args.no_graph:
        g = _draw_graph(run, out)
        if g is not None:
            written.append(g)
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


# ---- experiments -------------------------------------------------------------------------------
def _add_experiments(sub: Any) -> None:
    from .presets import PRESETS

    p = sub.add_parser(
        "experiments",
        help="the course reports' tables, over several seeds",
        description="Markdown tables (mean ± std over seeds): (a) tapegrad vs "
        "PyTorch, (b) batch sizes, (c) optimizers, (d) activations. "
        "The full run takes 872,000 training steps of 120 runs "
        "(6-7 minutes on one core; --jobs N divides that); a progress "
        "bar with the time left shows on a terminal.",
    )
    p.add_argument("--quick", action="store_true", help="3 seeds and 10 epochs (a smoke test)")
    p.add_argument("--seeds", type=int, help="number of seeds, >= 1 (default 10; 3 with --quick)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes, >= 1 (default 1)")
    p.add_argument("--only", default="abcd", help="which tables, e.g. 'ad' (default abcd)")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="base configuration (default: default)",
    )
    p.add_argument("--epochs", type=int, help="override the base configuration's epochs")
    p.add_argument("--out", help="also write the Markdown to this file")
    _add_threads(p)
    p.set_defaults(func=cmd_experiments, parser=p)


def cmd_experiments(args: argparse.Namespace) -> int:
    from .experiments import run_all
    from .presets import ConfigError, preset

    parser = args.parser
    only = [c for c in args.only if c in "abcd"]
    if not only or len(only) != len(args.only):
        _fail(parser, "--only", f"invalid value {args.only!r}; accepted: letters among a, b, c, d")
    if args.seeds is not None and args.seeds < 1:
        _fail(parser, "--seeds", f"invalid value {args.seeds}; accepted: an integer >= 1")
    if args.jobs < 1:
        _fail(parser, "--jobs", f"invalid value {args.jobs}; accepted: an integer >= 1")
    _check_threads(parser, args.threads)
    try:
        base = preset(args.preset)
        if args.epochs is not None:
            warmup = min(base.warmup, max(args.epochs - 1, 0))
            base = base.replace(epochs=args.epochs, warmup=warmup)
        base.check()
    except ConfigError as e:
        _fail(parser, "--" + e.field.replace("_", "-"), str(e))
    md = Path(args.out) if args.out else None
    if md is not None:
        if md.is_dir():
            _fail(parser, "--out", f"{md} is a folder; accepted: a file path")
        _check_folder(parser, "--out", md.parent)
    _set_threads(args.threads)
    chunks: list[str] = []

    def emit(text: str) -> None:
        chunks.append(text)
        print(text, flush=True)

    run_all(
        quick=args.quick,
        seeds=args.seeds,
        jobs=args.jobs,
        base=base,
        emit=emit,
        only=only,
        progress=sys.stderr.isatty(),
    )
    if md is not None:
        _make_folder(parser, "--out", md.parent)
        md.write_text("\n".join(chunks) + "\n")
    return 0


# ---- graph (delegated to tapegrad.graph_command) -------------------------------------------------
def _add_graph(sub: Any) -> None:
    try:
        from . import graph_command  # imported only here: train/experiments never need it

        problem = None
    except Exception as e:  # missing module, or a broken one: train must still work
        graph_command, problem = None, f"{type(e).__name__}: {e}"
    p = sub.add_parser("graph", help="draw the recorded computation graph (Graphviz)")
    if graph_command is not None:
        graph_command.add_arguments(p)

        def run_graph(args: argparse.Namespace) -> int:
            _check_folder(p, "--out", Path(args.out))
            return graph_command.run(args)

        p.set_defaults(func=run_graph)
        return
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def unavailable(args: argparse.Namespace) -> int:
        print(
            f"{PROG} graph: the graph command is not available in this installation "
            f"(tapegrad.graph_command could not be imported: {problem}).",
            file=sys.stderr,
        )
        return 1

    p.set_defaults(func=unavailable)


def build_parser(with_graph: bool = True) -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="tapegrad: autodiff on PyTorch tensors without "
        "torch's autograd; the course's disc experiment.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,experiments,graph}")
    sub.required = True
    _add_train(sub)
    _add_experiments(sub)
    if with_graph:
        _add_graph(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for a usage error, after its one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only `graph` (and help) needs the graph module: other commands skip importing it.
    wants_graph = not argv or argv[0] in ("graph", "-h", "--help")
    try:
        args = build_parser(with_graph=wants_graph).parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as e:  # argparse's and our usage errors, and --help
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
