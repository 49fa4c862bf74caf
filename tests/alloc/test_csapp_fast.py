"""csapp-*: the fast entry points (CsappAllocator._build_fast) against the book's methods.

Two allocators get the same calls: one through the closures ``malloc``/``free`` that
``_build_fast`` binds, the other an instance of a subclass that overrides ``mm_malloc``
(so it keeps the book's path: ``malloc`` -> ``mm_malloc`` -> ``find_fit``/``place``,
``free`` -> ``mm_free`` -> ``coalesce``). After every call they must have returned the same
pointer and hold the same heap (blocks, free index, rover, byte counters), and ``check()``
holds; at the end the kernel saw the same brk calls and the same pages first written in the
same order (the fast path merges stores on the same or adjacent pages, never more).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.alloc import create
from memsim.alloc.csapp import CsappAllocator, CsappFirstFit, CsappNextFit

from .fakesys import FakeSyscalls
from .twins import FirstTouch, call, seeded_op


class BookFirstFit(CsappFirstFit):
    """csapp-first-fit on the book's path only (an override turns the fast path off)."""

    def mm_malloc(self, size: int) -> int:
        return super().mm_malloc(size)


class BookNextFit(CsappNextFit):
    """csapp-next-fit on the book's path only."""

    def mm_malloc(self, size: int) -> int:
        return super().mm_malloc(size)


def _state(a: CsappAllocator) -> tuple[Any, ...]:
    return (a.alloc_blocks, a.free_blocks, a.free_end, a.fits.items(), a.rover,
            a.in_use_bytes, a.free_bytes, a.usage(), a.mem_brk, a.mem_start_brk, a.heap_listp)


def _pair(fit: str, **options: Any) -> tuple[CsappAllocator, FirstTouch, CsappAllocator,
                                             FirstTouch]:
    fk, bk = FirstTouch(), FirstTouch()
    fast = create(f"csapp-{fit}-fit", fk, options)
    assert isinstance(fast, CsappAllocator)
    book = (BookFirstFit if fit == "first" else BookNextFit)(bk, **options)
    for name in ("malloc", "free", "realloc"):
        assert name in vars(fast), "the fast path is bound"
        assert name not in vars(book), "the book's path"
    return fast, fk, book, bk


_sizes = st.one_of(st.integers(1, 24), st.integers(25, 600), st.integers(600, 20_000),
                   st.sampled_from([0, 4088, 4096, 1 << 20]))
_ops = st.lists(st.one_of(
    st.tuples(st.just("malloc"), _sizes),
    st.tuples(st.just("free"), st.integers(0, 63)),
    st.tuples(st.just("realloc"), st.integers(0, 63), _sizes),
    st.tuples(st.just("calloc"), _sizes),
    st.tuples(st.just("memalign"), st.sampled_from([16, 64, 4096]), _sizes),
    st.tuples(st.just("badfree"), st.integers(0, 63)),
), max_size=150)


@pytest.mark.parametrize("fit", ["first", "next"])
@settings(max_examples=60, deadline=None)
@given(ops=_ops, wsize=st.sampled_from([4, 8]), chunksize=st.sampled_from([64, 4096]),
       max_heap=st.sampled_from([None, 64 * 1024]))
def test_fast_path_is_the_books_path(fit: str, ops: list[tuple[Any, ...]], wsize: int,
                                     chunksize: int, max_heap: int | None) -> None:
    fast, fk, book, bk = _pair(fit, wsize=wsize, chunksize=chunksize, max_heap=max_heap)
    live_f: list[int] = []
    live_b: list[int] = []
    for op in ops:
        got = call(fast, live_f, op, fast.DSIZE)
        want = call(book, live_b, op, book.DSIZE)
        assert got == want, op
        assert _state(fast) == _state(book), op
        assert fast.errno == book.errno, op
        fast.check()
    assert fk.first == bk.first, "pages first written in another order"
    assert fk.log == bk.log, "other brk calls"


@pytest.mark.parametrize("fit", ["first", "next"])
def test_fast_path_on_a_long_seeded_run(fit: str) -> None:
    """A few thousand calls over a heap of many pages: the searches walk buckets, the
    stores span pages, the rover wraps."""
    import random

    rng = random.Random(4)
    fast, fk, book, bk = _pair(fit)
    live_f: list[int] = []
    live_b: list[int] = []
    for n in range(4000):
        op = seeded_op(rng, live_f)
        assert call(fast, live_f, op, fast.DSIZE) == call(book, live_b, op, book.DSIZE), (n, op)
        if n % 97 == 0:
            assert _state(fast) == _state(book), n
            fast.check()
    assert _state(fast) == _state(book)
    fast.check()
    assert fk.first == bk.first and fk.log == bk.log
    assert fk.writes < bk.writes, "the fast path merges stores"


def test_a_subclass_that_overrides_a_book_method_keeps_the_books_path() -> None:
    class Traced(CsappFirstFit):
        calls = 0

        def place(self, bp: int, asize: int) -> None:
            Traced.calls += 1
            super().place(bp, asize)

    a = Traced(FakeSyscalls())
    p = a.malloc(100)
    a.free(p)
    assert Traced.calls == 1 and "malloc" not in vars(a)
