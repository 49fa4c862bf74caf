"""MM.write's fastest path (the cached resident-and-writable range) never goes stale.

Each scenario writes (which fills the cache), changes the address space or the page states in
a way that must invalidate it, and writes again: the second write must behave exactly as if
there were no cache. The randomized test replays the same operations on two machines, one of
them with the cache disabled, and compares every outcome and the whole page-table state.
"""

from __future__ import annotations

import random

import pytest

from memsim.errors import ConfigError, OutOfMemoryKilled, SegmentationFault
from memsim.kernel.abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
)
from memsim.kernel.layout import Layout
from memsim.kernel.machine import Machine
from memsim.kernel.mm import MADV_DONTNEED, MADV_HUGEPAGE, MM

P = 4096
MiB = 1 << 20
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def new_mm(**machine: object) -> MM:
    m = Machine(ram=machine.pop("ram", "1G"), **machine)  # type: ignore[arg-type]
    return MM(m, 4242, Layout.default())


def cached(mm: MM, addr: int, length: int) -> bool:
    return mm._wlo <= addr and addr + length <= mm._whi


def test_a_repeated_write_is_cached_and_changes_nothing() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 16 * P, RW, ANON)
    mm.write(a, 16 * P)
    assert cached(mm, a + 100, 8)
    before = (list(mm.pt.ptes), mm.pt.pgfault, mm.rss)
    mm.write(a + 100, 8)
    assert (list(mm.pt.ptes), mm.pt.pgfault, mm.rss) == before
    mm.check()


def test_write_munmap_write_is_a_segfault() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 4 * P, RW, ANON)
    mm.write(a, 4 * P)
    assert cached(mm, a, 8)
    assert mm.sys_munmap(a, 4 * P) == 0
    with pytest.raises(SegmentationFault) as e:
        mm.write(a, 8)
    assert e.value.code == "SEGV_MAPERR"


@pytest.mark.parametrize("older", [1, 2, 4, 6])
def test_an_earlier_cached_range_is_dropped_too(older: int) -> None:
    mm = new_mm()
    areas = []
    for _ in range(older + 1):
        areas.append(mm.sys_mmap(0, 4 * P, RW, ANON))
        mm.sys_mmap(0, P, PROT_READ, ANON)       # keep them apart (no merge)
    for a in areas:
        mm.write(a, 4 * P)                       # each a range of its own, newest first
    old = areas[0]
    earlier = list(zip(mm._wstarts, mm._wends, strict=True))
    assert all(lo < hi for lo, hi in earlier)
    assert all(x[1] < y[0] for x, y in zip(earlier, earlier[1:], strict=False))  # sorted, apart
    assert len(earlier) <= older + 1                                # O(touched ranges)
    remembered = [(mm._wlo, mm._whi), (mm._wlo2, mm._whi2), *earlier]
    assert any(lo <= old and old + 4 * P <= hi for lo, hi in remembered)
    assert mm.sys_mprotect(old, 4 * P, PROT_READ) == 0
    with pytest.raises(SegmentationFault) as e:
        mm.write(old + 8, 8)
    assert e.value.code == "SEGV_ACCERR"
    mm.write(areas[-1], 8)
    assert mm.sys_munmap(areas[-1], 4 * P) == 0
    if older > 1:
        mm.write(areas[1], 8)                    # an older one comes back to the front
    with pytest.raises(SegmentationFault):
        mm.write(areas[-1] + 8, 8)


def test_write_mprotect_read_only_write_is_an_access_error() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 4 * P, RW, ANON)
    mm.write(a, 4 * P)
    assert mm.sys_mprotect(a + P, P, PROT_READ) == 0
    mm.write(a, 8)                               # still writable
    with pytest.raises(SegmentationFault) as e:
        mm.write(a + P + 8, 8)
    assert e.value.code == "SEGV_ACCERR"


def test_write_madvise_dontneed_write_faults_again() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 8 * P, RW, ANON)
    mm.write(a, 8 * P)
    rss, faults = mm.rss, mm.pt.pgfault
    assert mm.sys_madvise(a, 8 * P, MADV_DONTNEED) == 0
    assert mm.rss == rss - 8
    mm.write(a + 3 * P, 8)
    assert mm.rss == rss - 7
    assert mm.pt.pgfault == faults + 1


def test_write_brk_shrink_write_is_a_segfault() -> None:
    mm = new_mm()
    b0 = mm.sys_brk(0)
    mm.sys_brk(b0 + 8 * P)
    mm.write(b0, 8 * P)
    assert cached(mm, b0 + 5 * P, 8)
    mm.sys_brk(b0 + 2 * P)
    with pytest.raises(SegmentationFault):
        mm.write(b0 + 5 * P, 8)


def test_write_mremap_move_write_old_is_a_segfault_new_is_resident() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 4 * P, RW, ANON)
    dest = mm.sys_mmap(0, 64 * P, RW, ANON)
    mm.write(a, 4 * P)
    rss = mm.rss
    assert mm.sys_mremap(a, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dest) == dest
    with pytest.raises(SegmentationFault):
        mm.write(a, 8)
    mm.write(dest, 4 * P)
    assert mm.rss == rss


def test_write_map_fixed_over_it_write_faults_a_fresh_page() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 4 * P, RW, ANON)
    mm.write(a, 4 * P)
    assert mm.sys_mmap(a, 4 * P, RW, ANON | MAP_FIXED) == a
    rss = mm.rss
    mm.write(a, 8)
    assert mm.rss == rss + 1


def test_write_after_exit_is_refused() -> None:
    mm = new_mm()
    a = mm.sys_mmap(0, 4 * P, RW, ANON)
    mm.write(a, 4 * P)
    mm.exit_mmap()
    with pytest.raises(ConfigError):
        mm.write(a, 8)


def test_write_after_swap_out_is_a_major_fault() -> None:
    m = Machine(ram="16M", swap="64M", replacement="fifo")
    victim = MM(m, 1, Layout.default(), populate_image=False)
    a = victim.sys_mmap(0, 2 * MiB, RW, ANON)
    victim.write(a, 2 * MiB)
    assert cached(victim, a, 8)
    other = MM(m, 2, Layout.default(), populate_image=False)
    b = other.sys_mmap(0, 32 * MiB, RW, ANON)
    other.write(b, 32 * MiB)                 # pushes the victim's oldest pages out
    assert victim.pt.swap_ents > 0
    assert not cached(victim, a, 8)
    major = victim.pt.pgmajfault
    victim.write(a, 8)
    assert victim.pt.pgmajfault == major + 1


def test_lru_recency_is_never_cached() -> None:
    m = Machine(ram="64M", swap="64M", replacement="lru")
    mm = MM(m, 1, Layout.default(), populate_image=False)
    a = mm.sys_mmap(0, 4 * P, RW, ANON)
    mm.write(a, 4 * P)
    assert not cached(mm, a, 8)              # every access re-stamps its page


def _apply(mm: MM, op: tuple) -> object:
    kind, args = op[0], op[1:]
    try:
        if kind == "w":
            mm.write(*args)
            return None
        if kind == "r":
            mm.read(*args)
            return None
        return getattr(mm, kind)(*args)
    except SegmentationFault as e:
        return ("SEGV", e.code, e.addr)
    except OutOfMemoryKilled:
        return "OOM"
    except ConfigError as e:
        return ("dead", str(e))


def _state(mm: MM) -> tuple:
    pt = mm.pt
    return (list(pt.ptes), pt.anon_pages, pt.swap_ents, pt.pgfault, pt.pgmajfault,
            [(v.vm_start, v.vm_end, v.vm_flags) for v in mm.tree], mm.brk)


@pytest.mark.parametrize("seed,machine", [
    (1, dict(ram="1G")),
    (2, dict(ram="12M", swap="64M", replacement="fifo")),
    (3, dict(ram="12M", swap="64M", replacement="clock")),
    (4, dict(ram="12M", swap="64M", replacement="lru")),
    (5, dict(ram="1G", thp="always")),
    (6, dict(ram="12M", swap="4M", replacement="fifo")),
])
def test_random_operations_agree_with_an_uncached_mm(seed: int, machine: dict) -> None:
    rng = random.Random(seed)
    mms = []
    for cache in (True, False):
        m = Machine(**machine)  # type: ignore[arg-type]
        mm = MM(m, 7, Layout.default(), populate_image=False)
        if not cache:
            mm._note_written = lambda *a: None  # type: ignore[method-assign]
        mms.append(mm)
    base = mms[0].sys_mmap(0, 64 * MiB, 0, ANON)     # an area to play in (PROT_NONE)
    b0 = mms[0].sys_brk(0)
    assert mms[1].sys_mmap(0, 64 * MiB, 0, ANON) == base
    spans = [(base, 64 * MiB), (b0, 8 * MiB)]
    for step in range(600):
        s, n = rng.choice(spans)
        off = rng.randrange(0, n // P) * P
        size = rng.choice([1, 8, 24, 100, P, 3 * P, 40 * P, 600 * P])
        r = rng.random()
        if r < 0.55:
            op = ("w", s + off + rng.randrange(P), size)
        elif r < 0.6:
            op = ("r", s + off + rng.randrange(P), size)
        elif r < 0.7 and s == base:
            op = ("sys_mmap", s + off, size * 4 // P * P + P, RW, ANON | MAP_FIXED)
        elif r < 0.76 and s == base:
            op = ("sys_mprotect", s + off, size // P * P + P, rng.choice([RW, PROT_READ, 0]))
        elif r < 0.82:
            op = ("sys_madvise", s + off, size // P * P + P,
                  rng.choice([MADV_DONTNEED, MADV_HUGEPAGE]))
        elif r < 0.86 and s == base:
            op = ("sys_munmap", s + off, size // P * P + P)
        elif r < 0.9 and s == base:
            dest = base + rng.randrange(0, 64 * MiB // P) * P
            op = ("sys_mremap", s + off, P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dest)
        elif r < 0.95:
            op = ("sys_brk", b0 + rng.randrange(0, 8 * MiB))
        else:
            op = ("w", s + off, size)
        got = [_apply(mm, op) for mm in mms]
        assert got[0] == got[1], (step, op)
        assert _state(mms[0]) == _state(mms[1]), (step, op)
        if got[0] == "OOM" or isinstance(got[0], tuple) and got[0][0] == "dead":
            break
    for mm in mms:
        if not mm.dead:
            mm.check()
