"""benchmarks/bench_allocators.py: every allocator and workload measured, glibc the baseline,
errors kept in their cell, bad arguments a one-line error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from memsim.alloc import NotModelled

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_allocators.py"
SMALL_TRACE = ROOT / "corpus" / "grep.trace.zst"        # 23,840 calls


def load_script() -> ModuleType:
    """The script as a module (it puts the repo root on sys.path; put back as it was)."""
    spec = importlib.util.spec_from_file_location("bench_allocators", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


@pytest.mark.skipif(not SMALL_TRACE.is_file(), reason="corpus/grep.trace.zst missing")
def test_tiny_run_measures_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--events", "2000", "--repeat", "2",
         "--allocators", "first-fit,buddy", "--traces", str(SMALL_TRACE), "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    names = ["glibc", "first-fit", "buddy"]            # glibc added as the baseline
    assert data["arguments"]["allocators"] == names
    workloads = ["synthetic/null", "synthetic/mm", "grep/mm", "grep/replay"]
    assert list(data["results"]) == workloads
    assert data["workload_events"]["synthetic/null"] == 2000
    assert data["workload_events"]["grep/replay"] == 23_840
    for w in workloads:
        assert sorted(data["results"][w]) == sorted(names)
        for name in names:
            cell = data["results"][w][name]
            assert cell["error"] is None
            assert len(cell["events_per_s"]) == 2
            assert all(r > 0 for r in cell["events_per_s"])
            assert cell["median_events_per_s"] > 0
            assert cell["ratio_to_glibc"] > 0
        assert data["results"][w]["glibc"]["ratio_to_glibc"] == 1.0
    below = {(b["allocator"], b["workload"]) for b in data["below_glibc"]}
    assert below == {(n, w) for w in workloads for n in names
                     if data["results"][w][n]["ratio_to_glibc"] < 1.0}
    assert len(data["load_average"]["before"]) == 3
    assert data["machine"]["python"] == sys.version.split()[0]
    # the markdown table: a header, a rule and one row per allocator
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(names)
    assert all(f"| {n} |" in proc.stdout for n in names)
    assert "below glibc (ratio < 1.00): " in proc.stdout
    assert "grep/replay" in proc.stderr                  # progress lines


def test_unknown_allocator_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--allocators", "glibc,no-such-allocator",
         "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "bench_allocators.py: error: unknown allocator no-such-allocator")
    assert not (tmp_path / "x.json").exists()


def test_an_allocator_that_raises_keeps_its_error_and_the_run_goes_on() -> None:
    bench = load_script()

    def run(name: str) -> tuple[int, float]:
        if name == "broken":
            raise NotModelled("memalign is not modelled")
        return 1000, 0.01 if name == "glibc" else 0.02

    cells = bench.measure("w", run, ["glibc", "broken", "other"], 3, bench.Progress(True))
    assert cells["broken"]["error"] == "NotModelled: memalign is not modelled"
    assert cells["broken"]["ratio_to_glibc"] is None
    assert cells["glibc"]["ratio_to_glibc"] == 1.0
    assert cells["other"]["ratio_to_glibc"] == pytest.approx(0.5)
    assert len(cells["other"]["events_per_s"]) == 3
    assert "error (see below)" in bench.markdown_table(["glibc", "broken"], {"w": cells})
