"""The per-thread cache (tcache, glibc 2.26+): 64 LIFO stacks of recently freed chunks.

The cache lives in the heap, in the first chunk malloc ever carves (``tcache_init``, malloc.c
L3229): a ``tcache_perthread_struct`` of 640 bytes, chunk size 0x290::

     tcache chunk  +0x00  prev_size | size 0x291
     struct (mem)  +0x10  uint16_t counts[64]        128 bytes
                   +0x90  tcache_entry *entries[64]  512 bytes
                   +0x290 (next chunk)

     a cached chunk:  mem+0: next (safe-linked pointer to the next entry)
                      mem+8: key  (tcache_key, marks "this chunk is in a tcache")

Bin ``tidx`` holds chunks of size ``32 + 16*tidx`` (0x20 .. 0x410), at most ``tcache_count``
(7) of them. ``tcache_put`` (L3154) pushes on the head and ``tcache_get`` (L3168) pops it, so
each bin is a Python list used as a stack (the head is the end of the list). Cached chunks
keep the look of used chunks (the next chunk's P bit stays set); they are never coalesced.

Every store is a ``syscalls.write``: the entry's next/key words, and ``counts[tidx]`` plus
``entries[tidx]`` in the struct (one write spanning both: it touches exactly the pages the
two stores touch, as the struct is smaller than a page).

``check()`` asserts: no chunk is cached twice, each bin holds at most ``tcache_count`` chunks
(when the limit is lowered by the tunable it still holds), and chunks are 16-aligned.
"""

from __future__ import annotations

from collections.abc import Callable

from memsim.alloc.glibc.chunk import TCACHE_MAX_BINS

Write = Callable[[int, int], None]


class Tcache:
    """``tcache_perthread_struct`` at chunk ``chunk`` (its struct begins at ``chunk + 16``)."""

    __slots__ = ("chunk", "mem", "entries", "w")

    def __init__(self, chunk: int, write: Write) -> None:
        self.chunk = chunk
        self.mem = chunk + 16
        self.entries: list[list[int]] = [[] for _ in range(TCACHE_MAX_BINS)]
        self.w = write

    def put(self, p: int, tidx: int) -> None:
        """``tcache_put`` (L3154): push chunk ``p`` on bin ``tidx``."""
        self.entries[tidx].append(p)
        w = self.w
        w(p + 16, 16)                                       # e->next, e->key
        w(self.mem + 2 * tidx, 136 + 6 * tidx)              # counts[tidx] .. entries[tidx]

    def get(self, tidx: int) -> int:
        """``tcache_get`` (L3168): pop the head of bin ``tidx``; returns the chunk."""
        p = self.entries[tidx].pop()
        w = self.w
        w(self.mem + 2 * tidx, 136 + 6 * tidx)
        w(p + 24, 8)                                        # e->key = 0
        return p

    def where(self, p: int) -> int:
        """The bin holding chunk ``p``, or -1 (linear: used only to diagnose misuse)."""
        for tidx, stack in enumerate(self.entries):
            if p in stack:
                return tidx
        return -1

    def check(self, tcache_count: int) -> None:
        seen: set[int] = set()
        for tidx, stack in enumerate(self.entries):
            assert len(stack) <= max(tcache_count, 0), f"tcache bin {tidx} over its count"
            for p in stack:
                assert p % 16 == 0 and p not in seen, f"tcache bin {tidx}: bad entry {p:#x}"
                seen.add(p)
