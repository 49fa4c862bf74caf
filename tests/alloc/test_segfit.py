"""segfit.py: segregated fits take the lowest fitting class (best fit inside a range class);
simple segregated storage never splits, merges or returns memory."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.alloc import create
from memsim.alloc.segfit import SegFit, SimpleSeg
from memsim.errors import ConfigError
from memsim.process import Process
from memsim.units import PAGE_SIZE


def test_size_classes_are_exact_then_four_per_power_of_two() -> None:
    a = create("segfit", Process().mm)
    assert isinstance(a, SegFit)
    assert [a.class_of(s) for s in (32, 48, 1008)] == [2, 3, 63]
    assert a.class_of(1024) == 64 and a.class_of(1279) == 64 and a.class_of(1280) == 65
    assert a.class_of(2048) == 68
    sizes = range(32, 1 << 20, 16)
    classes = [a.class_of(s) for s in sizes]
    assert classes == sorted(classes)


def expected(a: SegFit, asize: int) -> int | None:
    """The lowest class with a fitting block; inside it the smallest (then lowest address)
    block for a range class, any block for an exact class."""
    by_class: dict[int, list[tuple[int, int]]] = {}
    for b, s in a.free_blocks.items():
        if s >= asize:
            by_class.setdefault(a.class_of(s), []).append((s, b))
    if not by_class:
        return None
    c = min(by_class)
    if c < a.nexact:
        return -c                                   # any block of the class: compare classes
    return min(by_class[c])[1]


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 5000), st.integers(0, 10**6)),
                    min_size=1, max_size=80))
def test_segregated_fit_takes_the_lowest_fitting_class(ops: list[tuple[bool, int, int]]
                                                       ) -> None:
    a = create("segfit", Process().mm, {"grow": 8192})
    assert isinstance(a, SegFit)
    live: list[int] = []
    for is_malloc, size, pick in ops:
        if is_malloc or not live:
            asize = a._asize(size)
            want = expected(a, asize)
            before = dict(a.free_blocks)
            p = a.malloc(size)
            assert p
            if want is not None and want < 0:
                assert a.class_of(before[p - 8]) == -want
            elif want is not None:
                assert p - 8 == want
            live.append(p)
        else:
            a.free(live.pop(pick % len(live)))
        a.check()


def test_exact_classes_are_lifo_and_split_remainders_are_filed_by_size() -> None:
    a = create("segfit", Process().mm)
    assert isinstance(a, SegFit)
    p = [a.malloc(100) for _ in range(6)]
    a.free(p[1])
    a.free(p[3])
    assert a.malloc(100) == p[3]                              # the most recently freed
    q = a.malloc(5000)
    a.free(q)
    a.malloc(100)
    for blk, size in a.free_blocks.items():
        assert blk in a.exact[a.class_of(size)] if a.class_of(size) < a.nexact else True
    a.check()


def test_segfit_options() -> None:
    with pytest.raises(ConfigError, match="small_max"):
        create("segfit", Process().mm, {"small_max": 100})
    with pytest.raises(ConfigError, match="placement"):
        create("segfit", Process().mm, {"placement": "best"})
    a = create("segfit", Process().mm, {"small_max": 256, "coalesce": "none"})
    assert isinstance(a, SegFit) and a.nexact == 16


# --- simple segregated storage ------------------------------------------------------------

def test_simple_seg_rounds_to_the_class_and_never_splits() -> None:
    a = create("simple-seg", Process().mm)
    assert isinstance(a, SimpleSeg)
    assert a.malloc_usable_size(a.malloc(17)) == 32
    assert a.malloc_usable_size(a.malloc(1000)) == 1024
    b = create("simple-seg-3", Process().mm)
    assert isinstance(b, SimpleSeg)
    assert b.malloc_usable_size(b.malloc(33)) == 48
    assert b.malloc_usable_size(b.malloc(700)) == 768
    a.check()
    b.check()


def test_simple_seg_reuses_blocks_lifo_and_never_returns_memory() -> None:
    proc = Process()
    a = create("simple-seg", proc.mm)
    p = [a.malloc(64) for _ in range(200)]
    top = proc.mm.brk
    for x in p:
        a.free(x)
    assert a.malloc(64) == p[-1]
    assert a.malloc_trim(0) == 0 and proc.mm.brk == top
    a.check()


def test_simple_seg_runs_are_pages_of_one_class() -> None:
    proc = Process()
    a = create("simple-seg", proc.mm)
    assert isinstance(a, SimpleSeg)
    p = a.malloc(100)
    q = a.malloc(1000)
    assert p // PAGE_SIZE != q // PAGE_SIZE
    assert a.malloc(100) == p + 128
    u = a.usage()
    assert u.total == 2 * PAGE_SIZE + u.overhead - a.waste and u.in_use == 128 * 2 + 1024


def test_simple_seg_big_and_aligned() -> None:
    a = create("simple-seg", Process().mm, {"max_class": 4096})
    p = a.malloc(10_000)
    assert a.malloc_usable_size(p) >= 10_000
    q = a.memalign(1024, 100)
    assert q % 1024 == 0 and a.malloc_usable_size(q) == 1024
    a.free(p)
    a.free(q)
    a.check()


@pytest.mark.parametrize("bad", [{"classes": "fib"}, {"max_class": 1000}, {"header": 8},
                                 {"run": 1000}])
def test_simple_seg_bad_options(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        create("simple-seg", Process().mm, bad)


def test_simple_seg_header_costs_a_class() -> None:
    a = create("simple-seg", Process().mm, {"header": 16})
    p = a.malloc(16)
    assert p % 16 == 0 and a.malloc_usable_size(p) == 16      # a 32-byte block
    a.check()
