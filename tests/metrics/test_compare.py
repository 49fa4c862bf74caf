"""compare(): records in a fixed order with a fixed schema, identical whatever the jobs;
``memsim compare``: table, CSV/JSON files, time series, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import memsim.cli as cli
from memsim.errors import ConfigError
from memsim.metrics.compare import CSV_COLUMNS, METRICS, compare, to_csv, to_json
from memsim.metrics.footprint import BUCKETS
from memsim.metrics.timeline import COLUMNS
from memsim.metrics.timeline import to_csv as series_csv

ALLOCS = ["glibc", "first-fit", "buddy"]


def _trace(path: Path, seed: int, n: int = 300) -> str:
    from memsim.trace.format import TraceWriter

    live: list[int] = []
    addr = 0x10000
    with TraceWriter(path) as w:
        for i in range(n):
            x = (i * 7919 + seed * 104729) % 1000
            if live and x < 350:
                w.write_call(("f", live.pop(x % len(live)), 0, 0))
                continue
            addr += 0x1000
            size = 150_000 if x == 999 else x * (seed + 1) + 1
            w.write_call(("m", size, 0, addr))
            live.append(addr)
    return str(path)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("traces")
    return [_trace(d / "b.trace", 1), _trace(d / "a.trace", 2, 200)]


def test_records_are_ordered_and_jobs_do_not_change_the_output(traces: list[str]) -> None:
    one = compare(traces, ALLOCS, jobs=1, every=16, max_points=8)
    two = compare(traces, ALLOCS, jobs=2, every=16, max_points=8)
    assert [(r.trace, r.allocator) for r in one] == [(t, a) for t in traces for a in ALLOCS]
    assert to_json(one) == to_json(two)
    assert to_csv(one) == to_csv(two)
    s1 = series_csv([(r.trace, r.allocator, r.series) for r in one])
    s2 = series_csv([(r.trace, r.allocator, r.series) for r in two])
    assert s1 == s2
    assert "seconds" not in to_json(one) and "seconds" in to_json(one, timing=True)


def test_json_and_csv_schema(traces: list[str]) -> None:
    recs = compare(traces[:1], ["glibc", "buddy"], jobs=1, every=16, max_points=8)
    doc = json.loads(to_json(recs))
    assert doc["schema"] == "memsim-compare/1" and doc["metrics"] == list(METRICS)
    for rec in doc["records"]:
        assert list(rec)[:4] == ["trace", "allocator", "calls", "error"]
        assert set(METRICS) <= set(rec) and rec["error"] is None
        assert 0 < rec["utilization"] <= 1
        assert rec["utilization"] == pytest.approx(1 / (1 + rec["f4"]))
        for key in ("footprint_at_peak", "footprint_at_end"):
            bd = rec[key]
            assert sum(bd[b] for b in BUCKETS) == bd["footprint"]
        assert rec["footprint_at_end"]["footprint"] == rec["final_footprint_bytes"]
        assert rec["syscalls_total"] == sum(rec["syscalls"].values())
        assert rec["jw"]["f4"] == rec["f4"]
        assert rec["time_series_points"] >= 2
    rows = list(csv.reader(io.StringIO(to_csv(recs))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    assert all(len(r) == len(CSV_COLUMNS) for r in rows)
    assert float(rows[1][CSV_COLUMNS.index("utilization")]) == doc["records"][0]["utilization"]


def test_a_run_that_dies_is_a_record_with_an_error(tmp_path: Path, traces: list[str]) -> None:
    from memsim.trace.format import TraceWriter

    bad = tmp_path / "bad.trace"
    with TraceWriter(bad) as w:
        w.write_call(("m", 10, 0, 0x1000))
        w.write_call(("f", 0x2000, 0, 0))            # never allocated
    recs = compare([str(bad), traces[1]], ["glibc"], jobs=1)
    assert recs[0].error and "not live" in recs[0].error and recs[0].metric("f4") is None
    assert recs[0].calls == 1                        # the malloc went through
    assert recs[1].error is None


def test_unknown_allocator_before_any_work(traces: list[str]) -> None:
    with pytest.raises(ConfigError, match="unknown allocator 'nope'"):
        compare(traces, ["glibc", "nope"])


# --- the command ------------------------------------------------------------------------------

def test_cli_table_files_and_series(traces: list[str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "r.json"
    out_csv = tmp_path / "s.csv"
    rc = cli.main(["compare", *traces, "--allocators", "glibc,buddy", "--format", "json",
                   "-o", str(out_json), "--time-series", str(out_csv), "--every", "16",
                   "--jobs", "1", "--metric", "f4"])
    cap = capsys.readouterr()
    assert rc == 0 and cap.err == ""
    lines = cap.out.splitlines()
    assert lines[0].startswith("f4:") and lines[1].split() == ["trace", "glibc", "buddy"]
    assert [ln.split()[0] for ln in lines[2:]] == ["b.trace", "a.trace"]
    assert all(cell.endswith("%") for ln in lines[2:] for cell in ln.split()[1:])
    doc = json.loads(out_json.read_text())
    assert len(doc["records"]) == 4
    rows = list(csv.reader(io.StringIO(out_csv.read_text())))
    assert tuple(rows[0]) == COLUMNS and {r[1] for r in rows[1:]} == {"glibc", "buddy"}
    # --format to stdout replaces the table
    assert cli.main(["compare", traces[0], "--format", "csv", "--jobs", "1", "-q"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[1][1] == "glibc"


@pytest.mark.parametrize("argv, code, text", [
    (["--allocators", "glibc,nope"], 1, "unknown allocator 'nope'"),
    (["--metric", "nope"], 2, "unknown metric 'nope'"),
    (["-o", "x.json"], 2, "needs --format"),
    (["--jobs", "0"], 2, "--jobs must be at least 1"),
    (["--time-series", "x.txt"], 2, "must end in .csv or .json"),
])
def test_cli_errors_are_one_line(traces: list[str], capsys: pytest.CaptureFixture[str],
                                 argv: list[str], code: int, text: str) -> None:
    assert cli.main(["compare", traces[0], *argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memsim: error:") and text in err[0]


def test_cli_metric_list_and_no_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", "--metric", "list"]) == 0
    names = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert names == list(METRICS)
    assert cli.main(["compare"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no TRACE given" in err[0]


def test_cli_missing_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.trace"
    assert cli.main(["compare", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"memsim: error: {missing}: no such file"]


def test_cli_failed_run_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from memsim.trace.format import TraceWriter

    bad = tmp_path / "bad.trace"
    with TraceWriter(bad) as w:
        w.write_call(("f", 0x2000, 0, 0))
    assert cli.main(["compare", str(bad), "-a", "glibc", "--jobs", "1"]) == 1
    cap = capsys.readouterr()
    assert "error" in cap.out
    assert cap.err.count("\n") == 1 and cap.err.startswith("memsim: error:")


def test_series_is_bounded_on_a_long_run(tmp_path: Path) -> None:
    from memsim.metrics.compare import measure

    path = _trace(tmp_path / "long.trace", 3, 6000)
    rec = measure(path, "glibc", every=1, max_points=16)
    assert rec.error is None and rec.calls == 6000
    assert 8 <= len(rec.series) <= 16 + 3
    events = [s["event"] for s in rec.series]
    assert events == sorted(events) and events[-1] == 6000
    kinds = {s["kind"] for s in rec.series}
    assert {"every", "end"} <= kinds and any("peak" in k for k in kinds)
    for s in rec.series:
        assert sum(s[b] for b in BUCKETS) == s["footprint_bytes"]


def test_rich_table(traces: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from memsim.cli.compare import _print_table, _table_rows

    recs = compare(traces, ["glibc", "buddy"], jobs=1, every=64)
    rows = _table_rows(recs, traces, ["glibc", "buddy"], "peak_live_bytes")
    _print_table(rows, ["glibc", "buddy"], "peak_live_bytes", "rich")
    out = capsys.readouterr().out
    assert "glibc" in out and "buddy" in out and "b.trace" in out
    assert f"{recs[0].metric('peak_live_bytes'):,}" in out
