"""``tapegrad graph``: pictures of one training step of the course network.

Builds 2 -> 25 -> 25 -> 25 -> 1 (the course's disc classifier), runs the forward pass and
``backward()`` on one mini-batch of the disc data set and writes two pictures into ``--out``:
``graph_forward.<fmt>`` (the recorded graph, one box per layer by default) and
``graph_grad.<fmt>`` (every op and parameter coloured by the norm of its gradient); with
``--format html``, one interactive page ``graph.html`` holding both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from viz import FORMATS, GraphvizNotFoundError, render, watch_grads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tapegrad graph`` (``viz/cli.py`` adds them to its sub-command)."""
    parser.description = (
        "Draw the graph recorded by one training step of the course network "
        "(2 -> 25 -> 25 -> 25 -> 1 on a batch of the disc data set): a forward view and a "
        "gradient view (needs Graphviz's `dot` for png/svg/pdf)."
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=None,
        help="draw modules nested deeper than this as single boxes (0: the whole "
        "network is one box; 1: one box per layer; 2: every op). "
        "Default: 1 for the forward view, 2 for the gradient view",
    )
    parser.add_argument(
        "--direction",
        choices=("TB", "LR"),
        default="TB",
        help="layout direction: TB (top to bottom, default) or LR (left to right)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="png",
        help="output format (default png; dot writes the Graphviz source; html "
        "writes one page, graph.html, with every depth, tooltips and a "
        "backward stepper)",
    )
    parser.add_argument("--out", default="runs/graph", help="output folder (default runs/graph)")
    parser.add_argument(
        "--activation",
        default="relu",
        help="hidden activation: relu, leaky_relu, tanh, sigmoid, silu, softplus (default relu)",
    )
    parser.add_argument(
        "--loss",
        choices=("mse", "bce"),
        default="mse",
        help="mse (the course's loss, default) or bce (logits + BCEWithLogitsLoss)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="mini-batch size (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and weights (default 0)")


def course_step(
    activation: str = "relu", loss: str = "mse", batch_size: int = 16, seed: int = 0
) -> tuple[Any, Any, dict]:
    """The course network and the loss of one mini-batch, recorded but not yet back-propagated.

    Returns ``(model, loss, names)`` where ``names`` labels the batch tensors for the picture.
    """
    import torch

    from nn.data import disc_dataset

    from .presets import ACTIVATIONS, TrainConfig, build_loss, build_model

    if activation not in ACTIVATIONS:
        raise ValueError(
            f"tapegrad graph: unknown activation {activation!r}; expected one of "
            f"{', '.join(ACTIVATIONS)}"
        )
    if batch_size < 1:
        raise ValueError(f"tapegrad graph: --batch-size must be >= 1, got {batch_size}")
    cfg = TrainConfig(activation=activation, loss=loss, seed=seed)
    model = build_model(cfg, torch.Generator().manual_seed(seed))
    x, y = disc_dataset(batch_size, seed=seed + 1)
    out = build_loss(cfg)(model(x), y)
    return model, out, {"x": x, "target": y}


def run(args: argparse.Namespace) -> int:
    """Write the two pictures; 0 on success, 1 when Graphviz is missing (DOT files written)."""
    try:
        if args.depth is not None and args.depth < 0:
            raise ValueError(f"tapegrad graph: --depth must be >= 0, got {args.depth}")
        model, loss, names = course_step(args.activation, args.loss, args.batch_size, args.seed)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    out = Path(args.out)
    what = (
        f"2 → 25 → 25 → 25 → 1 · {args.activation} · {args.loss} loss · batch of {args.batch_size}"
    )
    fwd_depth = 1 if args.depth is None else args.depth
    grad_depth = None if args.depth is None else args.depth
    common = dict(model=model, names=names, rankdir=args.direction)
    written, missing = [], None

    def draw(name: str, **kw: Any) -> None:
        nonlocal missing
        try:
            written.append(render(loss, out / f"{name}.{args.format}", **common, **kw))
        except GraphvizNotFoundError as e:  # the .dot source is written; go on with the other
            missing = e
            written.append(out / f"{name}.dot")

    if args.format == "html":  # one page: every depth, tooltips and the backward stepper
        watch = watch_grads(loss)
        loss.backward()
        watch.remove()
        draw(
            "graph",
            depth=args.depth if args.depth is not None else fwd_depth,
            title=f"one training step: {what}",
        )
        return _report(written, missing)
    draw("graph_forward", depth=fwd_depth, title=f"forward graph of one training step\n{what}")
    watch = watch_grads(loss)
    loss.backward()
    watch.remove()
    draw(
        "graph_grad",
        depth=grad_depth,
        show_grad=True,
        title=f"gradient norms after backward()\n{what}",
    )
    return _report(written, missing)


def _report(written: list, missing: Exception | None) -> int:
    for p in written:
        print(p)
    if missing is not None:
        print(f"tapegrad graph: {missing}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tapegrad.graph_command`` (the same as ``tapegrad graph``)."""
    parser = argparse.ArgumentParser(prog="tapegrad graph")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
