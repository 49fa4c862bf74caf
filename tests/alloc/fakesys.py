"""A tiny stand-in for the kernel's Syscalls, for allocator tests that must not depend on it.

brk bookkeeping (grows and shrinks freely, or refuses above ``brk_limit``), anonymous mmap
top-down from a fixed base (first fit below the lowest mapping; munmapped ranges are reused
first-fit from the top), mremap (in place when the next range is free, else moved), madvise,
and a write recorder: the set of touched pages (minus those dropped by munmap/madvise/brk
shrink), the number of write calls, and a normalised log of the memory syscalls in strace's
form (``brk +0x21000``, ``mmap 200704`` ...), addresses given relative to the initial break.
"""

from __future__ import annotations

from memsim.kernel.abi import (
    EEXIST,
    EINVAL,
    ENOMEM,
    MADV_DONTNEED,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
)

PAGE = 4096


class FakeSyscalls:
    """Implements memsim.kernel.abi.Syscalls for tests."""

    def __init__(self, brk0: int = 0x555555559000, mmap_top: int = 0x7FFFF7FF0000,
                 brk_limit: int | None = None, track_pages: bool = True) -> None:
        self.brk0 = brk0
        self.cur = brk0
        self.brk_limit = brk_limit
        self.mmap_top = mmap_top
        self.maps: dict[int, int] = {}          # start -> length
        self.log: list[str] = []
        self.writes = 0
        self.track = track_pages
        self.pages: set[int] = set()

    # --- syscalls ------------------------------------------------------------------------
    def sys_brk(self, addr: int) -> int:
        if addr == 0:
            self.log.append("brk 0")
            return self.cur
        ok = addr >= self.brk0 and (self.brk_limit is None or addr <= self.brk_limit)
        ok = ok and not any(s < addr + PAGE and s + n > self.cur for s, n in self.maps.items())
        if ok:
            if addr < self.cur:
                self._drop(addr, self.cur)
            self.cur = addr
        self.log.append(f"brk {addr - self.brk0:+#x} = {self.cur - self.brk0:+#x}")
        return self.cur

    def _find_gap(self, length: int) -> int:
        top = self.mmap_top
        for start in sorted(self.maps, reverse=True):
            end = start + self.maps[start]
            if top - end >= length:
                return top - length
            top = start
        return top - length

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        self.log.append(f"mmap {length}")
        if length <= 0 or length % PAGE or length >= 1 << 47:
            return -ENOMEM if length > 0 else -EINVAL
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            if any(s < addr + length and s + n > addr for s, n in self.maps.items()) or \
                    addr < self.cur:
                return -EEXIST
            self.maps[addr] = length
            return addr
        a = self._find_gap(length)
        self.maps[a] = length
        return a

    def sys_munmap(self, addr: int, length: int) -> int:
        self.log.append(f"munmap {length}")
        if self.maps.get(addr) != length:
            raise AssertionError(f"munmap of {addr:#x}+{length} that was not one mapping")
        del self.maps[addr]
        self._drop(addr, addr + length)
        return 0

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        self.log.append(f"mremap {old_len} {new_len}")
        assert self.maps.get(old_addr) == old_len, "mremap of a range that is not a mapping"
        if new_len <= old_len:
            self.maps[old_addr] = new_len
            self._drop(old_addr + new_len, old_addr + old_len)
            return old_addr
        end = old_addr + old_len
        if all(not (s < old_addr + new_len and s + n > end) for s, n in self.maps.items()
               if s != old_addr) and old_addr + new_len <= self.mmap_top:
            self.maps[old_addr] = new_len
            return old_addr
        del self.maps[old_addr]
        a = self._find_gap(new_len)
        self.maps[a] = new_len
        moved = {pg - old_addr + a for pg in self.pages if old_addr <= pg < end}
        self._drop(old_addr, end)
        self.pages |= moved
        return a

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        return 0

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        off = addr - self.brk0
        self.log.append(f"madvise {off:+#x} {length}" if 0 <= off < 1 << 32
                        else f"madvise ext {length}")
        if advice == MADV_DONTNEED:
            self._drop(addr, addr + length)
        return 0

    def write(self, addr: int, length: int = 1) -> None:
        self.writes += 1
        if length <= 0:
            raise AssertionError(f"write of {length} bytes at {addr:#x}")
        if self.track:
            first = addr // PAGE
            last = (addr + length - 1) // PAGE
            if first == last:
                self.pages.add(first * PAGE)
            else:
                self.pages.update(p * PAGE for p in range(first, last + 1))

    def read(self, addr: int, length: int = 1) -> None:
        pass

    # --- helpers -------------------------------------------------------------------------
    def _drop(self, start: int, end: int) -> None:
        if self.track:
            self.pages = {p for p in self.pages if not start <= p < end}

    def rss_heap_pages(self) -> int:
        """Touched pages inside [brk0, brk)."""
        return sum(1 for p in self.pages if self.brk0 <= p < self.cur)


class LoggingSyscalls:
    """Wrap any Syscalls (the kernel's MM) and log its memory syscalls like FakeSyscalls."""

    def __init__(self, inner: object, brk0: int) -> None:
        self.inner = inner
        self.brk0 = brk0
        self.log: list[str] = []
        self.writes = 0

    def sys_brk(self, addr: int) -> int:
        r = self.inner.sys_brk(addr)  # type: ignore[attr-defined]
        self.log.append("brk 0" if addr == 0 else
                        f"brk {addr - self.brk0:+#x} = {r - self.brk0:+#x}")
        return int(r)

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        self.log.append(f"mmap {length}")
        return int(self.inner.sys_mmap(addr, length, prot, flags))  # type: ignore[attr-defined]

    def sys_munmap(self, addr: int, length: int) -> int:
        self.log.append(f"munmap {length}")
        return int(self.inner.sys_munmap(addr, length))  # type: ignore[attr-defined]

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        self.log.append(f"mremap {old_len} {new_len}")
        return int(self.inner.sys_mremap(old_addr, old_len, new_len, flags,  # type: ignore
                                         new_addr))

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        return int(self.inner.sys_mprotect(addr, length, prot))  # type: ignore[attr-defined]

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        off = addr - self.brk0
        self.log.append(f"madvise {off:+#x} {length}" if 0 <= off < 1 << 32
                        else f"madvise ext {length}")
        return int(self.inner.sys_madvise(addr, length, advice))  # type: ignore[attr-defined]

    def write(self, addr: int, length: int = 1) -> None:
        self.writes += 1
        self.inner.write(addr, length)  # type: ignore[attr-defined]

    def read(self, addr: int, length: int = 1) -> None:
        self.inner.read(addr, length)  # type: ignore[attr-defined]

    def heap_rss(self) -> int:
        """Resident anonymous bytes in [start_brk, brk) according to the kernel's page table."""
        mm = self.inner
        anon, _, _ = mm.pt.counts(mm.start_brk, mm.brk)  # type: ignore[attr-defined]
        return int(anon) * 4096
