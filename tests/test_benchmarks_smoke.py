"""Smoke test of the benchmark harness: a --quick run on tiny sizes emits its tables and JSON.

No timing is checked (the numbers depend on the machine); the structure and the harness's own
sanity check (the three implementations compute the same losses and gradients) are.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import run  # noqa: E402

IMPLS = {"tapegrad", "torch_eager", "lower_bound"}


def test_quick_run_emits_tables_and_json(tmp_path, capsys):
    js, md = tmp_path / "out.json", tmp_path / "out.md"
    run.main(
        [
            "--quick",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--memory-inprocess",
            "--json",
            str(js),
            "--md",
            str(md),
        ]
    )
    data = json.loads(js.read_text())

    assert {"cpu", "cpus", "torch", "python", "commit"} <= set(data["machine"])
    assert data["sanity"]["cpu"]["ok"], data["sanity"]["cpu"]["summary"]
    assert {r["workload"] for r in data["timing"]} == {"course", "epochs", "wide", "chain"}
    assert sorted(r["batch"] for r in data["timing"] if r["workload"] == "course") == [
        1,
        16,
        128,
        1000,
    ]
    replay = "tapegrad_replay" in data["config"]["implementations"]  # optional column
    ratio_keys = {"tapegrad/torch_eager", "tapegrad/lower_bound"}
    for r in data["timing"]:
        extra = {"tapegrad_replay"} if replay and r["workload"] != "chain" else set()
        assert set(r["results"]) == IMPLS | extra
        assert set(r["ratios"]) == ratio_keys | {
            f"tapegrad_replay/{k.split('/')[1]}" for k in ratio_keys if extra
        }
        assert all(v["median"] > 0 for v in r["results"].values())
    for r in data["chains"]:
        assert set(r["phases"]["tapegrad"]) == {"forward", "backward", "free", "total"}
    assert {m["spec"] for r in data["memory"] for m in r["results"].values()} == {
        "course",
        "wide_quick",
    }
    chain_mem = {r["impl"]: r for r in data["chain_memory"]}
    assert set(chain_mem) == IMPLS
    # the tape releases every saved tensor during backward
    assert chain_mem["tapegrad"]["saved_bytes_built"] > 0
    assert chain_mem["tapegrad"]["saved_bytes_after_backward"] == 0

    text = md.read_text()
    for heading in (
        "| workload | device | threads | tapegrad | ",
        "## Deep chains",
        "## Peak memory",
        "## Memory of a deep graph",
    ):
        assert heading in text
    assert text in capsys.readouterr().out  # the same tables are printed


def test_json_and_markdown_can_be_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run.main(
        [
            "--quick",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--rounds",
            "1",
            "--workloads",
            "course",
            "--json",
            "-",
            "--md",
            "-",
        ]
    )
    assert list(tmp_path.iterdir()) == []
    assert [r["batch"] for r in res["timing"]] == [1, 16, 128, 1000]
    assert "| course 2-25-25-25-1, batch 16, per step | cpu | 1 |" in capsys.readouterr().out
