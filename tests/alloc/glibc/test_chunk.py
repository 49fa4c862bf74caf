"""chunk.py: request2size and the bin index tables follow malloc.c's definitions."""

from __future__ import annotations

from memsim.alloc.glibc import chunk as c


def test_tables_are_consistent() -> None:
    c.check()


def test_request2size_pads_by_a_word_and_rounds_to_16() -> None:
    for req in range(0, 5000):
        nb = c.request2size(req)
        assert nb % 16 == 0 and nb >= c.MINSIZE
        assert nb - 8 >= req                      # usable size covers the request
        assert nb == c.MINSIZE or nb - 8 - 16 < req


def test_checked_request2size_refuses_above_ptrdiff_max() -> None:
    assert c.checked_request2size(c.PTRDIFF_MAX + 1) == 0
    assert c.checked_request2size(c.PTRDIFF_MAX) > 0


def test_small_and_large_ranges_meet_at_0x400() -> None:
    assert c.bin_index(0x3F0) == 63 and c.bin_index(0x400) == 64
    assert c.in_smallbin_range(0x3F0) and not c.in_smallbin_range(0x400)
    assert c.largebin_index(1 << 40) == 126


def test_tcache_covers_chunks_up_to_0x410() -> None:
    assert c.csize2tidx(c.request2size(c.MAX_TCACHE_SIZE)) == c.TCACHE_MAX_BINS - 1
    assert c.tidx2usize(c.TCACHE_MAX_BINS - 1) == c.MAX_TCACHE_SIZE


def test_set_max_fast() -> None:
    assert c.max_fast_for(0) == 16                # fastbins disabled
    assert c.max_fast_for(c.DEFAULT_MXFAST) == 0x80
    assert c.max_fast_for(c.MAX_FAST_SIZE) == 0xA0
