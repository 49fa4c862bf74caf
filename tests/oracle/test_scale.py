"""The simulator's state stays bounded for the TiB scenario of issue 2 (no timing here).

State is measured as the items held in every container reachable from the process and the
machine (benchmarks/bench_scale.py: state_items). Writing a GiB contiguously must cost what
writing a MiB costs; 1023 separate one-byte touches may cost a bounded amount each; the peak
Python memory of the whole TiB scenario stays a few MiB.
"""

from __future__ import annotations

import importlib.util
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import memsim

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

pytestmark = pytest.mark.skipif(not hasattr(memsim, "Process") or not hasattr(memsim, "Machine"),
                                reason="memsim.Process / memsim.Machine not available yet")


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tib(first_write: int) -> tuple[Any, Any, int]:
    machine = memsim.Machine(overcommit=1)
    proc = memsim.Process(machine=machine)
    a = proc.mmap(TiB, prot="rw")
    assert a is not None, f"mmap 1 TiB refused in overcommit mode 1: errno {proc.errno}"
    proc.write(a, first_write)
    return proc, machine, a


def test_contiguous_gib_costs_what_a_mib_costs() -> None:
    items = _bench().state_items
    p1, m1, _ = _tib(MiB)
    p2, m2, _ = _tib(GiB)
    s_mib, s_gib = items(p1, m1), items(p2, m2)
    assert s_gib <= s_mib + 16, (s_mib, s_gib)
    assert p2.status()["RssAnon"] - p1.status()["RssAnon"] == (GiB - MiB) // KiB


def test_one_byte_per_gib_costs_a_bounded_amount_per_touch() -> None:
    items = _bench().state_items
    proc, machine, a = _tib(GiB)
    vmas_before = len(str(proc.maps()).splitlines())
    before = items(proc, machine)
    proc.write(a + GiB, TiB - GiB, every=GiB)
    after = items(proc, machine)
    touches = 1023
    assert 0 <= after - before <= 16 * touches, (before, after)
    assert len(str(proc.maps()).splitlines()) == vmas_before


def test_tib_scenario_peak_memory_is_a_few_mib() -> None:
    tracemalloc.start()
    try:
        proc, _machine, a = _tib(GiB)
        proc.write(a + GiB, TiB - GiB, every=GiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_bench_script_writes_its_results(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/bench_scale.py runs end to end (one run, no real kernel) and writes JSON."""
    import json

    out = tmp_path / "bench.json"
    assert _bench().main(["--runs", "1", "--no-real", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"tib", "baseline", "same_shape"}
    assert doc["results"]["tib"]["VmSize_kB"] > TiB // KiB
    assert doc["real_kernel_tib"] is None
    assert "ratio tib / same shape" in capsys.readouterr().out
