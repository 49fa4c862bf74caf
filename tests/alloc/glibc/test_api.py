"""The public entry points of Glibc236 (__init__.py) that the oracle scripts do not reach."""

from __future__ import annotations

import pytest

from memsim.alloc import NotModelled
from memsim.alloc.glibc import Glibc236
from memsim.kernel.abi import EINVAL, ENOMEM

from ..fakesys import FakeSyscalls


def test_mallinfo_truncates_to_int() -> None:
    g = Glibc236(FakeSyscalls())
    g.malloc(3 << 30)                                    # 3 GiB mmapped: hblkhd > INT_MAX
    assert g.mallinfo2().hblkhd > 1 << 31
    assert g.mallinfo().hblkhd == g.mallinfo2().hblkhd - (1 << 32)


def test_usage_buckets_add_up_through_a_foreign_sbrk_and_fallback() -> None:
    fake = FakeSyscalls()
    g = Glibc236(fake)
    keep = [g.malloc(n) for n in (10, 5000, 70000, 300000, 24, 24)]
    g.sbrk(100)                                          # a foreign sbrk: a gap in the heap
    keep += [g.malloc(200000 - i) for i in range(3)]
    fake.brk_limit = fake.cur                            # brk refused: mmap as morecore
    keep += [g.malloc(100000) for _ in range(12)]
    for p in keep[::2]:
        g.free(p)
    g.check()
    u = g.usage()
    assert u.in_use + u.cached + u.free + u.top + u.overhead == u.total
    assert not g.av.contiguous and g.av.fences


def test_errors_are_returned_like_c() -> None:
    g = Glibc236(FakeSyscalls())
    assert g.posix_memalign(24, 10) == (EINVAL, 0)
    assert g.malloc(1 << 63) == 0 and g.errno == ENOMEM
    assert g.calloc(1 << 32, 1 << 32) == 0 and g.errno == ENOMEM
    assert g.memalign((1 << 63) + 1, 10) == 0 and g.errno == EINVAL
    assert g.pvalloc((1 << 64) - 1) == 0 and g.errno == ENOMEM
    assert g.malloc_usable_size(0) == 0
    assert g.realloc(0, 0) != 0                          # realloc(NULL, 0) is malloc(0)


def test_malloc_stats_text() -> None:
    g = Glibc236(FakeSyscalls())
    g.malloc(10)
    lines = g.malloc_stats().splitlines()
    assert lines[0] == "Arena 0:" and lines[3] == "Total (incl. mmap):"
    assert lines[1] == f"system bytes     = {g.av.system_mem:10d}"


def test_a_first_malloc_the_main_arena_cannot_serve_is_not_modelled() -> None:
    """glibc would put the tcache in a new thread arena: the model stops instead."""
    fake = FakeSyscalls()
    fake.brk_limit = fake.brk0 + (1 << 20)              # brk and mmap both refuse 2**50
    g = Glibc236(fake, env={"MALLOC_TOP_PAD_": str(1 << 50)})
    with pytest.raises(NotModelled, match="thread arena"):
        g.malloc(10)
