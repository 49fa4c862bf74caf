"""The binary buddy system (Knowlton 1965; Knuth TAOCP 2.5, Algorithms R and S).

Memory comes from sbrk in arenas of ``arena`` bytes (a power of two, default 1 MiB). An arena
is one block of the largest order; a block of order k is 2^k bytes, lies at an offset from the
heap start that is a multiple of 2^k, and its *buddy* is the block at that offset XOR 2^k::

    arena (1 MiB) after malloc(100) with 16-byte headers (block of 128 = order 7):
    offset 0        128      256      512      1K ...    512K                1M
           | A(128) | F(128) | F(256) | F(512) | ...     | F(512K)            |
             ^ allocated: [header: order | payload ...]
    free block: [header: order, free | next | prev | ...]   buddy(off, k) = off ^ (1 << k)

malloc(size): k = the smallest order with 2^k >= size + header (at least ``min_block``);
take a block from the free list of the smallest non-empty order j >= k (a bitmap of the
non-empty orders finds it), split it j - k times, filing each upper half on the free list of
its order. free(ptr): while the buddy is free and of the same order, take it off its list and
merge; file the result. Requests whose block would exceed an arena get their own mmap.
realloc shrinks in place by giving back upper halves, and grows in place by absorbing free
upper buddies. memalign: a block of order >= log2(alignment) is aligned to it (headerless),
or a larger block holds an aligned payload (with headers). malloc_trim gives back whole free
arenas at the end of the heap.

Costs: malloc O(orders) = O(log(arena / min_block)) splits; free O(orders) merges; both
[real: the same] with O(1) list operations (dicts used as doubly linked lists).

Invariants (``check()``): every arena is tiled exactly by allocated and free blocks, each a
power of two between min_block and the arena, aligned to its size; no free block has a free
buddy of the same order; the free lists are exactly the free blocks, by order, and the
bitmap says which are non-empty; the byte counters equal the sums.
"""

from __future__ import annotations

from typing import Any

from memsim.alloc.base import HeapUsage, register
from memsim.alloc.classic import ClassicAllocator, option_error, power_of_two
from memsim.kernel.abi import Syscalls
from memsim.units import PAGE_SIZE, MiB

__all__ = ["Buddy"]

LINKS = 16


@register("buddy", "binary buddy system: power-of-two blocks split and merged with their "
                   "buddies, 1 MiB arenas from sbrk")
class Buddy(ClassicAllocator):
    """The binary buddy system. Options: ``arena`` (bytes, a power of two >= a page: the
    largest block and the heap growth step), ``min_block`` (a power of two >= 32: the
    smallest block), ``header`` (0 or 16: bytes before each payload holding the order;
    0 keeps the order in a side table, as the Linux page allocator keeps it in struct page)."""

    defaults: dict[str, Any] = {"arena": 1 * MiB, "min_block": 32, "header": 16}

    def __init__(self, syscalls: Syscalls, **options: Any) -> None:
        super().__init__(syscalls)
        o = self.resolve_options(options)
        self.options = o
        cls = type(self)
        arena, mb, hdr = o["arena"], o["min_block"], o["header"]
        if not isinstance(arena, int) or not power_of_two(arena) or arena < PAGE_SIZE:
            raise option_error(cls, "arena", arena, "a power of two >= 4096")
        if not isinstance(mb, int) or not power_of_two(mb) or not 32 <= mb <= arena:
            raise option_error(cls, "min_block", mb, "a power of two, 32 .. arena")
        if hdr not in (0, 16):
            raise option_error(cls, "header", hdr, "0 or 16")
        self.hdr = hdr
        self.arena = arena
        self.min_order = mb.bit_length() - 1
        self.max_order = arena.bit_length() - 1
        self.lists: list[dict[int, None]] = [{} for _ in range(self.max_order + 1)]
        self.free_order: dict[int, int] = {}       # free block -> order
        self.alloc: dict[int, int] = {}            # ptr -> order
        self.block_of: dict[int, int] = {}         # ptr -> block, when ptr != block + hdr
        self.bitmap = 0                            # bit k: an order-k block is free
        self.base = 0                              # the break before the first sbrk
        self.heap_start = 0
        self.heap_end = 0
        self.in_use_bytes = 0
        self.free_bytes = 0

    # --- free lists -----------------------------------------------------------------------------
    def _push(self, blk: int, k: int) -> None:
        self.lists[k][blk] = None
        self.free_order[blk] = k
        self.bitmap |= 1 << k
        self.free_bytes += 1 << k
        self.w(blk, self.hdr + LINKS if self.hdr else LINKS)

    def _unlink(self, blk: int, k: int) -> None:
        d = self.lists[k]
        del d[blk]
        del self.free_order[blk]
        if not d:
            self.bitmap &= ~(1 << k)
        self.free_bytes -= 1 << k

    def _new_arena(self) -> bool:
        if not self.heap_start:
            base = self.sbrk(0)
            lead = -base & (PAGE_SIZE - 1)
            if self.sbrk(lead + self.arena) == -1:
                return False
            self.base = base
            self.heap_start = self.heap_end = base + lead
        elif self.sbrk(self.arena) == -1:
            return False
        blk = self.heap_end
        self.heap_end += self.arena
        self._push(blk, self.max_order)
        return True

    def _take(self, k: int) -> int:
        """A block of order ``k`` (split from the smallest larger free block), or 0."""
        bits = self.bitmap >> k
        if not bits:
            if not self._new_arena():
                return 0
            bits = self.bitmap >> k
        j = k + (bits & -bits).bit_length() - 1
        d = self.lists[j]
        blk = next(reversed(d))
        self._unlink(blk, j)
        while j > k:
            j -= 1
            self._push(blk + (1 << j), j)
        return blk

    def _order(self, n: int) -> int:
        k = (n - 1).bit_length() if n > 1 else 0
        return k if k > self.min_order else self.min_order

    # --- policy hooks --------------------------------------------------------------------------
    def _malloc(self, size: int) -> int:
        n = size + self.hdr
        if n > self.arena:
            return self.big_alloc(size, 16, 16)
        k = self._order(n)
        blk = self._take(k)
        if not blk:
            return 0
        ptr = blk + self.hdr
        self.alloc[ptr] = k
        self.in_use_bytes += 1 << k
        if self.hdr:
            self.w(blk, self.hdr)
        return ptr

    def _free(self, ptr: int) -> None:
        k = self.alloc.pop(ptr, None)
        if k is None:
            if ptr in self.big:
                self.big_free(ptr)
                return
            raise self._misuse("free", ptr)
        blk = self.block_of.pop(ptr, ptr - self.hdr)
        self.in_use_bytes -= 1 << k
        self._release(blk, k)

    def _release(self, blk: int, k: int) -> None:
        """Merge ``blk`` (order k, no longer allocated) with free buddies and file it."""
        start = self.heap_start
        fo = self.free_order
        while k < self.max_order:
            buddy = start + ((blk - start) ^ (1 << k))
            if fo.get(buddy) != k:
                break
            self._unlink(buddy, k)
            if buddy < blk:
                blk = buddy
            k += 1
        self._push(blk, k)

    def _usable(self, ptr: int) -> int:
        k = self.alloc.get(ptr)
        if k is None:
            raise self._misuse("malloc_usable_size", ptr)
        blk = self.block_of.get(ptr, ptr - self.hdr)
        return blk + (1 << k) - ptr

    def _resize(self, ptr: int, size: int) -> bool:
        k = self.alloc[ptr]
        blk = self.block_of.get(ptr, ptr - self.hdr)
        need = self._order(ptr - blk + size)
        if need > self.max_order:
            return False
        start = self.heap_start
        if need < k:                                # give back upper halves
            self.in_use_bytes -= (1 << k) - (1 << need)
            while k > need:
                k -= 1
                self._push(blk + (1 << k), k)
            self.alloc[ptr] = k
            return True
        j = k
        while j < need:                             # are the upper buddies all free?
            if (blk - start) & (1 << j) or self.free_order.get(blk + (1 << j)) != j:
                return False
            j += 1
        while k < need:
            self._unlink(blk + (1 << k), k)
            self.in_use_bytes += 1 << k
            k += 1
        self.alloc[ptr] = k
        if self.hdr:
            self.w(blk, self.hdr)
        return True

    def _memalign(self, alignment: int, size: int) -> int:
        if alignment > PAGE_SIZE:
            return self.big_alloc(size, alignment, 16)
        n = max(size, alignment) if not self.hdr else max(size, 1) + self.hdr + alignment - 16
        if n > self.arena:
            return self.big_alloc(size, alignment, 16)
        k = self._order(n)
        blk = self._take(k)
        if not blk:
            return 0
        ptr = (blk + self.hdr + alignment - 1) & -alignment
        self.alloc[ptr] = k
        if ptr != blk + self.hdr:
            self.block_of[ptr] = blk
        self.in_use_bytes += 1 << k
        if self.hdr:
            self.w(ptr - self.hdr, self.hdr)
        return ptr

    def malloc_trim(self, pad: int) -> int:
        """Give back the whole free arenas at the end of the heap (keeping ``pad`` bytes)."""
        trailing = 0
        end = self.heap_end
        while end > self.heap_start and self.free_order.get(end - self.arena) == self.max_order:
            end -= self.arena
            trailing += 1
        keep = -(-pad // self.arena)
        released = 0
        for _ in range(trailing - keep):
            last = self.heap_end - self.arena
            self._unlink(last, self.max_order)
            if self.sbrk(-self.arena) == -1:
                self._push(last, self.max_order)
                break
            self.heap_end = last
            released = 1
        return released

    # --- accounting -----------------------------------------------------------------------------
    def usage(self) -> HeapUsage:
        """in_use: allocated blocks (power-of-two sizes: rounding and headers included) and big
        mappings; free: free blocks; overhead: the page-alignment lead, big-mapping leads."""
        heap = (self.curbrk - self.base) if self.curbrk is not None and self.heap_start else 0
        lead = self.big_lead()
        return HeapUsage(in_use=self.in_use_bytes + self.big_bytes - lead, free=self.free_bytes,
                         top=0, overhead=heap - (self.heap_end - self.heap_start) + lead,
                         total=heap + self.big_bytes)

    def check(self) -> None:
        self.check_big()
        start = self.heap_start
        blocks: dict[int, tuple[int, bool]] = {}
        for ptr, k in self.alloc.items():
            blk = self.block_of.get(ptr, ptr - self.hdr)
            assert blk <= ptr - self.hdr and ptr + 1 <= blk + (1 << k), f"ptr {ptr:#x}"
            blocks[blk] = (k, False)
        for blk, k in self.free_order.items():
            assert blk not in blocks, f"block {blk:#x} both free and allocated"
            assert blk in self.lists[k], f"free block {blk:#x} not on list {k}"
            blocks[blk] = (k, True)
        assert sum(len(d) for d in self.lists) == len(self.free_order), "list lengths"
        bitmap = sum(1 << k for k, d in enumerate(self.lists) if d)
        assert bitmap == self.bitmap, "bitmap"
        blk = start
        while blk < self.heap_end:
            entry = blocks.pop(blk, None)
            assert entry is not None, f"no block at {blk:#x}"
            k, is_free = entry
            assert self.min_order <= k <= self.max_order, f"order {k} at {blk:#x}"
            assert (blk - start) % (1 << k) == 0, f"block {blk:#x} misaligned for order {k}"
            if is_free and k < self.max_order:
                buddy = start + ((blk - start) ^ (1 << k))
                assert self.free_order.get(buddy) != k, f"free buddies {blk:#x} {buddy:#x}"
            blk += 1 << k
        assert blk == self.heap_end and not blocks, "blocks do not tile the arenas"
        assert self.in_use_bytes == sum(1 << k for k in self.alloc.values()), "in_use_bytes"
        assert self.free_bytes == sum(1 << k for k in self.free_order.values()), "free_bytes"
        if self.heap_start:
            assert self.curbrk == self.heap_end, "brk is not the end of the last arena"
