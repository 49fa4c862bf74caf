"""seqfit.py: an address-ordered FitList alone (``by_address``) against the free-block dicts.

The address-ordered configurations keep their free blocks in the FitList only: the
boundary tags are lookups in it, ``free_blocks``/``free_end`` are views, ``free_bytes`` is
derived, ``malloc``/``free`` are the closures of ``SeqFit._build_address_fast`` and a
deferred sweep rebuilds the list in one pass. A subclass that overrides ``_index_add``
keeps the dicts and the general methods (``malloc`` -> ``_place_fast``, ``free`` ->
``_release_fast``, the dict sweep), or with ``_build_fast`` called again, the closures of
``_build_fitlist_fast``. Both get the same calls: after every call they must have returned
the same pointer and hold the same heap (blocks, free index, rover, byte counters, usage),
``check()`` holds, and at the end the kernel saw the same brk/mmap calls and the same pages
first written in the same order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.alloc import create
from memsim.alloc.seqfit import SeqFit, SizeList

from .fakesys import FakeSyscalls
from .twins import FirstTouch, call, seeded_op


class WithDicts(SeqFit):
    """SeqFit with the free-block dicts and the general methods (an override of the index
    operations turns ``by_address`` and the specialised closures off)."""

    def _index_add(self, blk: int, size: int) -> None:
        super()._index_add(blk, size)


def _state(a: SeqFit) -> tuple[Any, ...]:
    assert a.fits is not None
    return (a.alloc_blocks, a.free_blocks, a.free_end, a.fits.items(), a.rover,
            a.in_use_bytes, a.free_bytes, a.usage(), a.heap_start, a.heap_end, a.curbrk)


def _pair(closures: bool, **options: Any) -> tuple[SeqFit, FirstTouch, SeqFit, FirstTouch]:
    fk, dk = FirstTouch(), FirstTouch()
    fast = create("seqfit", fk, options)
    assert isinstance(fast, SeqFit) and fast.by_address
    assert "malloc" in vars(fast) and "free" in vars(fast), "the fast path is bound"
    dicts = WithDicts(dk, **options)
    assert not dicts.by_address and "malloc" not in vars(dicts)
    if closures:
        dicts._build_fast()                        # the generic closure, with the dicts
        assert "malloc" in vars(dicts)
    return fast, fk, dicts, dk


_sizes = st.one_of(st.integers(0, 24), st.integers(25, 600), st.integers(600, 20_000),
                   st.sampled_from([4072, 4096, 70_000]))
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


@pytest.mark.parametrize("closures", [False, True], ids=["methods", "closures"])
@settings(max_examples=40, deadline=None)
@given(ops=_ops, placement=st.sampled_from(["first", "next"]),
       coalesce=st.sampled_from(["immediate", "deferred", "none"]),
       lists=st.sampled_from(["explicit", "implicit"]), footer=st.sampled_from(["all", "free"]),
       grow=st.sampled_from([4096, 65536]), mmap_threshold=st.sampled_from([None, 16384]),
       realloc=st.sampled_from(["in-place", "copy"]))
def test_the_free_index_alone_is_the_dicts_path(
        closures: bool, ops: list[tuple[Any, ...]], placement: str, coalesce: str, lists: str,
        footer: str, grow: int, mmap_threshold: int | None, realloc: str) -> None:
    fast, fk, dicts, dk = _pair(closures, placement=placement, coalesce=coalesce, lists=lists,
                                footer=footer, grow=grow, mmap_threshold=mmap_threshold,
                                realloc=realloc)
    live_f: list[int] = []
    live_d: list[int] = []
    for op in ops:
        got = call(fast, live_f, op)
        want = call(dicts, live_d, op)
        assert got == want, op
        assert _state(fast) == _state(dicts), op
        assert fast.errno == dicts.errno, op
        fast.check()
    assert fk.first == dk.first, "pages first written in another order"
    assert fk.log == dk.log, "other brk/mmap calls"


@pytest.mark.parametrize("name", ["first-fit", "next-fit", "implicit-first-fit",
                                  "deferred-first-fit"])
def test_the_free_index_alone_on_a_long_seeded_run(name: str) -> None:
    """A few thousand calls over a heap of many pages: the searches walk buckets, buckets
    split and join, the rover wraps, deferred sweeps merge long runs."""
    rng = random.Random(7)
    fk, dk = FirstTouch(), FirstTouch()
    fast = create(name, fk)
    assert isinstance(fast, SeqFit) and fast.by_address
    dicts = WithDicts(dk, **fast.options)
    live_f: list[int] = []
    live_d: list[int] = []
    for n in range(4000):
        op = seeded_op(rng, live_f)
        assert call(fast, live_f, op) == call(dicts, live_d, op), (n, op)
        if n % 97 == 0:
            assert _state(fast) == _state(dicts), n
            fast.check()
    assert _state(fast) == _state(dicts)
    fast.check()
    assert fk.first == dk.first and fk.log == dk.log


def test_rebuild_keeps_the_fitlist_invariants() -> None:
    """FitList.rebuild (the deferred sweep's) for every length around the bucket sizes."""
    a = create("deferred-first-fit", FakeSyscalls())
    assert isinstance(a, SeqFit) and a.fits is not None
    fits = a.fits
    for n in range(0, 4 * fits.LOAD + 3):
        keys = [64 * k for k in range(n)]
        sizes = [32 + (k * 7919) % 500 for k in range(n)]
        fits.rebuild(keys, sizes)
        fits.check()
        assert fits.items() == list(zip(keys, sizes, strict=True))
        for want in (1, 200, 531, 600):
            fit = next((k for k, s in zip(keys, sizes, strict=True) if s >= want), None)
            assert fits.first_fit(want) == fit


def test_sizelist_is_a_sorted_list() -> None:
    """SizeList (best and worst fit's index) against a plain sorted list: adds, removes and
    replaces (in place, and ones that move the key) over a few hundred keys, so buckets
    split, join and empty; check() and every ceiling after each step."""
    rng = random.Random(11)
    sl = SizeList()
    want: list[int] = []
    for n in range(6000):
        r = rng.random()
        if want and r < 0.35 - 0.2 * (len(want) < 40):
            k = want.pop(rng.randrange(len(want)))
            sl.remove(k)
        elif want and r < 0.6:
            old = want.pop(rng.randrange(len(want)))
            new = old + rng.choice([1, -1, rng.randrange(-5000, 5000)])
            if new < 0 or new in want:
                want.append(old)
                want.sort()
                continue
            sl.replace(old, new)
            want.append(new)
        else:
            k = rng.randrange(20_000)
            if k in want:
                continue
            sl.add(k)
            want.append(k)
        want.sort()
        assert list(sl) == want, n
        sl.check()
        q = rng.randrange(20_001)
        assert sl.ceiling(q) == next((k for k in want if k >= q), None)
        assert sl.first() == (want[0] if want else None)
    with pytest.raises(KeyError):
        sl.remove(20_001)


@pytest.mark.parametrize("name", ["best-fit", "worst-fit"])
def test_best_and_worst_fit_closures_are_the_methods(name: str) -> None:
    """The closures of ``_build_fast`` (best fit's SizeList operated inline, worst fit's lazy
    heap) against the general methods (``_place``, ``_release`` and the index operations of
    ``_specialise``) on a long seeded run: the same pointers, heap and
    free index after every call, the same brk/mmap calls and first-written pages."""
    rng = random.Random(5)
    fk, dk = FirstTouch(), FirstTouch()
    fast = create(name, fk)
    assert isinstance(fast, SeqFit) and "malloc" in vars(fast)
    plain = create(name, dk)
    assert isinstance(plain, SeqFit)
    del plain.malloc, plain.free                   # the closures: the methods again
    plain.fast = False                             # ... and their general steps
    live_f: list[int] = []
    live_d: list[int] = []

    def state(a: SeqFit) -> tuple[Any, ...]:
        return (a.alloc_blocks, a.free_blocks, a.free_end, a._index_items(), a.in_use_bytes,
                a.free_bytes, a.usage(), a.heap_end, a.curbrk)

    for n in range(5000):
        if live_f and rng.random() < 0.47:
            op: tuple[Any, ...] = ("free", rng.randrange(len(live_f)))
        elif rng.random() < 0.03:
            op = ("realloc", rng.randrange(64), rng.randrange(1, 3000))
        else:
            op = ("malloc", rng.choice([rng.randrange(1, 64), rng.randrange(64, 1024),
                                        rng.randrange(1024, 40_000)]))
        assert call(fast, live_f, op) == call(plain, live_d, op), (n, op)
        if n % 101 == 0:
            assert state(fast) == state(plain), n
            fast.check()
    assert state(fast) == state(plain)
    assert len(fast.free_blocks) > 4 * SizeList.LOAD, "the index spans several buckets"
    fast.check()
    assert fk.first == dk.first and fk.log == dk.log
