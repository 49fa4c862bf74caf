"""glibc 2.36 malloc (ptmalloc2) on x86-64, exact for single-threaded programs.

For a single-threaded program this model returns the same address for every call as the real
glibc 2.36 of Debian 12, issues the same brk/mmap/munmap/mremap/madvise calls and writes the
same pages (every store glibc makes into the heap is a ``syscalls.write``). The
specification it follows is /work/shared/reference/glibc-malloc-2.36.md; the differential
tests in tests/alloc/ run the same call sequences through the real glibc and compare.

Layout of the package (each module mirrors a part of malloc.c)::

    chunk.py     constants, request2size, bin indices                (L1290-1800)
    bins.py      unsorted/small/large bins, binmap, unlink_chunk     (L1570-1700)
    tcache.py    tcache_perthread_struct, tcache_put/get             (L3100-3260)
    state.py     malloc_par mp_, malloc_state av, do_check_malloc_state
    malloc.py    _int_malloc, _int_free, malloc_consolidate, sysmalloc, systrim, mtrim,
                 munmap_chunk, mremap_chunk                          (L2400-4810, L5037)
    realloc.py   _int_realloc, _int_memalign                         (L4812-4990)
    tunables.py  mallopt numbers, GLIBC_TUNABLES, MALLOC_*_ variables
    __init__.py  the public entry points __libc_malloc ... (this file, L3280-3700, L5100+)

A heap right after ``malloc(10)`` in a fresh process (offsets from the initial break B)::

    B+0x0    tcache_perthread_struct  chunk 0x290  (tcache_init, the first chunk ever)
    B+0x290  the malloc(10) chunk     0x20         -> returns B+0x2a0
    B+0x2b0  top                      0x20d50      -> ends at brk = B+0x21000

Pointers are ints, 0 is NULL; ``errno`` holds the last error. Misuse (double free, bad
pointer) raises :class:`memsim.alloc.base.AllocatorAbort` with glibc's message.
``check()`` runs do_check_malloc_state over the whole heap and the mmapped chunks.
"""

from __future__ import annotations

from collections.abc import Mapping

from memsim.alloc.base import Allocator, AllocatorAbort, HeapUsage, MallInfo2, register
from memsim.alloc.glibc.chunk import (
    DEFAULT_MMAP_THRESHOLD_MAX,
    MALLOC_ALIGNMENT,
    MAX_FAST_SIZE,
    MAX_TCACHE_COUNT,
    MAX_TCACHE_SIZE,
    MINSIZE,
    PAGESIZE,
    PTRDIFF_MAX,
    SIZE_MAX,
    checked_request2size,
    csize2tidx,
    max_fast_for,
    request2size,
)
from memsim.alloc.glibc.realloc import ReallocMemalign
from memsim.alloc.glibc.state import MallocPar
from memsim.alloc.glibc.tunables import (
    M_ARENA_MAX,
    M_ARENA_TEST,
    M_CHECK_ACTION,
    M_MMAP_MAX,
    M_MMAP_THRESHOLD,
    M_MXFAST,
    M_PERTURB,
    M_TOP_PAD,
    M_TRIM_THRESHOLD,
    Tunables,
)
from memsim.errors import ConfigError
from memsim.kernel.abi import EINVAL, ENOMEM, Syscalls

__all__ = ["Glibc236", "Tunables"]

_INT_MIN = -(1 << 31)
_INT_MAX = (1 << 31) - 1


def _size_arg(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= SIZE_MAX:
        raise ConfigError(f"{what}: {value!r} is not a size_t (0 .. 2**64-1)")
    return value


@register("glibc", "glibc 2.36 ptmalloc2 (Debian 12, x86-64): exact addresses, syscalls, pages")
class Glibc236(ReallocMemalign, Allocator):
    """The malloc family of glibc 2.36 over ``syscalls`` (see the package docstring).

    ``env`` holds the process environment (``GLIBC_TUNABLES``, ``MALLOC_TOP_PAD_`` ...);
    ``secure`` is AT_SECURE (setuid), which makes glibc ignore the malloc tunables.
    """

    def __init__(self, syscalls: Syscalls, env: Mapping[str, str] | None = None,
                 secure: bool = False) -> None:
        ReallocMemalign.__init__(self, syscalls, MallocPar())
        self.tunables = Tunables.from_env(env, secure)
        self.initialized = False
        self.inuse = self.av.inuse            # the hot paths' shortcuts to av and mp_
        self.tcache_bins = self.mp.tcache_bins
        self.tcache_count = self.mp.tcache_count

    # --- initialisation ------------------------------------------------------------------
    def ptmalloc_init(self) -> None:
        """``ptmalloc_init`` (arena.c L312): apply the tunables that were set, in order."""
        self.initialized = True
        for name, value in self.tunables.ordered():
            self._do_set(name, value)
        self.tcache_bins = self.mp.tcache_bins        # fixed from here on (tunables only)
        self.tcache_count = self.mp.tcache_count

    def _do_set(self, name: str, value: int) -> int:
        """The ``do_set_*`` helpers (L5098-5200) shared by mallopt and the tunables."""
        mp = self.mp
        if name == "top_pad":
            mp.top_pad = value
            mp.no_dyn_threshold = 1
        elif name == "perturb":
            mp.perturb_byte = value
        elif name == "mmap_threshold":
            mp.mmap_threshold = value
            mp.no_dyn_threshold = 1
        elif name == "trim_threshold":
            mp.trim_threshold = value
            mp.no_dyn_threshold = 1
        elif name == "mmap_max":
            mp.n_mmaps_max = value
            mp.no_dyn_threshold = 1
        elif name == "arena_max":
            mp.arena_max = value
        elif name == "arena_test":
            mp.arena_test = value
        elif name == "tcache_max":
            if value > MAX_TCACHE_SIZE:
                return 0
            mp.tcache_max_bytes = value
            mp.tcache_bins = csize2tidx(request2size(value)) + 1
        elif name == "tcache_count":
            if value > MAX_TCACHE_COUNT:
                return 0
            mp.tcache_count = value
        elif name == "tcache_unsorted_limit":
            mp.tcache_unsorted_limit = value
        elif name == "mxfast":
            if value > MAX_FAST_SIZE:
                return 0
            mp.global_max_fast = max_fast_for(value)
        return 1

    # --- malloc / free -------------------------------------------------------------------
    def malloc(self, size: int) -> int:
        """``__libc_malloc`` (L3280): tcache first, then _int_malloc."""
        if not self.initialized:
            self.ptmalloc_init()
        if size > PTRDIFF_MAX or size < 0:               # checked_request2size
            _size_arg(size, "malloc")
            self.errno = ENOMEM
            return 0
        nb = (size + 23) & ~15 if size > 8 else MINSIZE
        tc = self.tcache
        if tc is None:
            self.tcache_init()
            tc = self.tcache
        tidx = (nb - 17) >> 4
        if tc is not None and tidx < self.tcache_bins:
            stack = tc.entries[tidx]
            if stack:                                     # tcache_get (L3168)
                p = stack.pop()
                w = self.w
                w(tc.mem + 2 * tidx, 136 + 6 * tidx)
                w(p + 24, 8)
                self.inuse[p] = nb
                return p + 16
        return self._int_malloc(self.av, size)

    def free(self, ptr: int) -> None:
        """``__libc_free`` (L3345): munmap an mmapped chunk (raising the dynamic mmap
        threshold), else tcache or _int_free."""
        if not ptr:
            return
        p = ptr - 16
        size = self.inuse.pop(p, None)
        if size is None:
            if p in self.mmapped:
                mp = self.mp
                csize = self.mmapped[p][1]
                if (not mp.no_dyn_threshold and (csize | 2) > mp.mmap_threshold
                        and (csize | 2) <= DEFAULT_MMAP_THRESHOLD_MAX):
                    mp.mmap_threshold = csize
                    mp.trim_threshold = 2 * csize
                self.munmap_chunk(p)
                return
            self._bad_pointer(ptr, "free")
        tc = self.tcache
        if tc is None:
            self.tcache_init()
            tc = self.tcache
        if tc is not None:
            tidx = (size - 17) >> 4
            if tidx < self.tcache_bins:
                stack = tc.entries[tidx]
                if len(stack) < self.tcache_count:        # tcache_put (L3154)
                    stack.append(p)
                    w = self.w
                    w(ptr, 16)
                    w(tc.mem + 2 * tidx, 136 + 6 * tidx)
                    return
        self._int_free_chunk(self.av, p, size)

    def _bad_pointer(self, ptr: int, func: str) -> None:
        """Raise what glibc reports for ``func(ptr)`` on a pointer it does not own."""
        p = ptr - 16
        av = self.av
        if ptr & (MALLOC_ALIGNMENT - 1):
            raise AllocatorAbort(f"{func}(): invalid pointer", ptr)
        tc = self.tcache
        if func != "free":
            if ((tc is not None and tc.where(p) >= 0) or p in av.free
                    or any(p in fb for fb in av.fastbins)):
                raise AllocatorAbort(f"{func}() of a freed pointer", ptr, detected=False)
            raise AllocatorAbort(f"{func}(): invalid pointer", ptr)
        if tc is not None and tc.where(p) >= 0:
            raise AllocatorAbort("free(): double free detected in tcache 2", ptr)
        for fb in av.fastbins:
            if p in fb:
                if fb[-1] == p:
                    raise AllocatorAbort("double free or corruption (fasttop)", ptr)
                raise AllocatorAbort("double free of a chunk in a fastbin", ptr, detected=False)
        if p in av.free:
            size = av.free[p]
            tidx = csize2tidx(size)
            if (tc is not None and tidx < self.mp.tcache_bins
                    and len(tc.entries[tidx]) < self.mp.tcache_count):
                raise AllocatorAbort("double free of a chunk in a bin (it would enter the "
                                     "tcache)", ptr, detected=False)
            raise AllocatorAbort("double free or corruption (!prev)", ptr)
        if p == av.top:
            raise AllocatorAbort("double free or corruption (top)", ptr)
        if p in av.internal:
            raise AllocatorAbort("free() of malloc's own tcache_perthread_struct", ptr,
                                 detected=False)
        raise AllocatorAbort("free(): invalid pointer", ptr)

    def calloc(self, nmemb: int, size: int) -> int:
        """``__libc_calloc`` (L3618): _int_malloc (never the tcache), then clear what may
        not be zero: not mmapped chunks, not the fresh sbrk memory beyond the old top."""
        _size_arg(nmemb, "calloc")
        _size_arg(size, "calloc")
        nbytes = nmemb * size
        if nbytes > SIZE_MAX:
            self.errno = ENOMEM
            return 0
        if not self.initialized:
            self.ptmalloc_init()
        if self.tcache is None:
            self.tcache_init()
        av = self.av
        mp = self.mp
        # Tricky: only the part of a chunk carved from the old top is cleared when the chunk
        # needed fresh sbrk memory (MORECORE_CLEARS). The high-water-mark extension of
        # oldtopsize (to sbrk_base + max_system_mem) found in malloc.c sources is not what
        # this machine's 2.36 does: after a trim and regrowth, the regrown pages are left
        # untouched (verified by the heap RSS in tests/alloc/glibc/test_differential.py).
        oldtop = av.top
        oldtopsize = av.top_size
        mem = self._int_malloc(av, nbytes)
        if not mem:
            return 0
        p = mem - 16
        if p in self.mmapped:
            if mp.perturb_byte and nbytes:
                self.w(mem, nbytes)
            return mem
        csz = av.inuse[p]
        if mp.perturb_byte == 0 and p == oldtop and csz > oldtopsize:
            csz = oldtopsize
        clearsize = csz - 8
        nclears = clearsize // 8
        if nclears > 9:
            self.w(mem, clearsize)
        else:
            self.w(mem, 8 * (9 if nclears > 8 else 7 if nclears > 6 else 5 if nclears > 4 else 3))
        return mem

    def realloc(self, ptr: int, size: int) -> int:
        """``__libc_realloc`` (L3393): mremap for mmapped chunks, else _int_realloc."""
        if not self.initialized:
            self.ptmalloc_init()
        _size_arg(size, "realloc")
        if size == 0 and ptr:
            self.free(ptr)
            return 0
        if not ptr:
            return self.malloc(size)
        p = ptr - 16
        av = self.av
        oldsize = av.inuse.get(p)
        if oldsize is None:
            if p not in self.mmapped:
                self._bad_pointer(ptr, "realloc")
            csize = self.mmapped[p][1]
            nb = checked_request2size(size)
            if nb == 0:
                self.errno = ENOMEM
                return 0
            q = self.mremap_chunk(p, nb)
            if q:
                return q + 16
            if csize - 8 >= nb:
                return ptr
            new = self.malloc(size)
            if not new:
                return 0
            self.w(new, csize - 16)
            self.munmap_chunk(p)
            return new
        if self.tcache is None:
            self.tcache_init()
        nb = checked_request2size(size)
        if nb == 0:
            self.errno = ENOMEM
            return 0
        return self._int_realloc(av, p, oldsize, nb)

    # --- aligned allocation -------------------------------------------------------------
    def _mid_memalign(self, alignment: int, size: int) -> int:
        """``_mid_memalign`` (L3524)."""
        if alignment <= MALLOC_ALIGNMENT:
            return self.malloc(size)
        if alignment < MINSIZE:
            alignment = MINSIZE
        if alignment > SIZE_MAX // 2 + 1:
            self.errno = EINVAL
            return 0
        if alignment & (alignment - 1):
            a = MALLOC_ALIGNMENT * 2
            while a < alignment:
                a <<= 1
            alignment = a
        return self._int_memalign(self.av, alignment, size)

    def memalign(self, alignment: int, size: int) -> int:
        """``__libc_memalign`` (L3500); aligned_alloc is the same function in 2.36."""
        if not self.initialized:
            self.ptmalloc_init()
        _size_arg(alignment, "memalign")
        _size_arg(size, "memalign")
        return self._mid_memalign(alignment, size)

    def aligned_alloc(self, alignment: int, size: int) -> int:
        """``aligned_alloc``: a weak alias of __libc_memalign in glibc 2.36 (no checks)."""
        return self.memalign(alignment, size)

    def posix_memalign(self, alignment: int, size: int) -> tuple[int, int]:
        """``__posix_memalign`` (L3560): (0, ptr), (EINVAL, 0) or (ENOMEM, 0)."""
        if not self.initialized:
            self.ptmalloc_init()
        _size_arg(alignment, "posix_memalign")
        _size_arg(size, "posix_memalign")
        q = alignment // 8
        if alignment % 8 or q == 0 or q & (q - 1):
            return EINVAL, 0
        mem = self._mid_memalign(alignment, size)
        return (0, mem) if mem else (ENOMEM, 0)

    def valloc(self, size: int) -> int:
        """``__libc_valloc`` (L3587): _mid_memalign(pagesize, size)."""
        if not self.initialized:
            self.ptmalloc_init()
        _size_arg(size, "valloc")
        return self._mid_memalign(PAGESIZE, size)

    def pvalloc(self, size: int) -> int:
        """``__libc_pvalloc`` (L3597), with 2.36's mask ``-(pagesize - 1)`` (keeps bit 0)."""
        if not self.initialized:
            self.ptmalloc_init()
        _size_arg(size, "pvalloc")
        rounded = size + PAGESIZE - 1
        if rounded > SIZE_MAX:
            self.errno = ENOMEM
            return 0
        rounded &= -(PAGESIZE - 1) & SIZE_MAX
        return self._mid_memalign(PAGESIZE, rounded)

    # --- introspection and control ------------------------------------------------------
    def malloc_usable_size(self, ptr: int) -> int:
        """``__malloc_usable_size`` / ``musable`` (L5122)."""
        if not ptr:
            return 0
        p = ptr - 16
        size = self.av.inuse.get(p)
        if size is not None:
            return size - 8
        if p in self.mmapped:
            return self.mmapped[p][1] - 16
        av = self.av
        tc = self.tcache
        tidx = tc.where(p) if tc is not None else -1
        if tidx >= 0:
            return 32 + 16 * tidx - 8
        for i, fb in enumerate(av.fastbins):
            if p in fb:
                return (i + 2) * 16 - 8
        if p in av.free:
            return 0
        raise AllocatorAbort("malloc_usable_size(): unknown pointer", ptr, detected=False)

    def malloc_trim(self, pad: int) -> int:
        """``__malloc_trim`` (L5085): mtrim of the main arena."""
        if not self.initialized:
            self.ptmalloc_init()
        _size_arg(pad, "malloc_trim")
        return self.mtrim(self.av, pad)

    def mallopt(self, param: int, value: int) -> int:
        """``__libc_mallopt`` (L5448): init, consolidate the fastbins, then set ``param``."""
        if not (_INT_MIN <= param <= _INT_MAX and _INT_MIN <= value <= _INT_MAX):
            raise ConfigError(f"mallopt({param}, {value}): both arguments are C ints")
        if not self.initialized:
            self.ptmalloc_init()
        self.malloc_consolidate(self.av)
        as_size = value & SIZE_MAX
        if param == M_MXFAST:
            return self._do_set("mxfast", as_size)
        if param == M_TRIM_THRESHOLD:
            return self._do_set("trim_threshold", as_size)
        if param == M_TOP_PAD:
            return self._do_set("top_pad", as_size)
        if param == M_MMAP_THRESHOLD:
            return self._do_set("mmap_threshold", as_size)
        if param == M_MMAP_MAX:
            return self._do_set("mmap_max", value)
        if param == M_PERTURB:
            return self._do_set("perturb", value)
        if param == M_ARENA_TEST:
            return self._do_set("arena_test", value) if value > 0 else 1
        if param == M_ARENA_MAX:
            return self._do_set("arena_max", value) if value > 0 else 1
        if param == M_CHECK_ACTION:
            return 1
        return 1

    def mallinfo2(self) -> MallInfo2:
        """``__libc_mallinfo2`` / ``int_mallinfo`` (L5149)."""
        if not self.initialized:
            self.ptmalloc_init()
        av = self.av
        mp = self.mp
        nfast = sum(len(fb) for fb in av.fastbins)
        fastavail = sum(len(fb) * (i + 2) * 16 for i, fb in enumerate(av.fastbins))
        avail = av.top_size + fastavail + sum(av.free.values())
        return MallInfo2(arena=av.system_mem, ordblks=1 + len(av.free), smblks=nfast,
                         hblks=mp.n_mmaps, hblkhd=mp.mmapped_mem, usmblks=0,
                         fsmblks=fastavail, uordblks=av.system_mem - avail, fordblks=avail,
                         keepcost=av.top_size)

    def mallinfo(self) -> MallInfo2:
        """``__libc_mallinfo`` (L5200): mallinfo2 with every field cast to a C int."""
        mi = self.mallinfo2()
        for name, value in mi.as_dict().items():
            v = value & 0xFFFFFFFF
            setattr(mi, name, v - (1 << 32) if v >= 1 << 31 else v)
        return mi

    def malloc_stats(self) -> str:
        """``__malloc_stats`` (L5263): the text written to stderr."""
        mi = self.mallinfo2()
        mp = self.mp
        u32 = 0xFFFFFFFF
        system_b = (mp.mmapped_mem + mi.arena) & u32
        in_use_b = (mp.mmapped_mem + mi.uordblks) & u32
        return (f"Arena 0:\nsystem bytes     = {mi.arena & u32:10d}\n"
                f"in use bytes     = {mi.uordblks & u32:10d}\n"
                f"Total (incl. mmap):\nsystem bytes     = {system_b:10d}\n"
                f"in use bytes     = {in_use_b:10d}\n"
                f"max mmap regions = {mp.max_n_mmaps & u32:10d}\n"
                f"max mmap bytes   = {mp.max_mmapped_mem:10d}\n")

    def cached_chunks(self) -> dict[int, int]:
        """Chunks sitting in the tcache -> size."""
        tc = self.tcache
        if tc is None:
            return {}
        return {p: 32 + 16 * i for i, stack in enumerate(tc.entries) for p in stack}

    def usage(self) -> HeapUsage:
        """Every byte of the arena (system_mem) and of the mmapped chunks, in one bucket."""
        av = self.av
        cached = sum(self.cached_chunks().values())
        cached += sum(len(fb) * (i + 2) * 16 for i, fb in enumerate(av.fastbins))
        seg_total = sum(e - s for s, e in av.segments)
        if av.top:
            seg_total += av.top + av.top_size - av.seg_start
        gaps = av.system_mem - seg_total
        mm_in_use = sum(size for _, size in self.mmapped.values())
        mm_lead = sum(off for off, _ in self.mmapped.values())
        tc = self.tcache
        if tc is not None and tc.chunk in self.mmapped:   # the struct is malloc's own
            mm_in_use -= self.mmapped[tc.chunk][1]
            mm_lead += self.mmapped[tc.chunk][1]
        return HeapUsage(
            in_use=sum(av.inuse.values()) + mm_in_use,
            cached=cached,
            free=sum(av.free.values()),
            top=av.top_size,
            overhead=sum(av.internal.values()) + sum(av.fences.values()) + gaps + mm_lead,
            total=av.system_mem + self.mp.mmapped_mem,
        )

    def check(self) -> None:
        """``do_check_malloc_state`` over the main arena, the tcache and the mmapped chunks."""
        av = self.av
        cached = self.cached_chunks()
        av.check_heap(cached)
        if self.tcache is not None:
            self.tcache.check(self.mp.tcache_count)
        mp = self.mp
        assert mp.n_mmaps == len(self.mmapped), "n_mmaps disagrees with the mmapped chunks"
        assert mp.mmapped_mem == sum(o + s for o, s in self.mmapped.values()), "mmapped_mem"
        for p, (off, size) in self.mmapped.items():
            assert (p - off) % PAGESIZE == 0 and (off + size) % PAGESIZE == 0, f"mmap {p:#x}"
        seg_total = sum(e - s for s, e in av.segments)
        if av.top:
            seg_total += av.top + av.top_size - av.seg_start
        assert av.system_mem >= seg_total, "system_mem smaller than the heap segments"
        self.tunables.check()
