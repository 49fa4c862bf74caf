"""tcache.py: LIFO bins, the struct writes, and the count limit check."""

from __future__ import annotations

import pytest

from memsim.alloc.glibc.tcache import Tcache


def test_tcache_is_lifo_and_writes_entry_and_struct() -> None:
    writes: list[tuple[int, int]] = []
    tc = Tcache(0x1000, lambda a, n: writes.append((a, n)))
    tc.put(0x2000, 3)
    tc.put(0x3000, 3)
    assert (0x2010, 16) in writes                        # next + key of the entry
    assert (0x1010 + 6, 136 + 18) in writes              # counts[3] .. entries[3]
    assert tc.get(3) == 0x3000 and tc.get(3) == 0x2000
    assert (0x3018, 8) in writes                         # key cleared on get
    assert tc.where(0x3000) == -1
    tc.check(7)


def test_check_catches_a_chunk_cached_twice() -> None:
    tc = Tcache(0x1000, lambda a, n: None)
    tc.put(0x2000, 0)
    tc.put(0x2000, 1)
    with pytest.raises(AssertionError):
        tc.check(7)
