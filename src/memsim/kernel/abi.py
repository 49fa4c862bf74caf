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
