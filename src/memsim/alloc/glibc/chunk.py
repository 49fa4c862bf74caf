"""Chunks of glibc 2.36 malloc on x86-64: constants, flag bits and the size arithmetic.

A *chunk* is ptmalloc's unit. Its address ``p`` is its header; the pointer the program sees
is ``mem = p + 16`` (``chunk2mem``, malloc.c L1299). The header holds two words::

        chunk p -> +-------------------------------------------------+
                   | prev_size: size of the previous chunk, if free  |  p+0   (belongs to prev)
                   +-------------------------------------------------+
                   | size of this chunk                      |A|M|P|  p+8
          mem  ->  +-------------------------------------------------+
                   | user data ...  (when free: fd, bk,              |  p+16
                   |   large free chunks also fd_nextsize,           |
                   |   bk_nextsize; tcache entries: next, key)       |
                   .                                                 .
      next chunk-> +-------------------------------------------------+
                   | prev_size  (user data while this chunk is used) |  p+size
                   +-------------------------------------------------+

* ``P`` (PREV_INUSE, 0x1): the physically previous chunk is in use. Chunks in the tcache and
  in fastbins count as in use. ``M`` (IS_MMAPPED, 0x2): the chunk is its own mmap.
  ``A`` (NON_MAIN_ARENA, 0x4): the chunk belongs to a thread arena.
* A used chunk borrows the next chunk's ``prev_size`` word: usable size is ``size - 8``
  (``size - 16`` for mmapped chunks, which have no next chunk).

Sizes (``request2size``, L1326)::

    nb = max(MINSIZE, (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK)
       = max(32, (req + 23) & ~15)          0..24 -> 0x20, 25..40 -> 0x30, 1000 -> 0x3f0

Bins (``smallbin_index`` L1596, ``largebin_index_64`` L1602, ``fastbin_index`` L1742,
``csize2tidx`` L315): bin 1 is the unsorted bin, 2..63 the small bins (one size each, 0x20 ..
0x3f0), 64..126 the large bins (size ranges, sorted inside). Fastbins 0..9 hold sizes 0x20
.. 0xb0 (only up to ``global_max_fast``, 0x80 by default). tcache bins 0..63 hold sizes 0x20
.. 0x410.

Nothing here has state; ``check()`` is therefore a self-test of the tables (every size maps
to exactly one bin, and bins are monotonic in size).
"""

from __future__ import annotations

from memsim.units import KiB, MiB

SIZE_SZ = 8                                  # bytes, sizeof(INTERNAL_SIZE_T)
MALLOC_ALIGNMENT = 16                        # bytes
MALLOC_ALIGN_MASK = MALLOC_ALIGNMENT - 1
CHUNK_HDR_SZ = 2 * SIZE_SZ                   # bytes: prev_size + size
MIN_CHUNK_SIZE = 32                          # bytes: offsetof(malloc_chunk, fd_nextsize)
MINSIZE = 32                                 # bytes

PREV_INUSE = 0x1
IS_MMAPPED = 0x2
NON_MAIN_ARENA = 0x4
SIZE_BITS = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA

NBINS = 128
NSMALLBINS = 64
SMALLBIN_WIDTH = MALLOC_ALIGNMENT
MIN_LARGE_SIZE = NSMALLBINS * SMALLBIN_WIDTH  # 0x400 bytes
UNSORTED = 1                                 # bin index of the unsorted bin

DEFAULT_MXFAST = 64 * SIZE_SZ // 4           # 128 bytes of request -> global_max_fast 0x80
MAX_FAST_SIZE = 80 * SIZE_SZ // 4            # 160 bytes of request
NFASTBINS = 10
FASTBIN_CONSOLIDATION_THRESHOLD = 64 * KiB   # bytes

TCACHE_MAX_BINS = 64
TCACHE_FILL_COUNT = 7
MAX_TCACHE_COUNT = 65535
MAX_TCACHE_SIZE = 1032                       # bytes of request (chunk 0x410)
TCACHE_STRUCT_SIZE = 2 * TCACHE_MAX_BINS + 8 * TCACHE_MAX_BINS   # 640 bytes: counts + entries

DEFAULT_TOP_PAD = 128 * KiB                  # sysdeps/generic/malloc-machine.h
DEFAULT_TRIM_THRESHOLD = 128 * KiB
DEFAULT_MMAP_THRESHOLD_MIN = 128 * KiB
DEFAULT_MMAP_THRESHOLD = DEFAULT_MMAP_THRESHOLD_MIN
DEFAULT_MMAP_THRESHOLD_MAX = 4 * MiB * SIZE_SZ   # 32 MiB on 64-bit
DEFAULT_MMAP_MAX = 65536
MMAP_AS_MORECORE_SIZE = 1 * MiB
MAX_ITERS = 10000                            # unsorted-scan limit in _int_malloc
PTRDIFF_MAX = (1 << 63) - 1
SIZE_MAX = (1 << 64) - 1
PAGESIZE = 4096                              # bytes, GLRO(dl_pagesize)


def request2size(req: int) -> int:
    """``request2size`` (L1326): the chunk size malloc looks for, ``nb``."""
    if req + SIZE_SZ + MALLOC_ALIGN_MASK < MINSIZE:
        return MINSIZE
    return (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK


def checked_request2size(req: int) -> int:
    """``checked_request2size`` (L1336): 0 for a request above PTRDIFF_MAX, else nb."""
    if req > PTRDIFF_MAX:
        return 0
    return request2size(req)


def smallbin_index(size: int) -> int:
    """``smallbin_index`` (L1596): sizes 0x20..0x3f0 -> bins 2..63."""
    return size >> 4


def largebin_index(size: int) -> int:
    """``largebin_index_64`` (L1602): sizes >= 0x400 -> bins 64..126."""
    if (size >> 6) <= 48:
        return 48 + (size >> 6)
    if (size >> 9) <= 20:
        return 91 + (size >> 9)
    if (size >> 12) <= 10:
        return 110 + (size >> 12)
    if (size >> 15) <= 4:
        return 119 + (size >> 15)
    if (size >> 18) <= 2:
        return 124 + (size >> 18)
    return 126


def bin_index(size: int) -> int:
    """``bin_index`` (L1618): the small or large bin a free chunk of ``size`` belongs in."""
    return size >> 4 if size < MIN_LARGE_SIZE else largebin_index(size)


def in_smallbin_range(size: int) -> bool:
    """``in_smallbin_range`` (L1590)."""
    return size < MIN_LARGE_SIZE


def fastbin_index(size: int) -> int:
    """``fastbin_index`` (L1742): chunk 0x20 -> 0 ... 0xb0 -> 9."""
    return (size >> 4) - 2


def csize2tidx(size: int) -> int:
    """``csize2tidx`` (L315): chunk 0x20 -> tcache bin 0 ... 0x410 -> 63."""
    return (size - MINSIZE + MALLOC_ALIGNMENT - 1) // MALLOC_ALIGNMENT


def tidx2usize(idx: int) -> int:
    """``tidx2usize`` (L311): the largest request served by tcache bin ``idx``."""
    return idx * MALLOC_ALIGNMENT + MINSIZE - SIZE_SZ


def max_fast_for(value: int) -> int:
    """``set_max_fast`` (L1785): global_max_fast for an M_MXFAST request of ``value`` bytes."""
    if value <= MALLOC_ALIGN_MASK - SIZE_SZ:
        return MIN_CHUNK_SIZE // 2
    return (value + SIZE_SZ) & ~MALLOC_ALIGN_MASK


def align_up(value: int, alignment: int) -> int:
    """``ALIGN_UP`` for a power-of-two alignment."""
    return (value + alignment - 1) & ~(alignment - 1)


def align_down(value: int, alignment: int) -> int:
    """``ALIGN_DOWN`` for a power-of-two alignment."""
    return value & ~(alignment - 1)


def check() -> None:
    """Self-test of the size tables: each size has one bin; bin indices never decrease."""
    assert request2size(0) == MINSIZE and request2size(24) == 0x20 and request2size(25) == 0x30
    prev = 0
    for size in range(MINSIZE, 1 << 20, MALLOC_ALIGNMENT):
        b = bin_index(size)
        assert 2 <= b <= 126, (size, b)
        assert b >= prev, (size, b, prev)
        prev = b
    assert csize2tidx(0x20) == 0 and csize2tidx(0x410) == TCACHE_MAX_BINS - 1
    assert fastbin_index(0x20) == 0 and fastbin_index(0xb0) == NFASTBINS - 1
