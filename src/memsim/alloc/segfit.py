"""Segregated free lists: segregated fits, and simple segregated storage.

Two allocators of Wilson et al.'s "segregated free lists" family (survey §3.6):

``segfit`` — :class:`SegFit`, segregated fits (dlmalloc's design, without its caches). The
heap, blocks, boundary tags, splitting, immediate coalescing, heap growth and realloc are
those of :mod:`memsim.alloc.seqfit`; only the free index changes: an array of size classes,
each with its own free list, and a bitmap of the non-empty classes::

    class:  0 ... 63 (exact: one block size each, step = alignment)  64 ... (ranges)
    sizes:  <16> <32> <48> ... <1008>     [1024,1280) [1280,1536) ... 4 per power of two
    lists:  LIFO (any block fits)         sorted by (size, address): best fit in the class
    binmap: bit i set <=> class i has a free block

A request of block size ``n`` looks in its own class (an exact class: the most recently
freed block; a range class: the smallest block >= n), then takes the first non-empty class
above it from the binmap (any block there fits; the smallest of a range class is taken),
splits it, and files the remainder in the remainder's class. A freed block merges with its
free neighbours and goes to its class. Costs: malloc O(log k) for k blocks in a range class
(bisect) plus O(1) binmap search [real dlmalloc: O(1) small bins, a size-sorted trie for
large ones]; free O(1) for exact classes, O(log k) for range classes.
``malloc`` and ``free`` are closures (:meth:`SegFit._build_fast`) that do the methods'
steps in one frame with the class lists operated inline (the block found is taken or split
where it was found); ``tests/alloc/test_segfit_fast.py`` compares them with the methods
call by call.

``simple-seg`` / ``simple-seg-3`` — :class:`SimpleSeg`, simple segregated storage
(Kingsley's 4.2BSD malloc, CS:APP 9.9.14). Each size class owns whole runs of pages from
sbrk, cut into equal blocks when the run is obtained (a link stored in each block); a block
is never split or merged and never changes class, and memory is never given back. Classes are
powers of two (``classes`` = "pow2") or powers of two and three times powers of two
("pow2x3"), from 16 bytes to ``max_class``; larger requests get their own mmap::

    run of class 64 (one page):   | blk | blk | blk | ... | blk |  (4096 / 64 = 64 blocks)
    run of class 48:              | blk | blk | ... | blk |waste|  (85 blocks, 16 bytes waste)
    block:  [header (0 or 16 bytes: the class) | payload ...]
    free lists: class -> LIFO stack of blocks

Costs: malloc and free O(1) (a bisect over the ~20 classes), refill O(blocks in the run).

Invariants (``check()``): SegFit — those of SeqFit, plus: every free block is filed in the
class of its size, the binmap is exactly the non-empty classes, range lists are sorted.
SimpleSeg — each block lies in a run of its class at a whole number of blocks from the run
start, is either live or on its class's free list (never both, never twice), and the byte
counters equal the sums.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from sortedcontainers import SortedList

from memsim.alloc.base import HeapUsage, register
from memsim.alloc.classic import ClassicAllocator, option_error, power_of_two
from memsim.alloc.seqfit import _SIZE_MAX, SeqFit
from memsim.kernel.abi import Syscalls
from memsim.units import PAGE_SIZE, KiB

__all__ = ["SegFit", "SimpleSeg"]

_SHIFT = 48
_POS_MAX = (1 << _SHIFT) - 1
PER_DOUBLING = 4              # range classes per power of two


def _sl_replace(sl: SortedList, old: int, new: int) -> None:
    """Replace ``old`` by ``new`` in ``sl``: in place when ``new`` sorts where ``old`` was
    (the common case of a split or merge that leaves the block's rank alone), else remove and
    add. Tricky: writes SortedList's ``_lists``/``_maxes`` directly; its positional
    ``_index`` depends only on the sublist lengths, which do not change."""
    maxes = sl._maxes
    lists = sl._lists
    j = bisect_left(maxes, old)
    lst = lists[j]
    i = bisect_left(lst, old)
    last = len(lst) - 1
    if i:
        lo = lst[i - 1]
    else:
        lo = lists[j - 1][-1] if j else -1
    if i < last:
        hi = lst[i + 1]
    else:
        hi = lists[j + 1][0] if j + 1 < len(lists) else 1 << 200
    if lo < new < hi:
        lst[i] = new
        if i == last:
            maxes[j] = new
        return
    sl.remove(old)
    sl.add(new)


@register("segfit", "segregated fits: exact small classes (LIFO), 4 range classes per power "
                    "of two (best fit), splitting, immediate coalescing (dlmalloc-like)")
class SegFit(SeqFit):
    """Segregated fits on the SeqFit heap. Options: SeqFit's ``coalesce``, ``footer``,
    ``header``, ``alignment``, ``min_block``, ``prologue``, ``grow``, ``mmap_threshold``,
    ``realloc``, plus ``small_max`` (block sizes below it have exact classes)."""

    defaults: dict[str, Any] = {
        **{k: v for k, v in SeqFit.defaults.items()
           if k not in ("placement", "order", "lists")},
        "small_max": 1 * KiB,
    }

    def __init__(self, syscalls: Syscalls, **options: Any) -> None:
        ClassicAllocator.__init__(self, syscalls)
        o = self.resolve_options(options)
        small_max = o.pop("small_max")
        self._configure({**o, "placement": "first", "order": "address", "lists": "explicit"})
        self.options["small_max"] = small_max
        if not isinstance(small_max, int) or not power_of_two(small_max) or \
                small_max < 2 * self.alignment:
            raise option_error(type(self), "small_max", small_max,
                               f"a power of two >= {2 * self.alignment}")
        self.fits = None
        self.sorted = None
        self.addr_fits = None
        self.addr_first = False
        self.rover_fix = False
        self._ix_move = self._ix_merge = self._move   # the SeqFit fast paths, class lists
        self.small_max = small_max
        self.step_shift = self.alignment.bit_length() - 1
        self.nexact = small_max >> self.step_shift
        self.small_log = small_max.bit_length() - 1
        self.exact: list[dict[int, None]] = [{} for _ in range(self.nexact)]
        self.ranges: dict[int, SortedList] = {}
        self.binmap = 0
        self._build_fast()                         # its own closures, over the class lists

    def _build_fast(self) -> None:
        """Bind ``malloc`` and ``free`` to closures over the class lists: SeqFit's
        :meth:`~memsim.alloc.seqfit.SeqFit._build_fast` (that is :meth:`malloc` with
        :meth:`_find` and :meth:`_place_fast`, :meth:`free` with :meth:`_release_fast`)
        with :meth:`_find`, :meth:`_move`, :meth:`_index_add` and :meth:`_index_remove`
        inline: the class is computed once, the block found is taken or split where it was
        found (no second lookup), the same stores in the same order.
        ``tests/alloc/test_segfit_fast.py`` compares them with the methods call by call."""
        self.__dict__.pop("malloc", None)
        self.__dict__.pop("free", None)
        if not self.fast:
            return
        fb, fe, ab = self._free_blocks, self._free_end, self.alloc_blocks
        fb_pop, fb_get, fe_get, ab_pop = fb.pop, fb.get, fe.get, ab.pop
        w = self.w
        hdr, fa, ff = self.hdr, self.ftr_alloc, self.ftr_free
        hl = hdr + self.links
        hf = self.hdr_ftr
        a = self.alignment
        mb = self.min_block
        merge = self.merge
        sm, sh, nexact, slog = self.small_max, self.step_shift, self.nexact, self.small_log
        exact, ranges = self.exact, self.ranges
        ranges_get = ranges.get
        general_malloc = ClassicAllocator.malloc
        general_free = self._free
        hfa = bool(hdr and fa)                     # a header and a footer in allocated blocks
        hlff = bool(hl and ff)                     # a header and a footer in free blocks
        hff = bool(hdr and ff)
        # sizes the closure takes (none when requests may go to mmap: the general path)
        limit = _SIZE_MAX >> 2 if self.mmap_threshold is None else -1

        def malloc(size: int) -> int:
            if not 0 <= size <= limit:
                return general_malloc(self, size)
            asize = (size + hf + a - 1) & -a
            if asize < mb:
                asize = mb
            if asize < sm:                         # class_of(asize), inline
                c = asize >> sh
            else:
                e = asize.bit_length() - 1
                c = nexact + (e - slog) * PER_DOUBLING + ((asize >> (e - 2)) & 3)
            bm = self.binmap
            bits = bm >> c
            if not bits:
                return general_malloc(self, size)
            # _find(asize), inline; the block found is (blk, bsize) in class c, and for a
            # range class its key k sits at sl._lists[j][i]
            if bits & 1 and c < nexact:
                # Tricky: an exact class holds blocks of one size, asize: taken whole
                d = exact[c]
                blk = d.popitem()[0]               # the most recently freed (LIFO)
                if not d:
                    self.binmap = bm & ~(1 << c)
                fb_pop(blk)
                del fe[blk + asize]
                if hfa and (blk + asize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, asize)                  # header and footer on adjacent pages
                else:
                    if hdr:
                        w(blk, hdr)
                    if fa:
                        w(blk + asize - fa, fa)
                ab[blk] = asize
                self.in_use_bytes += asize
                return blk + hdr
            sl = None
            if bits & 1:                           # own range class: best fit in it
                sl = ranges[c]
                key = asize << _SHIFT
                maxes = sl._maxes
                j = bisect_left(maxes, key)
                if j < len(maxes):
                    lst = sl._lists[j]
                    i = bisect_left(lst, key)
                    k = lst[i]
                else:
                    sl = None
            if sl is None:
                bits >>= 1
                if not bits:
                    return general_malloc(self, size)
                c += 1 + ((bits & -bits).bit_length() - 1)
                if c < nexact:                     # an exact class above: any block fits
                    d = exact[c]
                    blk = d.popitem()[0]
                    if not d:
                        bm &= ~(1 << c)
                    bsize = fb_pop(blk)
                    rest = bsize - asize
                    if rest >= mb:
                        r = blk + asize
                        fb[r] = rest
                        fe[blk + bsize] = r
                        # Tricky: rest < bsize < small_max: another exact class
                        exact[rest >> sh][r] = None
                        bm |= 1 << (rest >> sh)
                    else:
                        del fe[blk + bsize]
                    self.binmap = bm
                    sl = None
                else:                              # a range class above: its smallest
                    sl = ranges[c]
                    j = i = 0
                    lst = sl._lists[0]
                    k = lst[0]
            if sl is not None:
                blk = k & _POS_MAX
                bsize = k >> _SHIFT
                fb_pop(blk)
                rest = bsize - asize
                if rest >= mb:
                    r = blk + asize
                    fb[r] = rest
                    fe[blk + bsize] = r
                    # _move(blk, bsize, r, rest), inline
                    if rest < sm:
                        cr = rest >> sh
                    else:
                        e = rest.bit_length() - 1
                        cr = nexact + (e - slog) * PER_DOUBLING + ((rest >> (e - 2)) & 3)
                    if cr == c:
                        # _sl_replace(sl, k, nk), inline at k's place (j, i). Tricky: nk < k
                        # (a smaller block), so it sorts where k was when it is above k's
                        # predecessor (always, for the smallest key of a class above)
                        nk = (rest << _SHIFT) | r
                        if i:
                            lo = lst[i - 1]
                        else:
                            lo = sl._lists[j - 1][-1] if j else -1
                        if nk > lo:
                            lst[i] = nk
                            if i == len(lst) - 1:
                                sl._maxes[j] = nk
                        else:
                            sl.remove(k)
                            sl.add(nk)
                    else:
                        sl._delete(j, i)
                        if not sl:
                            bm &= ~(1 << c)
                        if cr < nexact:
                            exact[cr][r] = None
                        else:
                            rl = ranges_get(cr)
                            if rl is None:
                                rl = ranges[cr] = SortedList()
                            rl.add((rest << _SHIFT) | r)
                        self.binmap = bm | (1 << cr)
                else:
                    del fe[blk + bsize]
                    sl._delete(j, i)               # _index_remove(blk, bsize), inline
                    if not sl:
                        self.binmap = bm & ~(1 << c)
            if rest >= mb:
                # the stores of _place_fast (its Tricky: comment)
                if hff and (blk + bsize - 1) >> 12 <= (blk >> 12) + 1:
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
                asize = bsize
                if hfa and (blk + asize - 1) >> 12 <= (blk >> 12) + 1:
                    w(blk, asize)                  # header and footer on adjacent pages
                else:
                    if hdr:
                        w(blk, hdr)
                    if fa:
                        w(blk + asize - fa, fa)
            ab[blk] = asize
            self.in_use_bytes += asize
            return blk + hdr

        def unfile(blk: int, size: int, bm: int) -> int:
            """_index_remove(blk, size) on binmap ``bm``: the binmap after."""
            if size < sm:
                c = size >> sh
                d = exact[c]
                del d[blk]
                if not d:
                    bm &= ~(1 << c)
                return bm
            e = size.bit_length() - 1
            c = nexact + (e - slog) * PER_DOUBLING + ((size >> (e - 2)) & 3)
            sl = ranges[c]
            sl.remove((size << _SHIFT) | blk)
            if not sl:
                bm &= ~(1 << c)
            return bm

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
            if prev is None and ns is None:        # no free neighbour: _index_add, inline
                fb[blk] = size
                fe[blk + size] = blk
                if size < sm:
                    exact[size >> sh][blk] = None
                    self.binmap |= 1 << (size >> sh)
                else:
                    e = size.bit_length() - 1
                    c = nexact + (e - slog) * PER_DOUBLING + ((size >> (e - 2)) & 3)
                    sl = ranges_get(c)
                    if sl is None:
                        sl = ranges[c] = SortedList()
                    sl.add((size << _SHIFT) | blk)
                    self.binmap |= 1 << c
            else:
                # the free neighbour (old, old_size) merges: its entry becomes (blk, size)
                bm = self.binmap
                if prev is not None:
                    del fe[blk]
                    if ns is not None:
                        del fb[nxt]
                        bm = unfile(nxt, ns, bm)
                        size += ns
                    old_size = fb[prev]
                    size += old_size
                    fb[prev] = size
                    fe[prev + size] = prev
                    old = blk = prev
                else:
                    del fb[nxt]
                    size += ns
                    fb[blk] = size
                    fe[blk + size] = blk
                    old, old_size = nxt, ns
                # _move(old, old_size, blk, size), inline
                if size < sm:
                    c = size >> sh
                else:
                    e = size.bit_length() - 1
                    c = nexact + (e - slog) * PER_DOUBLING + ((size >> (e - 2)) & 3)
                filed = False
                if old_size < sm:
                    co = old_size >> sh
                    d = exact[co]
                    del d[old]
                    if not d:
                        bm &= ~(1 << co)
                else:
                    e = old_size.bit_length() - 1
                    co = nexact + (e - slog) * PER_DOUBLING + ((old_size >> (e - 2)) & 3)
                    # Tricky: the merged block is larger, so an exact class never stays the
                    # same; a range class may (then the entry is replaced where it is)
                    ol = ranges[co]
                    ok = (old_size << _SHIFT) | old
                    if co == c:
                        # _sl_replace(ol, ok, nk), inline. Tricky: nk > ok (a larger block),
                        # so it sorts where ok was when it is below ok's successor
                        nk = (size << _SHIFT) | blk
                        maxes = ol._maxes
                        lists = ol._lists
                        j = bisect_left(maxes, ok)
                        lst = lists[j]
                        i = bisect_left(lst, ok)
                        last = len(lst) - 1
                        if i < last:
                            hi = lst[i + 1]
                        else:
                            hi = lists[j + 1][0] if j + 1 < len(lists) else nk + 1
                        if nk < hi:
                            lst[i] = nk
                            if i == last:
                                maxes[j] = nk
                        else:
                            ol.remove(ok)
                            ol.add(nk)
                        filed = True
                    else:
                        ol.remove(ok)
                        if not ol:
                            bm &= ~(1 << co)
                if not filed:                      # _index_add(blk, size), inline
                    if c < nexact:
                        exact[c][blk] = None
                    else:
                        sl = ranges_get(c)
                        if sl is None:
                            sl = ranges[c] = SortedList()
                        sl.add((size << _SHIFT) | blk)
                    bm |= 1 << c
                self.binmap = bm
            if hlff and (blk + size - 1) >> 12 <= (blk >> 12) + 1:
                w(blk, size)                       # header and footer on adjacent pages
            else:
                if hl:
                    w(blk, hl)
                if ff:
                    w(blk + size - ff, ff)

        self.malloc = malloc                        # type: ignore[method-assign]
        self.free = free                            # type: ignore[method-assign]

    def class_of(self, size: int) -> int:
        """The class of a block of ``size`` bytes (exact below small_max, then ranges)."""
        if size < self.small_max:
            return size >> self.step_shift
        e = size.bit_length() - 1
        return self.nexact + (e - self.small_log) * PER_DOUBLING + ((size >> (e - 2)) & 3)

    def _move(self, old: int, old_size: int, new: int, size: int) -> None:
        """A block changed address and/or size: refile it. Within one class (the common
        case: a split of, or a merge into, a large block) the entry is replaced where it
        is: an exact class's dict gets the new block last (as remove + add would), a range
        class's sorted list is updated in place when the rank allows; the binmap stays."""
        sm = self.small_max
        sh = self.step_shift
        c = size >> sh if size < sm else self.class_of(size)
        c_old = old_size >> sh if old_size < sm else self.class_of(old_size)
        if c == c_old:
            if c < self.nexact:
                d = self.exact[c]
                del d[old]
                d[new] = None
            else:
                _sl_replace(self.ranges[c], (old_size << _SHIFT) | old, (size << _SHIFT) | new)
            return
        # _index_remove(old, old_size), then _index_add(new, size), inline
        nexact = self.nexact
        if c_old < nexact:
            d = self.exact[c_old]
            del d[old]
            if not d:
                self.binmap &= ~(1 << c_old)
        else:
            sl = self.ranges[c_old]
            sl.remove((old_size << _SHIFT) | old)
            if not sl:
                self.binmap &= ~(1 << c_old)
        if c < nexact:
            self.exact[c][new] = None
        else:
            sl = self.ranges.get(c)
            if sl is None:
                sl = self.ranges[c] = SortedList()
            sl.add((size << _SHIFT) | new)
        self.binmap |= 1 << c

    def _index_add(self, blk: int, size: int) -> None:
        c = size >> self.step_shift if size < self.small_max else self.class_of(size)
        if c < self.nexact:
            self.exact[c][blk] = None
        else:
            sl = self.ranges.get(c)
            if sl is None:
                sl = self.ranges[c] = SortedList()
            sl.add((size << _SHIFT) | blk)
        self.binmap |= 1 << c

    def _index_remove(self, blk: int, size: int, keep_pos: bool = False) -> None:
        c = size >> self.step_shift if size < self.small_max else self.class_of(size)
        if c < self.nexact:
            d = self.exact[c]
            del d[blk]
            empty = not d
        else:
            sl = self.ranges[c]
            sl.remove((size << _SHIFT) | blk)
            empty = not sl
        if empty:
            self.binmap &= ~(1 << c)

    def _find(self, asize: int) -> int:
        c = asize >> self.step_shift if asize < self.small_max else self.class_of(asize)
        bits = self.binmap >> c
        if not bits:
            return 0
        if bits & 1:
            if c < self.nexact:
                return next(reversed(self.exact[c]))
            sl = self.ranges[c]
            i = sl.bisect_left(asize << _SHIFT)
            if i < len(sl):
                return sl[i] & _POS_MAX
        bits >>= 1
        if not bits:
            return 0
        c += 1 + ((bits & -bits).bit_length() - 1)
        if c < self.nexact:
            return next(reversed(self.exact[c]))
        return self.ranges[c][0] & _POS_MAX

    def _index_items(self) -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        nonempty = 0
        for c, d in enumerate(self.exact):
            if d:
                nonempty |= 1 << c
            for blk in d:
                size = self.free_blocks.get(blk, -1)
                assert self.class_of(size) == c, f"block {blk:#x} in the wrong class {c}"
                got.append((blk, size))
        for c, sl in self.ranges.items():
            sl._check()
            if sl:
                nonempty |= 1 << c
            for k in sl:
                size = k >> _SHIFT
                assert self.class_of(size) == c, f"block of {size} in the wrong class {c}"
                got.append((k & _POS_MAX, size))
        assert nonempty == self.binmap, "the binmap disagrees with the class lists"
        return got


def _class_table(kind: str, max_class: int) -> list[int]:
    sizes = set()
    s = 16
    while s <= max_class:
        sizes.add(s)
        if kind == "pow2x3" and 3 * s <= max_class and s >= 16:
            sizes.add(3 * s)
        s *= 2
    return sorted(sizes)


@register("simple-seg", "simple segregated storage: power-of-two classes, page runs from "
                        "sbrk, no splitting or coalescing, never returned (Kingsley/BSD)")
class SimpleSeg(ClassicAllocator):
    """Simple segregated storage. Options: ``classes`` (pow2/pow2x3), ``max_class`` (largest
    class; larger requests are mmapped), ``header`` (0 or a multiple of 16: bytes before each
    payload), ``run`` (bytes of a refill, at least a page and a class)."""

    defaults: dict[str, Any] = {"classes": "pow2", "max_class": 64 * KiB, "header": 0,
                                "run": 4 * KiB}

    def __init__(self, syscalls: Syscalls, **options: Any) -> None:
        super().__init__(syscalls)
        o = self.resolve_options(options)
        self.options = o
        cls = type(self)
        if o["classes"] not in ("pow2", "pow2x3"):
            raise option_error(cls, "classes", o["classes"], "use pow2 or pow2x3")
        mc = o["max_class"]
        if not isinstance(mc, int) or not power_of_two(mc) or mc < 32:
            raise option_error(cls, "max_class", mc, "a power of two >= 32")
        hdr = o["header"]
        if not isinstance(hdr, int) or hdr < 0 or hdr % 16 or hdr >= mc:
            raise option_error(cls, "header", hdr, "0 or a multiple of 16 below max_class")
        run = o["run"]
        if not isinstance(run, int) or run < PAGE_SIZE or run % PAGE_SIZE:
            raise option_error(cls, "run", run, "a multiple of the page size")
        self.hdr = hdr
        self.run = run
        self.table = _class_table(o["classes"], mc)
        self.max_class = self.table[-1]
        self.lists: dict[int, list[int]] = {c: [] for c in self.table}
        self.live: dict[int, int] = {}             # ptr -> class size
        self.runs: dict[int, tuple[int, int]] = {}  # run start -> (class size, run length)
        self.base = 0
        self.in_use_bytes = 0
        self.free_bytes = 0
        self.waste = 0                             # run tails smaller than a block

    def _refill(self, c: int) -> bool:
        """Get a run for class ``c`` from sbrk and thread its blocks on the free list."""
        if self.curbrk is None:
            self.base = self.sbrk(0)
            lead = -self.base & (PAGE_SIZE - 1)
            if lead and self.sbrk(lead) == -1:
                return False
        length = max(self.run, (c + PAGE_SIZE - 1) & -PAGE_SIZE)
        start = self.sbrk(length)
        if start == -1:
            return False
        n = length // c
        self.runs[start] = (c, length)
        self.waste += length - n * c
        self.free_bytes += n * c
        if c <= PAGE_SIZE:
            self.w(start, n * c)                   # a link in every block: every page
        else:
            for b in range(start, start + n * c, c):
                self.w(b, 8)
        stack = self.lists[c]
        stack.extend(range(start + (n - 1) * c, start - 1, -c))   # first block on top
        return True

    def _malloc(self, size: int) -> int:
        n = size + self.hdr
        if n > self.max_class:
            return self.big_alloc(size, 16, 16)
        table = self.table
        c = table[bisect_left(table, n)] if n > 16 else 16
        stack = self.lists[c]
        if not stack and not self._refill(c):
            return 0
        blk = stack.pop()
        self.free_bytes -= c
        self.in_use_bytes += c
        ptr = blk + self.hdr
        self.live[ptr] = c
        if self.hdr:
            self.w(blk, self.hdr)
        return ptr

    def _free(self, ptr: int) -> None:
        c = self.live.pop(ptr, None)
        if c is None:
            if ptr in self.big:
                self.big_free(ptr)
                return
            raise self._misuse("free", ptr)
        blk = ptr - self.hdr
        self.lists[c].append(blk)
        self.in_use_bytes -= c
        self.free_bytes += c
        self.w(blk, 8)                             # the link

    def _usable(self, ptr: int) -> int:
        c = self.live.get(ptr)
        if c is None:
            raise self._misuse("malloc_usable_size", ptr)
        return c - self.hdr

    def _resize(self, ptr: int, size: int) -> bool:
        c = self.live[ptr]
        return size + self.hdr <= c and (c <= 16 or size + self.hdr > c // 2)

    def _memalign(self, alignment: int, size: int) -> int:
        """Power-of-two classes are naturally aligned inside page-aligned runs."""
        n = max(size, alignment)
        if self.hdr or alignment > PAGE_SIZE or n > self.max_class:
            return self.big_alloc(size, alignment, 16)
        c = 1 << (n - 1).bit_length()
        stack = self.lists[c]
        if not stack and not self._refill(c):
            return 0
        blk = stack.pop()
        self.free_bytes -= c
        self.in_use_bytes += c
        self.live[blk] = c
        return blk

    def usage(self) -> HeapUsage:
        """in_use: live blocks (class size, headers included) and big mappings; free: blocks
        on the free lists; overhead: run tails, the page-alignment lead, big-mapping leads."""
        heap = (self.curbrk - self.base) if self.curbrk is not None else 0
        runs = sum(length for _, length in self.runs.values())
        lead = self.big_lead()
        return HeapUsage(in_use=self.in_use_bytes + self.big_bytes - lead,
                         free=self.free_bytes, top=0,
                         overhead=self.waste + (heap - runs) + lead,
                         total=heap + self.big_bytes)

    def check(self) -> None:
        self.check_big()
        starts = sorted(self.runs)
        seen: set[int] = set()
        free = 0
        for c, stack in self.lists.items():
            for blk in stack:
                assert blk not in seen, f"block {blk:#x} twice on the free lists"
                seen.add(blk)
                self._check_block(starts, blk, c)
                free += c
        live = 0
        for ptr, c in self.live.items():
            blk = ptr - self.hdr
            assert blk not in seen, f"block {blk:#x} both live and free"
            self._check_block(starts, blk, c)
            live += c
        assert free == self.free_bytes and live == self.in_use_bytes, "byte counters"
        assert self.waste == sum(ln % c for c, ln in self.runs.values()), "waste"

    def _check_block(self, starts: list[int], blk: int, c: int) -> None:
        i = bisect_left(starts, blk + 1) - 1
        assert i >= 0, f"block {blk:#x} below every run"
        run = starts[i]
        rc, length = self.runs[run]
        assert rc == c and (blk - run) % c == 0 and blk + c <= run + length, \
            f"block {blk:#x} not a class-{c} block of its run"


@register("simple-seg-3", "simple segregated storage with 2^N and 3*2^N classes")
class SimpleSeg3(SimpleSeg):
    """SimpleSeg with ``classes`` = "pow2x3" by default."""

    defaults: dict[str, Any] = {**SimpleSeg.defaults, "classes": "pow2x3"}
