"""The ``tapegrad`` console script: ``train``, ``experiments`` and ``graph``.

    tapegrad train --out runs/disc          # the course experiment, curves + decision map
    tapegrad train --preset best            # the best configuration found
    tapegrad experiments --quick            # the course reports' tables (smoke-test size)
    tapegrad graph ...                      # pictures of the recorded graph (viz.graph_command)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

PROG = "tapegrad"


# ---- shared -------------------------------------------------------------------------------------
def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the matrices are tiny, and extra threads "
                        "only add synchronisation, badly so on a busy machine)")


def _set_threads(n: int) -> None:
    import torch
    if n >= 1:
        torch.set_num_threads(n)


# ---- train ------------------------------------------------------------------------------------
def _add_train(sub: Any) -> None:
    from nn.presets import ACTIVATIONS, LOSSES, OPTIMIZERS, PRESETS, SCHEDULES
    p = sub.add_parser("train", help="train the disc classifier and write its plots",
                       description="Train the course's disc classifier (1,000 points in [0,1]², "
                                   "2 -> 25 -> 25 -> 25 -> 1) and write curves.png, "
                                   "decision_map.png, history.json and model.pt into --out.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="starting configuration; the options below override it (default: default)")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--momentum", type=float, help="SGD momentum")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), help="hidden activation")
    p.add_argument("--loss", choices=LOSSES, help="bce: logits + BCEWithLogitsLoss; mse: MSE on 0/1 labels")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    p.add_argument("--warmup", type=int, help="linear warm-up epochs (cosine schedule)")
    p.add_argument("--n-train", type=int, help="training points (default 1000)")
    p.add_argument("--n-test", type=int, help="test points (default 1000)")
    p.add_argument("--seed", type=int, help="seed of data, initial weights and batch order")
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--out", default="runs/disc", help="output folder (default runs/disc)")
    p.add_argument("--every", type=int, default=0,
                   help="print every N-th epoch (default: about 25 rows in all)")
    p.add_argument("--no-graph", action="store_true", help="do not draw the graph picture")
    p.add_argument("--replay", action="store_true",
                   help="record the training step once and replay it (same numbers, faster)")
    p.add_argument("--quiet", action="store_true", help="print only the final errors")
    _add_threads(p)
    p.set_defaults(func=cmd_train)


_OVERRIDES = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "activation",
              "loss", "schedule", "warmup", "n_train", "n_test", "seed", "device", "dtype")


def config_from_args(args: argparse.Namespace) -> Any:
    from nn.presets import preset
    cfg = preset(args.preset)
    changes = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k, None) is not None}
    cfg = cfg.replace(**changes)
    if "epochs" in changes and "warmup" not in changes and cfg.warmup >= cfg.epochs:
        cfg = cfg.replace(warmup=cfg.epochs // 10)  # keep the preset's warm-up share
    return cfg.check()


def _table_printer(epochs: int, every: int, write: Callable[[str], None]) -> Callable[[dict], None]:
    step = every if every > 0 else max(1, -(-epochs // 25))
    write("| epoch | loss | train error % | test error % | lr | seconds |")
    write("|---:|---:|---:|---:|---:|---:|")

    def on_epoch(r: dict) -> None:
        e = r["epoch"]
        if e == 1 or e % step == 0 or e == epochs:
            write(f"| {e} | {r['loss']:.4f} | {r['train_error']:.2f} | {r['test_error']:.2f} | "
                  f"{r['lr']:.3g} | {r['seconds']:.3f} |")
    return on_epoch


def _draw_graph(run: Any, out: Path) -> Path | None:
    """Best effort: the graph picture of one training step (needs viz.render and Graphviz)."""
    try:
        import viz
        render = getattr(viz, "render", None)
        if render is None:
            return None
        x, y = run.train
        from nn.presets import build_loss
        loss = build_loss(run.config)(run.model(x[:16]), y[:16])
        path = out / "graph.png"
        render(loss, str(path), model=run.model)
        return path
    except Exception as e:  # a missing `dot` must not spoil a finished training run
        print(f"{PROG} train: note: no graph picture ({type(e).__name__}: {e})", file=sys.stderr)
        return None


def cmd_train(args: argparse.Namespace) -> int:
    from nn.checkpoint import save_checkpoint
    from nn.experiments import describe
    from nn.presets import run as run_config
    from viz.plots import plot_decision_map, plot_history
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"{PROG} train: error: {e}", file=sys.stderr)
        return 2
    if args.every < 0:
        print(f"{PROG} train: error: invalid every {args.every} (print every N-th epoch: N >= 0, "
              "0 picks about 25 rows)", file=sys.stderr)
        return 2
    _set_threads(args.threads)
    out = Path(args.out)
    try:  # before training, so that a bad --out fails at once and not after the run
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"{PROG} train: error: cannot create the output folder {out}: {e}", file=sys.stderr)
        return 2
    write = print
    progress: bool | None = None
    on_epoch = None
    if args.quiet:
        progress = False
    else:
        from tqdm.auto import tqdm
        write = tqdm.write  # rows print above the progress bar instead of through it
        print(f"{PROG} train ({args.preset} preset): {describe(cfg)}, seed {cfg.seed}, {cfg.device}")
        on_epoch = _table_printer(cfg.epochs, args.every, write)
    t0 = time.perf_counter()
    try:
        run = run_config(cfg, progress=progress, on_epoch=on_epoch, replay=args.replay)
    except (RuntimeError, ValueError) as e:
        print(f"{PROG} train: error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    h = run.history
    if len(h):
        print(f"final: train error {h.final['train_error']:.2f}%, test error "
              f"{h.final['test_error']:.2f}% after {len(h)} epochs ({wall:.1f} s)")
    out.mkdir(parents=True, exist_ok=True)
    threshold = 0.0 if cfg.loss == "bce" else 0.5
    title = f"{args.preset} preset, seed {cfg.seed}: test error {h.final['test_error']:.2f}%" if len(h) else None
    written = [plot_history(h, out / "curves.png", title=title),
               plot_decision_map(run.model, out / "decision_map.png", grid=100, threshold=threshold,
                                 points=run.test)]
    (out / "history.json").write_text(json.dumps(
        {"config": vars(cfg) | {"hidden": list(cfg.hidden)}, **h.to_dict()}))
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
    p = sub.add_parser("experiments", help="the course reports' tables, over several seeds",
                       description="Markdown tables (mean ± std over seeds): (a) tapegrad vs "
                                   "PyTorch, (b) batch sizes, (c) optimizers, (d) activations.")
    p.add_argument("--quick", action="store_true", help="3 seeds and 10 epochs (a smoke test)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 10; 3 with --quick)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--only", default="abcd", help="which tables, e.g. 'ad' (default abcd)")
    p.add_argument("--preset", default="default", help="base configuration (default: default)")
    p.add_argument("--epochs", type=int, help="override the base configuration's epochs")
    p.add_argument("--out", help="also write the Markdown to this file")
    _add_threads(p)
    p.set_defaults(func=cmd_experiments)


def cmd_experiments(args: argparse.Namespace) -> int:
    from nn.experiments import run_all
    from nn.presets import preset
    only = [c for c in args.only if c in "abcd"]
    if not only or len(only) != len(args.only):
        print(f"{PROG} experiments: error: --only takes letters among a, b, c, d; got "
              f"{args.only!r}", file=sys.stderr)
        return 2
    if args.seeds is not None and args.seeds < 1 or args.jobs < 1:
        print(f"{PROG} experiments: error: --seeds and --jobs must be >= 1", file=sys.stderr)
        return 2
    try:
        base = preset(args.preset)
        if args.epochs is not None:
            base = base.replace(epochs=args.epochs, warmup=min(base.warmup, max(args.epochs - 1, 0)))
        base.check()
    except ValueError as e:
        print(f"{PROG} experiments: error: {e}", file=sys.stderr)
        return 2
    _set_threads(args.threads)
    chunks: list[str] = []

    def emit(text: str) -> None:
        chunks.append(text)
        print(text, flush=True)
    run_all(quick=args.quick, seeds=args.seeds, jobs=args.jobs, base=base, emit=emit, only=only)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(chunks) + "\n")
    return 0


# ---- graph (delegated to viz.graph_command) ----------------------------------------------------
def _add_graph(sub: Any) -> None:
    try:
        from viz import graph_command  # imported only here: train/experiments never need it
        problem = None
    except Exception as e:  # missing module, or a broken one: train must still work
        graph_command, problem = None, f"{type(e).__name__}: {e}"
    p = sub.add_parser("graph", help="draw the recorded computation graph (Graphviz)")
    if graph_command is not None:
        graph_command.add_arguments(p)
        p.set_defaults(func=graph_command.run)
        return
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def unavailable(args: argparse.Namespace) -> int:
        print(f"{PROG} graph: the graph command is not available in this installation "
              f"(viz.graph_command could not be imported: {problem}).", file=sys.stderr)
        return 1
    p.set_defaults(func=unavailable)


def build_parser(with_graph: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="tapegrad: autodiff on PyTorch "
                                     "tensors without torch's autograd; the course's disc experiment.")
    sub = parser.add_subparsers(dest="command", metavar="{train,experiments,graph}")
    sub.required = True
    _add_train(sub)
    _add_experiments(sub)
    if with_graph:
        _add_graph(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only `graph` (and help) needs the graph module: other commands skip importing it.
    wants_graph = not argv or argv[0] in ("graph", "-h", "--help")
    args = build_parser(with_graph=wants_graph).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
