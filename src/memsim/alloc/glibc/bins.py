"""The bins of one arena: unsorted, small and large bins as doubly linked lists, and the binmap.

glibc keeps each bin as a circular doubly linked list threaded through the free chunks'
``fd``/``bk`` words, with a header (a fake chunk inside ``malloc_state``) as sentinel::

      bin header (in the arena)        chunk A               chunk B
      +--------+                   +-----------+        +-----------+
      |   fd --+------------------>| fd -------+------->| fd -------+--> header
      |   bk --+--> B      header<-+-- bk      |   A <--+-- bk      |
      +--------+                   +-----------+        +-----------+
       "front" = header->fd = A (newest)      "back" = header->bk = B (oldest)

Here the lists are two dicts, ``fd`` and ``bk``, keyed by chunk address, mirroring the words;
bin ``b``'s header is the key ``-b`` (real chunks have positive addresses). Every operation is
O(1): insert at the front, remove any chunk (``unlink_chunk``, malloc.c L1620), take the back.
Each store into a *chunk's* fd/bk is also a memory write through ``syscalls.write`` (stores
into the bin headers hit the arena in libc's data segment and are not simulated). Stores of
one operation that fall in one page may be passed as one write spanning them: the kernel sees
exactly the same pages touched, with one call instead of several.

Large bins (64..126) are sorted by size, largest first; equal sizes form a run whose first
chunk (the "nextsize head") is on the ``fd_nextsize``/``bk_nextsize`` skip list. The skip
list is mirrored by ``lsizes[b]`` (the distinct sizes present, ascending, kept with bisect)
and ``lhead[size]`` (the run head). A new chunk of a size already present is inserted
*second* in its run (L4118); the best fit (L4186) takes the second chunk of the smallest
sufficient run when there is one, else its head.

The binmap (L1667) is an int bitmask with bit ``b`` set iff bin ``b`` (2..126) is non-empty.
glibc sets bits when binning and clears them lazily when a search finds an empty bin; as a
search only ever skips empty bins both give the same first non-empty bin (L4252).

``check()`` asserts: each list is a consistent cycle through its header; every chunk in it is
recorded in ``free`` with the right bin (small: exact size class; large: the size range;
unsorted: any size); a footer entry ``free_end[p + size] == p`` exists for each free chunk and
nothing else; large bins are non-increasing, runs are contiguous, ``lhead`` is the first of
each run and ``lsizes`` the sorted distinct sizes; binmap bit ``b`` is set iff bin ``b`` is
non-empty.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from memsim.alloc.glibc.chunk import MIN_LARGE_SIZE, NBINS, UNSORTED, bin_index, largebin_index

Write = Callable[[int, int], None]


class BinSet:
    """Unsorted, small and large bins of one arena (``bins[]`` and ``binmap`` of malloc_state).

    ``free[p]``: size of each chunk in a bin; ``free_end[p + size] = p`` stands for the footer
    (next chunk's prev_size with its P bit clear); ``bin_of[p]``: its bin index.
    """

    def __init__(self, write: Write) -> None:
        self.w = write
        self.fd: dict[int, int] = {}
        self.bk: dict[int, int] = {}
        for b in range(1, NBINS):
            self.fd[-b] = -b
            self.bk[-b] = -b
        self.free: dict[int, int] = {}
        self.free_end: dict[int, int] = {}
        self.bin_of: dict[int, int] = {}
        self.lsizes: list[list[int]] = [[] for _ in range(NBINS)]
        self.lhead: dict[int, int] = {}
        self.binmap = 0

    # --- insertion ------------------------------------------------------------------------
    def unsorted_insert(self, p: int, size: int, clear_next: bool) -> None:
        """Put free chunk ``p`` at the front of the unsorted bin, writing its header, links
        (and NULL nextsize words for large sizes) and footer; ``clear_next`` also clears the
        next chunk's P bit (``clear_inuse_bit_at_offset``), as _int_free does (L4626)."""
        fd = self.fd
        f = fd[-1]
        fd[p] = f
        self.bk[p] = -1
        fd[-1] = p
        self.bk[f] = p
        w = self.w
        if f > 0:
            w(f + 24, 8)
        end = p + size + (16 if clear_next else 8)       # footer (+ next size word)
        if (p + 8) >> 12 == (end - 1) >> 12:
            w(p + 8, end - p - 8)                         # same page: one call, same pages
        else:
            w(p + 8, 24 if size < MIN_LARGE_SIZE else 40)
            w(p + size, end - p - size)
        self.free[p] = size
        self.free_end[p + size] = p
        self.bin_of[p] = UNSORTED

    def bin_chunk(self, p: int, size: int) -> None:
        """Place free chunk ``p`` (just taken off the unsorted bin, still recorded in
        ``free``) in its small or large bin and mark the binmap: step (D3) of _int_malloc
        (L4081-4150)."""
        fd = self.fd
        bk = self.bk
        w = self.w
        if size < MIN_LARGE_SIZE:
            b = size >> 4
            h = -b
            f = fd[h]
            fd[p] = f
            bk[p] = h
            fd[h] = p
            bk[f] = p
            w(p + 16, 16)
            if f > 0:
                w(f + 24, 8)
        else:
            b = largebin_index(size)
            h = -b
            sizes = self.lsizes[b]
            lhead = self.lhead
            if not sizes:                           # empty bin: p is its own skip list
                prev, nxt = h, h
                sizes.append(size)
                lhead[size] = p
                w(p + 16, 32)
            elif size < sizes[0]:                    # new smallest: at the back
                prev, nxt = bk[h], h
                sizes.insert(0, size)
                lhead[size] = p
                w(p + 16, 32)
                w(lhead[sizes[-1]] + 40, 8)          # largest head's bk_nextsize
                w(lhead[sizes[1]] + 32, 8)           # previous smallest head's fd_nextsize
            elif size in lhead:                      # same size: second in its run
                prev = lhead[size]
                nxt = fd[prev]
                w(p + 16, 16)
            else:                                    # new run in front of the next smaller
                i = bisect_left(sizes, size)
                nxt = lhead[sizes[i - 1]]
                prev = bk[nxt]
                sizes.insert(i, size)
                lhead[size] = p
                w(p + 16, 32)
                w(nxt + 40, 8)
                bigger = lhead[sizes[(i + 1) % len(sizes)]]
                w(bigger + 32, 8)
            fd[p] = nxt
            bk[p] = prev
            fd[prev] = p
            bk[nxt] = p
            if prev > 0:
                w(prev + 16, 8)
            if nxt > 0:
                w(nxt + 24, 8)
        self.bin_of[p] = b
        self.binmap |= 1 << b

    # --- removal --------------------------------------------------------------------------
    def unlink_chunk(self, p: int) -> int:
        """``unlink_chunk`` (L1620): take free chunk ``p`` out of whatever bin holds it, fix the
        neighbours' links (and the skip list), drop its footer; returns its size."""
        size = self.free.pop(p)
        del self.free_end[p + size]
        b = self.bin_of.pop(p)
        fd = self.fd
        bk = self.bk
        f = fd.pop(p)
        k = bk.pop(p)
        fd[k] = f
        bk[f] = k
        w = self.w
        if k > 0:
            w(k + 16, 8)
        if f > 0:
            w(f + 24, 8)
        if b > 1:
            if b >= 64 and self.lhead.get(size) == p:
                self._unhead(b, p, f, size)
            if fd[-b] == -b:
                self.binmap &= ~(1 << b)
        return size

    def _unhead(self, b: int, p: int, f: int, size: int) -> None:
        """Skip-list repair when the head of a large-bin run leaves (L1640-1660)."""
        sizes = self.lsizes[b]
        w = self.w
        if f > 0 and self.free.get(f) == size:       # the next chunk of the run takes over
            self.lhead[size] = f
            w(f + 32, 16)
            if len(sizes) > 1:
                i = bisect_left(sizes, size)
                w(self.lhead[sizes[i - 1]] + 40, 8)
                w(self.lhead[sizes[(i + 1) % len(sizes)]] + 32, 8)
            return
        del self.lhead[size]
        i = bisect_left(sizes, size)
        del sizes[i]
        if sizes:
            n = len(sizes)
            w(self.lhead[sizes[(i - 1) % n]] + 40, 8)
            w(self.lhead[sizes[i % n]] + 32, 8)

    # --- searches ---------------------------------------------------------------------------
    def large_best_fit(self, b: int, nb: int) -> int:
        """Step (F) (L4179): the chunk of large bin ``b`` that _int_malloc takes for ``nb``,
        or 0 if the bin is empty or its largest chunk is too small."""
        sizes = self.lsizes[b]
        if not sizes or sizes[-1] < nb:
            return 0
        s = sizes[bisect_left(sizes, nb)]
        head = self.lhead[s]
        f = self.fd[head]
        if f > 0 and self.free.get(f) == s:
            return f
        return head

    def first_bin_above(self, idx: int) -> int:
        """Step (G) (L4252): the first non-empty bin with index > idx, or 0 (binmap search)."""
        m = self.binmap >> (idx + 1)
        if not m:
            return 0
        return idx + (m & -m).bit_length()

    def bin_chunks(self, b: int) -> Iterator[int]:
        """The chunks of bin ``b`` from front (``fd`` of the header) to back."""
        fd = self.fd
        p = fd[-b]
        while p != -b:
            yield p
            p = fd[p]

    # --- invariants -------------------------------------------------------------------------
    def check(self) -> None:
        seen: set[int] = set()
        for b in range(1, NBINS):
            h = -b
            prev = h
            p = self.fd[h]
            sizes_in_order: list[int] = []
            while p != h:
                assert p > 0 and p not in seen, f"bin {b}: bad or repeated chunk {p:#x}"
                seen.add(p)
                assert self.bk[p] == prev, f"bin {b}: bk of {p:#x} is not {prev:#x}"
                assert self.bin_of.get(p) == b, f"chunk {p:#x} is in bin {b}, recorded elsewhere"
                size = self.free[p]
                assert size >= 32 and size % 16 == 0, f"chunk {p:#x}: bad free size {size:#x}"
                if b > 1:
                    assert bin_index(size) == b, f"chunk {p:#x} size {size:#x} in bin {b}"
                assert self.free_end.get(p + size) == p, f"chunk {p:#x}: footer missing"
                sizes_in_order.append(size)
                prev = p
                p = self.fd[p]
            assert self.bk[h] == prev, f"bin {b}: header bk does not point at the last chunk"
            if b > 1:
                assert bool(self.binmap >> b & 1) == bool(sizes_in_order), f"binmap bit {b}"
            if b >= 64:
                assert sizes_in_order == sorted(sizes_in_order, reverse=True), f"bin {b} order"
                distinct = sorted(set(sizes_in_order))
                assert self.lsizes[b] == distinct, f"bin {b}: lsizes {self.lsizes[b]}"
                chunks = list(self.bin_chunks(b))
                for s in distinct:
                    assert self.lhead[s] == chunks[sizes_in_order.index(s)], f"run head {s:#x}"
        assert seen == set(self.free), "free chunks not in any bin"
        assert len(self.free_end) == len(self.free), "stray footer"
        assert not self.binmap & 0b11, "binmap bits 0/1 are never set"
        assert len(self.lhead) == sum(len(s) for s in self.lsizes), "stray run head"
