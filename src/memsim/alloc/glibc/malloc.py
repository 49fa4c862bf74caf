"""The ptmalloc2 core of glibc 2.36: _int_malloc, _int_free, malloc_consolidate, sysmalloc,
systrim, mtrim, and the mmapped-chunk helpers.

This module mirrors malloc.c function by function (line numbers: release/2.36/master). The
public wrappers (``__libc_malloc`` & co.) are in ``__init__.py``, realloc and memalign in
``realloc.py``. An allocation walks, in order (``_int_malloc``, L3765)::

    tcache (in __libc_malloc) -> fastbin (A) -> small bin exact (B) | consolidate if large (C)
      -> unsorted scan (D): last remainder (D1), exact fit (D2, may stash to tcache),
         else sort into small/large bins (D3)
      -> best fit in its own large bin (F) -> binmap: next non-empty bin (G)
      -> split top (H) | consolidate fastbins and retry | sysmalloc: mmap or grow brk

A free (``_int_free``, L4416): tcache if room -> fastbin if <= global_max_fast -> coalesce
with free neighbours into the unsorted bin or into top; a merged size >= 64 KiB consolidates
the fastbins and may trim top (``systrim``).

The kernel is reached only through ``self.sys`` (abi.Syscalls): brk through libc's
``__sbrk`` (``sbrk()`` here, keeping libc's ``__curbrk``), anonymous ``mmap``/``munmap``/
``mremap``, ``madvise(MADV_DONTNEED)`` in malloc_trim. Every store malloc makes into the heap
is a ``self.w(addr, length)`` call (headers, footers, links, tcache entries, clearing).

Chunk addresses are the chunk headers (``p``); functions that return user pointers say so
(``mem = p + 16``). NULL is 0.
"""

from __future__ import annotations

from memsim.alloc.base import AllocatorAbort, NotModelled
from memsim.alloc.glibc.chunk import (
    DEFAULT_MMAP_THRESHOLD_MAX,
    FASTBIN_CONSOLIDATION_THRESHOLD,
    MAX_ITERS,
    MIN_LARGE_SIZE,
    MINSIZE,
    MMAP_AS_MORECORE_SIZE,
    PAGESIZE,
    PTRDIFF_MAX,
    SIZE_MAX,
    TCACHE_STRUCT_SIZE,
    align_down,
    align_up,
    bin_index,
    largebin_index,
)
from memsim.alloc.glibc.state import MallocPar, MallocState
from memsim.alloc.glibc.tcache import Tcache
from memsim.kernel.abi import (
    ENOMEM,
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    Syscalls,
)

PAGE_MASK = PAGESIZE - 1
HEAP_MAX_SIZE = 2 * DEFAULT_MMAP_THRESHOLD_MAX   # bytes, a thread arena's heap (arena.c)
MORECORE_FAILURE = 0
SIZEOF_MALLOC_CHUNK = 48       # bytes, sizeof(struct malloc_chunk)
INT64_MAX = (1 << 63) - 1


def _as_long(value: int) -> int:
    """``(long int) value``: wrap to a signed 64-bit integer, as C arithmetic does."""
    value &= SIZE_MAX
    return value - (1 << 64) if value > INT64_MAX else value


class Ptmalloc:
    """The arena algorithms over one :class:`MallocState` (the main arena)."""

    def __init__(self, syscalls: Syscalls, mp: MallocPar) -> None:
        self.sys = syscalls
        self.w = syscalls.write
        self.mp = mp
        self.av = MallocState(self.w)
        self.tcache: Tcache | None = None
        self.curbrk: int | None = None            # libc's __curbrk
        self.always_fail_morecore = False
        self.mmapped: dict[int, tuple[int, int]] = {}   # chunk -> (prev_size offset, size)
        self.errno = 0

    # --- the kernel, as libc sees it -------------------------------------------------------
    def sbrk(self, increment: int) -> int:
        """``__sbrk`` (misc/sbrk.c): returns the old break, or -1 (errno ENOMEM).

        The first call issues ``brk(0)`` to learn the break; ``sbrk(0)`` makes no syscall
        after that. A program's own sbrk calls must go through here (they share __curbrk).
        """
        if self.curbrk is None:
            self.curbrk = self.sys.sys_brk(0)
        if increment == 0:
            return self.curbrk
        old = self.curbrk
        if (old + increment > SIZE_MAX) if increment > 0 else (old < -increment):
            self.errno = ENOMEM
            return -1
        return old if self.brk(old + increment) == 0 else -1

    def brk(self, addr: int) -> int:
        """``__brk`` (sysdeps/unix/sysv/linux/brk.c): 0, or -1 when the kernel refused."""
        self.curbrk = self.sys.sys_brk(addr)
        if self.curbrk < addr:
            self.errno = ENOMEM
            return -1
        return 0

    def morecore(self, increment: int) -> int:
        """``__glibc_morecore`` (morecore.c): the old break, or MORECORE_FAILURE (0)."""
        if self.always_fail_morecore:
            return MORECORE_FAILURE
        r = self.sbrk(increment)
        return MORECORE_FAILURE if r == -1 else r

    def mmap(self, length: int) -> int:
        """``MMAP(0, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS)``; 0 on failure."""
        r = self.sys.sys_mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        if r < 0:
            self.errno = -r
            return 0
        return r

    # --- tcache -----------------------------------------------------------------------------
    def tcache_init(self) -> None:
        """``tcache_init`` (L3229): carve the tcache_perthread_struct (chunk 0x290) with
        _int_malloc and zero it.

        If the main arena cannot, glibc retries in another arena: ``arena_get_retry`` tries to
        create a thread arena even in a single-threaded program (``new_heap``: a 128 MiB
        PROT_NONE reservation, then mprotect of at most 64 MiB). When the kernel is out of
        memory that attempt fails too, the tcache stays absent (retried on the next call) and
        the caller carries on with the main arena: modelled, minus the failed attempt's
        transient syscalls. When the main arena failed only because top_pad made its request
        larger than a thread heap (64 MiB), the thread arena would be created: not modelled,
        NotModelled is raised.
        """
        av = self.av
        mem = self._int_malloc(av, TCACHE_STRUCT_SIZE)
        if not mem:
            if self.mp.top_pad + TCACHE_STRUCT_SIZE + MINSIZE > HEAP_MAX_SIZE:
                raise NotModelled(
                    "the main arena cannot hold the tcache with top_pad "
                    f"{self.mp.top_pad:#x}: glibc 2.36 would now create a thread arena "
                    "(tcache_init -> arena_get_retry); thread arenas are not modelled")
            return
        p = mem - 16
        if p not in self.mmapped:                 # mmapped if mmap_threshold <= 0x290
            av.internal[p] = av.inuse.pop(p)
        self.w(mem, TCACHE_STRUCT_SIZE)           # memset (tcache, 0, sizeof)
        self.tcache = Tcache(p, self.w)

    def _tcache_return(self, tidx: int) -> int:
        """``return tcache_get (tc_idx)`` inside _int_malloc: the chunk becomes in use."""
        assert self.tcache is not None
        p = self.tcache.get(tidx)
        self.av.inuse[p] = 32 + 16 * tidx
        return p + 16

    # --- perturb -----------------------------------------------------------------------------
    def _alloc_perturb(self, mem: int, n: int) -> None:
        """``alloc_perturb`` (L1997): fill with perturb_byte ^ 0xff."""
        if self.mp.perturb_byte and n:
            self.w(mem, n)

    # --- _int_malloc ------------------------------------------------------------------------
    def _int_malloc(self, av: MallocState, nbytes: int) -> int:
        """``_int_malloc`` (L3765): a chunk for ``nbytes`` from av's bins, top or the system;
        returns mem (chunk + 16), or 0 with errno ENOMEM."""
        if nbytes > PTRDIFF_MAX:                          # checked_request2size
            self.errno = ENOMEM
            return 0
        nb = (nbytes + 23) & ~15 if nbytes > 8 else MINSIZE
        mp = self.mp
        tc = self.tcache
        tidx = (nb - 17) >> 4
        tc_ok = tc is not None and tidx < mp.tcache_bins
        fd = av.fd
        bk = av.bk
        free = av.free
        w = self.w

        # (A) fastbin (L3834)
        if nb <= mp.global_max_fast:
            fb = av.fastbins[(nb >> 4) - 2]
            if fb:
                victim = fb.pop()
                if tc_ok:
                    assert tc is not None
                    stack = tc.entries[tidx]
                    lim = mp.tcache_count
                    while len(stack) < lim and fb:
                        tc.put(fb.pop(), tidx)
                av.inuse[victim] = nb
                self._alloc_perturb(victim + 16, nbytes)
                return victim + 16

        # (B) small bin, exact size (L3897)
        if nb < MIN_LARGE_SIZE:
            idx = nb >> 4
            h = -idx
            if fd[h] != h:
                victim = bk[h]
                av.unlink_chunk(victim)
                w(victim + nb + 8, 8)                      # set_inuse_bit_at_offset
                if tc_ok:
                    assert tc is not None
                    stack = tc.entries[tidx]
                    lim = mp.tcache_count
                    while len(stack) < lim and fd[h] != h:
                        c = bk[h]
                        av.unlink_chunk(c)
                        w(c + nb + 8, 8)
                        tc.put(c, tidx)
                av.inuse[victim] = nb
                self._alloc_perturb(victim + 16, nbytes)
                return victim + 16
        else:
            # (C) a large request consolidates the fastbins first (L3956)
            idx = largebin_index(nb)
            if av.have_fastchunks:
                self.malloc_consolidate(av)

        tcache_nb = nb if tc_ok else 0
        return_cached = False
        tcache_unsorted_count = 0

        while True:
            # (D) the unsorted scan, oldest first (L3990)
            iters = 0
            while True:
                victim = bk[-1]
                if victim == -1:
                    break
                size = free[victim]
                bck = bk[victim]
                # (D1) the last remainder keeps serving small requests (L4019)
                if (nb < MIN_LARGE_SIZE and bck == -1 and victim == av.last_remainder
                        and size > nb + MINSIZE):
                    av.unlink_chunk(victim)
                    rem = victim + nb
                    av.last_remainder = rem
                    av.unsorted_insert(rem, size - nb, False)
                    w(victim + 8, 8)
                    av.inuse[victim] = nb
                    self._alloc_perturb(victim + 16, nbytes)
                    return victim + 16
                # remove from the back of the unsorted bin (L4049)
                bk[-1] = bck
                fd[bck] = -1
                if bck > 0:
                    w(bck + 16, 8)
                # (D2) exact fit (L4054)
                if size == nb:
                    del fd[victim], bk[victim], free[victim], av.bin_of[victim]
                    del av.free_end[victim + size]
                    w(victim + size + 8, 8)
                    if tcache_nb:
                        assert tc is not None
                        if len(tc.entries[tidx]) < mp.tcache_count:
                            tc.put(victim, tidx)
                            return_cached = True
                            continue
                    av.inuse[victim] = nb
                    self._alloc_perturb(victim + 16, nbytes)
                    return victim + 16
                # (D3) sort into its bin (L4081)
                av.bin_chunk(victim, size)
                tcache_unsorted_count += 1
                if (return_cached and mp.tcache_unsorted_limit > 0
                        and tcache_unsorted_count > mp.tcache_unsorted_limit):
                    return self._tcache_return(tidx)
                iters += 1
                if iters >= MAX_ITERS:
                    break

            # (E) an exact fit was stashed: return the newest (L4168)
            if return_cached:
                return self._tcache_return(tidx)

            # (F) large request: best fit in its own bin (L4179)
            if nb >= MIN_LARGE_SIZE:
                victim = av.large_best_fit(idx, nb)
                if victim:
                    size = av.unlink_chunk(victim)
                    return self._split_free(av, victim, size, nb, nbytes, False)

            # (G) binmap: the smallest non-empty bin above idx (L4252)
            b = av.first_bin_above(idx)
            if b:
                victim = bk[-b]
                size = av.unlink_chunk(victim)
                return self._split_free(av, victim, size, nb, nbytes, nb < MIN_LARGE_SIZE)

            # (H) top (L4349)
            victim = av.top
            size = av.top_size
            if size >= nb + MINSIZE:
                av.top = victim + nb
                av.top_size = size - nb
                if (victim + 8) >> 12 == (victim + nb + 15) >> 12:
                    w(victim + 8, nb + 8)                  # both size words, one page
                else:
                    w(victim + 8, 8)
                    w(victim + nb + 8, 8)
                av.inuse[victim] = nb
                self._alloc_perturb(victim + 16, nbytes)
                return victim + 16
            if av.have_fastchunks:
                self.malloc_consolidate(av)
                idx = nb >> 4 if nb < MIN_LARGE_SIZE else largebin_index(nb)
                continue
            mem = self.sysmalloc(nb, av)
            if mem:
                self._alloc_perturb(mem, nbytes)
            return mem

    def _split_free(self, av: MallocState, victim: int, size: int, nb: int, nbytes: int,
                    set_last_remainder: bool) -> int:
        """The split at the end of steps (F) and (G) (L4216, L4316): the low ``nb`` bytes go to
        the caller; a remainder >= MINSIZE goes to the front of the unsorted bin."""
        r = size - nb
        if r < MINSIZE:
            self.w(victim + size + 8, 8)                  # exhaust: set_inuse_bit_at_offset
            av.inuse[victim] = size
        else:
            rem = victim + nb
            av.unsorted_insert(rem, r, False)
            if set_last_remainder:
                av.last_remainder = rem
            self.w(victim + 8, 8)
            av.inuse[victim] = nb
        self._alloc_perturb(victim + 16, nbytes)
        return victim + 16

    # --- _int_free ---------------------------------------------------------------------------
    def _int_free(self, av: MallocState, p: int, size: int) -> None:
        """``_int_free`` (L4416) of chunk ``p`` of ``size`` (already out of ``av.inuse``)."""
        mp = self.mp
        tc = self.tcache
        if tc is not None:
            tidx = (size - 17) >> 4
            if tidx < mp.tcache_bins:
                if len(tc.entries[tidx]) < mp.tcache_count:
                    tc.put(p, tidx)
                    return
        self._int_free_chunk(av, p, size)

    def _int_free_chunk(self, av: MallocState, p: int, size: int) -> None:
        """The part of ``_int_free`` after the tcache (L4480): fastbin, or coalesce; a merged
        size >= FASTBIN_CONSOLIDATION_THRESHOLD consolidates and may trim."""
        mp = self.mp
        if mp.perturb_byte:
            self.w(p + 16, size - 16)                     # free_perturb
        if size <= mp.global_max_fast:
            fb = av.fastbins[(size >> 4) - 2]
            if fb and fb[-1] == p:
                raise AssertionError("fasttop double free reached _int_free")
            fb.append(p)
            av.have_fastchunks = True
            self.w(p + 16, 8)                             # p->fd
            return
        size = self._merge_chunk(av, p, size)
        if size >= FASTBIN_CONSOLIDATION_THRESHOLD:
            if av.have_fastchunks:
                self.malloc_consolidate(av)
            if av.top_size >= mp.trim_threshold:
                self.systrim(mp.top_pad, av)

    def _merge_chunk(self, av: MallocState, p: int, size: int) -> int:
        """Coalesce free chunk ``p`` with free neighbours and put it in the unsorted bin, or
        merge it into top (the tail of _int_free, L4565-4660, also used by
        malloc_consolidate, L4760). Returns the merged size (the new top size if merged)."""
        nxt = p + size
        prev = av.free_end.get(p)
        if prev is not None:                              # consolidate backward
            size += av.unlink_chunk(prev)
            p = prev
        if nxt != av.top:
            nsize = av.free.get(nxt)
            if nsize is not None:                         # consolidate forward
                av.unlink_chunk(nxt)
                size += nsize
                av.unsorted_insert(p, size, False)
            else:
                av.unsorted_insert(p, size, True)
        else:
            size += av.top_size
            av.top = p
            av.top_size = size
            self.w(p + 8, 8)
        return size

    # --- malloc_consolidate -----------------------------------------------------------------
    def malloc_consolidate(self, av: MallocState) -> None:
        """``malloc_consolidate`` (L4710): empty every fastbin, smallest size first, each from
        its head, coalescing every chunk into the unsorted bin or top."""
        av.have_fastchunks = False
        for i, fb in enumerate(av.fastbins):
            if not fb:
                continue
            chunks = fb[::-1]
            fb.clear()
            size = (i + 2) * 16
            for p in chunks:
                self._merge_chunk(av, p, size)

    # --- sysmalloc ---------------------------------------------------------------------------
    def _sysmalloc_mmap(self, nb: int) -> int:
        """``sysmalloc_mmap`` (L2414): a chunk that is its own mapping; mem or 0."""
        size = align_up(nb + 8, PAGESIZE)
        if (size & SIZE_MAX) <= nb:
            return 0
        mm = self.mmap(size)
        if not mm:
            return 0
        self.w(mm, 16)                                   # prev_size 0, size | IS_MMAPPED
        self.mmapped[mm] = (0, size)
        mp = self.mp
        mp.n_mmaps += 1
        mp.max_n_mmaps = max(mp.max_n_mmaps, mp.n_mmaps)
        mp.mmapped_mem += size
        mp.max_mmapped_mem = max(mp.max_mmapped_mem, mp.mmapped_mem)
        return mm + 16

    def _mmap_fallback(self, av: MallocState, size: int, nb: int, old_size: int) -> tuple[int, int]:
        """``sysmalloc_mmap_fallback`` (L2502): mmap standing in for a failed brk; makes the
        arena non-contiguous for good. Returns (address, size) or (0, 0).

        Tricky: glibc 2.36 calls it as ``sysmalloc_mmap_fallback (&size, nb, old_size,
        pagesize, MMAP_AS_MORECORE_SIZE, 0, av)``, i.e. with ``minsize`` and ``pagesize``
        swapped against the parameter list. So a contiguous arena rounds ``size + old_size``
        up to a whole MiB, and a non-contiguous one maps just ``size`` (the page-rounded
        ``nb + top_pad + MINSIZE``) with a floor of one page, not 1 MiB. Verified on this
        machine (tests/alloc: brk blocked by a mapping); the reference spec has it the other
        way round.
        """
        minsize, unit = PAGESIZE, MMAP_AS_MORECORE_SIZE
        if av.contiguous:
            size = _as_long(align_up(size + old_size, unit))
        if size & SIZE_MAX < minsize:
            size = minsize
        size &= SIZE_MAX
        if size <= nb:
            return 0, 0
        mbrk = self.mmap(size)
        if not mbrk:
            return 0, 0
        av.contiguous = False
        return mbrk, size

    def sysmalloc(self, nb: int, av: MallocState) -> int:
        """``sysmalloc`` (L2541): serve ``nb`` when neither bins nor top can. Direct mmap above
        the threshold; otherwise grow top with brk (mmap as a fallback) and split it."""
        mp = self.mp
        w = self.w
        if nb >= mp.mmap_threshold and mp.n_mmaps < mp.n_mmaps_max:
            mem = self._sysmalloc_mmap(nb)
            if mem:
                return mem
        old_top = av.top
        old_size = av.top_size
        old_end = old_top + old_size
        brk = snd_brk = MORECORE_FAILURE
        # Tricky: ``long int size = nb + mp_.top_pad + MINSIZE`` wraps like C (a top_pad set
        # to -1 through size_t makes it nb + 31), and ``size > 0`` is a signed test.
        size = _as_long(nb + mp.top_pad + MINSIZE)
        if av.contiguous:
            size = _as_long(size - old_size)
        size = _as_long(align_up(size, PAGESIZE))
        if size > 0:
            brk = self.morecore(size)
        if brk == MORECORE_FAILURE:
            mbrk, msize = self._mmap_fallback(av, size, nb, old_size)
            if mbrk:
                brk = mbrk
                size = msize
                snd_brk = brk + size
        if brk != MORECORE_FAILURE:
            if mp.sbrk_base == 0:
                mp.sbrk_base = brk
            av.system_mem += size
            if brk == old_end and snd_brk == MORECORE_FAILURE:
                av.top_size = old_size + size              # contiguous growth
                w(old_top + 8, 8)
            elif av.contiguous and old_size and brk < old_end:
                raise AllocatorAbort("break adjusted to free malloc space", brk)
            else:
                correction = 0
                aligned_brk = brk
                if av.contiguous:
                    if old_size:
                        av.system_mem += brk - old_end     # foreign sbrk counted
                    front_misalign = (brk + 16) & 15
                    if front_misalign:
                        correction = 16 - front_misalign
                        aligned_brk += correction
                    correction += old_size
                    end_misalign = brk + size + correction
                    correction += align_up(end_misalign, PAGESIZE) - end_misalign
                    snd_brk = self.morecore(correction)
                    if snd_brk == MORECORE_FAILURE:
                        correction = 0
                        snd_brk = self.morecore(0)
                elif snd_brk == MORECORE_FAILURE:
                    snd_brk = self.morecore(0)
                if snd_brk != MORECORE_FAILURE:
                    if old_top:
                        av.segments.append((av.seg_start, old_end))
                    av.seg_start = aligned_brk
                    av.top = aligned_brk
                    av.top_size = snd_brk - aligned_brk + correction
                    w(aligned_brk + 8, 8)
                    av.system_mem += correction
                    if old_size:
                        # fencepost the old top: it can never merge with the new one
                        old_size = (old_size - 2 * 16) & ~15
                        w(old_top + 8, 8)
                        w(old_top + old_size + 8, 8)
                        w(old_top + old_size + 24, 8)
                        av.fences[old_top + old_size] = 16
                        av.fences[old_top + old_size + 16] = 16
                        if old_size >= MINSIZE:
                            self._int_free(av, old_top, old_size)
                        elif old_size:
                            av.fences[old_top] = old_size
            if av.system_mem > av.max_system_mem:
                av.max_system_mem = av.system_mem
        p = av.top
        size = av.top_size
        if size >= nb + MINSIZE:
            av.top = p + nb
            av.top_size = size - nb
            w(p + 8, 8)
            w(p + nb + 8, 8)
            av.inuse[p] = nb
            return p + 16
        self.errno = ENOMEM
        return 0

    # --- trimming ---------------------------------------------------------------------------
    def systrim(self, pad: int, av: MallocState) -> int:
        """``systrim`` (L2971): give the top's whole pages beyond ``pad`` back with sbrk(-n)."""
        top_size = av.top_size
        top_area = (top_size - MINSIZE - 1) & SIZE_MAX
        pad &= SIZE_MAX
        if top_area <= pad:
            return 0
        extra = align_down(top_area - pad, PAGESIZE)
        if extra == 0 or extra > INT64_MAX:
            return 0
        current_brk = self.morecore(0)
        if current_brk == av.top + top_size:
            self.morecore(-extra)
            new_brk = self.morecore(0)
            if new_brk != MORECORE_FAILURE:
                released = current_brk - new_brk
                if released:
                    av.system_mem -= released
                    av.top_size = top_size - released
                    self.w(av.top + 8, 8)
                    return 1
        return 0

    def mtrim(self, av: MallocState, pad: int) -> int:
        """``mtrim`` (L5037): consolidate, madvise(DONTNEED) the whole free pages inside free
        chunks of the unsorted bin and of bins >= bin_index(pagesize), then systrim."""
        self.malloc_consolidate(av)
        psindex = bin_index(PAGESIZE)
        result = 0
        for i in [1, *range(psindex, 127)]:
            h = -i
            p = av.bk[h]
            while p != h:
                size = av.free[p]
                if size > PAGE_MASK + SIZEOF_MALLOC_CHUNK:
                    paligned = (p + SIZEOF_MALLOC_CHUNK + PAGE_MASK) & ~PAGE_MASK
                    size -= paligned - p
                    if size > PAGE_MASK:
                        self.sys.sys_madvise(paligned, size & ~PAGE_MASK, MADV_DONTNEED)
                        result = 1
                p = av.bk[p]
        return result | self.systrim(pad, av)

    # --- mmapped chunks ---------------------------------------------------------------------
    def munmap_chunk(self, p: int) -> None:
        """``munmap_chunk`` (L3037): unmap the whole block holding mmapped chunk ``p``."""
        offset, size = self.mmapped.pop(p)
        block = p - offset
        total = offset + size
        mp = self.mp
        mp.n_mmaps -= 1
        mp.mmapped_mem -= total
        self.sys.sys_munmap(block, total)

    def mremap_chunk(self, p: int, nb: int) -> int:
        """``mremap_chunk`` (L3068): resize mmapped chunk ``p`` for ``nb``; the (possibly
        moved) chunk, or 0 if mremap failed."""
        offset, size = self.mmapped[p]
        block = p - offset
        total = offset + size
        new_size = align_up(nb + offset + 8, PAGESIZE)
        if total == new_size:
            return p
        cp = self.sys.sys_mremap(block, total, new_size, MREMAP_MAYMOVE)
        if cp < 0:
            self.errno = -cp
            return 0
        del self.mmapped[p]
        p = cp + offset
        self.mmapped[p] = (offset, new_size - offset)
        self.w(p + 8, 8)
        mp = self.mp
        mp.mmapped_mem += new_size - total
        mp.max_mmapped_mem = max(mp.max_mmapped_mem, mp.mmapped_mem)
        return p
