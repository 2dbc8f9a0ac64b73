"""Where a benchmark run writes, and how its numbers read (no exponents, no '?')."""

from pathlib import Path

from benchmarks import report, run


def test_quick_run_never_replaces_the_committed_results():
    quick = run.parse_args(["--quick", "--device", "cpu"])
    full = run.parse_args(["--device", "cpu"])
    assert Path(quick.json).parent.name == "quick" and Path(quick.md).parent.name == "quick"
    assert Path(full.json) == run.RESULTS / "latest.json"
    explicit = run.parse_args(["--quick", "--device", "cpu", "--json", "-", "--md", "x.md"])
    assert (explicit.json, explicit.md) == ("-", "x.md")


def test_sizes_and_times_never_use_exponent_form():
    for b in (999.6 * 1024, 1000 * 1024, 1023.9 * 1024, 5e12):
        assert "e+" not in report.fmt_bytes(b)
    for s in (0.9997, 999.7e-6, 2e-10):
        assert "e+" not in report.fmt_time(s) and "e-" not in report.fmt_time(s)


def test_machine_line_at_start_has_no_placeholder_for_the_end():
    m = dict(
        cpu="c",
        cpus=2,
        gpu=None,
        torch="t",
        python="p",
        platform="x",
        loadavg_start="1",
        commit="abc",
    )
    assert "?" not in report.machine_line(m) and "at end" not in report.machine_line(m)
    assert "1 at start, 2 at end" in report.machine_line(dict(m, loadavg_end="2"))
