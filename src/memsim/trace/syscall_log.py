"""A recording proxy for :class:`memsim.kernel.abi.Syscalls`: what the allocator asked the kernel.

:class:`SyscallLog` stands between an allocator and the simulated kernel. It forwards every
call unchanged, counts the memory system calls by name, keeps the anonymous mappings it saw
(to report how many bytes the allocator holds in mappings, now and at the peak), and, when
asked, writes one line per call in strace's notation, so that the simulated calls can be put
next to ``strace -e trace=brk,mmap,munmap,mremap,madvise,mprotect`` of the real program::

    allocator ──sys_brk/sys_mmap/...──► SyscallLog ──same call──► MM (the simulated kernel)
              ──write/read──────────────────────────────────► MM (bound directly: no cost)
                                     │
                                     └─► brk(0x55555557a000)                     = 0x55555557a000

No allocator knows about it: it is given the proxy where it would be given the kernel.
``write``/``read`` (every header store of the allocator) are the inner object's bound methods,
set as attributes, so the proxy adds nothing to the hot path.

The notation is strace 6.1's, as this machine prints it:

- a call, then spaces up to column 40 (one space if the call is longer), then ``= RESULT``
  (strace's ``tabto``); ``NULL`` for a zero address; lengths in decimal, addresses in hex;
- mmap prot as ``PROT_READ|PROT_WRITE`` (``PROT_NONE`` for 0), flags with the map type first
  and the rest in strace's table order (``MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE``), then
  ``-1, 0`` (fd and offset of an anonymous mapping);
- mremap flags ``MREMAP_MAYMOVE|MREMAP_FIXED`` and the new address only with MREMAP_FIXED;
- madvise advice by name (``MADV_DONTNEED``);
- a failure as ``-1 ENOMEM (Cannot allocate memory)``; brk always returns the break in hex.
"""

from __future__ import annotations

import os
from typing import IO

from memsim.kernel.abi import (
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    Syscalls,
    errno_name,
    madvise_name,
    mremap_flag_names,
    prot_names,
)
from memsim.kernel.abi import map_flag_names as mmap_flags
from memsim.units import PAGE_SIZE

__all__ = ["SYSCALL_NAMES", "SyscallLog", "format_call", "mmap_flags", "prot_names"]

#: The memory system calls the proxy forwards, in the order summaries list them.
SYSCALL_NAMES: tuple[str, ...] = ("brk", "mmap", "munmap", "mremap", "mprotect", "madvise")

#: strace's result column (``tabto(acolumn)`` with the default -a 40).
RESULT_COLUMN = 40


def _ptr(addr: int) -> str:
    return "NULL" if addr == 0 else f"{addr:#x}"


def _result(value: int, as_address: bool) -> str:
    if value < 0:
        return f"-1 {errno_name(value)} ({os.strerror(-value)})"
    return f"{value:#x}" if as_address else str(value)


def format_call(call: str, result: str) -> str:
    """``call`` padded to strace's result column, then ``= result``."""
    pad = RESULT_COLUMN - len(call)
    return f"{call}{' ' * pad if pad > 0 else ' '}= {result}"


class SyscallLog:
    """Forward to ``inner`` (a Syscalls), counting and optionally logging each memory call.

    ``out``: a text stream that gets one strace line per call (None: count only).
    After a run: ``counts`` (name -> calls), ``mapped`` / ``peak_mapped`` (bytes in the
    anonymous mappings made through this proxy that are still mapped / at most),
    ``failed`` (calls that returned an error), ``peak_brk`` (the highest break returned).
    """

    def __init__(self, inner: Syscalls, out: IO[str] | None = None) -> None:
        self.inner = inner
        self.out = out
        # The hot path (every store of the allocator) goes straight to the kernel.
        self.write = inner.write
        self.read = inner.read
        self.counts: dict[str, int] = dict.fromkeys(SYSCALL_NAMES, 0)
        self.failed = 0
        self.lines = 0
        self.maps: dict[int, int] = {}       # start -> length (page-rounded) of live mappings
        self.mapped = 0
        self.peak_mapped = 0
        self.peak_brk = 0                    # the highest break the kernel returned

    # --- output -----------------------------------------------------------------------------
    def _emit(self, call: str, result: str) -> None:
        if self.out is not None:
            self.out.write(format_call(call, result) + "\n")
            self.lines += 1

    # --- mapping bookkeeping ------------------------------------------------------------------
    def _add_map(self, start: int, length: int) -> None:
        length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        self._remove_range(start, length)            # MAP_FIXED may replace what was there
        self.maps[start] = length
        self.mapped += length
        if self.mapped > self.peak_mapped:
            self.peak_mapped = self.mapped

    def _remove_range(self, start: int, length: int) -> None:
        """Forget the parts of known mappings inside ``[start, start+length)``."""
        if self.maps.get(start) == length:              # the usual case: a whole mapping
            del self.maps[start]
            self.mapped -= length
            return
        end = start + length
        for s, n in list(self.maps.items()):
            e = s + n
            if e <= start or s >= end:
                continue
            del self.maps[s]
            self.mapped -= n
            if s < start:
                self.maps[s] = start - s
                self.mapped += start - s
            if e > end:
                self.maps[end] = e - end
                self.mapped += e - end

    # --- the Syscalls contract ----------------------------------------------------------------
    def sys_brk(self, addr: int) -> int:
        """``brk(2)``: the break after the call (the old one if refused)."""
        r = self.inner.sys_brk(addr)
        self.counts["brk"] += 1
        if r > self.peak_brk:
            self.peak_brk = r
        if self.out is not None:
            self._emit(f"brk({_ptr(addr)})", f"{r:#x}")
        return r

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        """``mmap(addr, length, prot, flags, -1, 0)``: the address or -errno."""
        r = self.inner.sys_mmap(addr, length, prot, flags)
        self.counts["mmap"] += 1
        if r < 0:
            self.failed += 1
        else:
            self._add_map(r, length)
        if self.out is not None:
            self._emit(f"mmap({_ptr(addr)}, {length}, {prot_names(prot)}, "
                       f"{mmap_flags(flags)}, -1, 0)", _result(r, True))
        return r

    def sys_munmap(self, addr: int, length: int) -> int:
        """``munmap(addr, length)``: 0 or -errno."""
        r = self.inner.sys_munmap(addr, length)
        self.counts["munmap"] += 1
        if r < 0:
            self.failed += 1
        else:
            self._remove_range(addr, (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
        if self.out is not None:
            self._emit(f"munmap({_ptr(addr)}, {length})", _result(r, False))
        return r

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        """``mremap``: the (possibly new) address or -errno."""
        r = self.inner.sys_mremap(old_addr, old_len, new_len, flags, new_addr)
        self.counts["mremap"] += 1
        if r < 0:
            self.failed += 1
        else:
            if not flags & MREMAP_DONTUNMAP:
                self._remove_range(old_addr, (old_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
            self._add_map(r, new_len)
        if self.out is not None:
            names = mremap_flag_names(flags)
            extra = f", {_ptr(new_addr)}" if flags & MREMAP_FIXED else ""
            self._emit(f"mremap({_ptr(old_addr)}, {old_len}, {new_len}, {names}{extra})",
                       _result(r, True))
        return r

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        """``mprotect``: 0 or -errno."""
        r = self.inner.sys_mprotect(addr, length, prot)
        self.counts["mprotect"] += 1
        if r < 0:
            self.failed += 1
        if self.out is not None:
            self._emit(f"mprotect({_ptr(addr)}, {length}, {prot_names(prot)})",
                       _result(r, False))
        return r

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        """``madvise``: 0 or -errno."""
        r = self.inner.sys_madvise(addr, length, advice)
        self.counts["madvise"] += 1
        if r < 0:
            self.failed += 1
        if self.out is not None:
            self._emit(f"madvise({_ptr(addr)}, {length}, {madvise_name(advice)})",
                       _result(r, False))
        return r

    # --- views ---------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """All memory system calls made through the proxy."""
        return sum(self.counts.values())

    def check(self) -> None:
        """The mapping bookkeeping is consistent: disjoint, page-aligned, summing to mapped."""
        last_end = 0
        total = 0
        for s in sorted(self.maps):
            n = self.maps[s]
            assert s % PAGE_SIZE == 0 and n > 0 and n % PAGE_SIZE == 0, f"mapping {s:#x}+{n}"
            assert s >= last_end, f"mappings overlap at {s:#x}"
            last_end = s + n
            total += n
        assert total == self.mapped, "mapped disagrees with the mappings"
        assert self.peak_mapped >= self.mapped
        assert sum(self.counts.values()) >= self.failed
