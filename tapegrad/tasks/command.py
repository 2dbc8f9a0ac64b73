"""``tapegrad train --task digits|reverse``: check the options, train, write the run's files.

Usage errors follow the CLI's rule (one line naming the option, exit status 2, nothing written):
an option the task does not use is refused rather than silently ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import cli
from . import task_module

# The train options each task reads (argparse dests); any other one given is an error.
COMMON = (
    "task",
    "out",
    "epochs",
    "lr",
    "batch_size",
    "seed",
    "device",
    "dtype",
    "every",
    "no_graph",
    "quiet",
    "threads",
)
ACCEPTED = {"digits": COMMON, "reverse": (*COMMON, "n_train", "n_test")}
CONFIG_FIELDS = ("epochs", "lr", "batch_size", "seed", "device", "dtype", "n_train", "n_test")
DESCRIPTION = {
    "digits": "CNN 1x8x8 -> conv 32 -> pool -> conv 64 -> pool -> 10, scikit-learn's digits "
    "(1,437 train / 360 test images)",
    "reverse": "transformer (2 pre-LayerNorm blocks, d_model 64, 4 heads) reversing 8 digits",
}


def _option(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return "--" + dest.replace("_", "-")


def _refuse_unused(parser: argparse.ArgumentParser, args: argparse.Namespace, task: str) -> None:
    """One line naming the first option given that ``task`` does not use."""
    accepted = ACCEPTED[task]
    for action in parser._actions:
        if action.dest in accepted or action.dest == "help" or not action.option_strings:
            continue
        if getattr(args, action.dest, action.default) != action.default:
            listed = ", ".join(_option(parser, d) for d in accepted if d != "task")
            cli._fail(
                parser,
                max(action.option_strings, key=len),
                f"not used by --task {task}; accepted with it: {listed}",
            )


def config_from_args(args: argparse.Namespace) -> Any:
    """The task's default configuration with the options given (raises ``ConfigError``)."""
    changes = {
        k: getattr(args, k)
        for k in CONFIG_FIELDS
        if k in ACCEPTED[args.task] and getattr(args, k, None) is not None
    }
    return task_module(args.task).Config().replace(**changes).check()


def run_task(args: argparse.Namespace) -> int:
    """``tapegrad train --task digits|reverse ...`` (called by ``cli.cmd_train``)."""
    from ..presets import ConfigError

    parser, task = args.parser, args.task
    _refuse_unused(parser, args, task)
    if task == "digits":
        from .digits_data import sklearn_missing

        problem = sklearn_missing()
        if problem is not None:
            cli._fail(parser, "--task", problem)
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        cli._fail(parser, _option(parser, e.field), str(e))
    if args.every < 0:
        cli._fail(
            parser,
            "--every",
            f"invalid value {args.every}; accepted: an integer >= 0 (0 prints about 25 rows)",
        )
    cli._check_threads(parser, args.threads)
    out = Path(args.out if args.out is not None else f"runs/{task}")
    cli._check_folder(parser, "--out", out)
    created = cli._make_folder(parser, "--out", out)  # the last check: nothing written before
    try:
        return _train(args, cfg, out)
    except (RuntimeError, ValueError) as e:  # e.g. a diverging run, or out of memory
        cli._remove_folders(created)
        print(f"{cli.PROG} train: error: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 1
    except BaseException:
        cli._remove_folders(created)
        raise


def _changed(args: argparse.Namespace) -> str:
    given = [
        f"{k.replace('_', ' ')} {getattr(args, k)}"
        for k in CONFIG_FIELDS
        if k in ACCEPTED[args.task] and getattr(args, k, None) is not None
    ]
    return ", ".join([args.task, *given])


def _train(args: argparse.Namespace, cfg: Any, out: Path) -> int:
    from nn.checkpoint import save_checkpoint
    from viz.plots import plot_history

    cli._set_threads(args.threads)
    name = _changed(args)
    write: Callable[[str], None] = print
    on_epoch = None
    progress = False
    if not args.quiet:
        from tqdm.auto import tqdm

        write = tqdm.write  # rows print above the progress bar instead of through it
        progress = sys.stderr.isatty()
        epochs = f"{cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}"
        print(
            f"{cli.PROG} train ({name}): {DESCRIPTION[args.task]}, {epochs}, "
            f"batch {cfg.batch_size}, Adam lr {cfg.lr:g} (cosine), {cfg.device} {cfg.dtype}"
        )
        on_epoch = cli._table_printer(cfg.epochs, args.every, write)
    t0 = time.perf_counter()
    run = task_module(args.task).run(cfg, progress=progress, on_epoch=on_epoch)
    wall = time.perf_counter() - t0
    final = run.history.final
    what = "test accuracy" if args.task == "digits" else "held-out exact-sequence accuracy"
    print(
        f"final: train error {final['train_error']:.2f}%, test error "
        f"{final['test_error']:.2f}% ({what} {100 - final['test_error']:.2f}%) after "
        f"{len(run.history)} epoch{'s' if len(run.history) != 1 else ''} ({wall:.1f} s)"
    )
    written = [
        plot_history(
            run.history, out / "curves.png", title=f"{name}: test error {final['test_error']:.2f}%"
        )
    ]
    if args.task == "digits":
        written += _digits_pictures(run, out)
    (out / "history.json").write_text(
        json.dumps(
            {"task": args.task, "config": vars(cfg), "seconds": wall, **run.history.to_dict()}
        )
    )
    written.append(out / "history.json")
    written.append(save_checkpoint(out / "model.pt", run.model, run.optimizer, config=repr(cfg)))
    if not args.no_graph:
        g = _draw_graph(args.task, run, out)
        if g is not None:
            written.append(g)
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _digits_pictures(run: Any, out: Path) -> list[Path]:
    from .pictures import plot_confusion, plot_misclassified

    x, y = run.test
    pred = run.predictions()
    return [
        plot_confusion(y, pred, out / "confusion.png"),
        plot_misclassified(x, y, pred, out / "misclassified.png"),
    ]


def _draw_graph(task: str, run: Any, out: Path) -> Path | None:
    """Best effort: the recorded graph of one training step (needs Graphviz's ``dot``)."""
    try:
        import autodiff as ad
        import viz

        loss_of = task_module(task).loss_of
        if task == "digits":
            xb, yb = (ad.Tensor(t[:16]) for t in run.train)
            loss = loss_of(run.model, xb, yb)
            return viz.render(
                loss, out / "graph.png", model=run.model, names={"images": xb, "labels": yb}
            )
        from .reverse import split

        inputs, targets = (ad.Tensor(t) for t in split(run.test[:16]))
        loss = loss_of(run.model, inputs, targets)
        return viz.render(
            loss,
            out / "graph.png",
            model=run.model,
            depth=1,
            names={"tokens": inputs, "answers": targets},
        )
    except Exception as e:  # a missing `dot` must not spoil a finished training run
        print(
            f"{cli.PROG} train: note: no graph picture ({type(e).__name__}: {e})", file=sys.stderr
        )
        return None
