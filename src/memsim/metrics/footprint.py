"""Where every byte of an allocator's footprint goes, at any moment of a run.

The footprint is the address space the allocator holds: the break above where its heap
started plus its own mappings (``HeapUsage.total`` of :meth:`memsim.alloc.base.Allocator.usage`,
which equals the kernel's view, brk - start + mapped bytes; a test asserts that). It is cut
into buckets that add up to it exactly, every byte in one bucket::

    footprint = payload            bytes the program asked for and still holds
              + padding            to the allocator's alignment: round_up(n, A) - n per object
              + rounding           size-class / minimum-block rounding beyond the alignment
              + mmap_rounding      the same for objects in their own mapping (page rounding)
              + headers            in-use chunk bytes outside every usable area: chunk headers
                                   (glibc: the size field; boundary tags), and blocks the
                                   allocator uses for itself (glibc's tcache_perthread_struct)
              + metadata           HeapUsage.overhead: fenceposts, prologue/epilogue, segment
                                   headers, page tails, alignment leads of mappings, gaps
              + free               free blocks in bins / free lists (HeapUsage.free)
              + cached             free blocks kept for fast reuse (tcache, fastbins, empty
                                   pages of a segment: HeapUsage.cached)
              + top                the wilderness at the end of the heap (HeapUsage.top)
              + untouched          mapped but never touched: no page behind it

How each is obtained
--------------------

*Per object* (:class:`ObjectLedger`, updated at each allocation and free, O(1) each): the
requested size n, the usable size u = ``malloc_usable_size(p)`` and whether the object lives
in its own mapping. padding = min(u, round_up(n, A)) - n, rounding = u - n - padding (into
mmap_rounding for a mapped object); the ledger keeps the four sums.

*From the allocator* (:meth:`Allocator.usage`, at sample time): in_use, cached, free, top,
overhead. headers = in_use - sum(u), i.e. every in-use byte that is not some live object's
usable area.

*From the page table*: resident = 4 KiB x (present or swapped pages) over the heap and the
allocator's mappings; untouched = footprint - resident (at least 0). Those bytes are carved
out of the other buckets, first from top, then free, cached, metadata, mmap_rounding,
rounding, padding, payload, headers: never-touched memory is the wilderness and free space that was
never handed out (live blocks are written when they are allocated, under ``touch=True``).
This is the one approximation: the page table is not intersected with each bucket's ranges.

``free_lists(alloc)`` splits free + cached by list where the allocator exposes its lists
(glibc: tcache, fastbins, unsorted, small and large bins; buddy: per order); others get one
entry per bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from memsim.alloc.base import Allocator
from memsim.units import PAGE_SIZE

__all__ = ["BUCKETS", "Breakdown", "ObjectLedger", "breakdown", "free_lists", "is_mapped_fn"]

#: The buckets in the order they are printed; their sum is the footprint.
BUCKETS: tuple[str, ...] = ("payload", "padding", "rounding", "mmap_rounding", "headers",
                            "metadata", "free", "cached", "top", "untouched")

#: The order in which untouched bytes are carved out of the other buckets.
_CARVE: tuple[str, ...] = ("top", "free", "cached", "metadata", "mmap_rounding", "rounding",
                           "padding", "payload", "headers")


@dataclass
class Breakdown:
    """The footprint, in bytes, bucket by bucket (see the module docstring)."""

    payload: int = 0
    padding: int = 0
    rounding: int = 0
    mmap_rounding: int = 0
    headers: int = 0
    metadata: int = 0
    free: int = 0
    cached: int = 0
    top: int = 0
    untouched: int = 0
    footprint: int = 0
    resident: int = 0             # bytes of the footprint with a page behind them

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check(self) -> None:
        """Every bucket non-negative and their sum the footprint."""
        for name in BUCKETS:
            assert getattr(self, name) >= 0, f"bucket {name} is negative: {self}"
        assert sum(getattr(self, n) for n in BUCKETS) == self.footprint, \
            f"buckets do not add up to the footprint: {self}"


def is_mapped_fn(alloc: Allocator) -> Callable[[int], bool]:
    """A test ``ptr -> bool``: does the object at ``ptr`` live in its own mapping?"""
    mmapped = getattr(alloc, "mmapped", None)        # glibc: chunk address -> (lead, size)
    if isinstance(mmapped, dict):
        return lambda p: (p - 16) in mmapped
    big = getattr(alloc, "big", None)                # memsim.alloc.classic: ptr -> mapping
    if isinstance(big, dict):
        return big.__contains__
    return lambda p: False


class ObjectLedger:
    """The live objects by simulated pointer, with the sums the breakdown needs.

    ``add(p, n)`` after an allocation of n bytes returned p; ``remove(p)`` after p is freed.
    State: one small tuple per live object.
    """

    def __init__(self, alloc: Allocator) -> None:
        self.usable_size = alloc.malloc_usable_size
        self.align = int(getattr(alloc, "alignment", 16))
        self.is_mapped = is_mapped_fn(alloc)
        self.objects: dict[int, tuple[int, int, int, int]] = {}   # p -> (n, u, pad, rnd)
        self.mapped: set[int] = set()
        self.payload = 0
        self.usable = 0
        self.padding = 0
        self.rounding = 0
        self.mmap_rounding = 0

    def add(self, p: int, n: int) -> None:
        if p in self.objects:                 # the allocator handed p out twice: keep the new
            self.remove(p)
        u = self.usable_size(p)
        a = self.align
        padded = (n + a - 1) // a * a
        pad = (padded if padded < u else u) - n
        if pad < 0:
            pad = 0
        rnd = u - n - pad
        if rnd < 0:
            rnd = 0
        self.objects[p] = (n, u, pad, rnd)
        self.payload += n
        self.usable += u
        self.padding += pad
        if self.is_mapped(p):
            self.mapped.add(p)
            self.mmap_rounding += rnd
        else:
            self.rounding += rnd

    def remove(self, p: int) -> int:
        """Forget p; returns its requested size (0 if unknown)."""
        e = self.objects.pop(p, None)
        if e is None:
            return 0
        n, u, pad, rnd = e
        self.payload -= n
        self.usable -= u
        self.padding -= pad
        if p in self.mapped:
            self.mapped.discard(p)
            self.mmap_rounding -= rnd
        else:
            self.rounding -= rnd
        return n

    def size(self, p: int) -> int | None:
        e = self.objects.get(p)
        return None if e is None else e[0]

    def check(self) -> None:
        objs = self.objects.values()
        assert self.payload == sum(e[0] for e in objs), "payload sum"
        assert self.usable == sum(e[1] for e in objs), "usable sum"
        assert self.padding == sum(e[2] for e in objs), "padding sum"
        assert self.rounding + self.mmap_rounding == sum(e[3] for e in objs), "rounding sums"
        assert self.mapped <= self.objects.keys(), "mapped objects not live"


def _metadata_chunks(alloc: Allocator) -> int:
    """In-use bytes that hold the allocator's own structures (not a program object)."""
    tc = getattr(alloc, "tcache", None)
    inuse = getattr(alloc, "inuse", None)
    if tc is not None and isinstance(inuse, dict):
        return int(inuse.get(getattr(tc, "chunk", -1), 0))
    return 0


def resident_bytes(pt: Any, ranges: list[tuple[int, int]]) -> int:
    """Bytes of the page-aligned ranges ``[(start, end)]`` with a page behind them (resident
    or swapped out), from the page table's extents (``PageTable.counts``)."""
    total = 0
    for start, end in ranges:
        s = start & ~(PAGE_SIZE - 1)
        e = (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if e > s:
            anon, _file, swap = pt.counts(s, e)
            total += (anon + swap) * PAGE_SIZE
    return total


def breakdown(alloc: Allocator, ledger: ObjectLedger, resident: int | None = None) -> Breakdown:
    """The footprint of ``alloc`` now, bucket by bucket.

    ``resident``: bytes of the footprint with a page behind them (None: assume all of it,
    so that nothing is counted untouched).
    """
    hu = alloc.usage()
    meta_chunks = _metadata_chunks(alloc)
    b = Breakdown(payload=ledger.payload, padding=ledger.padding, rounding=ledger.rounding,
                  mmap_rounding=ledger.mmap_rounding,
                  headers=hu.in_use - ledger.usable - meta_chunks,
                  metadata=hu.overhead + meta_chunks, free=hu.free, cached=hu.cached,
                  top=hu.top, footprint=hu.total)
    res = hu.total if resident is None else min(resident, hu.total)
    b.resident = res
    left = hu.total - res
    b.untouched = left
    for name in _CARVE:
        if left <= 0:
            break
        have = getattr(b, name)
        take = have if have < left else left
        setattr(b, name, have - take)
        left -= take
    return b


def free_lists(alloc: Allocator) -> dict[str, int]:
    """Free and cached bytes per list (see the module docstring); sums to free + cached."""
    av = getattr(alloc, "av", None)
    if av is not None and hasattr(av, "bin_chunks") and hasattr(av, "fastbins"):
        out: dict[str, int] = {}
        tc = getattr(alloc, "tcache", None)
        if tc is not None:
            out["tcache"] = sum(len(s) * (32 + 16 * i) for i, s in enumerate(tc.entries))
        out["fastbins"] = sum(len(fb) * (i + 2) * 16 for i, fb in enumerate(av.fastbins))
        sizes = av.free
        unsorted = small = large = 0
        for b in range(1, 127):
            t = sum(sizes[p] for p in av.bin_chunks(b))
            if b == 1:
                unsorted += t
            elif b < 64:
                small += t
            else:
                large += t
        out["unsorted"] = unsorted
        out["smallbins"] = small
        out["largebins"] = large
        return out
    lists = getattr(alloc, "lists", None)
    if isinstance(lists, list) and lists and isinstance(lists[0], dict):   # buddy: per order
        hu = alloc.usage()
        out = {f"order{k}": len(d) << k for k, d in enumerate(lists) if d}
        if hu.cached:
            out["cached"] = hu.cached
        return out
    hu = alloc.usage()
    return {"free": hu.free, "cached": hu.cached}
