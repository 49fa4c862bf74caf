"""Sequential fits: first, next, best and worst fit over a free list, on an sbrk heap.

The allocators of the textbooks (Knuth TAOCP 2.5, Wilson et al. 1995 §3.2, CS:APP 9.9, OSTEP
ch. 17) as one configurable class, :class:`SeqFit`, and named configurations of it
(``first-fit``, ``next-fit``, ``best-fit``, ``worst-fit``, ``first-fit-lifo``,
``first-fit-fifo``, ``implicit-first-fit``, ``deferred-first-fit``). The heap is one
contiguous run of blocks between a prologue and an epilogue, grown with sbrk (``sys_brk``);
requests of ``mmap_threshold`` bytes or more may go to their own mmap instead.

Block layout (``header`` = 8, ``footer`` = "all" as in CS:APP, ``alignment`` = 16)::

    heap:  |pad|blk|blk|blk| ... |blk|epi|          epi = a zero-size allocated header
    allocated block                       free block (explicit list)
    +--------+---------------+------+     +--------+------+------+--------+------+
    | header | payload ...   |footer|     | header | next | prev |  ...   |footer|
    | size|1 |               |size|1|     | size|0 | link | link |        |size|0|
    +--------+---------------+------+     +--------+------+------+--------+------+
    ^ block  ^ pointer (16-aligned)       ^ block                              ^ end
    size = align_up(request + header + footer, alignment), at least min_block

``footer`` = "free" keeps the footer in free blocks only (the allocated block says in its
successor's header that it is in use, as dlmalloc does): allocated blocks then cost the
header alone. An implicit list (``lists`` = "implicit") has no links: the "list" is every
block of the heap in address order, found by walking the headers, so a free block needs
only header + footer.

Policies (Wilson's names):

``placement``
    first: the first block of the list that fits; next: the same, starting where the last
    search stopped (the "rover", wrapping once); best: the smallest block that fits; worst:
    the largest block.
``order``
    the order of the free list: address, lifo (a freed block goes to the front), fifo (to the
    back) or size (ascending; first fit is then best fit). An implicit list is in address
    order. Ties of best/worst fit go to the block that comes first in list order.
``coalesce``
    immediate: a freed block merges with free neighbours (boundary tags: the footer of the
    block before, the header of the block after); deferred: freed blocks are merged in one
    sweep over the heap when a request finds no fit (before the heap grows, and in
    malloc_trim); none: never merged.

A request takes the block found, splits off the tail as a free block when it is at least
``min_block`` bytes (the tail keeps the block's place in a LIFO/FIFO list), else takes it
whole. No fit: the heap grows by max(request, ``grow``) bytes (the CS:APP ``extend_heap``),
the new block merging with a free last block. realloc grows into a free successor or shrinks
in place (``realloc`` = "in-place"), or always moves (``realloc`` = "copy", the textbook
``mm_realloc``). memalign takes a larger block and frees the unaligned lead.

Costs in the simulation (the real list walk in brackets): first fit O(log(n/B) + B) with n
free blocks and buckets of B = 8..32, over an ordered list of buckets that each know their
largest block, plus an upper bound of the running maximum of those (a max-size
augmentation: the first bucket that can hold a fit is one bisect; a shrink leaves the bound
high until a search walks past and lowers it, see :class:`FitList`) [real: O(blocks
visited), up to O(n); implicit: O(all blocks)];
next fit the same from the rover, O(n/B + B) when it must skip buckets; best fit O(log n)
(a bisect of the bucket maxima, one in the bucket; an update O(log n + B)) over a
:class:`SizeList`, sorted keys (size << 48 | list position) in buckets of B = 8..32: best fit
with ties to the first in list order is first fit over the list ordered by (size, position)
[real best fit scans the whole list unless it is a tree]; worst fit O(log n) amortised over
a binary heap of (-size, address) with lazy deletion (a SizeList like best fit's for the
other list orders) [real: O(n)]; free
O(log n + B) (immediate), the same for deferred/none, a deferred sweep O(n); realloc in
place O(log n + B). The simulated search returns the same
block as the real list walk (``tests/alloc/test_seqfit.py`` compares every choice).

The free blocks: an address-ordered list on a FitList (first or next fit; ``by_address``)
keeps them in the FitList alone, as :mod:`memsim.alloc.csapp` does: the boundary tags are
lookups in it (the free blocks before and after a block in address order are its heap
neighbours when they touch it, O(log n)), ``free_blocks``/``free_end`` are views made on
each read, and ``free`` finds both neighbours with one lookup and merges in place; the other
configurations also keep the dicts ``free_blocks`` (block -> size) and ``free_end`` (end ->
block, the footers). ``free_bytes`` is the heap less the allocated blocks (they tile it).
``malloc`` and ``free`` of a fast configuration are closures (:meth:`SeqFit._build_fast`)
that do the methods' steps in one frame; ``tests/alloc/test_seqfit_fast.py`` compares the
FitList alone with the dicts' path call by call.

Invariants (:meth:`SeqFit.check`): the blocks tile the heap from the first block to the
epilogue; every block is a multiple of the alignment and at least min_block, every payload
aligned; free blocks are exactly the blocks in the free index, with the right sizes and
boundary tags (and the tags' lookups find them); with immediate coalescing no two free
blocks touch; the byte counters equal the sums; the index's own order and augmentation hold.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from heapq import heapify, heappop, heappush, heapreplace
from itertools import accumulate, chain, compress, count, islice, pairwise
from operator import add, eq
from typing import Any

from memsim.alloc.base import HeapUsage, register
from memsim.alloc.classic import ClassicAllocator, option_error, power_of_two
from memsim.kernel.abi import Syscalls
from memsim.units import PAGE_SIZE, KiB

__all__ = ["FitList", "SeqFit", "SizeList"]

LINKS = 16                     # bytes of the next/prev links of an explicit free list
_SHIFT = 48                    # composite keys: (primary << 48) | list position
_POS_MAX = (1 << _SHIFT) - 1
_SIZE_MAX = (1 << 62) - 1


class FitList:
    """Free blocks in list order, each bucket of keys knowing its largest block.

    Keys are ints (the list position: an address, a sequence number, or size<<48|address);
    :meth:`first_fit` returns the first block, in key order from an optional start key,
    whose size is at least ``n``. Buckets hold up to ``2 * LOAD`` keys (sortedcontainers'
    layout) and know their largest block exactly (``maxes``). ``pmax`` is a non-decreasing
    upper bound of the running maximum of ``maxes``: a bisect in it skips every bucket
    before the first that can hold a fit. A block that grows raises it at once (C slice
    work); one that shrinks leaves it high, and the next search that lands on a bucket
    without a fit walks on to the first that has one, setting the exact running maximum of
    the buckets it passes (:meth:`_settle`). Costs: first_fit O(log(n/B) + B), plus the
    buckets a shrink left high (each walked once per shrink); insert/remove/replace
    O(log n + B).
    """

    LOAD = 16

    def __init__(self) -> None:
        self.keys: list[list[int]] = []
        self.sizes: list[list[int]] = []
        self.maxes: list[int] = []
        self.mins: list[int] = []          # first key of each bucket (for bisect)
        self.pmax: list[int] = []          # pmax[j] >= max(maxes[:j + 1]), non-decreasing

    def __len__(self) -> int:
        return sum(map(len, self.keys))

    # --- the bucket maxima and their running maximum ----------------------------------------
    def _raise(self, j: int, m: int) -> None:
        """Bucket ``j``'s largest block grew to ``m``."""
        self.maxes[j] = m
        pm = self.pmax
        if pm[j] < m:
            e = bisect_left(pm, m, j)
            pm[j:e] = [m] * (e - j)

    def _settle(self, j: int, n: int) -> int:
        """The first bucket from ``j`` on whose largest block is at least ``n`` (the number of
        buckets if none), given that no bucket before ``j`` has one and ``pmax[j - 1] < n``.
        The buckets walked past get their exact running maximum from ``pmax[j - 1]`` on
        (lower than before, and below ``n``), so no later search walks them again until a
        block shrinks there."""
        maxes, pm = self.maxes, self.pmax
        r = pm[j - 1] if j else 0
        for k in range(j, len(maxes)):
            m = maxes[k]
            if m >= n:
                return k
            if m > r:
                r = m
            pm[k] = r
        return len(maxes)

    # --- updates ------------------------------------------------------------------------------
    def insert(self, key: int, size: int) -> None:
        mins = self.mins
        if not mins:
            self.keys.append([key])
            self.sizes.append([size])
            self.maxes.append(size)
            self.pmax.append(size)
            mins.append(key)
            return
        j = bisect_right(mins, key) - 1
        if j < 0:
            j = 0
            mins[0] = key
        ks = self.keys[j]
        i = bisect_left(ks, key)
        ks.insert(i, key)
        sz = self.sizes[j]
        sz.insert(i, size)
        if size > self.maxes[j]:
            self._raise(j, size)
        if len(ks) > 2 * self.LOAD:
            self._split(j)

    def rebuild(self, keys: list[int], sizes: list[int]) -> None:
        """Hold exactly ``keys`` (ascending) with their ``sizes``: buckets of LOAD keys, the
        last joined to the one before when it would be under a quarter full; exact running
        maxima. The lists are refilled in place (callers hold them). O(n)."""
        load = self.LOAD
        n = len(keys)
        bounds = list(range(0, n, load))
        if len(bounds) > 1 and n - bounds[-1] < load >> 1:
            bounds.pop()
        bounds.append(n)
        cuts = list(pairwise(bounds))
        self.keys[:] = [keys[a:b] for a, b in cuts]
        self.sizes[:] = [sizes[a:b] for a, b in cuts]
        self.maxes[:] = [max(sz) for sz in self.sizes]
        self.mins[:] = [ks[0] for ks in self.keys]
        self.pmax[:] = list(accumulate(self.maxes, max))

    def _split(self, j: int) -> None:
        """Split bucket ``j`` (over ``2 * LOAD`` keys) in two halves."""
        ks, sz = self.keys[j], self.sizes[j]
        half = self.LOAD
        lo, hi = max(sz[:half]), max(sz[half:])
        self.keys[j:j + 1] = [ks[:half], ks[half:]]
        self.sizes[j:j + 1] = [sz[:half], sz[half:]]
        self.maxes[j:j + 1] = [lo, hi]
        self.mins[j:j + 1] = [ks[0], ks[half]]
        pm = self.pmax
        before = pm[j - 1] if j else 0
        pm.insert(j, lo if lo > before else before)   # pm[j + 1] is unchanged

    def remove(self, key: int) -> int:
        """Remove ``key``; returns its size."""
        j = bisect_right(self.mins, key) - 1
        ks = self.keys[j]
        i = bisect_left(ks, key)
        sz = self.sizes[j]
        size = sz.pop(i)
        del ks[i]
        if not ks:
            del self.keys[j], self.sizes[j], self.maxes[j], self.mins[j], self.pmax[j]
            return size
        if i == 0:
            self.mins[j] = ks[0]
        if size == self.maxes[j]:
            self.maxes[j] = max(sz)
        if len(ks) < self.LOAD >> 1:
            self._join(j)
        return size

    def _join(self, j: int) -> None:
        """Bucket ``j`` fell below ``LOAD / 2`` keys: join it to a neighbour (split again when
        that makes too many), so that buckets stay at least a quarter full however keys come
        and go (a LIFO list inserts at the front only, a FIFO list at the back only)."""
        if len(self.keys) < 2:
            return
        if j + 1 == len(self.keys):
            j -= 1
        keys, sizes, maxes = self.keys, self.sizes, self.maxes
        keys[j:j + 2] = [keys[j] + keys[j + 1]]
        sizes[j:j + 2] = [sizes[j] + sizes[j + 1]]
        m = maxes[j + 1]
        maxes[j:j + 2] = [maxes[j] if maxes[j] > m else m]
        del self.mins[j + 1]
        del self.pmax[j]                   # the joined bucket's bound is the later one's
        if len(keys[j]) > 2 * self.LOAD:
            self._split(j)

    def replace(self, old: int, new: int, size: int) -> None:
        """Give the entry ``old`` the key ``new`` and the size ``size``; the caller guarantees
        that ``new`` sorts where ``old`` did (no other key lies between them)."""
        j = bisect_right(self.mins, old) - 1
        ks = self.keys[j]
        i = bisect_left(ks, old)
        sz = self.sizes[j]
        before = sz[i]
        ks[i] = new
        sz[i] = size
        if i == 0:
            self.mins[j] = new
        m = self.maxes[j]
        if size > m:
            self._raise(j, size)
        elif before == m and size < before:
            self.maxes[j] = max(sz)

    # --- the search ---------------------------------------------------------------------------
    def first_fit(self, n: int, start: int | None = None) -> int | None:
        """The first key (>= ``start``) whose size is at least ``n``, or None."""
        at = self.locate(n, start)
        return None if at is None else self.keys[at[0]][at[1]]

    def locate(self, n: int, start: int | None = None) -> tuple[int, int] | None:
        """Where :meth:`first_fit`'s key is: (bucket, index in the bucket), or None."""
        pm, maxes = self.pmax, self.maxes
        if start is None:
            j = bisect_left(pm, n)
        else:
            j = bisect_right(self.mins, start) - 1
            if j < 0:
                j = 0
            elif maxes[j] >= n:
                sz = self.sizes[j]
                for i in range(bisect_left(self.keys[j], start), len(sz)):
                    if sz[i] >= n:
                        return j, i
                j += 1
            else:
                j += 1
            if j and pm[j - 1] >= n:
                # a fit lies before ``j``: the running maximum says nothing about the
                # buckets from ``j`` on, so walk their maxima
                for k in range(j, len(maxes)):
                    if maxes[k] >= n:
                        for i, s in enumerate(self.sizes[k]):
                            if s >= n:
                                return k, i
                return None
            j = bisect_left(pm, n, j)
        if j < len(maxes) and maxes[j] < n:
            j = self._settle(j, n)
        if j == len(maxes):
            return None
        for i, s in enumerate(self.sizes[j]):
            if s >= n:
                return j, i
        raise AssertionError("FitList: a bucket maximum without its block")

    def items(self) -> list[tuple[int, int]]:
        return [(k, s) for ks, sz in zip(self.keys, self.sizes, strict=True)
                for k, s in zip(ks, sz, strict=True)]

    def check(self) -> None:
        flat = [k for ks in self.keys for k in ks]
        assert flat == sorted(flat) and len(set(flat)) == len(flat), "FitList keys out of order"
        for ks, sz, m, lo in zip(self.keys, self.sizes, self.maxes, self.mins, strict=True):
            assert ks and len(ks) == len(sz) and max(sz) == m and lo == ks[0], "FitList bucket"
            assert len(ks) <= 2 * self.LOAD, "FitList bucket over full"
        assert len(self.keys) < 2 or min(map(len, self.keys)) >= self.LOAD >> 1, \
            "FitList bucket under a quarter full"
        pm = self.pmax
        assert len(pm) == len(self.maxes), "FitList running maxima"
        assert pm == sorted(pm), "FitList running maxima out of order"
        assert all(p >= r for p, r in zip(pm, accumulate(self.maxes, max), strict=True)), \
            "FitList running maximum below a bucket's largest block"


class SizeList:
    """A sorted list of int keys in buckets, for best and worst fit: ``lists`` holds the keys
    in ascending order in buckets of ``LOAD >> 1`` .. ``2 * LOAD`` keys (one bucket may be
    smaller when it is the only one), ``maxes`` each bucket's largest key (bisected to find
    the bucket of a key). The layout of sortedcontainers' SortedList without its positional
    index (never needed here), so that the closures of :meth:`SeqFit._build_fast` can bisect
    it inline. Costs: ceiling O(log n); add/remove/replace O(log n + B) (list inserts and
    deletes in C), a split or join O(B + n/B) in C.
    """

    LOAD = 16

    def __init__(self) -> None:
        self.lists: list[list[int]] = []
        self.maxes: list[int] = []

    def __len__(self) -> int:
        return sum(map(len, self.lists))

    def __bool__(self) -> bool:
        return bool(self.maxes)

    def __iter__(self) -> Any:
        return chain.from_iterable(self.lists)

    def first(self) -> int | None:
        """The smallest key, or None."""
        return self.lists[0][0] if self.lists else None

    def ceiling(self, key: int) -> int | None:
        """The smallest key >= ``key``, or None."""
        maxes = self.maxes
        j = bisect_left(maxes, key)
        if j == len(maxes):
            return None
        lst = self.lists[j]
        return lst[bisect_left(lst, key)]

    def add(self, key: int) -> None:
        maxes, lists = self.maxes, self.lists
        j = bisect_left(maxes, key)
        if j == len(maxes):
            if not j:
                lists.append([key])
                maxes.append(key)
                return
            j -= 1
            lst = lists[j]
            lst.append(key)
            maxes[j] = key
        else:
            lst = lists[j]
            insort(lst, key)
        if len(lst) > 2 * self.LOAD:
            self._split(j)

    def _split(self, j: int) -> None:
        lst = self.lists[j]
        h = len(lst) >> 1
        self.lists[j:j + 1] = [lst[:h], lst[h:]]
        self.maxes[j:j + 1] = [lst[h - 1], lst[-1]]

    def remove(self, key: int) -> None:
        j = bisect_left(self.maxes, key)
        lst = self.lists[j]
        i = bisect_left(lst, key)
        if lst[i] != key:
            raise KeyError(key)
        self.remove_at(j, i)

    def remove_at(self, j: int, i: int) -> None:
        """Remove key ``i`` of bucket ``j``."""
        lst = self.lists[j]
        del lst[i]
        if i == len(lst) and lst:
            self.maxes[j] = lst[-1]
        if len(lst) < self.LOAD >> 1 and (not lst or len(self.lists) > 1):
            self._join(j)

    def _join(self, j: int) -> None:
        """Bucket ``j`` fell under a quarter full: join it to a neighbour (split again when
        the pair is too large), or drop it when empty and alone."""
        lists, maxes = self.lists, self.maxes
        if len(lists) == 1:
            if not lists[0]:
                del lists[0], maxes[0]
            return
        if j == len(lists) - 1:
            j -= 1
        lists[j] += lists[j + 1]
        del lists[j + 1], maxes[j + 1]
        maxes[j] = lists[j][-1]
        if len(lists[j]) > 2 * self.LOAD:
            self._split(j)

    def replace(self, old: int, new: int) -> None:
        """Replace ``old`` by ``new``: in place when ``new`` sorts where ``old`` was (the
        common case of a split or merge that leaves the block's rank alone), else remove and
        add."""
        maxes = self.maxes
        j = bisect_left(maxes, old)
        lst = self.lists[j]
        i = bisect_left(lst, old)
        self.replace_at(j, i, new)

    def replace_at(self, j: int, i: int, new: int) -> None:
        """Replace key ``i`` of bucket ``j`` by ``new``."""
        lists = self.lists
        lst = lists[j]
        last = len(lst) - 1
        if i:
            lo = lst[i - 1]
        else:
            lo = lists[j - 1][-1] if j else -1
        if i < last:
            hi = lst[i + 1]
        else:
            hi = lists[j + 1][0] if j + 1 < len(lists) else new + 1
        if lo < new < hi:
            lst[i] = new
            if i == last:
                self.maxes[j] = new
            return
        self.remove_at(j, i)
        self.add(new)

    def check(self) -> None:
        lists, maxes = self.lists, self.maxes
        assert len(lists) == len(maxes), "SizeList maxima"
        assert all(lists), "SizeList empty bucket"
        assert all(lst[-1] == m for lst, m in zip(lists, maxes, strict=True)), \
            "SizeList bucket maximum"
        flat = list(self)
        assert flat == sorted(set(flat)), "SizeList out of order"
        assert all(len(lst) <= 2 * self.LOAD for lst in lists), "SizeList bucket too large"
        assert len(lists) < 2 or min(map(len, lists)) >= self.LOAD >> 1, \
            "SizeList bucket under a quarter full"


_PLACEMENTS = ("first", "next", "best", "worst")
_ORDERS = ("address", "lifo", "fifo", "size")
_COALESCE = ("immediate", "deferred", "none")
_LISTS = ("explicit", "implicit")
_FOOTERS = ("all", "free")
_REALLOC = ("in-place", "copy")


@register("seqfit", "sequential fits, configurable: placement, list order, coalescing, "
                    "header, alignment, min block, growth (default: first fit, address order)")
class SeqFit(ClassicAllocator):
    """A sequential-fit allocator; every policy and parameter is an option (module docstring).

    Options: ``placement`` (first/next/best/worst), ``order`` (address/lifo/fifo/size),
    ``coalesce`` (immediate/deferred/none), ``lists`` (explicit/implicit), ``footer``
    (all/free), ``header`` (bytes, 0 = none), ``alignment``, ``min_block``, ``prologue``
    (bytes of a prologue block), ``grow`` (heap growth step), ``mmap_threshold`` (None = never
    mmap), ``realloc`` (in-place/copy).
    """

    defaults: dict[str, Any] = {
        "placement": "first", "order": "address", "coalesce": "immediate",
        "lists": "explicit", "footer": "all", "header": 8, "alignment": 16,
        "min_block": 32, "prologue": 0, "grow": 64 * KiB, "mmap_threshold": None,
        "realloc": "in-place",
    }

    def __init__(self, syscalls: Syscalls, **options: Any) -> None:
        super().__init__(syscalls)
        self._configure(self.resolve_options(options))

    def _configure(self, o: dict[str, Any]) -> None:
        """Validate the options (every key of ``SeqFit.defaults``) and set up the heap."""
        self.options = o
        cls = type(self)
        for key, allowed in (("placement", _PLACEMENTS), ("order", _ORDERS),
                             ("coalesce", _COALESCE), ("lists", _LISTS),
                             ("footer", _FOOTERS), ("realloc", _REALLOC)):
            if o[key] not in allowed:
                raise option_error(cls, key, o[key], f"use one of {', '.join(allowed)}")
        for key in ("header", "alignment", "min_block", "prologue", "grow"):
            if not isinstance(o[key], int) or isinstance(o[key], bool) or o[key] < 0:
                raise option_error(cls, key, o[key], "a number of bytes >= 0")
        if not power_of_two(o["alignment"]):
            raise option_error(cls, "alignment", o["alignment"], "a power of two")
        mt = o["mmap_threshold"]
        if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt <= 0):
            raise option_error(cls, "mmap_threshold", mt, "None or a number of bytes > 0")
        self.placement: str = o["placement"]
        self.order: str = o["order"]
        self.coalesce: str = o["coalesce"]
        self.implicit = o["lists"] == "implicit"
        if self.implicit and self.order != "address":
            raise option_error(cls, "order", self.order, "an implicit list is in address order")
        self.alignment = o["alignment"]
        self.hdr: int = o["header"]
        self.ftr_free: int = self.hdr if self.coalesce != "none" or o["footer"] == "all" else 0
        self.ftr_alloc: int = self.hdr if o["footer"] == "all" else 0
        self.hdr_ftr = self.hdr + self.ftr_alloc
        self.links = 0 if self.implicit else LINKS
        need = max(self.hdr + self.links + self.ftr_free, self.hdr + self.ftr_alloc, 1)
        self.min_block: int = o["min_block"]
        if self.min_block < need or self.min_block % self.alignment:
            raise option_error(cls, "min_block", self.min_block,
                               f"a multiple of the alignment ({self.alignment}) and at least "
                               f"{need} (header, links, footer)")
        self.prologue: int = o["prologue"]
        self.grow: int = max(o["grow"], self.min_block)
        self.mmap_threshold: int | None = mt
        self.copy_realloc = o["realloc"] == "copy"
        self.epi = self.hdr                        # the epilogue: a zero-size header
        # the heap
        self.base = 0                              # the break before the first sbrk
        self.heap_start = 0                        # the first block
        self.heap_end = 0                          # the epilogue (end of the last block)
        self.alloc_blocks: dict[int, int] = {}     # block -> size
        # the free blocks: in the free index alone for an address-ordered FitList
        # (``by_address``, set below), else also in these dicts (``free_blocks``/``free_end``
        # read them, or make them from the index)
        self._free_blocks: dict[int, int] = {}     # block -> size
        self._free_end: dict[int, int] = {}        # end of a free block -> block (footer)
        self.in_use_bytes = 0
        # the free index
        self.seq = count(1)
        self.pos: dict[int, int] = {}              # block -> list position (lifo/fifo)
        self.at_pos: dict[int, int] = {}           # list position -> block
        self.rover = 0                             # next fit: where the last search stopped
        best_worst = self.placement in ("best", "worst")
        self.fits: FitList | None = None if best_worst else FitList()
        self.sorted: SizeList | None = SizeList() if best_worst else None
        # address-ordered lists, and LIFO/FIFO lists searched first/next fit, take the fast
        # paths (_place_fast, _release_fast)
        self.fast = self.order == "address" or (self.fits is not None and
                                                self.order in ("lifo", "fifo"))
        self.rover_fix = self.placement == "next" and self.order == "address"
        # the address-ordered FitList: the hot paths call it directly
        self.addr_fits = self.fits if self.order == "address" else None
        self.addr_first = self.addr_fits is not None and self.placement == "first"
        self.merge = self.coalesce == "immediate"
        self.next_fit = self.placement == "next"
        # an address-ordered FitList is the only record of the free blocks (as in csapp.py):
        # a block's boundary tags are lookups in it, the free blocks before and after a
        # block in address order are its heap neighbours when they touch it
        own_index = type(self)._index_add is SeqFit._index_add
        self.by_address = self.addr_fits is not None and own_index
        if self.mmap_threshold is None:
            self._malloc = self._heap_malloc       # type: ignore[method-assign]
        if own_index:
            self._specialise()
            self._build_fast()

    def _specialise(self) -> None:
        """Bind the free-index operations of this configuration to closures, so that the hot
        paths do not re-decide the policy on every call (same results as the methods)."""
        order, placement = self.order, self.placement
        if order in ("lifo", "fifo"):
            if self.fits is not None:
                self._specialise_seq()
            return                                 # best/worst: the general methods
        if order != "address":
            return
        sl = self.sorted
        if sl is None:
            fits = self.fits
            assert fits is not None
            insert, fremove, freplace = fits.insert, fits.remove, fits.replace

            def ix_add(blk: int, size: int) -> None:
                insert(blk, size)

            def ix_remove(blk: int, size: int, keep_pos: bool = False) -> None:
                fremove(blk)

            def ix_move(old: int, old_size: int, new: int, size: int) -> None:
                freplace(old, new, size)

            self._index_add = ix_add                # type: ignore[method-assign]
            self._index_remove = ix_remove          # type: ignore[method-assign]
            self._ix_move = self._ix_merge = ix_move
            first_fit = fits.first_fit
            if placement == "first":
                def find_first(asize: int) -> int:
                    k = first_fit(asize)
                    return 0 if k is None else k

                self._find = find_first             # type: ignore[method-assign]
            elif placement == "next":
                def find_next(asize: int) -> int:
                    k = first_fit(asize, self.rover)
                    if k is None:
                        k = first_fit(asize)
                    return 0 if k is None else k

                self._find = find_next              # type: ignore[method-assign]
            return
        add, remove, replace, ceiling = sl.add, sl.remove, sl.replace, sl.ceiling
        if placement == "best":
            def ix_add(blk: int, size: int) -> None:
                add((size << _SHIFT) | blk)

            def ix_remove(blk: int, size: int, keep_pos: bool = False) -> None:
                remove((size << _SHIFT) | blk)

            def ix_move(old: int, old_size: int, new: int, size: int) -> None:
                replace((old_size << _SHIFT) | old, (size << _SHIFT) | new)

            def find(asize: int) -> int:
                k = ceiling(asize << _SHIFT)
                return 0 if k is None else k & _POS_MAX

            self._best_ops = (ix_add, ix_remove, ix_move, find)
        else:
            # Worst fit needs only the largest block: a binary heap of (-size, address)
            # (heapq, in C) with lazy deletion. An entry is live while the block it names
            # is free with that size; stale entries are dropped when they reach the top, and
            # the heap is rebuilt from the free blocks when they outnumber the live ones.
            # An entry is one int, (_SIZE_MAX - size) << 48 | address: the order of the
            # pair (-size, address), compared without building tuples.
            self.sorted = None
            heap: list[int] = []
            self.wheap = heap
            fb = self.free_blocks
            fb_get = fb.get

            def compact() -> None:
                heap[:] = [((_SIZE_MAX - sz) << _SHIFT) | b for b, sz in fb.items()]
                heapify(heap)

            self._wcompact = compact

            def ix_add(blk: int, size: int) -> None:
                heappush(heap, ((_SIZE_MAX - size) << _SHIFT) | blk)
                if len(heap) > 2 * len(fb) + 64:
                    compact()

            def ix_remove(blk: int, size: int, keep_pos: bool = False) -> None:
                pass                               # lazily: the entry goes stale

            def ix_move(old: int, old_size: int, new: int, size: int) -> None:
                # the old entry is stale now; when it is the top (always so when worst fit
                # splits the block it took), one heapreplace drops it and files the new one
                # (which live entries the heap holds, and so every search, is unchanged)
                if heap and heap[0] == ((_SIZE_MAX - old_size) << _SHIFT) | old:
                    heapreplace(heap, ((_SIZE_MAX - size) << _SHIFT) | new)
                    return
                heappush(heap, ((_SIZE_MAX - size) << _SHIFT) | new)
                if len(heap) > 2 * len(fb) + 64:
                    compact()

            def find(asize: int) -> int:
                while heap:
                    k = heap[0]
                    b = k & _POS_MAX
                    size = _SIZE_MAX - (k >> _SHIFT)
                    if fb_get(b) == size:
                        return b if size >= asize else 0
                    heappop(heap)
                return 0
        self._ix_move = self._ix_merge = ix_move
        self._index_add = ix_add                    # type: ignore[method-assign]
        self._index_remove = ix_remove              # type: ignore[method-assign]
        self._find = find                           # type: ignore[method-assign]

    def _build_fast(self) -> None:
        """Bind ``malloc`` and ``free`` of a fast configuration (``self.fast``: an address
        ordered list, or a LIFO/FIFO list searched first/next fit) to closures that hold the
        configuration and the heap's dicts in local variables: :meth:`malloc`,
        :meth:`_place_fast`, :meth:`free` and :meth:`_release_fast` in one frame each, the
        same steps and the same stores in the same order. An address-ordered FitList alone
        (``by_address``) takes :meth:`_build_address_fast`, the other configurations on a
        FitList :meth:`_build_fitlist_fast`; this one serves best fit (its SizeList's
        common cases inline: :meth:`SizeList.ceiling`, ``replace_at``, ``remove_at``,
        ``add`` without a split), worst fit (its lazy heap inline) and subclasses with
        their own index operations (which it calls). A subclass that rebinds its index
        operations after ``_configure`` calls this again."""
        self.__dict__.pop("malloc", None)
        self.__dict__.pop("free", None)
        if not self.fast:
            return
        if self.by_address:
            self._build_address_fast()
            return
        if self.fits is not None and self.order != "address" and \
                type(self)._index_add is SeqFit._index_add:
            self._build_fitlist_fast()
            return
        fb, fe, ab = self.free_blocks, self.free_end, self.alloc_blocks
        fb_pop, fb_get, fe_get, ab_pop = fb.pop, fb.get, fe.get, ab.pop
        w = self.w
        hdr, fa, ff = self.hdr, self.ftr_alloc, self.ftr_free
        hl = hdr + self.links
        hf = self.hdr_ftr
        a = self.alignment
        mb = self.min_block
        merge = self.merge
        next_fit = self.next_fit                   # (a subclass's next fit: the rover)
        addr_order = self.order == "address"
        rover_fix = self.rover_fix
        pos = self.pos
        find = self._find
        ix_move, ix_merge = self._ix_move, self._ix_merge
        ix_add, ix_remove = self._index_add, self._index_remove
        wheap: list[int] | None = self.__dict__.get("wheap")   # worst fit's lazy heap
        wcompact = self.__dict__.get("_wcompact")
        # best fit in address order: its SizeList inline, while the index operations are
        # still _specialise's (a subclass that rebinds one gets the calls). Tricky: the
        # search leaves j, i (bucket, index) on the key it found, and the split or take
        # that follows updates that key there without a second search; a key never equals
        # another (it holds the block's address), so the in-place checks are strict
        best = self.sorted if self.__dict__.get("_best_ops") == (
            ix_add, ix_remove, ix_move, find) and ix_merge is ix_move else None
        if best is not None:
            s_lists, s_maxes = best.lists, best.maxes
            s_replace_at, s_remove_at, s_add = best.replace_at, best.remove_at, best.add
        general_malloc = ClassicAllocator.malloc
        general_free = self._free
        limit = _SIZE_MAX >> 2

        def malloc(size: int) -> int:
            if self.mmap_threshold is not None or not 0 <= size <= limit:
                return general_malloc(self, size)
            asize = (size + hf + a - 1) & -a
            if asize < mb:
                asize = mb
            if wheap is not None:                  # worst fit's find, inline
                blk = 0
                while wheap:
                    k = wheap[0]
                    b = k & _POS_MAX
                    s = _SIZE_MAX - (k >> _SHIFT)
                    if fb_get(b) == s:
                        if s >= asize:
                            blk = b
                        break
                    heappop(wheap)
            elif best is not None:                 # best fit's ceiling, inline
                key = asize << _SHIFT
                j = bisect_left(s_maxes, key)
                if j == len(s_maxes):
                    return general_malloc(self, size)
                lst = s_lists[j]
                i = bisect_left(lst, key)
                blk = lst[i] & _POS_MAX
            else:
                blk = find(asize)
            if not blk:
                return general_malloc(self, size)
            # _place_fast(blk, asize), inline
            if next_fit:
                self.rover = blk if addr_order else pos[blk]
            bsize = fb_pop(blk)
            rest = bsize - asize
            if rest >= mb:
                r = blk + asize
                fb[r] = rest
                fe[blk + bsize] = r
                if wheap is not None and wheap[0] == ((_SIZE_MAX - bsize) << _SHIFT) | blk:
                    heapreplace(wheap, ((_SIZE_MAX - rest) << _SHIFT) | r)   # ix_move's case
                elif best is not None:             # ix_move at the key the search found
                    k = (rest << _SHIFT) | r
                    if (lst[i - 1] if i else s_lists[j - 1][-1] if j else -1) < k:
                        # (k < the old key: no upper check)
                        lst[i] = k
                        if i == len(lst) - 1:
                            s_maxes[j] = k
                    else:
                        s_replace_at(j, i, k)
                else:
                    ix_move(blk, bsize, r, rest)
                # the stores of _place_fast (its Tricky: comment)
                if hdr and ff and (blk + bsize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, bsize)                  # all three: the block's one or two pages
                else:
                    e = r + hl
                    if hdr and (e - 1) >> 12 <= (blk >> 12) + 1:
                        w(blk, e - blk)
                    else:
                        if hdr:
                            w(blk, hdr)
                        if e > r - fa:
                            w(r - fa, e - r + fa)
                    if ff:
                        w(blk + bsize - ff, ff)
            else:
                del fe[blk + bsize]
                if best is not None:               # ix_remove at the key the search found
                    if len(lst) > 8 or (len(lst) > 1 and len(s_lists) == 1):
                        del lst[i]                 # (no join: SizeList.remove_at)
                        if i == len(lst):
                            s_maxes[j] = lst[-1]
                    else:
                        s_remove_at(j, i)
                elif wheap is None:                # (worst fit: the entry goes stale)
                    ix_remove(blk, bsize)
                asize = bsize
                if hdr and fa and (blk + asize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, asize)                          # header and footer on adjacent pages
                else:
                    if hdr:
                        w(blk, hdr)
                    if fa:
                        w(blk + asize - fa, fa)
            ab[blk] = asize
            self.in_use_bytes += asize
            return blk + hdr

        def free(ptr: int) -> None:
            blk = ptr - hdr
            size = ab_pop(blk, None)
            if size is None:
                if ptr:
                    general_free(ptr)
                return
            self.in_use_bytes -= size
            # _release_fast(blk, size), inline
            if merge:
                nxt = blk + size
                ns = fb_get(nxt)
                prev = fe_get(blk)
            else:
                ns = prev = None
            if prev is not None:
                del fe[blk]
                if ns is not None:
                    del fb[nxt]
                    if best is not None:           # best fit's ix_remove, inline
                        k = (ns << _SHIFT) | nxt
                        j = bisect_left(s_maxes, k)
                        lst = s_lists[j]
                        i = bisect_left(lst, k)
                        if len(lst) > 8 or (len(lst) > 1 and len(s_lists) == 1):
                            del lst[i]             # (no join: SizeList.remove_at)
                            if i == len(lst):
                                s_maxes[j] = lst[-1]
                        else:
                            s_remove_at(j, i)
                    elif wheap is None:            # (worst fit: the entry goes stale)
                        ix_remove(nxt, ns)
                    size += ns
                old, old_size = prev, fb[prev]     # the entry that becomes the merged block
                size += old_size
                blk = prev
            elif ns is not None:
                del fb[nxt]
                old, old_size = nxt, ns
                size += ns
            else:
                old = 0
            fb[blk] = size
            fe[blk + size] = blk
            if old:
                if best is not None:               # best fit's ix_merge, inline
                    k = (old_size << _SHIFT) | old
                    j = bisect_left(s_maxes, k)
                    lst = s_lists[j]
                    i = bisect_left(lst, k)
                    k = (size << _SHIFT) | blk
                    if i < len(lst) - 1:           # (k > the old key: no lower check)
                        if k < lst[i + 1]:
                            lst[i] = k
                        else:
                            s_replace_at(j, i, k)
                    elif j == len(s_lists) - 1 or k < s_lists[j + 1][0]:
                        lst[i] = s_maxes[j] = k    # the bucket's last key
                    else:
                        s_replace_at(j, i, k)
                elif wheap is not None:            # worst fit's ix_move, inline
                    k = ((_SIZE_MAX - size) << _SHIFT) | blk
                    if wheap and wheap[0] == ((_SIZE_MAX - old_size) << _SHIFT) | old:
                        heapreplace(wheap, k)
                    else:
                        heappush(wheap, k)
                        if len(wheap) > 2 * len(fb) + 64:
                            wcompact()
                else:
                    ix_merge(old, old_size, blk, size)
            else:
                if best is not None:               # best fit's ix_add, inline
                    k = (size << _SHIFT) | blk
                    j = bisect_left(s_maxes, k)
                    if j < len(s_maxes) and len(s_lists[j]) < 32:
                        insort(s_lists[j], k)      # (k < the bucket's maximum)
                    else:
                        s_add(k)
                elif wheap is not None:            # worst fit's ix_add, inline
                    heappush(wheap, ((_SIZE_MAX - size) << _SHIFT) | blk)
                    if len(wheap) > 2 * len(fb) + 64:
                        wcompact()
                else:
                    ix_add(blk, size)
            if hl and ff and (blk + size - 1) >> 12 <= (blk >> 12) + 1:
                w(blk, size)                       # header and footer on adjacent pages
            else:
                if hl:
                    w(blk, hl)
                if ff:
                    w(blk + size - ff, ff)
            if rover_fix and blk < self.rover < blk + size:
                self.rover = blk                   # CS:APP: the rover never points inside

        self.malloc = malloc                        # type: ignore[method-assign]
        self.free = free                            # type: ignore[method-assign]

    def _build_address_fast(self) -> None:
        """:meth:`_build_fast` for an address-ordered FitList that is the only record of the
        free blocks (``by_address``; csapp.py's ``_build_fast`` does the same for the book's
        allocator): ``malloc`` is :meth:`malloc` with :meth:`_place_fast`, ``free`` is
        :meth:`free` with :meth:`_release_fast`, in one frame each, on the FitList's lists
        directly. The search leaves the bucket and index of the block it found, and a split
        gives that entry to the remainder (next fit's next search starts there when the rover
        still points just before it); free finds both neighbours with one lookup (the free
        blocks before and after it in the FitList are its heap neighbours when their
        boundary tags meet it) and merges in place. Anything else (no fit, the heap's first
        block, a free below every free block, misuse, mmap) goes to the methods. Same blocks,
        same keys and sizes (up to the bucket boundaries, which no search can see), same
        stores in the same order as the methods."""
        ab = self.alloc_blocks
        ab_pop = ab.pop
        w = self.w
        hdr, fa, ff = self.hdr, self.ftr_alloc, self.ftr_free
        hl = hdr + self.links
        hf = self.hdr_ftr
        a = self.alignment
        mb = self.min_block
        merge = self.merge
        next_fit = self.next_fit
        af = self.fits
        assert af is not None
        f_keys, f_sizes, f_mins, f_maxes, f_pmax = af.keys, af.sizes, af.mins, af.maxes, af.pmax
        f_settle, f_locate, f_remove = af._settle, af.locate, af.remove
        f_raise, f_split, f_join = af._raise, af._split, af._join
        load2 = 2 * af.LOAD                        # a bucket splits above this many keys
        join_below = af.LOAD >> 1                  # and joins a neighbour below this many
        general_malloc = ClassicAllocator.malloc
        general_free = self._free
        release = self._release_fast
        # sizes the closure takes (none when requests may go to mmap: the general path)
        limit = _SIZE_MAX >> 2 if self.mmap_threshold is None else -1
        hint_j = hint_i = 0                        # next fit: where the last split's remainder is

        def malloc(size: int) -> int:
            nonlocal hint_j, hint_i
            if not 0 <= size <= limit:
                return general_malloc(self, size)
            asize = (size + hf + a - 1) & -a
            if asize < mb:
                asize = mb
            # the block found is f_keys[j][i], its size f_sizes[j][i]
            if next_fit:
                # FitList.locate(asize, rover), then from the start: the first key >= rover
                # is where the last split left its remainder when the key before it is still
                # below the rover (the rover is the split block), else found by bisection
                rover = self.rover
                j = hint_j
                i = hint_i
                try:
                    ks = f_keys[j]
                    hit = i and ks[i - 1] < rover <= ks[i]
                except IndexError:
                    hit = False
                if hit and (sz := f_sizes[j])[i] >= asize:
                    pass                           # the remainder fits (most searches)
                else:
                    if not hit:
                        j = bisect_right(f_mins, rover) - 1
                        i = bisect_left(f_keys[j], rover) if j >= 0 else 0
                    n = 0
                    if j >= 0 and f_maxes[j] >= asize:     # the rover's bucket, onwards
                        sz = f_sizes[j]
                        n = len(sz)
                        while i < n and sz[i] < asize:
                            i += 1
                    if i >= n:                     # the buckets after it, then wrapped
                        at = f_locate(asize, rover) or f_locate(asize)
                        if at is None:
                            return general_malloc(self, size)
                        j, i = at
                        sz = f_sizes[j]
                    ks = f_keys[j]
                blk = self.rover = ks[i]
            else:                                  # FitList.locate(asize), inline
                j = bisect_left(f_pmax, asize)
                if j < len(f_pmax) and f_maxes[j] < asize:
                    j = f_settle(j, asize)         # a running maximum left high: walk on
                if j == len(f_pmax):
                    return general_malloc(self, size)
                sz = f_sizes[j]
                i = 0
                while sz[i] < asize:               # ends: the bucket's largest block fits
                    i += 1
                ks = f_keys[j]
                blk = ks[i]
            # _place_fast(blk, asize), inline, at the place (j, i) the search found
            bsize = sz[i]
            rest = bsize - asize
            if rest >= mb:
                # the remainder r takes blk's entry (FitList.replace: r sorts there)
                r = blk + asize
                ks[i] = r
                sz[i] = rest
                if not i:
                    f_mins[j] = r
                if bsize == f_maxes[j]:
                    f_maxes[j] = max(sz)
                hint_j = j
                hint_i = i
                # the stores of _place_fast (its Tricky: comment)
                if hdr and ff and (blk + bsize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, bsize)                  # all three: the block's one or two pages
                else:
                    e = r + hl
                    if hdr and (e - 1) >> 12 <= (blk >> 12) + 1:
                        w(blk, e - blk)
                    else:
                        if hdr:
                            w(blk, hdr)
                        if e > r - fa:
                            w(r - fa, e - r + fa)
                    if ff:
                        w(blk + bsize - ff, ff)
            else:                                  # the whole block: FitList.remove, inline
                del ks[i]
                del sz[i]
                if not ks:
                    del f_keys[j], f_sizes[j], f_maxes[j], f_mins[j], f_pmax[j]
                else:
                    if not i:
                        f_mins[j] = ks[0]
                    if bsize == f_maxes[j]:
                        f_maxes[j] = max(sz)
                    if len(ks) < join_below:
                        f_join(j)
                asize = bsize
                if hdr and fa and (blk + asize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, asize)                          # header and footer on adjacent pages
                else:
                    if hdr:
                        w(blk, hdr)
                    if fa:
                        w(blk + asize - fa, fa)
            ab[blk] = asize
            self.in_use_bytes += asize
            return blk + hdr

        def free(ptr: int) -> None:
            blk = ptr - hdr
            size = ab_pop(blk, None)
            if size is None:
                if ptr:
                    general_free(ptr)
                return
            self.in_use_bytes -= size
            # _release_fast(blk, size), inline: blk's place in the FitList is f_keys[j][i];
            # the free block before it is f_keys[j][i - 1] (none when i is 0), the one after
            # it f_keys[j][i] or the first of the next bucket
            j = bisect_right(f_mins, blk) - 1
            if j >= 0:
                ks = f_keys[j]
                sz = f_sizes[j]
                i = bisect_left(ks, blk)           # >= 1: ks[0] < blk
            elif f_mins:                           # below every free block
                j = i = 0
                ks = f_keys[0]
                sz = f_sizes[0]
            else:                                  # no free block at all
                release(blk, size)
                return
            if merge:
                nxt = blk + size
                if i < len(ks):
                    nj = j
                    ni = i
                    nfree = ks[i] == nxt
                else:
                    nj = j + 1
                    ni = 0
                    nfree = nj < len(f_keys) and f_keys[nj][0] == nxt
                if i and ks[i - 1] + (ps := sz[i - 1]) == blk:    # prev grows in place,
                    blk = ks[i - 1]                                # and takes nxt
                    size += ps
                    if nfree:
                        size += f_sizes[nj][ni]
                    sz[i - 1] = size
                    if size > f_maxes[j]:
                        f_raise(j, size)
                    if nfree:                      # nxt goes (FitList.remove)
                        if nj == j and len(ks) > join_below:
                            del ks[i]              # (smaller than prev now: max unchanged)
                            del sz[i]
                        else:
                            f_remove(nxt)
                    i = -1
                elif nfree:                        # blk takes nxt's entry (FitList.replace)
                    nks = f_keys[nj]
                    nsz = f_sizes[nj]
                    size += nsz[ni]
                    nks[ni] = blk
                    nsz[ni] = size
                    if not ni:
                        f_mins[nj] = blk
                    if size > f_maxes[nj]:
                        f_raise(nj, size)
                    i = -1
            if i >= 0:                             # FitList.insert(blk, size), inline
                ks.insert(i, blk)
                sz.insert(i, size)
                if not i:
                    f_mins[0] = blk
                if size > f_maxes[j]:
                    f_raise(j, size)
                if len(ks) > load2:
                    f_split(j)
            if hl and ff and (blk + size - 1) >> 12 <= (blk >> 12) + 1:
                w(blk, size)                       # header and footer on adjacent pages
            else:
                if hl:
                    w(blk, hl)
                if ff:
                    w(blk + size - ff, ff)
            if next_fit and blk < self.rover < blk + size:
                self.rover = blk                   # CS:APP: the rover never points inside

        self.malloc = malloc                        # type: ignore[method-assign]
        self.free = free                            # type: ignore[method-assign]

    def _build_fitlist_fast(self) -> None:
        """:meth:`_build_fast` for first or next fit over a LIFO or FIFO list (a FitList keyed
        by list position, beside the free-block dicts). The search leaves the bucket and
        index of the block it found, so that taking or splitting the block updates the list
        there without another lookup; ``free`` inserts a new block inline and relists a
        merged one (:func:`relist`)."""
        fb, fe, ab = self.free_blocks, self.free_end, self.alloc_blocks
        fb_pop, fb_get, fe_get, ab_pop = fb.pop, fb.get, fe.get, ab.pop
        w = self.w
        hdr, fa, ff = self.hdr, self.ftr_alloc, self.ftr_free
        hl = hdr + self.links
        hf = self.hdr_ftr
        a = self.alignment
        mb = self.min_block
        merge = self.merge
        next_fit = self.next_fit
        pos, at_pos = self.pos, self.at_pos
        pos_pop = pos.pop
        seq = self.seq
        lifo = self.order == "lifo"
        af = self.fits
        assert af is not None
        f_keys, f_sizes, f_mins, f_maxes, f_pmax = af.keys, af.sizes, af.mins, af.maxes, af.pmax
        f_settle, f_locate, f_insert, f_remove = af._settle, af.locate, af.insert, af.remove
        f_raise, f_split, f_join = af._raise, af._split, af._join
        load2 = 2 * af.LOAD                        # a bucket splits above this many keys
        join_below = af.LOAD >> 1                  # and joins a neighbour below this many
        general_malloc = ClassicAllocator.malloc
        general_free = self._free
        limit = _SIZE_MAX >> 2

        def malloc(size: int) -> int:
            if self.mmap_threshold is not None or not 0 <= size <= limit:
                return general_malloc(self, size)
            asize = (size + hf + a - 1) & -a
            if asize < mb:
                asize = mb
            if next_fit:
                # FitList.locate(asize, rover), inline for its common case: a fit in the
                # rover's own bucket, at or after the rover
                rover = self.rover
                j = bisect_right(f_mins, rover) - 1
                i = -1
                if j >= 0 and f_maxes[j] >= asize:
                    sz = f_sizes[j]
                    for i in range(bisect_left(f_keys[j], rover), len(sz)):
                        if sz[i] >= asize:
                            break
                    else:
                        i = -1
                if i < 0:
                    at = f_locate(asize, rover)
                    if at is None:
                        at = f_locate(asize)
                        if at is None:
                            return general_malloc(self, size)
                    j, i = at
                    sz = f_sizes[j]
            else:                                  # FitList.locate(asize), inline
                j = bisect_left(f_pmax, asize)
                if j < len(f_pmax) and f_maxes[j] < asize:
                    j = f_settle(j, asize)         # a running maximum left high: walk on
                if j == len(f_pmax):
                    return general_malloc(self, size)
                sz = f_sizes[j]
                for i, s in enumerate(sz):         # noqa: B007 (i is used below)
                    if s >= asize:
                        break
            ks = f_keys[j]
            k = ks[i]
            blk = at_pos[k]
            # _place_fast(blk, asize), inline, at the place (j, i) the search found
            bsize = fb_pop(blk)
            rest = bsize - asize
            if next_fit:
                self.rover = k
            if rest >= mb:
                r = blk + asize
                fb[r] = rest
                fe[blk + bsize] = r
                del pos[blk]                       # the remainder keeps the list position
                pos[r] = k
                at_pos[k] = r
                sz[i] = rest
                if bsize == f_maxes[j]:
                    f_maxes[j] = max(sz)
                # the stores of _place_fast (its Tricky: comment)
                if hdr and ff and (blk + bsize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, bsize)                  # all three: the block's one or two pages
                else:
                    e = r + hl
                    if hdr and (e - 1) >> 12 <= (blk >> 12) + 1:
                        w(blk, e - blk)
                    else:
                        if hdr:
                            w(blk, hdr)
                        if e > r - fa:
                            w(r - fa, e - r + fa)
                    if ff:
                        w(blk + bsize - ff, ff)
            else:
                del fe[blk + bsize]
                del pos[blk]
                del at_pos[k]
                del ks[i]
                del sz[i]
                if not ks:
                    del f_keys[j], f_sizes[j], f_maxes[j], f_mins[j], f_pmax[j]
                else:
                    if not i:
                        f_mins[j] = ks[0]
                    if bsize == f_maxes[j]:
                        f_maxes[j] = max(sz)
                    if len(ks) < join_below:
                        f_join(j)
                asize = bsize
                if hdr and fa and (blk + asize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, asize)                          # header and footer on adjacent pages
                else:
                    if hdr:
                        w(blk, hdr)
                    if fa:
                        w(blk + asize - fa, fa)
            ab[blk] = asize
            self.in_use_bytes += asize
            return blk + hdr

        def relist(old: int, new: int, size: int) -> None:
            """A LIFO/FIFO list: the merged block ``new`` leaves the list position of
            ``old`` and is inserted anew (at the front for LIFO, the back for FIFO).
            Tricky: inserted before the old entry is removed (see _specialise_seq); when
            the old entry is already the list's first (LIFO) or last (FIFO), the new one
            takes its place there instead: the same keys in the same order, and the merged
            block is larger, so only a raise of the running maximum can follow."""
            q = pos_pop(old)
            del at_pos[q]
            p = next(seq)
            if lifo:
                ks = f_keys[0]
                if ks[0] == q:
                    p = _POS_MAX - p
                    pos[new] = p
                    at_pos[p] = new
                    ks[0] = f_mins[0] = p
                    f_sizes[0][0] = size
                    if size > f_maxes[0]:
                        f_raise(0, size)
                    return
            else:
                ks = f_keys[-1]
                if ks[-1] == q:
                    pos[new] = p
                    at_pos[p] = new
                    j = len(f_keys) - 1
                    ks[-1] = p
                    f_mins[j] = ks[0]
                    f_sizes[j][-1] = size
                    if size > f_maxes[j]:
                        f_raise(j, size)
                    return
            if lifo:                               # FitList.insert(p, size), inline: p
                p = _POS_MAX - p                   # goes first (LIFO) or last (FIFO)
                j = 0
                f_mins[0] = p
                ks = f_keys[0]
                ks.insert(0, p)
                f_sizes[0].insert(0, size)
            else:
                j = len(f_keys) - 1
                ks = f_keys[j]
                ks.append(p)
                f_sizes[j].append(size)
            pos[new] = p
            at_pos[p] = new
            if size > f_maxes[j]:
                f_raise(j, size)
            if len(ks) > load2:
                f_split(j)
            f_remove(q)

        def free(ptr: int) -> None:
            blk = ptr - hdr
            size = ab_pop(blk, None)
            if size is None:
                if ptr:
                    general_free(ptr)
                return
            self.in_use_bytes -= size
            # _release_fast(blk, size), inline
            if merge:
                nxt = blk + size
                ns = fb_get(nxt)
                prev = fe_get(blk)
            else:
                ns = prev = None
            if prev is not None:
                del fe[blk]
                if ns is not None:
                    del fb[nxt]
                    q = pos_pop(nxt)
                    del at_pos[q]
                    f_remove(q)
                    size += ns
                size += fb[prev]
                old = blk = prev
            elif ns is not None:
                del fb[nxt]
                size += ns
                old = nxt
            else:
                old = 0
            fb[blk] = size
            fe[blk + size] = blk
            if old:
                relist(old, blk, size)
            else:
                k = next(seq)
                if lifo:
                    k = _POS_MAX - k
                pos[blk] = k
                at_pos[k] = blk
                if f_mins:                         # FitList.insert(k, size), inline: k goes
                    if lifo:                       # first (LIFO) or last (FIFO)
                        j = 0
                        f_mins[0] = k
                        ks = f_keys[0]
                        ks.insert(0, k)
                        f_sizes[0].insert(0, size)
                    else:
                        j = len(f_keys) - 1
                        ks = f_keys[j]
                        ks.append(k)
                        f_sizes[j].append(size)
                    if size > f_maxes[j]:
                        f_raise(j, size)
                    if len(ks) > load2:
                        f_split(j)
                else:
                    f_insert(k, size)
            if hl and ff and (blk + size - 1) >> 12 <= (blk >> 12) + 1:
                w(blk, size)                       # header and footer on adjacent pages
            else:
                if hl:
                    w(blk, hl)
                if ff:
                    w(blk + size - ff, ff)

        self.malloc = malloc                        # type: ignore[method-assign]
        self.free = free                            # type: ignore[method-assign]

    # --- the free index ----------------------------------------------------------------------
    def _specialise_seq(self) -> None:
        """The closures of a LIFO/FIFO list searched first or next fit: a split remainder
        keeps its place in the list (one in-place update), a merged block is unlinked and
        inserted anew (at the front for LIFO, the back for FIFO)."""
        fits = self.fits
        assert fits is not None
        insert, fremove, freplace = fits.insert, fits.remove, fits.replace
        pos, at_pos, seq = self.pos, self.at_pos, self.seq
        lifo = self.order == "lifo"

        def ix_add(blk: int, size: int) -> None:
            p = next(seq)
            if lifo:
                p = _POS_MAX - p
            pos[blk] = p
            at_pos[p] = blk
            insert(p, size)

        def ix_remove(blk: int, size: int, keep_pos: bool = False) -> None:
            p = pos.pop(blk)
            del at_pos[p]
            fremove(p)

        def ix_move(old: int, old_size: int, new: int, size: int) -> None:
            p = pos.pop(old)
            pos[new] = p
            at_pos[p] = new
            freplace(p, p, size)

        def ix_merge(old: int, old_size: int, new: int, size: int) -> None:
            # Tricky: the merged block is inserted before the old entry is removed. The
            # merged block is larger than the old one, so with it in the list the removal
            # never lowers a running maximum it would otherwise have to recompute (for LIFO
            # the merged block sits in front of everything). The same keys and sizes result;
            # only the bucket boundaries may differ, which no search can see.
            p_old = pos.pop(old)
            del at_pos[p_old]
            p = next(seq)
            if lifo:
                p = _POS_MAX - p
            pos[new] = p
            at_pos[p] = new
            insert(p, size)
            fremove(p_old)

        first_fit = fits.first_fit
        if self.placement == "first":
            def find(asize: int) -> int:
                k = first_fit(asize)
                return 0 if k is None else at_pos[k]
        else:
            def find(asize: int) -> int:
                k = first_fit(asize, self.rover)
                if k is None:
                    k = first_fit(asize)
                return 0 if k is None else at_pos[k]

        self._index_add = ix_add                    # type: ignore[method-assign]
        self._index_remove = ix_remove              # type: ignore[method-assign]
        self._ix_move = ix_move
        self._ix_merge = ix_merge
        self._find = find                           # type: ignore[method-assign]

    def _position(self, blk: int, size: int) -> int:
        """The list position of a free block (a key of the free index)."""
        order = self.order
        if order == "address":
            return blk
        if order == "size":
            return (size << _SHIFT) | blk
        p = self.pos.get(blk)
        if p is None:
            p = next(self.seq)
            if order == "lifo":
                p = _POS_MAX - p
            self.pos[blk] = p
            self.at_pos[p] = blk
        return p

    def _sorted_key(self, pos: int, size: int) -> int:
        if self.placement == "best":
            return (size << _SHIFT) | (pos & _POS_MAX)
        return ((_SIZE_MAX - size) << _SHIFT) | (pos & _POS_MAX)

    def _index_add(self, blk: int, size: int) -> None:
        pos = self._position(blk, size)
        if self.fits is not None:
            self.fits.insert(pos, size)
        else:
            self.sorted.add(self._sorted_key(pos, size))  # type: ignore[union-attr]

    def _index_remove(self, blk: int, size: int, keep_pos: bool = False) -> None:
        order = self.order
        if order == "address":
            pos = blk
        elif order == "size":
            pos = (size << _SHIFT) | blk
        else:
            pos = self.pos[blk]
            if not keep_pos:
                del self.pos[blk]
                del self.at_pos[pos]
        if self.fits is not None:
            self.fits.remove(pos)
        else:
            self.sorted.remove(self._sorted_key(pos, size))  # type: ignore[union-attr]

    def _ix_move(self, old: int, old_size: int, new: int, size: int) -> None:
        """The free block ``old`` became ``new`` (a split's remainder): refile it through
        the index operations, a subclass's own too; the remainder keeps the list position
        of a LIFO/FIFO list. :meth:`_specialise` binds faster closures over this."""
        keep = self.order in ("lifo", "fifo")
        self._index_remove(old, old_size, keep)
        if keep:
            p = self.pos.pop(old)
            self.pos[new] = p
            self.at_pos[p] = new
        self._index_add(new, size)

    def _ix_merge(self, old: int, old_size: int, new: int, size: int) -> None:
        """The free block ``old`` grew into ``new`` (a merge): refile it; a LIFO/FIFO list
        inserts the merged block anew (front or back)."""
        self._index_remove(old, old_size)
        self._index_add(new, size)

    def _index_items(self) -> list[tuple[int, int]]:
        """(block, size) of every block in the free index, after checking the index."""
        heap = getattr(self, "wheap", None)
        if heap is not None:
            assert all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))), "heap"
            assert len(heap) <= 2 * len(self.free_blocks) + 65, "stale entries pile up"
            live = {(k & _POS_MAX, _SIZE_MAX - (k >> _SHIFT)) for k in heap}
            return sorted(e for e in live if self.free_blocks.get(e[0]) == e[1])
        if self.fits is not None:
            self.fits.check()
            return [(self._block_at(k), s) for k, s in self.fits.items()]
        sl = self.sorted
        assert sl is not None
        sl.check()
        got = []
        for k in sl:
            size = k >> _SHIFT
            if self.placement == "worst":
                size = _SIZE_MAX - size
            got.append((self._block_at(k & _POS_MAX), size))
        return got

    def _block_at(self, key: int) -> int:
        order = self.order
        if order == "address":
            return key
        if order == "size":
            return key & _POS_MAX
        return self.at_pos[key]

    def _find(self, asize: int) -> int:
        """The free block the policy picks for ``asize`` bytes, or 0."""
        if self.fits is not None:
            if self.placement == "next":
                key = self.fits.first_fit(asize, self.rover)
                if key is None:
                    key = self.fits.first_fit(asize)
            else:
                key = self.fits.first_fit(asize)
            return 0 if key is None else self._block_at(key)
        sl = self.sorted
        assert sl is not None
        if not sl:
            return 0
        if self.placement == "best":
            key = sl.ceiling(asize << _SHIFT)
            if key is None:
                return 0
        else:
            key = sl.lists[0][0]
            if _SIZE_MAX - (key >> _SHIFT) < asize:
                return 0
        return self._block_at(key & _POS_MAX)

    # --- blocks -------------------------------------------------------------------------------
    def _asize(self, size: int) -> int:
        a = self.alignment
        n = (size + self.hdr + self.ftr_alloc + a - 1) & -a
        return n if n > self.min_block else self.min_block

    @property
    def free_blocks(self) -> dict[int, int]:
        """block -> size of every free block (with ``by_address`` a dict made from the free
        index on each read, O(n))."""
        if self.by_address:
            return dict(self.fits.items())          # type: ignore[union-attr]
        return self._free_blocks

    @property
    def free_end(self) -> dict[int, int]:
        """end -> block of every free block: the footers (with ``by_address`` made from the
        free index on each read)."""
        if self.by_address:
            return {b + s: b for b, s in self.fits.items()}   # type: ignore[union-attr]
        return self._free_end

    @property
    def free_bytes(self) -> int:
        """Bytes in free blocks: the blocks tile the heap, so the heap less the allocated
        blocks."""
        return self.heap_end - self.heap_start - self.in_use_bytes

    def _free_size(self, blk: int) -> int | None:
        """The size of the free block at ``blk`` (its header, when it says free), or None."""
        if not self.by_address:
            return self._free_blocks.get(blk)
        fits = self.fits
        assert fits is not None
        j = bisect_right(fits.mins, blk) - 1
        if j < 0:
            return None
        ks = fits.keys[j]
        i = bisect_left(ks, blk)
        return fits.sizes[j][i] if i < len(ks) and ks[i] == blk else None

    def _free_before(self, end: int) -> int | None:
        """The free block that ends at ``end`` (the footer before ``end``), or None."""
        if not self.by_address:
            return self._free_end.get(end)
        fits = self.fits
        assert fits is not None
        j = bisect_left(fits.mins, end) - 1
        if j < 0:
            return None
        ks = fits.keys[j]
        i = bisect_left(ks, end) - 1               # >= 0: ks[0] < end
        return ks[i] if ks[i] + fits.sizes[j][i] == end else None

    def _add_free(self, blk: int, size: int, pos: int | None = None) -> None:
        """Make [blk, blk+size) a free block: header, links, footer, index."""
        if not self.by_address:
            self._free_blocks[blk] = size
            self._free_end[blk + size] = blk
        if pos is not None:                        # a split remainder keeps its list place
            self.pos[blk] = pos
            self.at_pos[pos] = blk
        self._index_add(blk, size)
        w = self.w
        if self.hdr + self.links:
            w(blk, self.hdr + self.links)
        if self.ftr_free:
            w(blk + size - self.ftr_free, self.ftr_free)

    def _take_free(self, blk: int, keep_pos: bool = False) -> int:
        if self.by_address:
            return self.fits.remove(blk)           # type: ignore[union-attr]
        size = self._free_blocks.pop(blk)
        del self._free_end[blk + size]
        self._index_remove(blk, size, keep_pos)
        return size

    def _set_alloc(self, blk: int, size: int) -> None:
        self.alloc_blocks[blk] = size
        self.in_use_bytes += size
        w = self.w
        if self.hdr:
            w(blk, self.hdr)
        if self.ftr_alloc:
            w(blk + size - self.ftr_alloc, self.ftr_alloc)

    def _place(self, blk: int, asize: int) -> None:
        """Allocate ``asize`` bytes at the start of free block ``blk`` (CS:APP ``place``)."""
        if self.fast:
            self._place_fast(blk, asize)
            return
        order = self.order
        keep = order == "lifo" or order == "fifo"
        if self.placement == "next":               # the search goes on from here next time
            self.rover = (blk if order == "address" else self.pos[blk] if keep
                          else (self._free_blocks[blk] << _SHIFT) | blk)
        bsize = self._take_free(blk, keep_pos=keep)
        rest = bsize - asize
        pos = None
        if keep:
            pos = self.pos.pop(blk)
            del self.at_pos[pos]
        if rest >= self.min_block:
            self._add_free(blk + asize, rest, pos)
            bsize = asize
        self._set_alloc(blk, bsize)

    def _place_fast(self, blk: int, asize: int) -> None:
        """``_place`` for an address-ordered (or LIFO/FIFO) list: the remainder takes the
        block's place in the list (one in-place update of the index)."""
        by_address = self.by_address
        fb = self._free_blocks
        bsize = self._free_size(blk) if by_address else fb.pop(blk)
        assert bsize is not None
        rest = bsize - asize
        w = self.w
        hdr = self.hdr
        fa = self.ftr_alloc
        if self.next_fit:
            self.rover = blk if self.order == "address" else self.pos[blk]
        if rest >= self.min_block:
            r = blk + asize
            if not by_address:
                fb[r] = rest
                self._free_end[blk + bsize] = r
            af = self.addr_fits
            if af is not None:                     # FitList.replace(blk, r, rest), inline
                j = bisect_right(af.mins, blk) - 1
                ks = af.keys[j]
                i = bisect_left(ks, blk)
                ks[i] = r
                af.sizes[j][i] = rest
                if not i:
                    af.mins[j] = r
                if bsize == af.maxes[j]:
                    af.maxes[j] = max(af.sizes[j])
            else:
                self._ix_move(blk, bsize, r, rest)
            # the allocated footer, the remainder's header and links are contiguous; when
            # they share a page or the next one with the header, one write covers all
            # three, and the remainder's footer too when the whole block lies on one or two
            # pages (Tricky: two stores are one write only when no page lies between them,
            # so the same pages are touched, first touched in the same order; only a Machine
            # with swap and recency tracking can tell, where one write is one access for the
            # recency clock, so frame and swap slot numbers, and under pressure which pages
            # are evicted, may differ from separate stores)
            ff = self.ftr_free
            if hdr and ff and (blk + bsize - 1) >> 12 <= (blk >> 12) + 1:
                w(blk, bsize)
            else:
                e = r + hdr + self.links
                if hdr and (e - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, e - blk)
                else:
                    if hdr:
                        w(blk, hdr)
                    if e > r - fa:
                        w(r - fa, e - r + fa)
                if ff:
                    w(blk + bsize - ff, ff)
        else:
            if not by_address:
                del self._free_end[blk + bsize]
            self._index_remove(blk, bsize)
            asize = bsize
            if hdr and fa and (blk + asize - 1) >> 12 <= (blk >> 12) + 1:
                w(blk, asize)                      # header and footer on adjacent pages
            else:
                if hdr:
                    w(blk, hdr)
                if fa:
                    w(blk + asize - fa, fa)
        self.alloc_blocks[blk] = asize
        self.in_use_bytes += asize

    def _release_fast(self, blk: int, size: int) -> None:
        """``_release`` for an address-ordered (or LIFO/FIFO) list: merges update the index
        in place. With ``by_address`` the boundary tags are lookups in the FitList."""
        by_address = self.by_address
        fb = self._free_blocks
        fe = self._free_end
        if self.merge:
            nxt = blk + size
            ns = self._free_size(nxt)
            prev = self._free_before(blk)
        else:
            ns = prev = None
        af = self.addr_fits                        # FitList calls direct, no closure
        if prev is not None:
            if ns is not None:
                if not by_address:
                    del fb[nxt]
                if af is not None:
                    af.remove(nxt)
                else:
                    self._index_remove(nxt, ns)
                size += ns
            ps = self._free_size(prev)
            assert ps is not None
            size += ps
            if not by_address:
                del fe[blk]
                fb[prev] = size
                fe[prev + size] = prev
            if af is not None:
                af.replace(prev, prev, size)
            else:
                self._ix_merge(prev, ps, prev, size)
            blk = prev
        elif ns is not None:
            size += ns
            if not by_address:
                del fb[nxt]
                fb[blk] = size
                fe[blk + size] = blk
            if af is not None:
                af.replace(nxt, blk, size)
            else:
                self._ix_merge(nxt, ns, blk, size)
        else:
            if not by_address:
                fb[blk] = size
                fe[blk + size] = blk
            if af is not None:
                af.insert(blk, size)
            else:
                self._index_add(blk, size)
        w = self.w
        hl = self.hdr + self.links
        ff = self.ftr_free
        if hl and ff and (blk + size - 1) >> 12 <= (blk >> 12) + 1:
            w(blk, size)                           # header and footer on adjacent pages
        else:
            if hl:
                w(blk, hl)
            if ff:
                w(blk + size - ff, ff)
        if self.rover_fix and blk < self.rover < blk + size:
            self.rover = blk                       # CS:APP: the rover never points inside

    def _release(self, blk: int, size: int) -> None:
        """Turn the (no longer allocated) block into free space, coalescing by policy."""
        if self.fast:
            self._release_fast(blk, size)
            return
        if self.coalesce == "immediate":
            nxt = blk + size
            if nxt in self._free_blocks:
                size += self._take_free(nxt)
            prev = self._free_end.get(blk)
            if prev is not None:
                size += self._take_free(prev)
                blk = prev
            if self.placement == "next" and self.order == "address" and \
                    blk < self.rover < blk + size:
                self.rover = blk                   # CS:APP: the rover never points inside
        self._add_free(blk, size)

    # --- the heap -----------------------------------------------------------------------------
    def _extend(self, asize: int) -> int:
        """``extend_heap``: grow the heap by max(asize, grow) bytes; the new free block."""
        a = self.alignment
        inc = (max(asize, self.grow) + a - 1) & -a
        if self.curbrk is None or not self.heap_start:
            base = self.sbrk(0)
            first = base + self.prologue + self.hdr
            first = (first + a - 1) & -a
            first -= self.hdr                      # the first payload is aligned
            lead = first - base
            if self.sbrk(lead + inc + self.epi) == -1:
                return 0
            self.base = base
            self.heap_start = first
            self.heap_end = first
            if lead:
                self.w(base, lead)                 # padding and prologue block
        elif self.sbrk(inc) == -1:
            return 0
        blk = self.heap_end
        self.heap_end = blk + inc
        if self.epi:
            self.w(self.heap_end, self.epi)        # the new epilogue header
        if self.coalesce == "immediate":
            prev = self._free_before(blk)          # a free last block grows
            if prev is not None:
                inc += self._take_free(prev)
                blk = prev
        self._add_free(blk, inc)
        return blk

    def _sweep(self) -> bool:
        """Deferred coalescing: merge every run of free blocks (one pass over the heap)."""
        if self.by_address:
            return self._sweep_index()
        merged = False
        free_blocks = self._free_blocks
        starts = [b for b in free_blocks if b not in self._free_end]
        for blk in starts:
            end = blk + free_blocks[blk]
            if end not in free_blocks:
                continue
            total = self._take_free(blk)
            while end in free_blocks:
                s = self._take_free(end)
                total += s
                end += s
            self._add_free(blk, total)
            merged = True
        if merged and self.placement == "next" and self.order == "address":
            prev = max((b for b in free_blocks if b <= self.rover), default=None)
            if prev is not None and prev < self.rover < prev + free_blocks[prev]:
                self.rover = prev
        return merged

    def _sweep_index(self) -> bool:
        """:meth:`_sweep` on an address-ordered FitList (``by_address``): one pass over its
        keys finds the blocks that touch their successor, and the list is rebuilt with each
        run merged; O(n) in C loops plus O(1) per block merged. The merged blocks' tags are
        stored in address order (Tricky: the dict path stores them in the order the runs'
        first blocks were freed; each word lies on a page that the tags of the run's own
        blocks touched when they were freed, so no page is first touched here and the order
        cannot be seen, but by the recency clock of a Machine with swap)."""
        fits = self.fits
        assert fits is not None
        flat_keys = list(chain.from_iterable(fits.keys))
        flat_sizes = list(chain.from_iterable(fits.sizes))
        # the n where block n ends where block n + 1 starts (C loops: the sweep's scan)
        touch = list(compress(count(), map(eq, map(add, flat_keys, flat_sizes),
                                            islice(flat_keys, 1, None))))
        if not touch:
            return False
        keys: list[int] = []
        sizes: list[int] = []
        runs: list[int] = []                       # indices of the merged blocks
        done = 0                                   # the blocks before this one are copied
        t = 0
        while t < len(touch):
            first = last = touch[t]                # blocks first..last + 1 merge
            t += 1
            while t < len(touch) and touch[t] == last + 1:
                last += 1
                t += 1
            keys += flat_keys[done:first + 1]
            sizes += flat_sizes[done:first]
            sizes.append(sum(flat_sizes[first:last + 2]))
            runs.append(len(keys) - 1)
            done = last + 2
        keys += flat_keys[done:]
        sizes += flat_sizes[done:]
        fits.rebuild(keys, sizes)
        w = self.w
        hl = self.hdr + self.links
        ff = self.ftr_free
        for n in runs:                             # _add_free's stores
            blk = keys[n]
            if hl:
                w(blk, hl)
            if ff:
                w(blk + sizes[n] - ff, ff)
        if self.placement == "next":
            n = bisect_right(keys, self.rover) - 1
            if n >= 0 and keys[n] < self.rover < keys[n] + sizes[n]:
                self.rover = keys[n]
        return True

    # --- policy hooks --------------------------------------------------------------------------
    def _malloc(self, size: int) -> int:
        mt = self.mmap_threshold
        if mt is not None and size >= mt:
            return self.big_alloc(size, self.alignment, max(self.hdr, 16))
        return self._heap_malloc(size)

    def malloc(self, size: int) -> int:
        """``malloc``: the fast path (an address/LIFO/FIFO list with a fit, no mmap) inline,
        anything else through the general path (ClassicAllocator.malloc)."""
        if self.fast and self.mmap_threshold is None and 0 <= size <= _SIZE_MAX >> 2:
            a = self.alignment
            asize = (size + self.hdr_ftr + a - 1) & -a
            if asize < self.min_block:
                asize = self.min_block
            if self.addr_first:
                af = self.addr_fits
                k = af.first_fit(asize)            # type: ignore[union-attr]
                blk = 0 if k is None else k
            else:
                blk = self._find(asize)
            if blk:
                self._place_fast(blk, asize)
                return blk + self.hdr
        return ClassicAllocator.malloc(self, size)

    def free(self, ptr: int) -> None:
        """``free``: the fast path inline, misuse and mmapped blocks through ``_free``."""
        if self.fast:
            blk = ptr - self.hdr
            size = self.alloc_blocks.pop(blk, None)
            if size is not None:
                self.in_use_bytes -= size
                self._release_fast(blk, size)
                return
        if ptr:
            self._free(ptr)

    def _heap_malloc(self, size: int) -> int:
        if size > _SIZE_MAX >> 2:
            return 0
        a = self.alignment
        asize = (size + self.hdr + self.ftr_alloc + a - 1) & -a
        if asize < self.min_block:
            asize = self.min_block
        blk = self._find(asize)
        if not blk:
            if self.coalesce == "deferred" and self._sweep():
                blk = self._find(asize)
            if not blk:
                blk = self._extend(asize)
                if not blk:
                    return 0
        self._place(blk, asize)
        return blk + self.hdr

    def _free(self, ptr: int) -> None:
        blk = ptr - self.hdr
        size = self.alloc_blocks.pop(blk, None)
        if size is None:
            if ptr in self.big:
                self.big_free(ptr)
                return
            raise self._misuse("free", ptr)
        self.in_use_bytes -= size
        self._release(blk, size)

    def _usable(self, ptr: int) -> int:
        size = self.alloc_blocks.get(ptr - self.hdr)
        if size is None:
            raise self._misuse("malloc_usable_size", ptr)
        return size - self.hdr - self.ftr_alloc

    def _shrink(self, blk: int, size: int, asize: int) -> None:
        """Cut allocated block ``blk`` (``size`` bytes) to ``asize``, freeing the tail."""
        if size - asize < self.min_block:
            return
        self.alloc_blocks[blk] = asize
        self.in_use_bytes -= size - asize
        if self.ftr_alloc:
            self.w(blk + asize - self.ftr_alloc, self.ftr_alloc)
        if self.hdr:
            self.w(blk, self.hdr)
        self._release(blk + asize, size - asize)

    def _resize(self, ptr: int, size: int) -> bool:
        if self.copy_realloc:
            return False
        blk = ptr - self.hdr
        cur = self.alloc_blocks[blk]
        asize = self._asize(size)
        if asize <= cur:
            self._shrink(blk, cur, asize)
            return True
        nxt = blk + cur
        ns = self._free_size(nxt)
        if ns is None or cur + ns < asize:
            return False
        self._take_free(nxt)
        total = cur + ns
        self.alloc_blocks[blk] = total
        self.in_use_bytes += ns
        if total - asize >= self.min_block:
            self._shrink(blk, total, asize)
        else:
            if self.hdr:
                self.w(blk, self.hdr)
            if self.ftr_alloc:
                self.w(blk + total - self.ftr_alloc, self.ftr_alloc)
        return True

    def _memalign(self, alignment: int, size: int) -> int:
        mt = self.mmap_threshold
        if mt is not None and size >= mt:
            return self.big_alloc(size, alignment, max(self.hdr, 16))
        mb = self.min_block
        p = self._heap_malloc(size + alignment + mb)
        if not p:
            return 0
        blk = p - self.hdr
        bsize = self.alloc_blocks[blk]
        q = (p + alignment - 1) & -alignment
        while 0 < q - p < mb:
            q += alignment
        if q != p:
            lead = q - p
            del self.alloc_blocks[blk]
            self.in_use_bytes -= bsize
            blk2 = blk + lead
            bsize -= lead
            self._set_alloc(blk2, bsize)
            self._release(blk, lead)
            blk = blk2
        self._shrink(blk, bsize, self._asize(size))
        return q

    # --- trimming -------------------------------------------------------------------------
    def malloc_trim(self, pad: int) -> int:
        """Give the free end of the heap back with a negative sbrk, keeping ``pad`` bytes."""
        if self.coalesce == "deferred":
            self._sweep()
        last = self._free_before(self.heap_end)
        if last is None:
            return 0
        size = self._free_size(last)
        assert size is not None
        a = self.alignment
        keep = (pad + a - 1) & -a
        if keep and keep < self.min_block:
            keep = self.min_block
        release = (size - keep) & ~(PAGE_SIZE - 1)
        if 0 < size - release < self.min_block:
            release -= PAGE_SIZE
        if release <= 0:
            return 0
        self._take_free(last)
        if self.sbrk(-release) == -1:
            self._add_free(last, size)
            return 0
        self.heap_end -= release
        if self.epi:
            self.w(self.heap_end, self.epi)
        if size - release:
            self._add_free(last, size - release)
        if self.placement == "next" and self.order == "address" and self.rover > self.heap_end:
            self.rover = 0
        return 1

    # --- accounting -----------------------------------------------------------------------------
    def usage(self) -> HeapUsage:
        """in_use: allocated blocks (headers, footers, padding) and big mappings; free: free
        blocks but the last; top: a free block ending at the epilogue; overhead: padding,
        prologue, epilogue, brk slack, big-mapping leads."""
        top = 0
        last = self._free_before(self.heap_end) if self.heap_start else None
        if last is not None:
            top = self._free_size(last) or 0
        heap_total = (self.curbrk - self.base) if self.heap_start else 0
        lead = self.big_lead()
        overhead = (heap_total - (self.heap_end - self.heap_start)) if self.heap_start else 0
        return HeapUsage(in_use=self.in_use_bytes + self.big_bytes - lead,
                         free=self.free_bytes - top, top=top, overhead=overhead + lead,
                         total=heap_total + self.big_bytes)

    def check(self) -> None:
        self.check_big()
        a = self.alignment
        alloc, free, free_end = self.alloc_blocks, self.free_blocks, self.free_end
        if not self.heap_start:
            assert not alloc and not free, "blocks without a heap"
            return
        assert self.curbrk is not None and self.curbrk >= self.heap_end + self.epi, "brk"
        assert (self.heap_start + self.hdr) % a == 0, "first payload misaligned"
        blk = self.heap_start
        nfree = nalloc = 0
        prev_free = False
        while blk < self.heap_end:
            size = alloc.get(blk)
            is_free = size is None
            if is_free:
                size = free.get(blk)
                assert size is not None, f"no block at {blk:#x}"
                assert free_end.get(blk + size) == blk, f"footer of {blk:#x}"
                assert self._free_size(blk) == size and self._free_before(blk + size) == blk, \
                    f"the boundary tags' lookups at {blk:#x}"
                nfree += 1
                if self.coalesce == "immediate":
                    assert not prev_free, f"free blocks touch at {blk:#x}"
            else:
                nalloc += 1
            assert size >= self.min_block and size % a == 0, f"block {blk:#x} size {size}"
            prev_free = is_free
            blk += size
        assert blk == self.heap_end, "blocks do not end at the epilogue"
        assert nfree == len(free) == len(free_end), "free blocks outside the heap walk"
        assert nalloc == len(alloc), "allocated blocks outside the heap walk"
        assert self.in_use_bytes == sum(alloc.values()), "in_use_bytes"
        assert self.free_bytes == sum(free.values()), "free_bytes"
        got = sorted(self._index_items())
        assert got == sorted(free.items()), "the free index disagrees with the free blocks"
        if self.order in ("lifo", "fifo"):
            assert set(self.pos) == set(free), "list positions of non-free blocks"
            assert all(self.at_pos[p] == b for b, p in self.pos.items()), "at_pos"


def _named(name: str, description: str, **overrides: Any) -> type[SeqFit]:
    """Register a named configuration of SeqFit (its own defaults, same options)."""
    defaults = dict(SeqFit.defaults)
    defaults.update(overrides)
    cls = type(name.replace("-", "_").title().replace("_", ""), (SeqFit,),
               {"defaults": defaults, "__doc__": f"SeqFit preset {name!r}: {description}.",
                "__module__": __name__})
    return register(name, description)(cls)


FirstFit = _named("first-fit", "first fit, explicit free list in address order, immediate "
                  "coalescing (boundary tags)")
NextFit = _named("next-fit", "next fit (roving pointer), address-ordered explicit list, "
                 "immediate coalescing", placement="next")
BestFit = _named("best-fit", "best fit over a size-ordered tree, address tie-break, "
                 "immediate coalescing", placement="best")
WorstFit = _named("worst-fit", "worst fit (largest free block), immediate coalescing",
                  placement="worst")
FirstFitLifo = _named("first-fit-lifo", "first fit over a LIFO explicit free list, immediate "
                      "coalescing", order="lifo")
FirstFitFifo = _named("first-fit-fifo", "first fit over a FIFO explicit free list, immediate "
                      "coalescing", order="fifo")
ImplicitFirstFit = _named("implicit-first-fit", "first fit over an implicit list (CS:APP "
                          "boundary tags, header+footer per block)", lists="implicit",
                          min_block=16)
DeferredFirstFit = _named("deferred-first-fit", "first fit, address order, coalescing "
                          "deferred until a request finds no fit", coalesce="deferred")
