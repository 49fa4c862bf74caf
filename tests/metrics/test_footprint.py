"""The footprint breakdown: every byte in exactly one bucket, for every registered allocator,
at random points of random call sequences (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.alloc.base import available
from memsim.metrics.compare import Meter
from memsim.metrics.footprint import BUCKETS, Breakdown, free_lists
from memsim.trace.replay import Replayer

ALLOCATORS = [n for n, _ in available()]

# An op: (kind, size or index, second argument). Sizes reach past the mmap thresholds.
_size = st.one_of(st.integers(0, 256), st.integers(257, 5000), st.integers(100_000, 600_000))
_op = st.one_of(
    st.tuples(st.just("m"), _size, st.just(0)),
    st.tuples(st.just("c"), st.integers(1, 40), st.integers(1, 64)),
    st.tuples(st.just("a"), st.sampled_from([32, 64, 256, 4096]), _size),
    st.tuples(st.just("f"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("r"), st.integers(0, 10**6), _size),
)


def _calls(ops: list[tuple[str, int, int]]) -> list[tuple[str, int, int, int, int, int]]:
    """Turn ops into trace calls with made-up recorded addresses (unique, never reused)."""
    live: list[int] = []
    out = []
    addr = 0x1000
    for i, (op, a, b) in enumerate(ops, 1):
        if op in ("f", "r"):
            if not live:
                continue
            p = live.pop(a % len(live))
            if op == "f":
                out.append(("f", p, 0, 0, 0, i))
                continue
            addr += 0x10000
            ret = addr if b else 0
            out.append(("r", p, b, ret, 0, i))
            if ret:
                live.append(ret)
            continue
        addr += 0x10000
        out.append((op, a, b, addr, 0, i))
        live.append(addr)
    return out


def _check_point(m: Meter) -> Breakdown:
    bd = m.breakdown()
    bd.check()                                                # buckets >= 0, sum == footprint
    assert bd.footprint == m.footprint(), "usage().total differs from the kernel's view"
    assert bd.footprint == m.alloc.usage().total
    assert sum(getattr(bd, b) for b in BUCKETS) == bd.footprint
    raw = m.ledger
    raw.check()
    hu = m.alloc.usage()
    assert hu.in_use >= raw.usable, "live usable bytes exceed the in-use bytes"
    assert sum(free_lists(m.alloc).values()) == hu.free + hu.cached
    return bd


@pytest.mark.parametrize("allocator", ALLOCATORS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=1, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_buckets_add_up_to_the_footprint(allocator: str, ops: list[tuple[str, int, int]],
                                         cuts: list[int]) -> None:
    calls = _calls(ops)
    m = Meter(Replayer(allocator), every=7, max_points=4)
    done = 0
    for cut in sorted(set(cuts)) + [len(calls)]:
        m.feed(calls[done:cut])
        done = max(done, cut)
        _check_point(m)
    m.alloc.check()


@pytest.mark.parametrize("allocator", ["glibc", "first-fit", "buddy"])
def test_untouched_is_what_has_no_page(allocator: str) -> None:
    # One small block: the heap holds far more than the program wrote.
    m = Meter(Replayer(allocator))
    m.feed([("m", 100, 0, 0x1000, 0, 1)])
    bd = _check_point(m)
    assert bd.payload == 100
    assert bd.resident < bd.footprint and bd.untouched == bd.footprint - bd.resident
    # Writing nothing more and freeing it keeps the sum.
    m.feed([("f", 0x1000, 0, 0, 0, 2)])
    bd = _check_point(m)
    assert bd.payload == 0 and bd.padding == bd.rounding == bd.mmap_rounding == 0


def test_padding_rounding_and_mmap_rounding_in_glibc() -> None:
    m = Meter(Replayer("glibc"))
    # malloc(20): chunk 32, usable 24 -> padding 4 (to 16... capped by usable 24), rounding 0
    # malloc(1): usable 24 -> padding 15 (to 16), rounding 8 (the minimum chunk)
    # malloc(200000): mmapped, usable = page-rounded mapping - 16
    m.feed([("m", 20, 0, 0x1000, 0, 1), ("m", 1, 0, 0x2000, 0, 2),
            ("m", 200_000, 0, 0x3000, 0, 3)])
    led = m.ledger
    u20 = m.alloc.malloc_usable_size(led_ptr(led, 20))
    u1 = m.alloc.malloc_usable_size(led_ptr(led, 1))
    ubig = m.alloc.malloc_usable_size(led_ptr(led, 200_000))
    assert led.padding == (min(u20, 32) - 20) + (16 - 1) + (min(ubig, 200_000) - 200_000)
    assert led.rounding == (u20 - min(u20, 32)) + (u1 - 16)
    assert led.mmap_rounding == ubig - 200_000 > 0
    _check_point(m)


def led_ptr(led: object, n: int) -> int:
    objects = led.objects  # type: ignore[attr-defined]
    return next(p for p, e in objects.items() if e[0] == n)


CORPUS = __import__("pathlib").Path(__file__).resolve().parents[2] / "corpus"


@pytest.mark.skipif(not (CORPUS / "tclsh.trace.zst").exists(), reason="no corpus")
@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_every_sample_of_a_real_trace_adds_up(allocator: str) -> None:
    from memsim.metrics.compare import measure
    from memsim.trace.replay import replay

    trace = CORPUS / "tclsh.trace.zst"
    rec = measure(trace, allocator, every=8, max_points=16)
    assert rec.error is None and rec.frag is not None
    assert rec.frag.peak_live == replay(trace, allocator).peak_live_bytes
    for s in rec.series:
        assert all(s[b] >= 0 for b in BUCKETS)
        assert sum(s[b] for b in BUCKETS) == s["footprint_bytes"]
        assert s["resident_bytes"] + s["untouched"] == s["footprint_bytes"]
