"""A size-class page allocator in the style of mimalloc (v1 segments) and jemalloc (slabs).

Memory is mmapped in *segments* of 4 MiB, aligned to 4 MiB (mmap a larger range, unmap the
unaligned lead and the tail). A segment is cut into *pages* of one kind: small segments hold
64 pages of 64 KiB (blocks up to 16 KiB), medium segments 8 pages of 512 KiB (blocks up to
128 KiB); larger requests get their own mapping ("huge"), with the segment header before
the payload. The first 4 KiB of a segment hold its header and page descriptors::

    segment (4 MiB, 4 MiB-aligned)
    +------+------------+------------+------------+-----+------------+
    | info | page 0     | page 1     | page 2     | ... | page 63    |   small: 64 KiB pages
    | 4K   | (60 KiB)   | class 48   | class 1024 |     | (empty)    |
    +------+------------+------------+------------+-----+------------+
    page of class 48:  | blk | blk | blk | ... | blk |  never used  | tail |
                         ^ used or on the page's free list  ^ bump: threaded 4 KiB at a time

Each page holds blocks of one size class and has its own LIFO free list; a block has no
header (its page knows the size). Size classes: 16 .. 128 by 16, then four per power of two
(160, 192, 224, 256, 320, ...), as mimalloc's bins (with 16-byte words). Each class has a
queue of the pages that have room; malloc takes a block from the newest such page (its free
list, else the never-used part, whose links are written 4 KiB at a time as mimalloc's
``mi_page_extend_free`` does), else makes a new page in a segment with an empty slot, else
maps a new segment. free pushes the block on its page's free list; a page that becomes empty
goes back to the OS: ``madvise(MADV_DONTNEED)`` (option ``reset``: "dontneed", "free" for
MADV_FREE, "none"), and its slot is free for a page of any class; a segment whose pages are
all empty is unmapped. As in mimalloc (``_mi_page_retire``), an empty page that is the only
page of its class is kept for ``retire_delay`` (16) allocations that take the slow path
(the page's free list was empty), so one object that comes and goes does not fault a page in
and out each time; malloc_trim retires the kept pages at once. (mimalloc also delays the
purge itself; jemalloc decays dirty pages over seconds. Here the purge is immediate.)

realloc keeps the block when the new size fits and is at least half of it (mimalloc's
rule), else moves. memalign picks a class that is a multiple of the alignment (blocks of a
page are then aligned: page areas are 4 KiB-aligned), or a huge mapping above 4 KiB.

Costs: malloc O(1) (a table lookup or a bisect over the 60 classes), free O(1); a new page
O(1) amortised; retiring a page O(1) (queues are dicts).

Invariants (``check()``): every page lies in its segment slot and holds blocks of one class
from its area start; its free-list blocks lie below the bump pointer, on block boundaries,
once, and are not live; its count of used blocks is the number of live blocks in it (at
least one, unless it is a kept empty page); a page is queued exactly when it has room; segment slot
counts, the segment lists and the byte counters agree with the pages.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from memsim.alloc.base import HeapUsage, register
from memsim.alloc.classic import ClassicAllocator, option_error
from memsim.kernel.abi import MADV_DONTNEED, MADV_FREE, Syscalls
from memsim.units import PAGE_SIZE, KiB, MiB

__all__ = ["SizeClass"]

SEGMENT_SIZE = 4 * MiB
SEGMENT_INFO_SIZE = 4 * KiB
SMALL_PAGE_SIZE = 64 * KiB
MEDIUM_PAGE_SIZE = 512 * KiB
SMALL_OBJ_MAX = SMALL_PAGE_SIZE // 4       # 16 KiB
MEDIUM_OBJ_MAX = MEDIUM_PAGE_SIZE // 4     # 128 KiB
EXTEND_SIZE = 4 * KiB                      # mimalloc's MI_MAX_EXTEND_SIZE
RETIRE_CYCLES = 16                         # mimalloc's MI_RETIRE_CYCLES


def _class_table() -> list[int]:
    sizes = list(range(16, 129, 16))
    base = 128
    while base < MEDIUM_OBJ_MAX:
        sizes += [base + base // 4, base + base // 2, base + 3 * base // 4, 2 * base]
        base *= 2
    return sizes


CLASSES = _class_table()
_SMALL_LOOKUP = [CLASSES[bisect_left(CLASSES, max(n * 16, 16))] for n in range(65)]  # <= 1 KiB


class Page:
    """One page: blocks of ``bsize`` bytes in [start, end), a free list, a bump pointer."""

    __slots__ = ("bsize", "bump", "capacity", "end", "free", "index", "segment", "start",
                 "used")

    def __init__(self, segment: Segment, index: int, start: int, end: int, bsize: int) -> None:
        self.segment = segment
        self.index = index
        self.start = start
        self.end = end
        self.bsize = bsize
        self.free: list[int] = []
        self.bump = start              # the first never-used block
        self.capacity = start          # the end of the threaded (written) part
        self.used = 0

    @property
    def nblocks(self) -> int:
        return (self.end - self.start) // self.bsize

    def has_room(self) -> bool:
        return bool(self.free) or self.bump + self.bsize <= self.end


class Segment:
    """A 4 MiB mapping cut into pages of one kind (small or medium)."""

    __slots__ = ("npages", "page_size", "pages", "start", "used_pages")

    def __init__(self, start: int, page_size: int) -> None:
        self.start = start
        self.page_size = page_size
        self.npages = SEGMENT_SIZE // page_size
        self.pages: list[Page | None] = [None] * self.npages
        self.used_pages = 0

    def area(self, i: int) -> tuple[int, int]:
        s = self.start + i * self.page_size
        return (s + SEGMENT_INFO_SIZE if i == 0 else s), s + self.page_size


@register("sizeclass", "size-class pages (mimalloc/jemalloc style): 4 MiB segments of 64 KiB "
                       "pages, one class per page, empty pages returned with madvise")
class SizeClass(ClassicAllocator):
    """The size-class page allocator. Options: ``reset``, how an empty page goes back to
    the OS, "dontneed" (MADV_DONTNEED), "free" (MADV_FREE) or "none" (kept resident);
    ``retire_delay``, slow-path allocations an empty only-page-of-its-class is kept (0:
    retire at once)."""

    defaults: dict[str, Any] = {"reset": "dontneed", "retire_delay": RETIRE_CYCLES}

    def __init__(self, syscalls: Syscalls, **options: Any) -> None:
        super().__init__(syscalls)
        o = self.resolve_options(options)
        self.options = o
        advice = {"dontneed": MADV_DONTNEED, "free": MADV_FREE, "none": None}
        if o["reset"] not in advice:
            raise option_error(type(self), "reset", o["reset"], "dontneed, free or none")
        self.advice = advice[o["reset"]]
        rd = o["retire_delay"]
        if not isinstance(rd, int) or isinstance(rd, bool) or rd < 0:
            raise option_error(type(self), "retire_delay", rd, "a number of cycles >= 0")
        self.retire_delay = rd
        self.kept: dict[Page, int] = {}            # empty pages kept -> cycles left
        self.queues: dict[int, dict[Page, None]] = {c: {} for c in CLASSES}
        self.avail: dict[int, dict[Segment, None]] = {SMALL_PAGE_SIZE: {},
                                                      MEDIUM_PAGE_SIZE: {}}
        self.segments: dict[int, Segment] = {}
        self.live: dict[int, Page] = {}
        self.in_use_bytes = 0
        self.free_bytes = 0            # blocks not in use in live pages
        self.tail_bytes = 0            # page area beyond the last whole block
        self.empty_bytes = 0           # empty page slots of live segments

    # --- segments and pages ----------------------------------------------------------------------
    def _new_segment(self, page_size: int) -> Segment | None:
        """``mi_segment_alloc``: an aligned 4 MiB mapping (over-map, unmap lead and tail)."""
        raw = self.mmap(2 * SEGMENT_SIZE)
        if not raw:
            return None
        start = (raw + SEGMENT_SIZE - 1) & -SEGMENT_SIZE
        if start > raw:
            self.munmap(raw, start - raw)
        if raw + 2 * SEGMENT_SIZE > start + SEGMENT_SIZE:
            self.munmap(start + SEGMENT_SIZE, raw + SEGMENT_SIZE - start)
        seg = Segment(start, page_size)
        self.segments[start] = seg
        self.avail[page_size][seg] = None
        self.empty_bytes += SEGMENT_SIZE - SEGMENT_INFO_SIZE
        self.w(start, SEGMENT_INFO_SIZE)
        return seg

    def _new_page(self, bsize: int) -> Page | None:
        page_size = SMALL_PAGE_SIZE if bsize <= SMALL_OBJ_MAX else MEDIUM_PAGE_SIZE
        avail = self.avail[page_size]
        if avail:
            seg = next(reversed(avail))
        else:
            seg = self._new_segment(page_size)
            if seg is None:
                return None
        i = seg.pages.index(None)
        start, end = seg.area(i)
        page = Page(seg, i, start, end, bsize)
        seg.pages[i] = page
        seg.used_pages += 1
        if seg.used_pages == seg.npages:
            del avail[seg]
        area = end - start
        n = area // bsize
        self.empty_bytes -= area
        self.free_bytes += n * bsize
        self.tail_bytes += area - n * bsize
        self.queues[bsize][page] = None
        return page

    def _retire(self, page: Page) -> None:
        """``_mi_page_retire`` + ``_mi_segment_page_free``: an empty page goes back to the OS;
        an empty segment is unmapped."""
        del self.queues[page.bsize][page]
        seg = page.segment
        area = page.end - page.start
        n = area // page.bsize
        self.free_bytes -= n * page.bsize
        self.tail_bytes -= area - n * page.bsize
        self.empty_bytes += area
        seg.pages[page.index] = None
        seg.used_pages -= 1
        if seg.used_pages == 0:
            self.avail[seg.page_size].pop(seg, None)
            del self.segments[seg.start]
            self.empty_bytes -= SEGMENT_SIZE - SEGMENT_INFO_SIZE
            self.munmap(seg.start, SEGMENT_SIZE)
            return
        self.avail[seg.page_size][seg] = None
        if self.advice is not None and page.capacity > page.start:
            length = (page.capacity - page.start + PAGE_SIZE - 1) & -PAGE_SIZE
            r = self.sys.sys_madvise(page.start, min(length, area), self.advice)
            assert r == 0, f"madvise failed: {r}"

    def _alloc_in(self, bsize: int) -> int:
        q = self.queues[bsize]
        if q:
            page = next(reversed(q))
        else:
            page = self._new_page(bsize)
            if page is None:
                return 0
        if page.free:
            p = page.free.pop()
            if not page.used and self.kept:
                self.kept.pop(page, None)          # a kept empty page is in use again
        else:
            if self.kept:                          # _mi_malloc_generic: age the kept pages
                self._collect_kept(False)
            p = page.bump
            page.bump = p + bsize
            if page.bump > page.capacity:      # mi_page_extend_free: thread the next 4 KiB
                cap = page.capacity
                ext = max(bsize, EXTEND_SIZE // bsize * bsize)
                ext = min(ext, (page.end - cap) // bsize * bsize)
                page.capacity = cap + ext
                self.w(cap, ext if bsize < PAGE_SIZE else 8)
        page.used += 1
        if not page.free and page.bump + bsize > page.end:
            del q[page]                         # full: off the queue
        self.live[p] = page
        self.in_use_bytes += bsize
        self.free_bytes -= bsize
        return p

    # --- policy hooks --------------------------------------------------------------------------
    def _malloc(self, size: int) -> int:
        if size <= 1024:
            return self._alloc_in(_SMALL_LOOKUP[(size + 15) >> 4])
        if size > MEDIUM_OBJ_MAX:
            return self.big_alloc(size, 16, SEGMENT_INFO_SIZE)
        return self._alloc_in(CLASSES[bisect_left(CLASSES, size)])

    def _free(self, ptr: int) -> None:
        page = self.live.pop(ptr, None)
        if page is None:
            if ptr in self.big:
                self.big_free(ptr)
                return
            raise self._misuse("free", ptr)
        bsize = page.bsize
        self.in_use_bytes -= bsize
        self.free_bytes += bsize
        was_full = not page.free and page.bump + bsize > page.end
        page.free.append(ptr)
        page.used -= 1
        if was_full:
            self.queues[bsize][page] = None
        if page.used == 0:
            if self.retire_delay and len(self.queues[bsize]) == 1:
                self.kept[page] = self.retire_delay     # the class's only page: keep it
                self.w(ptr, 8)
            else:
                self._retire(page)
            return
        self.w(ptr, 8)                           # the link

    def _collect_kept(self, force: bool) -> int:
        """``_mi_heap_collect_retired``: age the kept empty pages, retire the expired ones
        (all of them when ``force``). Returns how many were retired."""
        n = 0
        for page, left in list(self.kept.items()):
            if force or left <= 1:
                del self.kept[page]
                self._retire(page)
                n += 1
            else:
                self.kept[page] = left - 1
        return n

    def malloc_trim(self, pad: int) -> int:
        """Retire the kept empty pages at once (``mi_collect(true)``); 1 if any was."""
        return 1 if self._collect_kept(True) else 0

    def _usable(self, ptr: int) -> int:
        page = self.live.get(ptr)
        if page is None:
            raise self._misuse("malloc_usable_size", ptr)
        return page.bsize

    def _resize(self, ptr: int, size: int) -> bool:
        bsize = self.live[ptr].bsize
        return size <= bsize and size >= bsize // 2

    def _memalign(self, alignment: int, size: int) -> int:
        if alignment > PAGE_SIZE or size > MEDIUM_OBJ_MAX:
            return self.big_alloc(size, alignment, SEGMENT_INFO_SIZE)
        i = bisect_left(CLASSES, max(size, alignment))
        while i < len(CLASSES) and CLASSES[i] % alignment:
            i += 1
        if i == len(CLASSES):
            return self.big_alloc(size, alignment, SEGMENT_INFO_SIZE)
        return self._alloc_in(CLASSES[i])

    # --- accounting ----------------------------------------------------------------------------
    def usage(self) -> HeapUsage:
        """in_use: live blocks (class sizes) and huge mappings; free: unused blocks of live
        pages (free lists and never-used parts); cached: empty page slots of live segments
        (mapped, reset); overhead: segment headers, page tails, huge-mapping leads."""
        lead = self.big_lead()
        nseg = len(self.segments)
        return HeapUsage(in_use=self.in_use_bytes + self.big_bytes - lead,
                         cached=self.empty_bytes, free=self.free_bytes, top=0,
                         overhead=nseg * SEGMENT_INFO_SIZE + self.tail_bytes + lead,
                         total=nseg * SEGMENT_SIZE + self.big_bytes)

    def check(self) -> None:
        self.check_big()
        per_page: dict[Page, int] = {}
        for p, page in self.live.items():
            assert page.start <= p < page.bump and (p - page.start) % page.bsize == 0, \
                f"live block {p:#x} not a block of its page"
            per_page[page] = per_page.get(page, 0) + 1
        in_use = free = tail = empty = 0
        for start, seg in self.segments.items():
            assert start % SEGMENT_SIZE == 0 and seg.start == start, "segment alignment"
            assert seg.used_pages == sum(pg is not None for pg in seg.pages), "used_pages"
            assert 0 < seg.used_pages, "an empty segment is still mapped"
            assert (seg in self.avail[seg.page_size]) == (seg.used_pages < seg.npages), \
                "segment availability"
            for i, page in enumerate(seg.pages):
                s, e = seg.area(i)
                if page is None:
                    empty += e - s
                    continue
                assert page.segment is seg and page.index == i, "page slot"
                assert (page.start, page.end) == (s, e) and page.bsize in self.queues, "page"
                assert page.start <= page.bump <= page.end and page.bump <= max(
                    page.capacity, page.start), "bump beyond the threaded part"
                fl = page.free
                assert len(set(fl)) == len(fl), "a block twice on a free list"
                for b in fl:
                    assert page.start <= b < page.bump and (b - page.start) % page.bsize == 0
                    assert b not in self.live, f"block {b:#x} live and free"
                assert page.used == per_page.get(page, 0), "page used count"
                assert page.used >= 1 or page in self.kept, "an empty page was not retired"
                assert (page in self.queues[page.bsize]) == page.has_room(), "page queue"
                n = page.nblocks
                in_use += page.used * page.bsize
                free += (n - page.used) * page.bsize
                tail += (e - s) - n * page.bsize
        assert sum(per_page.values()) == len(self.live), "live blocks outside the pages"
        assert in_use == self.in_use_bytes and free == self.free_bytes, "byte counters"
        assert tail == self.tail_bytes and empty == self.empty_bytes, "tail/empty counters"
        for q in self.queues.values():
            for page in q:
                assert page.segment.pages[page.index] is page, "a retired page is queued"
        for page, left in self.kept.items():
            assert page.used == 0 and 1 <= left <= self.retire_delay, "kept page"
            assert page.segment.pages[page.index] is page, "a kept page was retired"
