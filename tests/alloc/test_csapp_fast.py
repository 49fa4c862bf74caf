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

from memsim.alloc import AllocatorAbort, create
from memsim.alloc.csapp import CsappAllocator, CsappFirstFit, CsappNextFit

from .fakesys import PAGE, FakeSyscalls


class FirstTouch(FakeSyscalls):
    """FakeSyscalls that also lists the pages in the order they were first written."""

    def __init__(self) -> None:
        super().__init__()
        self.first: list[int] = []

    def write(self, addr: int, length: int = 1) -> None:
        for page in range(addr // PAGE, (addr + length - 1) // PAGE + 1):
            if page * PAGE not in self.pages:
                self.first.append(page)
        super().write(addr, length)


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


def _call(a: CsappAllocator, live: list[int], op: tuple[Any, ...]) -> Any:
    """Do ``op`` on ``a``; ``live`` is the list of pointers held (updated)."""
    kind = op[0]
    if kind == "malloc":
        p = a.malloc(op[1])
    elif kind == "calloc":
        p = a.calloc(1, op[1])
    elif kind == "memalign":
        p = a.memalign(op[1], op[2])
    elif not live:
        return None
    elif kind == "free":
        a.free(live.pop(op[1] % len(live)))
        return None
    elif kind == "badfree":
        try:
            a.free(live[op[1] % len(live)] + a.DSIZE)
        except AllocatorAbort:
            return "abort"
        return "no abort"
    else:
        i = op[1] % len(live)
        p = a.realloc(live[i], op[2])
        if p or not op[2]:
            live.pop(i)
    if p:
        live.append(p)
    return p


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
        got = _call(fast, live_f, op)
        want = _call(book, live_b, op)
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
        if live_f and rng.random() < 0.45:
            op: tuple[Any, ...] = ("free", rng.randrange(len(live_f)))
        elif rng.random() < 0.03:
            op = ("realloc", rng.randrange(64), rng.randrange(1, 3000))
        else:
            op = ("malloc", rng.choice([rng.randrange(1, 64), rng.randrange(64, 1024),
                                        rng.randrange(1024, 40_000)]))
        assert _call(fast, live_f, op) == _call(book, live_b, op), (n, op)
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
