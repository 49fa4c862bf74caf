"""Johnstone & Wilson's #1-#4 on hand-computable point sequences, and on a replay, where they
are recomputed by brute force from every (L, U) point of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsim.metrics.compare import Meter, measure
from memsim.metrics.fragmentation import Fragmentation, jw_fragmentation
from memsim.trace.format import TraceWriter
from memsim.trace.replay import Replayer


def test_the_docstring_example_by_hand() -> None:
    L = [10, 30, 20, 40, 25, 40]
    U = [64, 64, 128, 128, 128, 96]
    r = jw_fragmentation(zip(L, U, strict=True))
    assert r.f1 == pytest.approx(sum(u / lv for lv, u in zip(L, U, strict=True)) / 6 - 1)
    assert r.f2 == pytest.approx(96 / 40 - 1)          # ties at max L: the smaller U (point 6)
    assert r.peak_live_point == 6 and r.footprint_at_peak_live == 96
    assert r.f3 == pytest.approx(128 / 40 - 1)         # ties at max U: the larger L (point 4)
    assert r.peak_footprint_point == 4 and r.live_at_peak_footprint == 40
    assert r.f4 == pytest.approx(128 / 40 - 1)
    assert (r.points, r.points_with_live, r.peak_live, r.peak_footprint) == (6, 6, 40, 128)


def test_f3_differs_from_f4_when_the_footprint_peaks_away_from_the_live_peak() -> None:
    # The heap grows to 200 while 50 are live, then shrinks to 120 while 100 are live.
    r = jw_fragmentation([(50, 200), (100, 120)])
    assert r.f3 == pytest.approx(200 / 50 - 1)
    assert r.f4 == pytest.approx(200 / 100 - 1)
    assert r.f2 == pytest.approx(120 / 100 - 1)
    assert r.f1 == pytest.approx((200 / 50 + 120 / 100) / 2 - 1)


def test_points_without_live_memory() -> None:
    r = jw_fragmentation([(0, 4096), (0, 0)])
    assert r.f1 is None and r.f2 is None and r.f3 is None and r.f4 is None
    assert r.points == 2 and r.points_with_live == 0 and r.peak_footprint == 4096
    r = jw_fragmentation([(0, 4096), (8, 4096), (0, 4096)])
    assert r.f1 == pytest.approx(4096 / 8 - 1) and r.points_with_live == 1
    assert r.f3 == pytest.approx(4096 / 8 - 1)          # the plateau's best point has L = 8
    acc = Fragmentation()
    acc.observe(8, 4096)
    acc.check()
    assert jw_fragmentation([]).points == 0


def _write_trace(path: Path, n: int = 400) -> Path:
    """A made-up program: a ramp of mixed sizes, frees of every third, a big block, a tail."""
    calls = []
    ptrs = []
    addr = 0x10000
    for i in range(n):
        size = (i * 37) % 700 + 1 if i % 50 else 200_000
        calls.append(("m", size, 0, addr))
        ptrs.append(addr)
        addr += 0x100000
        if i % 3 == 2:
            calls.append(("f", ptrs.pop(len(ptrs) // 2), 0, 0))
    for p in ptrs[::2]:
        calls.append(("f", p, 0, 0))
    with TraceWriter(path) as w:
        for c in calls:
            w.write_call(c)
    return path


@pytest.mark.parametrize("allocator", ["glibc", "first-fit", "buddy", "sizeclass"])
def test_measure_matches_the_definitions_recomputed_from_every_point(
        tmp_path: Path, allocator: str) -> None:
    trace = _write_trace(tmp_path / "t.trace")
    from memsim.trace.replay import iter_calls
    rep = Replayer(allocator)
    base = rep.mm.brk
    points = []
    for call in iter_calls(trace):
        rep.step(call)
        points.append((rep.live_bytes, rep.mm.brk - base + rep.sys.mapped))
    got = measure(trace, allocator)
    assert got.error is None and got.frag is not None
    f = got.frag
    lives = [p for p in points if p[0] > 0]
    max_l = max(lv for lv, _ in points)
    max_u = max(u for _, u in points)
    u_at = min(u for lv, u in points if lv == max_l)
    l_at = max(lv for lv, u in points if u == max_u)
    assert f.points == len(points) and f.points_with_live == len(lives)
    assert f.f1 == pytest.approx(sum(u / lv for lv, u in lives) / len(lives) - 1, rel=1e-12)
    assert f.f2 == pytest.approx(u_at / max_l - 1)
    assert f.f3 == pytest.approx(max_u / l_at - 1)
    assert f.f4 == pytest.approx(max_u / max_l - 1)
    assert got.utilization == pytest.approx(max_l / max_u)
    assert got.utilization == pytest.approx(1 / (1 + f.f4))
    assert f.peak_live == rep.result().peak_live_bytes


def test_utilization_is_mdrivers_for_a_memlib_allocator(tmp_path: Path) -> None:
    from memsim.alloc.base import create
    from memsim.metrics.utilization import Footprint, replay_util
    from memsim.process import Process
    from memsim.trace.replay import iter_calls

    trace = _write_trace(tmp_path / "t.trace", 200)
    proc = Process()
    fp = Footprint(proc.mm)
    alloc = create("csapp-first-fit", fp)
    ref = replay_util(list(iter_calls(trace)), alloc, fp)
    got = measure(trace, "csapp-first-fit")
    assert ref.valid and got.utilization == pytest.approx(ref.util)


def test_meter_counts_points_across_feeds(tmp_path: Path) -> None:
    from memsim.trace.replay import iter_calls
    calls = list(iter_calls(_write_trace(tmp_path / "t.trace", 60)))
    m = Meter(Replayer("glibc"), every=8, max_points=4)
    m.feed(calls[:30])
    m.feed(calls[30:])
    assert m.n == len(calls) == m.frag.result().points
    m.timeline.check()
