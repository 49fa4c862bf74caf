"""``malloc_par`` (mp_, the global parameters) and ``malloc_state`` (one arena, av).

The main arena is one :class:`MallocState`; thread arenas will be further instances (their
heaps come from ``new_heap``; not simulated yet). What an arena holds (malloc.c L1825)::

    MallocState (av)
      fastbins[10]    LIFO stacks of chunks 0x20..0xb0 (Python lists; head = end of list)
      bins[1..126]    BinSet: unsorted (1), small (2..63), large (64..126); binmap
      top, top_size   the wilderness chunk; top == 0 stands for ``initial_top`` (size 0)
      last_remainder  the remainder of the last split for a small request
      contiguous      False once mmap replaced a failed brk (NONCONTIGUOUS_BIT)
      system_mem      bytes obtained from brk/mmap-as-morecore

    heap of the main arena (one segment per contiguous brk region):

      sbrk_base                                                             brk
      | tcache 0x290 | chunk | chunk | free | ... | chunk |      top          |
                                                    |<- top_size ------------>|

Chunk bookkeeping, keyed by chunk address (memory is never simulated byte by byte):
``inuse`` (chunks the program holds -> size), ``internal`` (the tcache struct and other chunks
held by malloc itself), ``fences`` (old-top fenceposts -> size), fastbins, the tcache, and
the BinSet's ``free``. Every chunk of a segment is in exactly one of them, or is top.

``check()`` is ``do_check_malloc_state`` (L2285): walks every segment chunk by chunk and
asserts that the chunks tile it exactly, that no two free (binned) chunks are neighbours and
none borders top, that fastbin chunks have their bin's size, that top ends the last segment
and is >= MINSIZE, plus the BinSet invariants.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsim.alloc.glibc.bins import BinSet, Write
from memsim.alloc.glibc.chunk import (
    DEFAULT_MMAP_MAX,
    DEFAULT_MMAP_THRESHOLD,
    DEFAULT_MXFAST,
    DEFAULT_TOP_PAD,
    DEFAULT_TRIM_THRESHOLD,
    MINSIZE,
    NFASTBINS,
    TCACHE_FILL_COUNT,
    TCACHE_MAX_BINS,
    max_fast_for,
)


@dataclass
class MallocPar:
    """``struct malloc_par mp_`` (L1865) plus ``perturb_byte`` and ``global_max_fast``."""

    trim_threshold: int = DEFAULT_TRIM_THRESHOLD
    top_pad: int = DEFAULT_TOP_PAD
    mmap_threshold: int = DEFAULT_MMAP_THRESHOLD
    arena_test: int = 8
    arena_max: int = 0
    n_mmaps: int = 0
    n_mmaps_max: int = DEFAULT_MMAP_MAX
    max_n_mmaps: int = 0
    no_dyn_threshold: int = 0
    mmapped_mem: int = 0
    max_mmapped_mem: int = 0
    sbrk_base: int = 0
    tcache_bins: int = TCACHE_MAX_BINS
    tcache_max_bytes: int = 1032
    tcache_count: int = TCACHE_FILL_COUNT
    tcache_unsorted_limit: int = 0
    perturb_byte: int = 0
    global_max_fast: int = max_fast_for(DEFAULT_MXFAST)


class MallocState(BinSet):
    """One arena (``struct malloc_state``); see the module docstring."""

    def __init__(self, write: Write) -> None:
        super().__init__(write)
        self.fastbins: list[list[int]] = [[] for _ in range(NFASTBINS)]
        self.have_fastchunks = False
        self.top = 0                 # 0 = initial_top, a fake size-0 chunk in the arena
        self.top_size = 0
        self.last_remainder = 0
        self.contiguous = True
        self.system_mem = 0
        self.max_system_mem = 0
        self.inuse: dict[int, int] = {}
        self.internal: dict[int, int] = {}
        self.fences: dict[int, int] = {}
        self.segments: list[tuple[int, int]] = []   # closed segments [start, end)
        self.seg_start = 0                          # start of the segment that holds top

    def check_heap(self, cached: dict[int, int]) -> None:
        """``do_check_malloc_state``: ``cached`` maps tcache chunks to their sizes."""
        self.check()
        fast: dict[int, int] = {}
        for i, fb in enumerate(self.fastbins):
            for p in fb:
                assert p not in fast and p not in cached, f"fastbin chunk {p:#x} twice"
                fast[p] = (i + 2) * 16
        if self.top == 0:
            assert not (self.inuse or self.free or fast or cached), "chunks before the heap"
            return
        assert self.top_size >= MINSIZE, f"top {self.top:#x} too small: {self.top_size:#x}"
        segs = self.segments + [(self.seg_start, self.top + self.top_size)]
        count = 0
        for start, end in segs:
            p = start
            prev_free = False
            while p < end:
                if p == self.top:
                    assert not prev_free, "free chunk next to top"
                    assert p + self.top_size == end, "top does not end the heap"
                    p = end
                    count += 1
                    break
                for table in (self.inuse, self.free, fast, cached, self.internal, self.fences):
                    size = table.get(p)
                    if size is not None:
                        break
                else:
                    raise AssertionError(f"no chunk at {p:#x} (segment {start:#x}-{end:#x})")
                is_free = table is self.free
                assert not (prev_free and is_free), f"two free chunks meet at {p:#x}"
                prev_free = is_free
                assert size > 0 and size % 16 == 0, f"chunk {p:#x} bad size {size:#x}"
                p += size
                count += 1
            assert p == end, f"chunks overrun segment end {end:#x} (at {p:#x})"
        total = (len(self.inuse) + len(self.free) + len(fast) + len(cached)
                 + len(self.internal) + len(self.fences) + 1)
        assert count == total, f"{total - count} chunks outside the heap segments"
        assert self.have_fastchunks or not fast, "fastbin chunks but have_fastchunks clear"
        assert self.system_mem <= self.max_system_mem, "system_mem above its maximum"
