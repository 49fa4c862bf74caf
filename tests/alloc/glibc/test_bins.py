"""bins.py: the dict-linked bins keep glibc's order rules and their invariants."""

from __future__ import annotations

import random

from memsim.alloc.glibc.bins import BinSet
from memsim.alloc.glibc.chunk import largebin_index


def _bin(b: BinSet, p: int, size: int) -> None:
    """(D3) as _int_malloc does it: the chunk is recorded free, then binned."""
    b.free[p] = size
    b.free_end[p + size] = p
    b.bin_chunk(p, size)


def _bins() -> tuple[BinSet, list[tuple[int, int]]]:
    writes: list[tuple[int, int]] = []
    return BinSet(lambda a, n: writes.append((a, n))), writes


def test_unsorted_bin_is_fifo_and_writes_header_links_footer() -> None:
    b, writes = _bins()
    b.unsorted_insert(0x1000, 0x100, True)
    covered = {a for start, n in writes for a in range(start, start + n)}
    assert set(range(0x1008, 0x1020)) <= covered          # size, fd, bk
    assert set(range(0x1100, 0x1110)) <= covered          # footer, next chunk's P bit
    assert {a >> 12 for a in covered} == {1}              # and no other page
    writes.clear()
    b.unsorted_insert(0x1FF0, 0x100, True)                # header and footer pages differ
    assert sorted({a >> 12 for start, n in writes for a in range(start, start + n)}) == [1, 2]
    assert sum(n for _, n in writes) < 0x40                  # not the whole chunk
    b.unlink_chunk(0x1FF0)
    b.unsorted_insert(0x2000, 0x100, False)
    assert list(b.bin_chunks(1)) == [0x2000, 0x1000]
    assert b.bk[-1] == 0x1000                     # the scan takes the oldest first
    assert b.free_end[0x2100] == 0x2000
    b.check()


def test_large_bin_order_equal_size_goes_second_in_its_run() -> None:
    """The spec's t2-6 sequence: sizes 0x1010,0x1110,0x1050,0x1110,0x1090,0x1010."""
    b, _ = _bins()
    sizes = [0x1010, 0x1110, 0x1050, 0x1110, 0x1090, 0x1010]
    addrs = [0x10000 * (i + 1) for i in range(len(sizes))]
    for a, s in zip(addrs, sizes, strict=True):
        _bin(b, a, s)
        b.check()
    idx = largebin_index(0x1010)
    order = list(b.bin_chunks(idx))
    assert [b.free[a] for a in order] == sorted(sizes, reverse=True)
    assert order[:2] == [addrs[1], addrs[3]] and order[-2:] == [addrs[0], addrs[5]]
    assert b.large_best_fit(idx, 0x1050) == addrs[2]
    assert b.large_best_fit(idx, 0x1000) == addrs[5]       # the second of the 0x1010 run
    assert b.large_best_fit(idx, 0x1100) == addrs[3]
    assert b.large_best_fit(idx, 0x2000) == 0


def test_random_inserts_and_unlinks_keep_every_invariant() -> None:
    rng = random.Random(5)
    b, _ = _bins()
    live: list[int] = []
    addr = 0x100000
    for _ in range(3000):
        if live and rng.random() < 0.45:
            p = live.pop(rng.randrange(len(live)))
            b.unlink_chunk(p)
        else:
            size = rng.choice([0x20, 0x90, 0x3F0, 0x400, 0x1010, 0x1010, 0x5000, 0x80000])
            if rng.random() < 0.3:
                b.unsorted_insert(addr, size, False)
            else:
                _bin(b, addr, size)
            live.append(addr)
            addr += size + 0x20
        if rng.random() < 0.05:
            b.check()
    b.check()
    assert set(live) == set(b.free)


def test_binmap_finds_first_non_empty_bin_above() -> None:
    b, _ = _bins()
    assert b.first_bin_above(2) == 0
    _bin(b, 0x5000, 0x300)
    _bin(b, 0x9000, 0x5000)
    assert b.first_bin_above(2) == 0x30
    assert b.first_bin_above(0x30) == largebin_index(0x5000)
    b.unlink_chunk(0x5000)
    assert b.first_bin_above(2) == largebin_index(0x5000)
    b.check()
