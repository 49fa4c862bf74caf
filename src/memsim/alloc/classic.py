"""What the classic allocators share: sbrk, mmapped blocks, argument checks, the C entry points.

The textbook allocators of memsim (sequential fits, segregated fits, simple segregated
storage, the binary buddy system, the size-class page allocator) differ in how they place
blocks, and agree on everything around that. This module holds the common part, on the same
kernel boundary as the glibc model: the kernel is reached only through
:class:`memsim.kernel.abi.Syscalls` (``sys_brk``, ``sys_mmap``, ``sys_munmap``,
``sys_madvise``), and every store the allocator makes into memory (headers, footers, links)
is a ``self.w(addr, length)`` call, so the simulated RSS is right::

        malloc/free/calloc/realloc/memalign (the C entry points, this module)
                |                      \\
                v                       v
        the policy of the subclass      big blocks: one anonymous mmap per block
        (_malloc, _free, _usable,            +---------+-------------------------------+
         _resize, _memalign)                  | lead    |hdr| payload ...       | slack |
                |                             +---------+---+-----------------------------+
                v                             ^ map start   ^ ptr (aligned)        map end ^
        sbrk(increment): glibc's __sbrk on sys_brk (cached break)

Conventions (those of :mod:`memsim.alloc.base`): a pointer is an int, 0 is NULL and sets
``errno`` to ENOMEM; a NULL is returned exactly when the kernel refused memory (brk or mmap
failed) or the request cannot be represented (larger than PTRDIFF_MAX). Misuse by the
program (double free, a pointer never returned) raises :class:`AllocatorAbort`; the textbook
allocators would not notice it (they would corrupt their lists), so it is raised with
``detected=False``.

Writes that are not issued, on purpose: the list-neighbour link stores of a doubly linked
free list (``prev->next = next``). They rewrite link fields of free blocks whose own insertion
already wrote them, so they fall on pages that are resident already (no allocator here gives
back a page that still holds a listed free block): RSS is the same with or without them.

Invariants checked by :meth:`ClassicAllocator.check_big`: each big block lies in its own
mapping, page-aligned, and ``big_bytes`` is the sum of the mapping lengths.
"""

from __future__ import annotations

from typing import Any

from memsim.alloc.base import Allocator, AllocatorAbort
from memsim.errors import ConfigError
from memsim.kernel.abi import (
    EINVAL,
    ENOMEM,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Syscalls,
)
from memsim.units import PAGE_SIZE

__all__ = ["ClassicAllocator", "option_error", "power_of_two"]

SIZE_MAX = (1 << 64) - 1
PTRDIFF_MAX = (1 << 63) - 1
PAGE_MASK = PAGE_SIZE - 1
_RW = PROT_READ | PROT_WRITE
_ANON = MAP_PRIVATE | MAP_ANONYMOUS


def power_of_two(x: int) -> bool:
    return x > 0 and not x & (x - 1)


def option_error(cls: type, name: str, value: object, rule: str) -> ConfigError:
    """A one-line error for a bad allocator option."""
    return ConfigError(f"{getattr(cls, 'name', '') or cls.__name__}: option {name}={value!r}: "
                       f"{rule}")


def _size_arg(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= SIZE_MAX:
        raise ConfigError(f"{what}: {value!r} is not a size_t (0 .. 2**64-1)")
    return value


class ClassicAllocator(Allocator):
    """The C entry points over five policy hooks, plus sbrk and mmapped big blocks.

    A subclass implements ``_malloc(size) -> ptr|0``, ``_free(ptr)`` (raise via
    :meth:`_misuse` for a pointer it does not own), ``_usable(ptr) -> int``,
    ``_resize(ptr, size) -> bool`` (grow or shrink in place) and
    ``_memalign(alignment, size) -> ptr|0`` (alignment > ``self.alignment``), ``check()`` and
    ``usage()``.
    """

    #: the alignment of every pointer malloc returns (bytes)
    alignment: int = 16
    #: options the subclass accepts, with their defaults (a registered configuration
    #: overrides some of them)
    defaults: dict[str, Any] = {}

    def __init__(self, syscalls: Syscalls) -> None:
        super().__init__(syscalls)
        self.w = syscalls.write
        self.curbrk: int | None = None            # glibc's __curbrk
        self.big: dict[int, tuple[int, int]] = {}  # ptr -> (map start, map length)
        self.big_bytes = 0

    @classmethod
    def resolve_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The class defaults overridden by ``options``; an unknown option is a ConfigError."""
        unknown = sorted(set(options) - set(cls.defaults))
        if unknown:
            raise ConfigError(f"{getattr(cls, 'name', '') or cls.__name__}: unknown option"
                              f"{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(cls.defaults))})")
        merged = dict(cls.defaults)
        merged.update(options)
        return merged

    # --- the kernel ------------------------------------------------------------------------
    def sbrk(self, increment: int) -> int:
        """glibc's ``__sbrk`` over ``sys_brk``: the old break, or -1 when the kernel refused."""
        if self.curbrk is None:
            self.curbrk = self.sys.sys_brk(0)
        old = self.curbrk
        if increment == 0:
            return old
        if old + increment < 0:
            return -1
        self.curbrk = self.sys.sys_brk(old + increment)
        if self.curbrk != old + increment:
            self.errno = ENOMEM
            return -1
        return old

    def mmap(self, length: int) -> int:
        """An anonymous private read-write mapping; 0 (errno set) when the kernel refused."""
        r = self.sys.sys_mmap(0, length, _RW, _ANON)
        if r < 0:
            self.errno = -r
            return 0
        return r

    def munmap(self, addr: int, length: int) -> None:
        r = self.sys.sys_munmap(addr, length)
        assert r == 0, f"munmap({addr:#x}, {length}) failed: {r}"

    # --- big blocks: one mmap each -----------------------------------------------------------
    def big_alloc(self, size: int, alignment: int = 16, header: int = 16) -> int:
        """A block in its own mapping with ``header`` bytes before the ``alignment``-aligned
        payload (written); 0 when mmap failed. For alignments above a page the mapping is
        made larger and the unaligned lead and the tail are unmapped (as mimalloc and musl
        do for aligned huge blocks)."""
        header = max(header, 0)
        if alignment <= PAGE_SIZE:
            off = (header + alignment - 1) & -alignment
            length = (off + max(size, 1) + PAGE_MASK) & ~PAGE_MASK
            start = self.mmap(length)
            if not start:
                return 0
            ptr = start + off
        else:
            need = (header + size + PAGE_MASK) & ~PAGE_MASK
            raw_len = need + alignment + PAGE_SIZE
            raw = self.mmap(raw_len)
            if not raw:
                return 0
            ptr = (raw + header + alignment - 1) & -alignment
            start = (ptr - header) & ~PAGE_MASK
            end = (ptr + size + PAGE_MASK) & ~PAGE_MASK
            if end == ptr:
                end += PAGE_SIZE                       # at least one byte usable
            if start > raw:
                self.munmap(raw, start - raw)
            if raw + raw_len > end:
                self.munmap(end, raw + raw_len - end)
            length = end - start
        if header:
            self.w(ptr - header, header)
        self.big[ptr] = (start, length)
        self.big_bytes += length
        return ptr

    def big_free(self, ptr: int) -> None:
        start, length = self.big.pop(ptr)
        self.big_bytes -= length
        self.munmap(start, length)

    def big_usable(self, ptr: int) -> int:
        start, length = self.big[ptr]
        return start + length - ptr

    def big_lead(self) -> int:
        """Bytes of the big mappings before their payloads (headers and alignment lead)."""
        return sum(ptr - start for ptr, (start, _) in self.big.items())

    def check_big(self) -> None:
        total = 0
        for ptr, (start, length) in self.big.items():
            assert start % PAGE_SIZE == 0 and length % PAGE_SIZE == 0, f"big {ptr:#x} map"
            assert start < ptr < start + length, f"big {ptr:#x} outside its mapping"
            total += length
        assert total == self.big_bytes, "big_bytes disagrees with the big blocks"

    # --- misuse ---------------------------------------------------------------------------
    def _misuse(self, func: str, ptr: int) -> AllocatorAbort:
        """What the program did wrong, as an AllocatorAbort the textbook allocator would not
        have raised (it would have corrupted its lists)."""
        return AllocatorAbort(f"{func}(): invalid pointer or double free", ptr, detected=False)

    # --- the policy hooks ---------------------------------------------------------------------
    def _malloc(self, size: int) -> int:
        raise NotImplementedError

    def _free(self, ptr: int) -> None:
        raise NotImplementedError

    def _usable(self, ptr: int) -> int:
        raise NotImplementedError

    def _resize(self, ptr: int, size: int) -> bool:
        return False

    def _memalign(self, alignment: int, size: int) -> int:
        raise NotImplementedError

    # --- the C entry points -------------------------------------------------------------------
    def malloc(self, size: int) -> int:
        """``malloc(size)``: a pointer aligned to ``self.alignment``, or 0 (errno ENOMEM)."""
        if not 0 <= size <= PTRDIFF_MAX:
            _size_arg(size, "malloc")
            self.errno = ENOMEM
            return 0
        p = self._malloc(size)
        if not p:
            self.errno = ENOMEM
        return p

    def free(self, ptr: int) -> None:
        """``free(ptr)``; ``free(0)`` does nothing."""
        if ptr:
            self._free(ptr)

    def calloc(self, nmemb: int, size: int) -> int:
        """``calloc``: malloc, then clear the requested bytes (fresh mmaps are zero already)."""
        if type(nmemb) is not int or type(size) is not int or \
                not 0 <= nmemb <= SIZE_MAX or not 0 <= size <= SIZE_MAX:
            _size_arg(nmemb, "calloc")             # raises for whichever is not a size_t
            _size_arg(size, "calloc")
        n = nmemb * size
        if n > PTRDIFF_MAX:
            self.errno = ENOMEM
            return 0
        p = self.malloc(n)
        if p and n and p not in self.big:
            self.w(p, n)
        return p

    def realloc(self, ptr: int, size: int) -> int:
        """``realloc``: in place when the policy can, else malloc + copy + free. ``realloc(p,
        0)`` frees and returns NULL (glibc's behaviour); on failure ``ptr`` is untouched."""
        if type(size) is not int or not 0 <= size <= SIZE_MAX:
            _size_arg(size, "realloc")
        if not ptr:
            return self.malloc(size)
        if size == 0:
            self.free(ptr)
            return 0
        old = self.malloc_usable_size(ptr)
        if size > PTRDIFF_MAX:
            self.errno = ENOMEM
            return 0
        if ptr not in self.big and self._resize(ptr, size):
            return ptr
        if ptr in self.big and old >= size and old - size < PAGE_SIZE:
            return ptr
        new = self.malloc(size)
        if not new:
            return 0
        self.w(new, min(old, size))               # memcpy
        self.free(ptr)
        return new

    def memalign(self, alignment: int, size: int) -> int:
        """``memalign``: a non power of two alignment is rounded up to one, as glibc does."""
        _size_arg(alignment, "memalign")
        _size_arg(size, "memalign")
        if alignment <= self.alignment:
            return self.malloc(size)
        if alignment > (1 << 62) or size > PTRDIFF_MAX:
            self.errno = EINVAL if alignment > (1 << 62) else ENOMEM
            return 0
        if alignment & (alignment - 1):
            alignment = 1 << alignment.bit_length()
        p = self._memalign(alignment, size)
        if not p:
            self.errno = ENOMEM
        return p

    def malloc_usable_size(self, ptr: int) -> int:
        if not ptr:
            return 0
        if ptr in self.big:
            return self.big_usable(ptr)
        return self._usable(ptr)
