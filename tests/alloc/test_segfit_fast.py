"""segfit.py: SegFit's own closures (``SegFit._build_fast``) against its methods.

Three SegFit instances get the same calls: one through the closures over the class lists
that ``SegFit._build_fast`` binds, one with those closures dropped (the methods: ``malloc``
-> ``_find``/``_place_fast`` -> ``_move``/``_index_remove``, ``free`` -> ``_release_fast``
-> ``_move``/``_index_add``), and one through SeqFit's generic closure (``SeqFit._build_fast``
calling the index operations). After every call they must have returned the same pointer
and hold the same heap (blocks, the class lists in their order, the binmap, byte counters,
usage), and ``check()`` holds; at the end the kernel saw the same brk/mmap calls and the
same pages first written in the same order (the merged-stores rule: stores are merged only
on the same or adjacent pages, in ascending order).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedList

from memsim.alloc import create
from memsim.alloc.segfit import SegFit
from memsim.alloc.seqfit import SeqFit

from .twins import FirstTouch, call


def _state(a: SegFit) -> tuple[Any, ...]:
    return (a.alloc_blocks, list(a.free_blocks.items()), list(a.free_end.items()),
            a._index_items(), a.binmap, a.in_use_bytes, a.free_bytes, a.usage(),
            a.heap_start, a.heap_end, a.curbrk)


def _trio(load: int = 0, **options: Any) -> list[tuple[SegFit, FirstTouch]]:
    """The three ways; ``load`` > 0 gives every range class a SortedList of that load
    (sublists of ``load``..2 ``load`` keys), so that short runs split and join sublists."""
    got = []
    for way in ("own", "methods", "generic"):
        k = FirstTouch()
        a = create("segfit", k, options)
        assert isinstance(a, SegFit)
        assert "malloc" in vars(a) and "free" in vars(a), "the closures are bound"
        if load:
            for c in range(a.nexact, a.class_of(1 << 40) + 1):
                a.ranges[c] = SortedList()
                a.ranges[c]._reset(load)
        if way != "own":
            del a.malloc, a.free                   # the methods
            assert "malloc" not in vars(a)
        if way == "generic":
            SeqFit._build_fast(a)                  # SeqFit's closure over the index methods
            assert "malloc" in vars(a)
        got.append((a, k))
    return got


_sizes = st.one_of(st.integers(0, 24), st.integers(25, 600), st.integers(600, 20_000),
                   st.sampled_from([1000, 1008, 1024, 4072, 4096, 70_000]))
_ops = st.lists(st.one_of(
    st.tuples(st.just("malloc"), _sizes),
    st.tuples(st.just("malloc"), _sizes),
    st.tuples(st.just("free"), st.integers(0, 63)),
    st.tuples(st.just("free"), st.integers(0, 63)),
    st.tuples(st.just("realloc"), st.integers(0, 63), _sizes),
    st.tuples(st.just("calloc"), _sizes),
    st.tuples(st.just("memalign"), st.sampled_from([32, 64, 4096]), _sizes),
    st.tuples(st.just("trim"), st.sampled_from([0, 100, 8192])),
    st.tuples(st.just("badfree"), st.integers(0, 63)),
), max_size=150)


def _same(trio: list[tuple[SegFit, FirstTouch]], lives: list[list[int]],
          op: tuple[Any, ...], state: bool = True) -> None:
    got = [call(a, live, op) for (a, _), live in zip(trio, lives, strict=True)]
    assert got[0] == got[1] == got[2], op
    if state:
        s = _state(trio[0][0])
        assert s == _state(trio[1][0]) == _state(trio[2][0]), op
        assert trio[0][0].errno == trio[1][0].errno == trio[2][0].errno, op
        trio[0][0].check()


@settings(max_examples=60, deadline=None)
@given(ops=_ops, coalesce=st.sampled_from(["immediate", "deferred", "none"]),
       footer=st.sampled_from(["all", "free"]), small_max=st.sampled_from([64, 1024]),
       grow=st.sampled_from([4096, 65536]), mmap_threshold=st.sampled_from([None, 16384]),
       realloc=st.sampled_from(["in-place", "copy"]), load=st.sampled_from([0, 4]))
def test_the_closures_are_the_methods(
        ops: list[tuple[Any, ...]], coalesce: str, footer: str, small_max: int, grow: int,
        mmap_threshold: int | None, realloc: str, load: int) -> None:
    trio = _trio(load=load, coalesce=coalesce, footer=footer, small_max=small_max, grow=grow,
                 mmap_threshold=mmap_threshold, realloc=realloc)
    lives: list[list[int]] = [[], [], []]
    for op in ops:
        _same(trio, lives, op)
    (_, k0), (_, k1), (_, k2) = trio
    assert k0.first == k1.first == k2.first, "pages first written in another order"
    assert k0.log == k1.log == k2.log, "other brk/mmap calls"


@pytest.mark.parametrize("small_max", [64, 1024])
def test_the_closures_on_a_long_seeded_run(small_max: int) -> None:
    """A few thousand calls over a heap of many pages: range classes (of load 4) split and
    join sublists, splits stay in or leave their class, merges replace entries."""
    rng = random.Random(11)
    trio = _trio(load=4, small_max=small_max, grow=4096)
    lives: list[list[int]] = [[], [], []]
    for n in range(5000):
        if lives[0] and rng.random() < 0.47:
            op: tuple[Any, ...] = ("free", rng.randrange(len(lives[0])))
        elif rng.random() < 0.03:
            op = ("realloc", rng.randrange(64), rng.randrange(1, 3000))
        else:
            op = ("malloc", rng.choice([rng.randrange(1, 64), rng.randrange(64, 1024),
                                        rng.randrange(1024, 40_000)]))
        _same(trio, lives, op, state=n % 97 == 0)
    _same(trio, lives, ("malloc", 1))
    (_, k0), (_, k1), (_, k2) = trio
    assert k0.first == k1.first == k2.first and k0.log == k1.log == k2.log
