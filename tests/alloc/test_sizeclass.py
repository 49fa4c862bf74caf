"""sizeclass.py: one size class per page, a free list per page, pages threaded lazily, empty
pages given back with madvise, empty segments unmapped."""

from __future__ import annotations

import pytest

from memsim.alloc import create
from memsim.alloc.sizeclass import (
    CLASSES,
    SEGMENT_INFO_SIZE,
    SEGMENT_SIZE,
    SMALL_PAGE_SIZE,
    SizeClass,
)
from memsim.errors import ConfigError
from memsim.process import Process
from memsim.units import PAGE_SIZE


def make(**options: object) -> tuple[SizeClass, Process]:
    proc = Process()
    a = create("sizeclass", proc.mm, options)
    assert isinstance(a, SizeClass)
    return a, proc


def test_class_table_is_16_steps_then_four_per_doubling() -> None:
    assert CLASSES[:9] == [16, 32, 48, 64, 80, 96, 112, 128, 160]
    assert CLASSES[-1] == 128 * 1024
    assert all(c % 16 == 0 for c in CLASSES) and CLASSES == sorted(set(CLASSES))
    a, _ = make()
    for size in (0, 1, 16, 17, 129, 1000, 1025, 5000, 100_000):
        p = a.malloc(size)
        n = a.malloc_usable_size(p)
        assert n in CLASSES and n >= size
        assert CLASSES.index(n) == 0 or CLASSES[CLASSES.index(n) - 1] < max(size, 1)


def test_blocks_of_one_class_share_a_page_and_classes_do_not() -> None:
    a, _ = make()
    p = [a.malloc(40) for _ in range(3)]
    q = a.malloc(1000)
    assert p[1] - p[0] == 48 and p[2] - p[1] == 48
    assert a.live[p[0]] is a.live[p[2]] is not a.live[q]
    seg = p[0] & -SEGMENT_SIZE
    assert seg == q & -SEGMENT_SIZE and p[0] == seg + SEGMENT_INFO_SIZE
    assert q == seg + SMALL_PAGE_SIZE                     # the next page of the segment


def test_free_list_is_per_page_and_lifo() -> None:
    a, _ = make()
    p = [a.malloc(100) for _ in range(5)]
    a.free(p[1])
    a.free(p[3])
    assert a.malloc(100) == p[3] and a.malloc(100) == p[1]
    a.check()


def test_pages_are_threaded_4k_at_a_time() -> None:
    a, proc = make()
    before = proc.mm.rss
    a.malloc(16)
    assert proc.mm.rss - before == 1 + 1                   # segment info + first 4 KiB
    for _ in range(255):
        a.malloc(16)                                       # still within the first 4 KiB
    assert proc.mm.rss - before == 2
    a.malloc(16)
    assert proc.mm.rss - before == 3


def test_an_empty_page_goes_back_to_the_os() -> None:
    a, proc = make(retire_delay=0)
    keep = a.malloc(5000)                                  # keeps the segment alive
    ptrs = [a.malloc(100) for _ in range(500)]
    for p in ptrs:
        proc.mm.write(p, 100)
    high = proc.mm.rss
    for p in ptrs:
        a.free(p)
    assert high - proc.mm.rss >= (500 * 112) // PAGE_SIZE - 1
    assert a.usage().cached > 0
    a.check()
    a.free(keep)


def test_page_reset_none_keeps_pages_resident() -> None:
    a, proc = make(reset="none", retire_delay=0)
    keep = a.malloc(5000)
    ptrs = [a.malloc(100) for _ in range(500)]
    high = proc.mm.rss
    for p in ptrs:
        a.free(p)
    assert proc.mm.rss == high
    a.free(keep)


def test_an_empty_segment_is_unmapped() -> None:
    a, proc = make(retire_delay=0)
    vm = proc.mm.total_vm
    p = a.malloc(100)
    assert proc.mm.total_vm - vm == SEGMENT_SIZE // PAGE_SIZE
    a.free(p)
    assert proc.mm.total_vm == vm and not a.segments
    a.check()


def test_the_only_page_of_a_class_is_kept_for_a_while() -> None:
    """mimalloc's retire_expire: an empty page that is its class's only page stays (no
    madvise/fault churn when one object comes and goes), and is retired after
    RETIRE_CYCLES allocations that took the slow path, or at malloc_trim."""
    a, proc = make()
    vm = proc.mm.total_vm
    for _ in range(50):
        a.free(a.malloc(100))                              # one page, never retired
    page = next(iter(a.kept))
    assert a.kept and page.used == 0 and proc.mm.total_vm > vm
    a.check()
    for _ in range(15):
        a.malloc(1000)                                     # each one bumps: a cycle
    assert page in a.kept
    a.malloc(1000)
    assert page not in a.kept
    a.check()
    b, proc2 = make()
    vm2 = proc2.mm.total_vm
    b.free(b.malloc(100))
    assert b.malloc_trim(0) == 1 and proc2.mm.total_vm == vm2 and not b.kept
    b.check()


def test_huge_requests_get_their_own_mapping() -> None:
    a, _ = make()
    p = a.malloc(1 << 20)
    assert p in a.big and a.malloc_usable_size(p) >= 1 << 20
    a.free(p)
    assert not a.big


def test_memalign_uses_a_class_that_is_a_multiple_of_the_alignment() -> None:
    a, _ = make()
    for align, size in ((32, 10), (64, 100), (1024, 100), (4096, 5000), (8192, 10)):
        p = a.memalign(align, size)
        assert p % align == 0 and a.malloc_usable_size(p) >= size
    a.check()


def test_realloc_keeps_the_block_when_it_fits_and_is_at_least_half() -> None:
    a, _ = make()
    p = a.malloc(1000)                                     # class 1024
    assert a.realloc(p, 600) == p
    q = a.realloc(p, 100)
    assert q != p and a.malloc_usable_size(q) == 112
    a.check()


def test_bad_option() -> None:
    with pytest.raises(ConfigError, match="reset"):
        create("sizeclass", Process().mm, {"reset": "sometimes"})
