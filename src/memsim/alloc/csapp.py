"""The CS:APP textbook allocator: an implicit free list with boundary tags (Bryant & O'Hallaron).

This is the allocator of *Computer Systems: A Programmer's Perspective* (3rd ed., §9.9.12,
the book's ``mm.c``), block for block: the same heap layout, the same size arithmetic and the
same search order, so that the CS:APP Malloc Lab driver's utilization figures come out exactly
(``memsim malloclab``, :mod:`memsim.metrics.utilization`). Two placements are registered:

``csapp-first-fit``
    ``find_fit`` walks the implicit list from the prologue and takes the first free block
    that is large enough.
``csapp-next-fit``
    the book's ``NEXT_FIT`` variant: the walk starts at the ``rover`` (where the last search
    succeeded), runs to the epilogue, then wraps from the prologue up to the old rover.
    ``coalesce`` moves the rover to the start of a merged block when it pointed inside it;
    a search that fails leaves the rover where it was (``mm_malloc`` then extends the heap and
    places the block there without moving the rover), as in the book.

Heap layout (``WSIZE`` = 4, ``DSIZE`` = 8: the book's 32-bit words, also in a 64-bit build)::

    mem_heap_lo                                                            mem_brk
    |pad |prologue |  block   |  block        |  ...  |  block   |epi |
    | 0  |8/1 |8/1 |hdr|payload|ftr|hdr| ... |       |hdr|...|ftr|0/1 |
    +----+----+----+---+-------+---+---+-----+       +---+---+---+----+
              ^ heap_listp  ^ bp (payload, DSIZE-aligned)

    header = footer = PACK(size, alloc) in one WSIZE word; size = whole block, a multiple
    of DSIZE, at least 2*DSIZE. The prologue is an allocated DSIZE block (header + footer),
    the epilogue an allocated header of size 0: the walk needs no edge cases.

The book's functions, mirrored one to one (names kept):

``mm_init``
    ``mem_sbrk(4*WSIZE)`` for padding, prologue and epilogue, then ``extend_heap`` by
    ``CHUNKSIZE`` (4096) bytes.
``mm_malloc(size)``
    0 for ``size`` 0; ``asize`` = 2*DSIZE for ``size`` <= DSIZE, else
    ``DSIZE * ceil((size + DSIZE) / DSIZE)``; ``find_fit`` then ``place``, or
    ``extend_heap(max(asize, CHUNKSIZE))`` (which coalesces with a free last block) and
    ``place``.
``place(bp, asize)``
    split when the remainder is at least 2*DSIZE (the remainder becomes a free block), else
    take the whole block.
``mm_free``/``coalesce``
    immediate coalescing with both neighbours through the boundary tags (the four cases).
``mm_realloc``
    the book's: ``mm_malloc`` a new block, copy, ``mm_free`` the old one (never in place);
    ``realloc(p, 0)`` frees and returns NULL, ``realloc(NULL, n)`` is ``mm_malloc``.

memlib (``mem_sbrk``): the Malloc Lab's model of sbrk. The heap starts at the process's break
(``sys_brk(0)`` at the first call) and only grows; ``mem_sbrk(incr)`` fails for a negative
increment, past ``max_heap`` bytes (``MAX_HEAP``, 20 MiB in the lab's config.h: ``memsim
malloclab`` sets it; the default None leaves only the kernel's limits), or when the kernel
refuses the brk. ``mem_heapsize()`` = break - start is the denominator of mdriver's utilization.

Beyond the book (it has no such functions), for the memsim allocator contract: ``calloc``
(``mm_malloc`` + clear), ``memalign`` (a larger block whose unaligned lead and tail are given
back as free blocks), ``malloc_usable_size``, and misuse detection (a free of a pointer that
is not an allocated block raises AllocatorAbort with ``detected=False``: the book's code
would corrupt its list). Options: ``wsize`` 8 gives the 64-bit layout of the CMU 15-213
starter code (8-byte headers, 16-byte alignment, 32-byte minimum block); ``chunksize``.

Costs: the simulated walk is an address-ordered index of the free blocks in which each bucket
knows its largest block (:class:`memsim.alloc.seqfit.FitList`), so ``find_fit`` costs
O(n/B + B) instead of the book's O(all blocks); it returns the block the walk would return.
The index is the only record of the free blocks: the boundary tags that ``coalesce`` reads
are lookups in it (the free blocks before and after ``bp`` in address order are its heap
neighbours when they touch it), O(log n); ``free_blocks``/``free_end`` are views.

Two paths, one behaviour: the methods above read like the book and serve the first call
(``mm_init``), heap extension, ``memalign`` and misuse; ``malloc``, ``free`` and
``realloc`` of an instance are closures (:meth:`CsappAllocator._build_fast`) that do the
same steps when a free block fits, in one frame, on the FitList's lists directly (the
search leaves the bucket and index of the block it found, which the split updates in place;
next fit starts from where the last split left its remainder). They store the same words,
but two stores on the same or adjacent pages are one write, in ascending address order (the
kernel sees the same pages first written in the same order). The pointers, brk calls and
first-written pages of both paths are compared call by call in
``tests/alloc/test_csapp_fast.py``.

Invariants (:meth:`CsappAllocator.check`): walking the headers from the prologue reaches the
epilogue at the break; every block is a multiple of DSIZE and at least 2*DSIZE, its payload
DSIZE-aligned; no two free blocks touch; the free index holds exactly the free blocks; the
rover (next fit) is the start of a block.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any, ClassVar

from memsim.alloc.base import HeapUsage, register
from memsim.alloc.classic import ClassicAllocator, option_error
from memsim.alloc.seqfit import FitList
from memsim.kernel.abi import ENOMEM, Syscalls
from memsim.units import PAGE_SIZE as PAGE

__all__ = ["CsappAllocator", "CsappFirstFit", "CsappNextFit", "MALLOCLAB_MAX_HEAP"]

#: the Malloc Lab's MAX_HEAP (config.h): mem_sbrk fails past 20 MiB
MALLOCLAB_MAX_HEAP = 20 * (1 << 20)
#: the book's CHUNKSIZE: extend the heap by this many bytes (at least)
CHUNKSIZE = 1 << 12
#: the methods whose steps the fast path (CsappAllocator._build_fast) does inline
_FAST_COVERS = ("malloc", "free", "realloc", "mm_malloc", "mm_free", "mm_realloc", "find_fit",
                "place", "coalesce", "adjusted_size", "_list", "_unlist", "_set_alloc",
                "_free_size", "_free_before")


class CsappAllocator(ClassicAllocator):
    """The book's implicit-list allocator (module docstring); ``fit`` = first or next."""

    #: payload alignment with the default wsize 4 (DSIZE); an instance has its own
    alignment: int = 8
    #: like the book's mm_malloc, malloc(0) returns NULL (C11 allows it)
    malloc_zero_returns_null: ClassVar[bool] = True

    defaults: dict[str, Any] = {"fit": "first", "wsize": 4, "chunksize": CHUNKSIZE,
                                "max_heap": None}

    def __init__(self, syscalls: Syscalls, **options: Any) -> None:
        super().__init__(syscalls)
        o = self.resolve_options(options)
        cls = type(self)
        if o["fit"] not in ("first", "next"):
            raise option_error(cls, "fit", o["fit"], "use first or next")
        if o["wsize"] not in (4, 8):
            raise option_error(cls, "wsize", o["wsize"], "4 (the book) or 8 (64-bit words)")
        w = o["wsize"]
        cs = o["chunksize"]
        if not isinstance(cs, int) or isinstance(cs, bool) or cs < 2 * w or cs % w:
            raise option_error(cls, "chunksize", cs, f"a multiple of wsize ({w}), >= {2 * w}")
        mh = o["max_heap"]
        if mh is not None and (not isinstance(mh, int) or isinstance(mh, bool) or mh <= 0):
            raise option_error(cls, "max_heap", mh, "None or a number of bytes > 0")
        self.options = o
        self.next_fit = o["fit"] == "next"
        self.WSIZE = w                       # bytes of a header or footer word
        self.DSIZE = 2 * w                   # alignment and size granule
        self.MIN_BLOCK = 2 * self.DSIZE      # header + footer + one DSIZE of payload
        self.CHUNKSIZE = cs
        self.alignment = self.DSIZE
        self.max_heap: int | None = mh
        self.size_limit = 1 << (8 * w)       # a header word holds sizes below this
        # memlib
        self.mem_start_brk = 0               # 0 until mem_init
        self.mem_brk = 0
        # the heap
        self.heap_listp = 0                  # payload of the prologue; 0 before mm_init
        self.rover = 0
        self.alloc_blocks: dict[int, int] = {}     # bp -> block size
        self.fits = FitList()                      # the free blocks: bp -> size, by address
        self.in_use_bytes = 0                      # allocated blocks (free_bytes: the rest)
        self._build_fast()

    # --- memlib.c ----------------------------------------------------------------------------
    def mem_sbrk(self, incr: int) -> int:
        """memlib's ``mem_sbrk``: the old break, or -1 (negative increment, past max_heap,
        or the kernel refused the brk)."""
        if not self.mem_start_brk:
            self.mem_start_brk = self.mem_brk = self.sbrk(0)
        if incr < 0 or (self.max_heap is not None and
                        self.mem_brk + incr > self.mem_start_brk + self.max_heap):
            self.errno = ENOMEM
            return -1
        old = self.sbrk(incr)
        if old == -1:
            return -1
        self.mem_brk = old + incr
        return old

    def mem_heap_lo(self) -> int:
        """The first byte of the heap (memlib)."""
        return self.mem_start_brk

    def mem_heap_hi(self) -> int:
        """The last byte of the heap (memlib)."""
        return self.mem_brk - 1

    def mem_heapsize(self) -> int:
        """Bytes of heap (memlib): what mdriver divides the peak payload by."""
        return self.mem_brk - self.mem_start_brk

    # --- mm.c -----------------------------------------------------------------------------
    def mm_init(self) -> int:
        """The book's ``mm_init``: padding, prologue, epilogue, then a CHUNKSIZE free block.
        Returns 0, or -1 when memory could not be had. Idempotent here (mdriver calls it on
        a fresh heap; the C entry points call it on first use)."""
        if self.heap_listp:
            return 0
        W = self.WSIZE
        start = self.mem_sbrk(4 * W)
        if start == -1:
            return -1
        self.w(start, 4 * W)                 # padding, prologue header+footer, epilogue
        self.heap_listp = start + 2 * W
        self.rover = self.heap_listp
        if not self.extend_heap(self.CHUNKSIZE // W):
            return -1
        return 0

    def extend_heap(self, words: int) -> int:
        """The book's ``extend_heap``: grow by an even number of words; the new free block
        (coalesced with a free last block), or 0."""
        W = self.WSIZE
        size = (words + 1) * W if words % 2 else words * W
        bp = self.mem_sbrk(size)
        if bp == -1:
            return 0
        # the old epilogue header becomes the new block's header; a new epilogue at the end
        self.w(bp - W, W)
        self.w(bp + size - 2 * W, 2 * W)     # footer + new epilogue header
        return self.coalesce(bp, size)

    def coalesce(self, bp: int, size: int) -> int:
        """The book's ``coalesce``: merge the free block ``bp`` with free neighbours (the four
        cases), enter the result in the free list, and keep the rover out of its inside."""
        nxt = bp + size
        ns = self._free_size(nxt)            # the next block's header: free?
        prev = self._free_before(bp)         # the previous block's footer: free?
        if ns is not None:                   # case 2 / 4: the next block is free
            self._unlist(nxt)
            size += ns
        if prev is not None:                 # case 3 / 4: the previous block is free
            size += self._unlist(prev)
            bp = prev
        self._list(bp, size)
        W = self.WSIZE
        self.w(bp - W, W)                    # header
        self.w(bp + size - 2 * W, W)         # footer
        if self.next_fit and bp < self.rover < bp + size:
            self.rover = bp
        return bp

    def find_fit(self, asize: int) -> int:
        """The book's ``find_fit`` (first fit, or the NEXT_FIT rover walk): a free block of at
        least ``asize`` bytes, or 0."""
        fits = self.fits
        if not self.next_fit:
            k = fits.first_fit(asize)
            return 0 if k is None else k
        k = fits.first_fit(asize, self.rover)   # rover .. epilogue
        if k is None:
            k = fits.first_fit(asize)           # prologue .. old rover (nothing fits beyond)
        if k is None:
            return 0                            # the rover ends where it started
        self.rover = k
        return k

    def place(self, bp: int, asize: int) -> None:
        """The book's ``place``: allocate ``asize`` bytes at the free block ``bp``, splitting
        off the rest as a free block when it is at least 2*DSIZE."""
        csize = self._unlist(bp)
        W = self.WSIZE
        if csize - asize >= self.MIN_BLOCK:
            self._set_alloc(bp, asize)
            rest = bp + asize
            self._list(rest, csize - asize)
            self.w(rest - W, W)
            self.w(rest + csize - asize - 2 * W, W)
        else:
            self._set_alloc(bp, csize)

    def adjusted_size(self, size: int) -> int:
        """``asize`` of mm_malloc: the block size for a request of ``size`` bytes."""
        D = self.DSIZE
        if size <= D:
            return 2 * D
        return D * ((size + D + (D - 1)) // D)

    def mm_malloc(self, size: int) -> int:
        """The book's ``mm_malloc``: a DSIZE-aligned payload, or 0."""
        if not self.heap_listp and self.mm_init() == -1:
            return 0
        if size == 0:
            return 0
        asize = self.adjusted_size(size)
        if asize >= self.size_limit:
            return 0                          # would not fit in a header word
        bp = self.find_fit(asize)
        if bp:
            self.place(bp, asize)
            return bp
        extendsize = max(asize, self.CHUNKSIZE)
        bp = self.extend_heap(extendsize // self.WSIZE)
        if not bp:
            return 0
        self.place(bp, asize)
        return bp

    def mm_free(self, bp: int) -> None:
        """The book's ``mm_free``: mark free and coalesce. A pointer that is not an allocated
        block raises AllocatorAbort (the book would corrupt the heap)."""
        if bp == 0:
            return
        size = self.alloc_blocks.pop(bp, None)
        if size is None:
            raise self._misuse("free", bp)
        self.in_use_bytes -= size
        self.coalesce(bp, size)

    def mm_realloc(self, ptr: int, size: int) -> int:
        """The book's ``mm_realloc``: malloc, copy, free (the old block stays on failure)."""
        if size == 0:
            self.mm_free(ptr)
            return 0
        if ptr == 0:
            return self.mm_malloc(size)
        oldblock = self.alloc_blocks.get(ptr)
        if oldblock is None:
            raise self._misuse("realloc", ptr)
        newptr = self.mm_malloc(size)
        if not newptr:
            return 0
        n = min(oldblock, size)               # the book copies GET_SIZE(HDRP(ptr)) at most
        self.sys.read(ptr, n)
        self.w(newptr, n)
        self.mm_free(ptr)
        return newptr

    # --- the fast path -------------------------------------------------------------------------
    def _build_fast(self) -> None:
        """Bind ``malloc``, ``free`` and ``realloc`` to closures that do what ``mm_malloc``
        (``find_fit``, ``place``), ``mm_free`` (``coalesce``) and ``mm_realloc`` do when a
        free block fits, in one frame each, with the allocated blocks' dict, the FitList's
        lists and the sizes in local variables. The search leaves the bucket and index of
        the block it found, and a split gives that entry to the remainder; free finds both
        neighbours with one lookup (the free blocks before and after it in the FitList are
        its heap neighbours when their boundary tags meet it) and merges in place. Anything
        else (the first call and ``mm_init``, no fit and ``extend_heap``, sizes near the
        header limit, misuse, memalign) goes to the book's methods. A subclass that
        overrides one of the methods covered keeps the book's path for everything.

        The same blocks are chosen, the same allocated blocks and free index result (up to
        the FitList's bucket boundaries, which no search can see), and the same words are
        stored, in ascending address order: two stores whose pages are the same or adjacent
        are one write of the range between them (Tricky: the same pages are touched, first
        touched in the same order, which is all a store changes in the kernel, except on a
        Machine with swap and recency tracking: there one write is one access for the
        recency clock, so frame and swap slot numbers, and under pressure which pages are
        evicted, may differ from the book path's separate stores)."""
        cls = type(self)
        for name in _FAST_COVERS:
            if getattr(cls, name) is not getattr(CsappAllocator, name):
                return
        ab = self.alloc_blocks
        ab_pop = ab.pop
        w = self.w
        W, D, MB = self.WSIZE, self.DSIZE, self.MIN_BLOCK
        W2 = 2 * W
        round_up = 2 * D - 1                  # asize = (size + DSIZE + DSIZE-1) & -DSIZE
        mask = -D
        fast_limit = self.size_limit - 2 * D  # below it asize fits a header word
        next_fit = self.next_fit
        fits = self.fits
        f_keys, f_sizes, f_mins, f_maxes, f_pmax = (fits.keys, fits.sizes, fits.mins,
                                                    fits.maxes, fits.pmax)
        f_settle, f_locate, f_remove = fits._settle, fits.locate, fits.remove
        f_raise, f_split = fits._raise, fits._split
        load2 = 2 * fits.LOAD                 # a bucket splits above this many keys
        half = fits.LOAD // 2                 # and joins a neighbour below this many
        book_malloc = CsappAllocator.malloc.__get__(self)
        book_free = self.mm_free
        book_realloc = CsappAllocator.realloc.__get__(self)
        coalesce = self.coalesce
        read = self.sys.read
        ab_get = ab.get

        hint_j = hint_i = 0                   # next fit: where the last split's remainder is

        def malloc(size: int) -> int:
            if not 0 < size < fast_limit:
                return book_malloc(size)
            asize = (size + round_up) & mask
            # find_fit, inline: the block is f_keys[j][i], its size f_sizes[j][i]
            if next_fit:
                nonlocal hint_j, hint_i
                rover = self.rover
                # the first key >= rover: where the last split left its remainder, when
                # the key before it is still below the rover, else by bisection
                j = hint_j
                i = hint_i
                try:
                    ks = f_keys[j]
                    hit = i and ks[i - 1] < rover <= ks[i]
                except IndexError:
                    hit = False
                if hit and (sz := f_sizes[j])[i] >= asize:
                    pass                            # the remainder fits (most searches)
                else:
                    if not hit:
                        j = bisect_right(f_mins, rover) - 1
                        i = bisect_left(f_keys[j], rover) if j >= 0 else 0
                    n = 0
                    if j >= 0 and f_maxes[j] >= asize:    # the rover's bucket, onwards
                        sz = f_sizes[j]
                        n = len(sz)
                        while i < n and sz[i] < asize:
                            i += 1
                    if i >= n:                      # FitList.first_fit from the rover, wrapped
                        at = f_locate(asize, rover) or f_locate(asize)
                        if at is None:
                            return book_malloc(size)    # extend_heap; the rover stays
                        j, i = at
                        sz = f_sizes[j]
                    ks = f_keys[j]
                blk = self.rover = ks[i]
            else:                                   # FitList.first_fit(asize), inline
                j = bisect_left(f_pmax, asize)
                if j < len(f_pmax) and f_maxes[j] < asize:
                    j = f_settle(j, asize)          # a running maximum left high: walk on
                if j == len(f_pmax):
                    return book_malloc(size)        # extend_heap
                sz = f_sizes[j]
                i = 0
                for csize in sz:
                    if csize >= asize:
                        break
                    i += 1
                ks = f_keys[j]
                blk = ks[i]
            # place(blk, asize), inline
            csize = sz[i]
            rest = csize - asize
            if rest >= MB:
                # split: the remainder r takes blk's entry (FitList.replace; r sorts there)
                r = blk + asize
                ks[i] = r
                sz[i] = rest
                if not i:
                    f_mins[j] = r
                if csize == f_maxes[j]:
                    f_maxes[j] = max(sz)
                hint_j = j                          # (next fit's next search)
                hint_i = i
                ab[blk] = asize
                self.in_use_bytes += asize
                # header; footer + the remainder's header; the remainder's footer (a
                # block of at most a page spans at most two)
                if asize > PAGE and (r - W2) >> 12 > ((blk - 1) >> 12) + 1:
                    w(blk - W, W)
                    s = r - W2
                else:
                    s = blk - W
                c = blk + csize - W2
                if rest > PAGE and c >> 12 > ((r - 1) >> 12) + 1:
                    w(s, r - s)
                    w(c, W)
                else:
                    w(s, c + W - s)
                return blk
            # the whole block: FitList.remove(blk), inline while the bucket keeps LOAD / 2
            # keys (remove then changes nothing else)
            if len(ks) > half:
                del ks[i]
                del sz[i]
                if not i:
                    f_mins[j] = ks[0]
                if csize == f_maxes[j]:
                    f_maxes[j] = max(sz)
            else:
                f_remove(blk)
            ab[blk] = csize
            self.in_use_bytes += csize
            if csize > PAGE and (blk + csize - W2) >> 12 > ((blk - 1) >> 12) + 1:
                w(blk - W, W)                       # header and footer
                w(blk + csize - W2, W)
            else:
                w(blk - W, csize)
            return blk

        def free(bp: int) -> None:
            size = ab_pop(bp, None)
            if size is None:
                if bp:
                    book_free(bp)                   # raises: not an allocated block
                return
            self.in_use_bytes -= size
            # coalesce(bp, size), inline: the free blocks before and after bp are its
            # neighbours in the FitList, free neighbours in the heap when they touch it
            j = bisect_right(f_mins, bp) - 1
            if j < 0:                               # no free block before bp
                coalesce(bp, size)
                return
            ks = f_keys[j]
            sz = f_sizes[j]
            i = bisect_left(ks, bp)                 # >= 1: ks[0] < bp
            nxt = bp + size
            if i < len(ks):                         # the next free block: f_keys[nj][ni]
                nj = j
                ni = i
                nfree = ks[i] == nxt
            else:
                nj = j + 1
                ni = 0
                nfree = nj < len(f_keys) and f_keys[nj][0] == nxt
            ps = sz[i - 1]
            if ks[i - 1] + ps == bp:                # case 3 / 4: prev grows in place
                bp = ks[i - 1]
                size += ps
                if nfree:
                    size += f_sizes[nj][ni]
                sz[i - 1] = size
                if size > f_maxes[j]:
                    f_raise(j, size)
                if nfree:                           # case 4: nxt goes (FitList.remove)
                    if nj == j and len(ks) > half:
                        del ks[i]
                        del sz[i]                   # (smaller than prev now: max unchanged)
                    else:
                        f_remove(nxt)
            elif nfree:                             # case 2: bp takes nxt's entry
                nks = f_keys[nj]
                nsz = f_sizes[nj]
                size += nsz[ni]
                nks[ni] = bp
                nsz[ni] = size
                if not ni:
                    f_mins[nj] = bp
                if size > f_maxes[nj]:
                    f_raise(nj, size)
            else:                                   # case 1: FitList.insert(bp, size)
                ks.insert(i, bp)
                sz.insert(i, size)
                if size > f_maxes[j]:
                    f_raise(j, size)
                if len(ks) > load2:
                    f_split(j)
            # header and footer (a block of at most a page spans at most two)
            if size > PAGE and (bp + size - W2) >> 12 > ((bp - 1) >> 12) + 1:
                w(bp - W, W)
                w(bp + size - W2, W)
            else:
                w(bp - W, size)
            if next_fit and bp < self.rover < bp + size:
                self.rover = bp

        def realloc(ptr: int, size: int) -> int:
            # mm_realloc of an allocated block to a size the fast malloc takes, inline
            old = ab_get(ptr)
            if old is None or not 0 < size < fast_limit:
                return book_realloc(ptr, size)
            newptr = malloc(size)                   # (ENOMEM when 0, as realloc sets it)
            if not newptr:
                return 0
            n = old if old < size else size
            read(ptr, n)
            w(newptr, n)
            free(ptr)
            return newptr

        self.malloc = malloc                        # type: ignore[method-assign]
        self.free = free                            # type: ignore[method-assign]
        self.realloc = realloc                      # type: ignore[method-assign]

    # --- the blocks ---------------------------------------------------------------------------
    def _list(self, bp: int, size: int) -> None:
        self.fits.insert(bp, size)

    def _unlist(self, bp: int) -> int:
        return self.fits.remove(bp)

    def _free_size(self, bp: int) -> int | None:
        """The size of the free block at ``bp``, or None (no free block starts there)."""
        fits = self.fits
        j = bisect_right(fits.mins, bp) - 1
        if j < 0:
            return None
        ks = fits.keys[j]
        i = bisect_left(ks, bp)
        return fits.sizes[j][i] if i < len(ks) and ks[i] == bp else None

    def _free_before(self, bp: int) -> int | None:
        """The free block that ends at ``bp`` (its footer is the word before bp's header),
        or None."""
        fits = self.fits
        j = bisect_left(fits.mins, bp) - 1
        if j < 0:
            return None
        ks = fits.keys[j]
        i = bisect_left(ks, bp) - 1             # >= 0: ks[0] < bp
        return ks[i] if ks[i] + fits.sizes[j][i] == bp else None

    @property
    def free_blocks(self) -> dict[int, int]:
        """bp -> size of every free block (a dict made from the free index on each read)."""
        return dict(self.fits.items())

    @property
    def free_end(self) -> dict[int, int]:
        """bp + size -> bp of every free block: the footers (made on each read)."""
        return {bp + size: bp for bp, size in self.fits.items()}

    def _set_alloc(self, bp: int, size: int) -> None:
        self.alloc_blocks[bp] = size
        self.in_use_bytes += size
        W = self.WSIZE
        self.w(bp - W, W)
        self.w(bp + size - 2 * W, W)

    # --- the C entry points (memsim's allocator contract) --------------------------------------
    def malloc(self, size: int) -> int:
        """``malloc`` = ``mm_malloc``; NULL for 0 (errno untouched, as the book) and when
        memlib or the kernel refuse memory (errno ENOMEM)."""
        if size == 0:
            return 0
        if not 0 < size < self.size_limit:
            if size < 0:
                raise option_error(type(self), "malloc size", size, "a size_t")
            self.errno = ENOMEM
            return 0
        p = self.mm_malloc(size)
        if not p:
            self.errno = ENOMEM
        return p

    def free(self, ptr: int) -> None:
        self.mm_free(ptr)

    def realloc(self, ptr: int, size: int) -> int:
        """``realloc`` = ``mm_realloc`` (malloc + copy + free)."""
        if size < 0:
            raise option_error(type(self), "realloc size", size, "a size_t")
        if size >= self.size_limit and ptr:
            if ptr not in self.alloc_blocks:
                raise self._misuse("realloc", ptr)
            self.errno = ENOMEM
            return 0
        p = self.mm_realloc(ptr, size)
        if not p and size:
            self.errno = ENOMEM
        return p

    def _malloc(self, size: int) -> int:
        return self.malloc(size)

    def _free(self, ptr: int) -> None:
        self.mm_free(ptr)

    def _usable(self, ptr: int) -> int:
        size = self.alloc_blocks.get(ptr)
        if size is None:
            raise self._misuse("malloc_usable_size", ptr)
        return size - self.DSIZE

    def _memalign(self, alignment: int, size: int) -> int:
        """Not in the book: a block of size + alignment + min block, with the unaligned lead
        and the unused tail given back as free blocks."""
        mb = self.MIN_BLOCK
        p = self.mm_malloc(max(size, 1) + alignment + mb)
        if not p:
            return 0
        bsize = self.alloc_blocks.pop(p)
        self.in_use_bytes -= bsize
        q = (p + alignment - 1) & -alignment
        while 0 < q - p < mb:
            q += alignment
        lead = q - p
        bsize -= lead
        asize = self.adjusted_size(max(size, 1))
        if bsize - asize >= mb:
            self._set_alloc(q, asize)
            self.coalesce(q + asize, bsize - asize)
        else:
            self._set_alloc(q, bsize)
        if lead:
            self.coalesce(p, lead)
        return q

    def malloc_usable_size(self, ptr: int) -> int:
        if not ptr:
            return 0
        return self._usable(ptr)

    # --- accounting ------------------------------------------------------------------------------
    @property
    def free_bytes(self) -> int:
        """Bytes in free blocks: the blocks tile the heap between the prologue and the
        epilogue, so this is the heap less those 4 words and the allocated blocks."""
        if not self.heap_listp:
            return 0
        return self.mem_brk - self.mem_start_brk - 4 * self.WSIZE - self.in_use_bytes

    def usage(self) -> HeapUsage:
        """in_use: allocated blocks (headers and footers included); free: free blocks but a
        last one; top: a free block that ends at the epilogue; overhead: padding, prologue
        and epilogue (4 words)."""
        total = self.mem_brk - self.mem_start_brk
        if not self.heap_listp:
            return HeapUsage(overhead=total, total=total)
        top = 0
        fits = self.fits
        if fits.keys and fits.keys[-1][-1] + fits.sizes[-1][-1] == self.mem_brk:
            top = fits.sizes[-1][-1]              # the last free block ends at the epilogue
        return HeapUsage(in_use=self.in_use_bytes, free=self.free_bytes - top, top=top,
                         overhead=4 * self.WSIZE, total=total)

    def check(self) -> None:
        """The book's ``mm_checkheap``, on the simulated blocks (module docstring)."""
        self.check_big()
        assert not self.big, "the book's allocator has no mmapped blocks"
        if not self.heap_listp:
            assert not self.alloc_blocks and not len(self.fits), "blocks without a heap"
            return
        W, D = self.WSIZE, self.DSIZE
        assert self.curbrk == self.mem_brk, "memlib's break is not the kernel's"
        assert self.heap_listp == self.mem_start_brk + 2 * W, "prologue misplaced"
        assert self.heap_listp % D == 0, "prologue payload misaligned"
        free = self.free_blocks
        self.fits.check()
        bp = self.heap_listp + D                  # the first block after the prologue
        prev_free = False
        nfree = nalloc = 0
        starts = set()
        while bp < self.mem_brk:
            starts.add(bp)
            size = self.alloc_blocks.get(bp)
            is_free = size is None
            if is_free:
                size = free.get(bp)
                assert size is not None, f"no block at {bp:#x}"
                assert not prev_free, f"free blocks touch at {bp:#x}"
                assert self._free_size(bp) == size and self._free_before(bp + size) == bp, \
                    f"the free index's lookups at {bp:#x}"
                nfree += 1
            else:
                nalloc += 1
            assert size % D == 0 and size >= self.MIN_BLOCK, f"block {bp:#x} size {size}"
            assert bp % D == 0, f"payload {bp:#x} misaligned"
            prev_free = is_free
            bp += size
        assert bp == self.mem_brk, "the blocks do not end at the epilogue"
        assert nfree == len(free), "stray free blocks"
        assert nalloc == len(self.alloc_blocks), "stray allocated blocks"
        assert self.in_use_bytes == sum(self.alloc_blocks.values()), "in_use_bytes"
        assert self.free_bytes == sum(free.values()), "free_bytes"
        if self.next_fit:
            assert self.rover == self.heap_listp or self.rover in starts, "rover inside a block"


@register("csapp-first-fit", "CS:APP textbook mm.c: implicit list, boundary tags, first fit, "
                             "8-byte alignment (reproduces the published mdriver figures)")
class CsappFirstFit(CsappAllocator):
    """The book's allocator with first-fit ``find_fit``."""

    defaults = dict(CsappAllocator.defaults, fit="first")


@register("csapp-next-fit", "CS:APP textbook mm.c with the NEXT_FIT rover (implicit list, "
                            "boundary tags, 8-byte alignment)")
class CsappNextFit(CsappAllocator):
    """The book's allocator with the NEXT_FIT ``find_fit``."""

    defaults = dict(CsappAllocator.defaults, fit="next")

