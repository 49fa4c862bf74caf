"""buddy.py: power-of-two blocks, splitting down, merging back with buddies, natural
alignment, in-place realloc, arenas from sbrk given back by malloc_trim."""

from __future__ import annotations

import random
from typing import Any

import pytest

from memsim.alloc import create
from memsim.alloc.buddy import Buddy
from memsim.errors import ConfigError
from memsim.process import Process
from memsim.units import MiB


def make(**options: Any) -> tuple[Buddy, Process]:
    proc = Process()
    a = create("buddy", proc.mm, options)
    assert isinstance(a, Buddy)
    return a, proc


def test_a_request_gets_the_smallest_power_of_two_block() -> None:
    a, _ = make()
    for size, block in ((1, 32), (16, 32), (17, 64), (100, 128), (1000, 1024), (5000, 8192)):
        p = a.malloc(size)
        assert a.alloc[p] == block.bit_length() - 1
        assert a.malloc_usable_size(p) == block - 16
    a.check()


def test_splitting_leaves_one_free_block_per_order() -> None:
    a, _ = make()
    a.malloc(10)                                         # order 5 out of a 1 MiB arena
    assert sorted(a.free_order.values()) == list(range(5, 20))
    a.check()


def test_freeing_everything_merges_back_to_whole_arenas() -> None:
    a, _ = make(arena=64 * 1024)
    rng = random.Random(3)
    live = [a.malloc(rng.randrange(1, 9000)) for _ in range(300)]
    rng.shuffle(live)
    for p in live:
        a.free(p)
        a.check()
    arenas = (a.heap_end - a.heap_start) // a.arena
    assert arenas > 1
    assert sorted(a.free_order.values()) == [a.max_order] * arenas


def test_buddies_merge_only_with_their_own_buddy() -> None:
    a, _ = make()
    p = [a.malloc(100) for _ in range(4)]                # 4 x 128 at offsets 0..384
    a.free(p[1])
    a.free(p[2])                                         # neighbours, but not buddies
    assert a.free_order[p[1] - 16] == 7 and a.free_order[p[2] - 16] == 7
    a.free(p[0])                                         # 0 and 1 merge into 256
    assert a.free_order[p[0] - 16] == 8
    a.check()


def test_headerless_blocks_are_naturally_aligned() -> None:
    a, _ = make(header=0)
    for align in (32, 256, 4096):
        p = a.memalign(align, 10)
        assert p % align == 0
    q = a.malloc(100)
    assert q % 128 == 0
    a.check()


def test_memalign_with_headers_and_above_a_page() -> None:
    a, _ = make()
    p = a.memalign(256, 300)
    assert p % 256 == 0 and a.malloc_usable_size(p) >= 300
    q = a.memalign(65536, 100)
    assert q % 65536 == 0 and q in a.big
    a.free(p)
    a.free(q)
    a.check()


def test_realloc_shrinks_and_grows_in_place() -> None:
    a, _ = make()
    p = a.malloc(1000)                                   # 1024
    assert a.realloc(p, 100) == p and a.alloc[p] == 7
    assert a.realloc(p, 900) == p and a.alloc[p] == 10   # the upper buddies were free
    a.malloc(10)
    a.check()


def test_large_requests_are_mmapped() -> None:
    a, proc = make()
    brk = proc.mm.brk
    p = a.malloc(2 * MiB)
    assert p in a.big and proc.mm.brk == brk
    a.free(p)
    a.check()


def test_malloc_trim_gives_back_free_arenas_at_the_end() -> None:
    a, proc = make(arena=64 * 1024)
    start = proc.mm.brk
    ps = [a.malloc(60_000) for _ in range(4)]
    assert proc.mm.brk - start >= 4 * 64 * 1024
    for p in ps:
        a.free(p)
    assert a.malloc_trim(64 * 1024) == 1
    assert a.heap_end - a.heap_start == 64 * 1024
    assert a.malloc_trim(0) == 1 and a.heap_end == a.heap_start
    a.check()
    assert a.malloc(10)
    a.check()


@pytest.mark.parametrize("bad", [{"arena": 1000}, {"min_block": 16}, {"header": 8},
                                 {"min_block": 48}])
def test_bad_options(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        create("buddy", Process().mm, bad)
