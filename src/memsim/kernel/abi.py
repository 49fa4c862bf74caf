"""The user/kernel boundary: constants of the Linux x86-64 ABI and the syscall contract.

This is the one interface through which allocators (``memsim.alloc``) reach the kernel layer,
in the manner of mimalloc's ``prim.h``: a short written contract, nothing more. An allocator
never touches VMAs, page tables or frames directly.

The contract (:class:`Syscalls`) mirrors the raw system calls, not the libc wrappers:

``sys_brk(addr) -> int``
    ``brk(2)`` as the kernel implements it: returns the break after the call. A refused
    request returns the old break (the kernel never returns an error code for brk). glibc's
    ``sbrk`` is built on top of this by the allocator that needs it.
``sys_mmap(addr, length, prot, flags) -> int``
    Anonymous mappings only (``fd=-1, offset=0``). Returns the address, or ``-errno``.
``sys_munmap(addr, length) -> int``
    ``0`` or ``-errno``.
``sys_mremap(old_addr, old_len, new_len, flags, new_addr=0) -> int``
    The (possibly new) address, or ``-errno``.
``sys_mprotect(addr, length, prot) -> int``
    ``0`` or ``-errno``.
``sys_madvise(addr, length, advice) -> int``
    ``0`` or ``-errno``.
``write(addr, length)`` / ``read(addr, length)``
    A memory access by user code, as the CPU would make it: faults pages in on demand. An
    access outside any VMA or against its protection raises
    :class:`memsim.errors.SegmentationFault`. Returns nothing.

Negative return values are ``-errno`` so that an allocator written like C code reads like C
code: ``if ret < 0: ...``. The user-facing :class:`memsim.Process` wraps these into Python
conventions (``None`` and ``proc.errno``).
"""

from __future__ import annotations

import errno as _errno
from typing import Protocol, runtime_checkable

from memsim.units import PAGE_SIZE

# --- protection bits (mman-common.h) -------------------------------------------------------
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

# --- mmap flags (mman-common.h, x86) ------------------------------------------------------
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x0100
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_STACK = 0x20000
MAP_FIXED_NOREPLACE = 0x100000
MAP_TYPE = 0x0F                 # the map-type field (MAP_SHARED, MAP_PRIVATE, ...)
MAP_32BIT = 0x40
MAP_LOCKED = 0x2000
MAP_NONBLOCK = 0x10000
MAP_HUGETLB = 0x40000

# --- mremap flags ---------------------------------------------------------------------------
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4

# --- madvise advice ------------------------------------------------------------------------
MADV_NORMAL = 0
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15

# --- errno values used by the memory syscalls ------------------------------------------------
EPERM = _errno.EPERM
ENOMEM = _errno.ENOMEM
EACCES = _errno.EACCES
EFAULT = _errno.EFAULT
EEXIST = _errno.EEXIST
EINVAL = _errno.EINVAL
ENOSPC = _errno.ENOSPC
EAGAIN = _errno.EAGAIN

# --- address-space geometry (x86-64, 4-level paging) ----------------------------------------
TASK_SIZE = (1 << 47) - PAGE_SIZE          # 0x7ffffffff000: top of user space
STACK_TOP = TASK_SIZE
MMAP_MIN_ADDR = 65536                      # effective floor: max(sysctl, LSM) on this machine
STACK_GUARD_GAP = 256 * PAGE_SIZE          # 1 MiB kept free below a VM_GROWSDOWN VMA
DEFAULT_MAX_MAP_COUNT = 65530
RLIM_INFINITY = (1 << 64) - 1


def errno_name(code: int) -> str:
    """``12 -> 'ENOMEM'`` (accepts ``-12`` too)."""
    return _errno.errorcode.get(abs(code), f"E{abs(code)}")


# --- flag names, as strace 6.1 prints them ---------------------------------------------------
# One table per argument; the formatters below are what logs and messages use.

_PROT_NAMES = ((PROT_READ, "PROT_READ"), (PROT_WRITE, "PROT_WRITE"), (PROT_EXEC, "PROT_EXEC"),
               (PROT_SEM, "PROT_SEM"), (PROT_GROWSDOWN, "PROT_GROWSDOWN"),
               (PROT_GROWSUP, "PROT_GROWSUP"))

#: mmap flag bits after the map type, in the order strace 6.1 prints them (its mmap_flags
#: table; observed: MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_GROWSDOWN|MAP_STACK).
_MAP_FLAG_NAMES = (
    (MAP_FIXED, "MAP_FIXED"), (MAP_ANONYMOUS, "MAP_ANONYMOUS"), (MAP_32BIT, "MAP_32BIT"),
    (MAP_NORESERVE, "MAP_NORESERVE"), (MAP_POPULATE, "MAP_POPULATE"),
    (MAP_NONBLOCK, "MAP_NONBLOCK"), (MAP_GROWSDOWN, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (MAP_LOCKED, "MAP_LOCKED"),
    (MAP_STACK, "MAP_STACK"), (MAP_HUGETLB, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
    (MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"))
_MAP_TYPE_NAMES = {MAP_SHARED: "MAP_SHARED", MAP_PRIVATE: "MAP_PRIVATE",
                   0x3: "MAP_SHARED_VALIDATE"}
_MREMAP_NAMES = ((MREMAP_MAYMOVE, "MREMAP_MAYMOVE"), (MREMAP_FIXED, "MREMAP_FIXED"),
                 (MREMAP_DONTUNMAP, "MREMAP_DONTUNMAP"))
_MADV_NAMES = {
    0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
    4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
    11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE",
    15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP", 18: "MADV_WIPEONFORK",
    19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ",
    23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED", 25: "MADV_COLLAPSE"}


def _bit_names(value: int, table: tuple[tuple[int, str], ...]) -> list[str]:
    """The names of the bits of ``value`` in ``table`` order, leftover bits as one hex number."""
    names = []
    for bit, name in table:
        if value & bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(f"{value:#x}")
    return names


def prot_names(prot: int) -> str:
    """``3`` -> ``"PROT_READ|PROT_WRITE"``; ``0`` -> ``"PROT_NONE"``."""
    return "|".join(_bit_names(prot, _PROT_NAMES)) or "PROT_NONE"


def map_flag_names(flags: int) -> str:
    """``0x22`` -> ``"MAP_PRIVATE|MAP_ANONYMOUS"`` (the map type first, then strace's order)."""
    kind = flags & MAP_TYPE
    names = [_MAP_TYPE_NAMES.get(kind, f"{kind:#x}")] if kind else []
    names += _bit_names(flags & ~MAP_TYPE, _MAP_FLAG_NAMES)
    return "|".join(names) or "0"


def mremap_flag_names(flags: int) -> str:
    """``3`` -> ``"MREMAP_MAYMOVE|MREMAP_FIXED"``; ``0`` -> ``"0"``."""
    return "|".join(_bit_names(flags, _MREMAP_NAMES)) or "0"


def madvise_name(advice: int) -> str:
    """``4`` -> ``"MADV_DONTNEED"`` (an unknown advice as its number)."""
    return _MADV_NAMES.get(advice, str(advice))


@runtime_checkable
class Syscalls(Protocol):
    """What an allocator may ask of the kernel. See the module docstring for the contract."""

    def sys_brk(self, addr: int) -> int: ...

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int: ...

    def sys_munmap(self, addr: int, length: int) -> int: ...

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int: ...

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int: ...

    def sys_madvise(self, addr: int, length: int, advice: int) -> int: ...

    def write(self, addr: int, length: int = 1) -> None: ...

    def read(self, addr: int, length: int = 1) -> None: ...
