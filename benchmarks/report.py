"""Markdown tables and the JSON file of a benchmark run."""

from __future__ import annotations

import json
from pathlib import Path

IMPLS = (
    "tapegrad",
    "tapegrad_replay",
    "tapegrad_compiled",
    "jax_jit",
    "torch_compile",
    "torch_eager",
    "lower_bound",
)  # column order
LABELS = {
    "tapegrad": "tapegrad",
    "tapegrad_replay": "tapegrad replay",
    "tapegrad_compiled": "tapegrad compiled",
    "jax_jit": "jax.jit",
    "torch_compile": "torch.compile",
    "torch_eager": "torch eager",
    "lower_bound": "lower bound",
}
SHORT = {
    "tapegrad": "tapegrad",
    "tapegrad_replay": "replay",
    "tapegrad_compiled": "compiled",
    "jax_jit": "jax",
    "torch_compile": "torch.compile",
    "torch_eager": "eager",
    "lower_bound": "lower",
}
MINE = ("tapegrad", "tapegrad_replay", "tapegrad_compiled")
# ratio columns: tapegrad's implementations over these (the compiled step also over jax.jit)
AGAINST = {
    "tapegrad": ("torch_eager", "lower_bound"),
    "tapegrad_replay": ("torch_eager", "lower_bound"),
    "tapegrad_compiled": ("torch_eager", "lower_bound", "jax_jit"),
}


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= scale:
            return _three_digits(s / scale, unit)
    return _three_digits(s / 1e-9, "ns")


def _three_digits(v: float, unit: str) -> str:
    """Three significant digits, never in exponent form (999.7 is '1000', not '1e+03')."""
    return f"{v:.3g} {unit}" if abs(v) < 999.5 else f"{v:.0f} {unit}"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(b) >= scale:
            return _three_digits(b / scale, unit)
    return f"{b:.0f} B"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def ratios(values: dict) -> dict:
    """tapegrad (and its replay and compiled step, when measured) over torch eager and over the
    lower bound; the compiled step also over jax.jit."""
    out = {}
    for mine in MINE:
        if mine not in values:
            continue
        tg = values[mine]
        for other in AGAINST[mine]:
            if other == "jax_jit" and other not in values:
                continue
            v = values.get(other)
            out[f"{mine}/{other}"] = tg / v if tg is not None and v else None
    return out


def _columns(rows: list[dict], key: str = "results") -> tuple[list[str], list[str]]:
    """The implementations present and the ratio keys present, in table order."""
    present = {k for r in rows for k in r[key]}
    impls = [k for k in IMPLS if k in present]
    rats = [
        f"{a}/{b}"
        for a in MINE
        if a in present
        for b in AGAINST[a]
        if b in present or b != "jax_jit"
    ]
    return impls, rats


def _ratio_label(key: str) -> str:
    a, b = key.split("/")
    return f"{SHORT[a]}/{SHORT[b]}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return [_row(header), _row(align), *(_row(r) for r in rows)]


CONTENDED = 5.0  # every implementation this much slower with more threads than with one


def contended(rows: list[dict]) -> set[int]:
    """Indices of multi-thread rows where every implementation ran CONTENDED times slower than
    with 1 thread: threads waiting for cores that other processes hold, not the code measured."""
    one = {(r["label"], r["device"]): r for r in rows if r["threads"] == 1}
    out = set()
    for i, r in enumerate(rows):
        base = one.get((r["label"], r["device"]))
        if r["threads"] == 1 or base is None:
            continue
        if all(
            v["median"] > CONTENDED * base["results"][k]["median"]
            for k, v in r["results"].items()
            if k in base["results"]
        ):
            out.add(i)
    return out


def timing_table(rows: list[dict]) -> list[str]:
    impls, rats = _columns(rows)
    header = [
        "workload",
        "device",
        "threads",
        *(LABELS[k] for k in impls),
        *(_ratio_label(k) for k in rats),
    ]
    body = []
    bad = contended(rows)
    for i, r in enumerate(rows):
        med = {k: v["median"] for k, v in r["results"].items()}
        body.append(
            [
                r["label"],
                r["device"],
                str(r["threads"]) + (" (!)" if i in bad else ""),
                *(fmt_time(med.get(k)) for k in impls),
                *(fmt_ratio(r["ratios"].get(k)) for k in rats),
            ]
        )
    lines = _table(header, body, right_from=3)
    if bad:
        lines += [
            "",
            f"(!) every implementation ran over {CONTENDED:g}x slower than with 1 thread: "
            "its threads waited for cores busy with other processes. These rows say nothing "
            "about the implementations; re-run on a quiet machine.",
        ]
    return lines


def chain_table(rows: list[dict]) -> list[str]:
    header = [
        "ops",
        "device",
        "threads",
        "tapegrad record/op",
        "tapegrad backward/op",
        "tapegrad free/op",
        "tapegrad total/op",
        "eager total/op",
        "lower total/op",
        "tapegrad per-op vs shortest chain",
    ]
    body = []
    first: dict = {}
    for r in rows:
        key = (r["device"], r["threads"])
        tg = r["phases"].get("tapegrad", {})
        total = tg.get("total")
        first.setdefault(key, total)
        body.append(
            [
                f"{r['n']:,}",
                r["device"],
                str(r["threads"]),
                *(fmt_time(tg.get(p)) for p in ("forward", "backward", "free", "total")),
                fmt_time(r["phases"].get("torch_eager", {}).get("total")),
                fmt_time(r["phases"].get("lower_bound", {}).get("total")),
                fmt_ratio(total / first[key] if total and first[key] else None),
            ]
        )
    return _table(header, body, right_from=3)


MEMORY_MEASURES = (
    ("step_bytes", "process memory: peak in a step over before it"),
    ("total_bytes", "process memory: peak over before the model was built"),
    ("tensor_step_bytes", "tensor bytes: peak in a step over before it"),
    ("tensor_total_bytes", "tensor bytes: peak (model, data, optimizer state, step)"),
)


def memory_table(rows: list[dict]) -> list[str]:
    impls, rats = _columns(rows)
    header = [
        "training step",
        "device",
        "memory",
        *(LABELS[k] for k in impls),
        *(_ratio_label(k) for k in rats),
    ]
    body = []
    for r in rows:
        for what, label in MEMORY_MEASURES:
            if not all(what in v for v in r["results"].values()):
                continue
            vals = {k: v[what] for k, v in r["results"].items()}
            rat = ratios(vals)
            body.append(
                [
                    r["label"],
                    r["device"],
                    label,
                    *(fmt_bytes(vals.get(k)) for k in impls),
                    *(fmt_ratio(rat.get(k)) for k in rats),
                ]
            )
    return _table(header, body, right_from=3)


def chain_memory_table(rows: list[dict]) -> list[str]:
    header = [
        "graph",
        "implementation",
        "built",
        "after backward",
        "after delete",
        "graph-held tensor bytes (built -> after backward)",
    ]
    body = []
    for r in rows:
        saved = "-"
        if "saved_bytes_built" in r:
            saved = (
                f"{fmt_bytes(r['saved_bytes_built'])} -> "
                f"{fmt_bytes(r['saved_bytes_after_backward'])} ({r['graph_nodes']:,} nodes)"
            )
        body.append(
            [
                f"{r['n']:,} ops, {r['device']}",
                LABELS[r["impl"]],
                fmt_bytes(r["built_bytes"]),
                fmt_bytes(r["after_backward_bytes"]),
                fmt_bytes(r["after_delete_bytes"]),
                saved,
            ]
        )
    return _table(header, body, right_from=2)


def compile_table(rows: list[dict]) -> list[str]:
    """Compile time (first calls minus as many steady steps), and after how many steps it pays
    off against torch eager and, for tapegrad compiled, against tapegrad's plain replay."""
    header = [
        "workload",
        "device",
        "threads",
        "implementation",
        "compile",
        "per step",
        "break-even vs torch eager",
        "break-even vs tapegrad replay",
    ]
    body = []

    def even(c: float, slow: float | None, fast: float) -> str:
        if slow is None:
            return "-"
        return "never" if slow <= fast else f"{max(c, 0.0) / (slow - fast):,.0f} steps"

    for r in rows:
        for k, c in r.get("compile_s", {}).items():
            med = {n: v["median"] for n, v in r["results"].items()}
            replay = med.get("tapegrad_replay") if k == "tapegrad_compiled" else None
            body.append(
                [
                    r["label"],
                    r["device"],
                    str(r["threads"]),
                    LABELS[k],
                    fmt_time(c),
                    fmt_time(med[k]),
                    even(c, med.get("torch_eager"), med[k]),
                    even(c, replay, med[k]) if replay else "-",
                ]
            )
    return _table(header, body, right_from=4)


def starts_table(rows: list[dict]) -> list[str]:
    header = [
        "implementation",
        "device",
        "compile, first process (empty cache)",
        "compile, second process (the first's cache)",
        "speed-up",
        "whole job, first process",
        "whole job, second process",
    ]
    body = [
        [
            LABELS[r["impl"]],
            r["device"],
            fmt_time(r["cold_s"]),
            fmt_time(r["warm_s"]),
            fmt_ratio(r["cold_s"] / r["warm_s"] if r["warm_s"] else None),
            fmt_time(r.get("cold_run_s")),
            fmt_time(r.get("warm_run_s")),
        ]
        for r in rows
    ]
    return _table(header, body, right_from=2)


def machine_line(m: dict) -> str:
    return (
        f"{m['cpu']} ({m['cpus']} CPUs visible), {m.get('gpu') or 'no GPU'}, "
        f"torch {m['torch']}, Python {m['python']}, {m['platform']}; "
        f"load average {m['loadavg_start']} at start"
        + (f", {m['loadavg_end']} at end; " if "loadavg_end" in m else "; ")
        + f"commit {m['commit']}"
    )


def markdown(res: dict) -> str:
    lines = [
        f"# tapegrad benchmark ({'quick' if res['config']['quick'] else 'full'} run, "
        f"{res['machine']['date']})",
        "",
        f"Machine: {machine_line(res['machine'])}.",
        "",
    ]
    lines.append(
        f"tapegrad built with: `{res['config']['tapegrad_mode']}`. Times are medians "
        f"over rounds that alternate the implementations; ratios below 1 mean tapegrad "
        "is faster (or smaller)."
    )
    lines.append("")
    for note in res.get("notes", []):
        lines.append(f"Note: {note}.")
    for name, why in res["config"].get("left_out", {}).items():
        lines.append(f"Left out: {LABELS.get(name, name)} ({why}).")
    for dev, s in res.get("sanity", {}).items():
        lines.append(f"Sanity ({dev}): {s['summary']}")
    if res.get("timing"):
        lines += [
            "",
            "## Time (training step, whole run, per op)",
            "",
            *timing_table(res["timing"]),
        ]
    if any(r.get("compile_s") for r in res.get("timing", [])):
        lines += [
            "",
            "## Compile time and break-even (in-process; Inductor's cache may be warm)",
            "",
            *compile_table(res["timing"]),
        ]
    if res.get("compile_starts"):
        lines += [
            "",
            "## The course job (100 epochs at batch 16) in a fresh process: empty "
            "compile cache, then the cache left by the first process",
            "",
            *starts_table(res["compile_starts"]),
        ]
    if res.get("chains"):
        lines += [
            "",
            "## Deep chains (tanh and neg alternating, then sum; time per op)",
            "",
            *chain_table(res["chains"]),
        ]
    if res.get("memory"):
        lines += [
            "",
            "## Peak memory of a training step (fresh process per implementation)",
            "",
            *memory_table(res["memory"]),
        ]
    if res.get("chain_memory"):
        lines += [
            "",
            "## Memory of a deep graph relative to before it was built",
            "",
            *chain_memory_table(res["chain_memory"]),
        ]
    return "\n".join(lines) + "\n"


def write(res: dict, json_path: str | None, md_path: str | None) -> str:
    md = markdown(res)
    for path, text in ((json_path, json.dumps(res, indent=1) + "\n"), (md_path, md)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    return md


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.report RESULTS.json [OUT.md]``: the tables again from a JSON file."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m benchmarks.report RESULTS.json [OUT.md]")
    res = json.loads(Path(args[0]).read_text())
    print(write(res, None, args[1] if len(args) > 1 else None), end="")


if __name__ == "__main__":
    main()
