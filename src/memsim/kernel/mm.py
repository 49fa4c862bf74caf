"""One process's address space (``mm_struct``) and the memory system calls that change it.

:class:`MM` owns the sorted VMA set (:class:`memsim.kernel.vma.VMATree`), the brk fields, the
virtual-memory counters behind ``/proc/PID/status`` and this process's share of the global
commit charge. It implements :class:`memsim.kernel.abi.Syscalls` (``sys_brk``, ``sys_mmap``,
``sys_munmap``, ``sys_mremap``, ``sys_mprotect``, ``sys_madvise`` return ``-errno`` on failure)
and the CPU's side of a memory access (``write``/``read``): it finds the VMA, checks the
protection, grows the stack, and hands each VMA's part of the access to
:meth:`memsim.kernel.pagetable.PageTable.fault`. It calls only the page layer below it
(``PageTable`` for pages and tables, ``Machine`` for the commit charge)::

      start_code   start_brk   brk            mmap_base                 start_stack
          |            |        |                 |                          |
    [ text data bss ][ [heap] ]    free    [ mmaps (top-down) | libs ]  gap  [stack]
     ^ image (exec)    do_brk_flags        get_unmapped_area, __mmap_region   expand_downwards

    vm_stat_account(flags, n):  total_vm += n, and one of exec_vm / stack_vm / data_vm
    commit charge:  Machine.vm_enough_memory at brk, accountable mmap, mprotect to writable,
                    mremap growth and stack growth; vm_unacct_memory at munmap, brk shrink,
                    exit, and mprotect to read-only of a never-faulted anonymous VMA.

Kernel functions mirrored (mm/mmap.c, mm/vma.c, mm/mprotect.c, mm/mremap.c, mm/madvise.c,
arch/x86/kernel/sys_x86_64.c, arch/x86/mm/fault.c, mm/huge_memory.c): ``SYSCALL brk``,
``check_data_rlimit``, ``check_brk_limits``, ``do_brk_flags``, ``do_mmap``,
``round_hint_to_min``, ``__get_unmapped_area``, ``arch_get_unmapped_area_topdown``,
``unmapped_area_topdown``/``unmapped_area``, ``__thp_get_unmapped_area``, ``__mmap_region``,
``may_expand_vm``, ``vm_stat_account``, ``vma_merge_new_range``,
``vma_merge_existing_range``/``vma_modify`` (here ``_modify``), ``split_vma``/``__split_vma``,
``do_vmi_munmap``/``do_vmi_align_munmap``, ``do_mprotect_pkey``, ``mprotect_fixup``,
``do_mremap`` (``shrink_vma``, ``vma_expandable``, ``expand_vma_in_place``, ``move_vma``,
``copy_vma``), ``madvise_walk_vmas``, ``madvise_dontneed_free``, ``madvise_update_vma``,
``do_user_addr_fault``/``access_error``, ``expand_downwards``/``acct_stack_growth``,
``anon_vma_prepare``/``find_mergeable_anon_vma``, ``__mm_populate``, ``exit_mmap``.

The top-down search uses the VMA tree's gap index (the maple tree's gap tracking), so an
mmap costs O(log n) even with tens of thousands of VMAs and holes; an access that hits the
VMA of the previous access costs one comparison before ``PageTable.fault``.

Invariants (:meth:`MM.check`): the VMA tree's own invariants; ``map_count`` is the number of
VMAs; ``total_vm``, ``data_vm``, ``exec_vm``, ``stack_vm`` equal the sums over the VMAs of
their classification and ``locked_vm`` the pages of VM_LOCKED VMAs; the commit charge held
equals the pages of VM_ACCOUNT VMAs (plus any growth of a non-accounted grows-down VMA, which
the kernel charges and never returns);
``brk >= start_brk``; the resident and swap counts of the page table equal the sums of
``PageTable.counts`` over the VMAs (nothing resident outside a VMA); and ``pt.check()``.
"""

from __future__ import annotations

import errno
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from memsim.errors import ConfigError, SegmentationFault
from memsim.kernel import abi
from memsim.kernel.abi import (
    EACCES,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOMEM,
    MAP_32BIT,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_STACK,
    MAP_TYPE,
    MMAP_MIN_ADDR,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    RLIM_INFINITY,
    STACK_GUARD_GAP,
    TASK_SIZE,
)
from memsim.kernel.layout import STARTUP_PEAK_EXTRA, Layout
from memsim.kernel.pagetable import ANON, PTE_A, PTE_D, PTE_W
from memsim.kernel.vma import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_MAY_FLAGS,
    VM_MAYSHARE,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_WIPEONFORK,
    VM_WRITE,
    VMA,
    VMATree,
    anon_vma_compatible,
    can_merge_after,
    can_merge_before,
    is_data_mapping,
    is_exec_mapping,
    is_stack_mapping,
)
from memsim.units import PAGE_SHIFT, PAGE_SIZE, MiB

if TYPE_CHECKING:
    from memsim.kernel.machine import Machine
    from memsim.kernel.pagetable import PageTable

U64 = (1 << 64) - 1
_PTE_WRITTEN = PTE_A | PTE_D | PTE_W     # a present PTE a store goes through without a fault
_NO_RANGE = (float("inf"), float("-inf"))   # an empty [lo, hi): no int lies in it
_NOTE_SPAN = 64                    # PTE extents MM._note_written looks at on each side
PAGE_MASK64 = U64 & ~(PAGE_SIZE - 1)
PMD_SIZE = 2 * MiB
DAC_MMAP_MIN_ADDR = 4096          # sysctl vm.mmap_min_addr (MAP_FIXED below needs CAP_SYS_RAWIO)
MREMAP_VALID = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP

# madvise advice values (mman-common.h) and what they do to vm_flags (madvise_update_vma)
MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED = 0, 1, 2, 3, 4
MADV_FREE, MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK = 8, 9, 10, 11
MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE = 12, 13, 14, 15
MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK = 16, 17, 18, 19
MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE = 20, 21, 22, 23
MADV_DONTNEED_LOCKED, MADV_COLLAPSE = 24, 25
_MADV_FLAG_CHANGES: dict[int, tuple[int, int]] = {   # advice -> (flags to set, flags to clear)
    MADV_DONTFORK: (VM_DONTCOPY, 0), MADV_DOFORK: (0, VM_DONTCOPY),
    MADV_HUGEPAGE: (VM_HUGEPAGE, VM_NOHUGEPAGE), MADV_NOHUGEPAGE: (VM_NOHUGEPAGE, VM_HUGEPAGE),
    MADV_DONTDUMP: (VM_DONTDUMP, 0), MADV_DODUMP: (0, VM_DONTDUMP),
    MADV_WIPEONFORK: (VM_WIPEONFORK, 0), MADV_KEEPONFORK: (0, VM_WIPEONFORK),
}
_MADV_NOOP = {MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_COLD,
              MADV_PAGEOUT, MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_COLLAPSE}
_MADV_VALID = (_MADV_NOOP | set(_MADV_FLAG_CHANGES) | {
    MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
    MADV_DONTNEED_LOCKED})

RLIMIT_NAMES = ("data", "as", "stack", "memlock")
DEFAULT_RLIMIT_MEMLOCK = 8 * MiB


class _Fail(Exception):
    """Carries an errno from deep inside a syscall up to its boundary."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


def _page_align64(value: int) -> int:
    """PAGE_ALIGN on an unsigned long: wraps to 0 past 2**64."""
    return (value + PAGE_SIZE - 1) & PAGE_MASK64


def calc_vm_prot_bits(prot: int) -> int:
    """``calc_vm_prot_bits``: PROT_* to VM_READ/WRITE/EXEC (other bits ignored)."""
    return ((VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0)
            | (VM_EXEC if prot & PROT_EXEC else 0))


class MM:
    """``mm_struct`` plus the memory syscalls; implements abi.Syscalls and machine.Task."""

    def __init__(self, machine: Machine, pid: int, layout: Layout | None = None,
                 rlimits: dict[str, tuple[int, int]] | None = None, *,
                 privileged: bool = True, populate_image: bool = True) -> None:
        self.machine = machine
        self.pid = pid
        self.layout = layout if layout is not None else Layout.default()
        self.oom_score_adj = 0
        self.privileged = privileged        # CAP_SYS_ADMIN / CAP_SYS_RAWIO (root, as here)
        self.dead = False
        self.rlimits: dict[str, list[int]] = {
            "data": [RLIM_INFINITY, RLIM_INFINITY],
            "as": [RLIM_INFINITY, RLIM_INFINITY],
            "stack": [self.layout.rlimit_stack, RLIM_INFINITY],
            "memlock": [DEFAULT_RLIMIT_MEMLOCK, DEFAULT_RLIMIT_MEMLOCK],
        }
        for name, (soft, hard) in (rlimits or {}).items():
            self.setrlimit(name, soft, hard)
        self.tree = VMATree()
        self.total_vm = self.data_vm = self.exec_vm = self.stack_vm = 0
        self.locked_vm = self.pinned_vm = 0
        self.hiwater_vm = self.hiwater_rss = 0
        self.committed = 0          # pages this mm holds in Committed_AS
        self.committed_leak = 0     # growth of non-accounted grows-down VMAs (never returned)
        self.def_flags = 0
        # /sys/kernel/mm/transparent_hugepage/enabled: "always", "madvise" (here) or "never"
        self.thp_enabled: str = getattr(machine, "thp_enabled", "madvise")
        self._anon_vma_seq = 0
        self._last: VMA | None = None     # one-entry find_vma cache for the access hot path
        lay = self.layout
        self.start_code, self.end_code = lay.start_code, lay.end_code
        self.start_data, self.end_data = lay.start_data, lay.end_data
        self.start_brk = self.brk = lay.start_brk
        self.start_stack = lay.start_stack
        self.mmap_base = lay.mmap_base
        self.mmap_legacy_base = lay.mmap_legacy_base
        self.pt: PageTable = machine.new_page_table(self)
        # [_wlo, _whi): bytes known to take a store without any state change (see write)
        self._wlo, self._whi = _NO_RANGE
        self._wlo2, self._whi2 = _NO_RANGE          # the one before
        # earlier such ranges: sorted, disjoint, not adjacent ([_wstarts[k], _wends[k]))
        self._wstarts: list[int] = []
        self._wends: list[int] = []
        self.pt.on_change = self._forget_written
        self._exec_image(populate_image)

    # ------------------------------------------------------------------------------------
    # exec
    # ------------------------------------------------------------------------------------
    def _exec_image(self, populate: bool) -> None:
        """Install the layout's VMAs (charging the accountable ones) and fault in the pages
        that are resident when main() starts."""
        for s in self.layout.segments:
            v = VMA(s.start, s.end, s.flags, s.pgoff, s.path, None, s.name, s.dev, s.inode)
            self.tree.insert(v)
            self.vm_stat_account(v.vm_flags, v.pages)
            if v.vm_flags & VM_ACCOUNT:
                if not self._charge(v.pages):
                    raise ConfigError("exec failed: the program image does not fit the "
                                      "commit limit of this machine")
                self.committed += v.pages
        if not populate:
            return
        for s in self.layout.segments:
            v = self.tree.vma_lookup(s.start)
            assert v is not None
            file_backed = s.path is not None or s.name == "[vdso]"
            n_anon = min(s.resident_anon, v.pages)
            if n_anon:
                self._anon_vma_prepare(v)
                lo = v.vm_end - n_anon * PAGE_SIZE if s.region == "stack" else v.vm_start
                self.pt.fault(lo, n_anon * PAGE_SIZE, True, None, file_backed)
            n_file = min(s.resident_file, v.pages - n_anon)
            if n_file:
                lo = v.vm_start + n_anon * PAGE_SIZE if s.region != "stack" else v.vm_start
                self.pt.fault(lo, n_file * PAGE_SIZE, False, None, file_backed)
        self.hiwater_rss = self.rss
        self.hiwater_vm = self.total_vm + (STARTUP_PEAK_EXTRA >> PAGE_SHIFT)

    # ------------------------------------------------------------------------------------
    # counters
    # ------------------------------------------------------------------------------------
    @property
    def map_count(self) -> int:
        return len(self.tree)

    @property
    def rss(self) -> int:
        """Resident pages (anon + file; no shmem is modelled)."""
        return self.pt.anon_pages + self.pt.file_pages

    def vm_stat_account(self, flags: int, npages: int) -> None:
        """``vm_stat_account`` (mm/mmap.c)."""
        self.total_vm += npages
        if is_exec_mapping(flags):
            self.exec_vm += npages
        elif is_stack_mapping(flags):
            self.stack_vm += npages
        elif is_data_mapping(flags):
            self.data_vm += npages

    def update_hiwater_rss(self) -> None:
        rss = self.rss
        if rss > self.hiwater_rss:
            self.hiwater_rss = rss

    def update_hiwater_vm(self) -> None:
        if self.total_vm > self.hiwater_vm:
            self.hiwater_vm = self.total_vm

    def rlimit(self, name: str) -> int:
        return self.rlimits[name][0]

    def setrlimit(self, name: str, soft: int, hard: int | None = None) -> None:
        """Set a resource limit (bytes; ``RLIM_INFINITY`` for none). Only future checks change."""
        if name not in RLIMIT_NAMES:
            raise ConfigError(f"unknown resource limit {name!r} (use one of "
                              f"{', '.join(RLIMIT_NAMES)})")
        hard = soft if hard is None else hard
        for v in (soft, hard):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= RLIM_INFINITY:
                raise ConfigError(f"resource limit must be 0..RLIM_INFINITY: {v!r}")
        if soft > hard:
            raise ConfigError(f"soft limit {soft} above hard limit {hard} (setrlimit: EINVAL)")
        self.rlimits[name] = [soft, hard]

    def may_expand_vm(self, flags: int, npages: int) -> bool:
        """``may_expand_vm`` (mm/mmap.c): RLIMIT_AS on total_vm, RLIMIT_DATA on data_vm."""
        if self.total_vm + npages > self.rlimits["as"][0] >> PAGE_SHIFT:
            return False
        if is_data_mapping(flags):
            soft, hard = self.rlimits["data"]
            if self.data_vm + npages > soft >> PAGE_SHIFT:
                # the "valgrind" exception: soft limit 0 and within the hard limit
                return soft == 0 and self.data_vm + npages <= hard >> PAGE_SHIFT
        return True

    def _charge(self, npages: int) -> bool:
        """``security_vm_enough_memory_mm``: charge Committed_AS, or refuse."""
        if npages <= 0:
            return True
        return self.machine.vm_enough_memory(self.total_vm, npages, self.privileged)

    def _uncharge(self, npages: int) -> None:
        if npages > 0:
            self.machine.vm_unacct_memory(npages)

    # ------------------------------------------------------------------------------------
    # brk
    # ------------------------------------------------------------------------------------
    def sys_brk(self, brk: int) -> int:
        """``SYSCALL_DEFINE1(brk)``: the break after the call (the old one if refused)."""
        self._alive()
        brk &= U64
        origbrk = self.brk
        if brk < self.start_brk:
            return origbrk
        # check_data_rlimit
        rlim = self.rlimits["data"][0]
        if rlim != RLIM_INFINITY and \
                (brk - self.start_brk) + (self.end_data - self.start_data) > rlim:
            return origbrk
        newbrk = _page_align64(brk)
        oldbrk = _page_align64(self.brk)
        if oldbrk == newbrk:
            self.brk = brk
            return brk
        if brk <= self.brk:
            # shrink: "always allowed", if [newbrk, oldbrk) holds a VMA
            v = self.tree.find_vma_intersection(newbrk, oldbrk)
            if v is None:
                return origbrk
            self.brk = brk
            try:
                self._unmap_range(newbrk, oldbrk)
            except _Fail:
                self.brk = origbrk
                return origbrk
            return brk
        # grow: check_brk_limits (get_unmapped_area with MAP_FIXED: a range check)
        length = brk - oldbrk
        if length > TASK_SIZE or oldbrk > TASK_SIZE - length:
            return origbrk
        nxt = self.tree.find_vma(oldbrk)
        if nxt is not None and nxt.vm_start < newbrk + PAGE_SIZE + STACK_GUARD_GAP and \
                newbrk + PAGE_SIZE > nxt.vm_start_gap():
            return origbrk
        prev = None
        i = self.tree.index_of_find(oldbrk)
        if i > 0:
            cand = self.tree.vmas[i - 1]
            if cand.vm_start >= self.start_brk:
                prev = cand
        try:
            self._do_brk_flags(prev, oldbrk, newbrk - oldbrk)
        except _Fail:
            return origbrk
        self.brk = brk
        return brk

    def _do_brk_flags(self, prev: VMA | None, addr: int, length: int) -> None:
        """``do_brk_flags`` (mm/vma.c): grow the heap VMA or create it."""
        flags = abi_vm_data_default() | VM_ACCOUNT | self.def_flags
        npages = length >> PAGE_SHIFT
        if not self.may_expand_vm(flags, npages):
            raise _Fail(ENOMEM)
        if self.map_count > self.machine.max_map_count:
            raise _Fail(ENOMEM)
        if not self._charge(npages):
            raise _Fail(ENOMEM)
        self.committed += npages
        # just_expand: only the previous (heap) VMA is considered, never the next one
        if prev is not None and can_merge_after(prev, addr, flags, None, addr >> PAGE_SHIFT,
                                                None):
            self.tree.set_end(prev, addr + length)
        else:
            self.tree.insert(VMA(addr, addr + length, flags))
        self.total_vm += npages
        self.data_vm += npages
        if flags & VM_LOCKED:
            self.locked_vm += npages

    # ------------------------------------------------------------------------------------
    # choosing an address
    # ------------------------------------------------------------------------------------
    def get_unmapped_area(self, addr: int, length: int, pgoff: int, flags: int,
                          vm_flags: int, anonymous: bool = True) -> int:
        """``__get_unmapped_area``: an address for ``length`` bytes, or _Fail(errno)."""
        if length > TASK_SIZE:
            raise _Fail(ENOMEM)
        if anonymous and addr == 0 and not flags & MAP_FIXED and length % PMD_SIZE == 0 \
                and not flags & MAP_SHARED:
            # "Always treat pgoff as zero for anonymous memory" (also for mremap's search)
            addr = self._thp_get_unmapped_area(length, 0, flags, vm_flags)
        else:
            addr = self._arch_get_unmapped_area_topdown(addr, length, flags)
        if addr > TASK_SIZE - length:
            raise _Fail(ENOMEM)
        if addr & (PAGE_SIZE - 1):
            raise _Fail(EINVAL)
        if addr < DAC_MMAP_MIN_ADDR and not self.privileged:   # security_mmap_addr
            raise _Fail(abi.EPERM)
        return addr

    def _thp_get_unmapped_area(self, length: int, off: int, flags: int, vm_flags: int) -> int:
        """``__thp_get_unmapped_area``: pad by 2 MiB, then align to a 2 MiB boundary
        (top-down: an already aligned result moves up by 2 MiB)."""
        try:
            ret = self._arch_get_unmapped_area_topdown(0, length + PMD_SIZE, flags)
        except _Fail:
            return self._arch_get_unmapped_area_topdown(0, length, flags)
        off_sub = (off - ret) & (PMD_SIZE - 1)
        if off_sub == 0:
            return ret + PMD_SIZE
        return ret + off_sub

    def _arch_get_unmapped_area_topdown(self, addr: int, length: int, flags: int) -> int:
        """``arch_get_unmapped_area_topdown`` (x86): MAP_FIXED, then a hint, then the
        highest gap below mmap_base, then bottom-up from mmap_legacy_base."""
        if length > TASK_SIZE:
            raise _Fail(ENOMEM)
        if flags & MAP_FIXED:
            return addr
        if flags & MAP_32BIT:
            # find_start_end: the legacy bottom-up search in [1 GiB, 2 GiB)
            got = self.unmapped_area(length, 0x40000000, 0x80000000)
            if got is None:
                raise _Fail(ENOMEM)
            return got
        if addr:
            addr &= PAGE_MASK64
            if TASK_SIZE - length >= addr:      # mmap_address_hint_valid
                v = self.tree.find_vma(addr)
                if v is None or addr + length <= v.vm_start_gap():
                    return addr
        low = max(PAGE_SIZE, MMAP_MIN_ADDR)
        got = self.unmapped_area_topdown(length, low, self.mmap_base)
        if got is not None:
            return got
        got = self.unmapped_area(length, max(self.mmap_legacy_base, MMAP_MIN_ADDR), TASK_SIZE)
        if got is not None:
            return got
        raise _Fail(ENOMEM)

    def unmapped_area_topdown(self, length: int, low: int, high: int) -> int | None:
        """``unmapped_area_topdown``: the top of the highest gap in [low, high) that holds
        ``length`` bytes, keeping the stack guard gap below VM_GROWSDOWN VMAs (the gap index
        of :class:`memsim.kernel.vma.VMATree` plays the maple tree's part)."""
        if length > high or high <= low:
            return None
        end = self.tree.highest_gap(length, low, high)
        return None if end is None else end - length

    def unmapped_area(self, length: int, low: int, high: int) -> int | None:
        """``unmapped_area``: the lowest gap in [low, high) that holds ``length`` bytes."""
        if length > high or high <= low:
            return None
        vmas = self.tree.vmas
        j = self.tree.index_of_find(low)
        while True:
            prev = vmas[j - 1] if j > 0 else None
            nxt = vmas[j] if j < len(vmas) else None
            gap_start = max(low, prev.vm_end if prev is not None else 0)
            gap_end = high if nxt is None else min(high, nxt.vm_start_gap())
            if gap_end >= gap_start + length:
                return gap_start
            if nxt is None or nxt.vm_end >= high:
                return None
            j += 1

    # ------------------------------------------------------------------------------------
    # mmap
    # ------------------------------------------------------------------------------------
    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        """``mmap(addr, length, prot, flags, -1, 0)``: anonymous memory only.

        Returns the address or ``-errno``. MAP_SHARED anonymous memory (shmem) is not
        modelled and raises ConfigError.
        """
        self._alive()
        try:
            return self._do_mmap(addr & U64, length & U64, prot & 0xFFFFFFFF, flags & 0xFFFFFFFF)
        except _Fail as e:
            return -e.err

    def _do_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        """``ksys_mmap_pgoff`` + ``do_mmap`` (mm/mmap.c) for fd = -1, offset 0."""
        if not flags & MAP_ANONYMOUS:
            raise _Fail(errno.EBADF)                   # fd -1 is not a file
        if flags & MAP_HUGETLB:
            raise _Fail(ENOMEM)          # hugetlb_file_setup: vm.nr_hugepages is 0 here
        if length == 0:
            raise _Fail(EINVAL)
        if flags & MAP_FIXED_NOREPLACE:
            flags |= MAP_FIXED
        if not flags & MAP_FIXED:                 # round_hint_to_min
            addr &= PAGE_MASK64
            if addr and addr < MMAP_MIN_ADDR:
                addr = MMAP_MIN_ADDR
        length = _page_align64(length)
        if length == 0:
            raise _Fail(ENOMEM)
        if self.map_count > self.machine.max_map_count:
            raise _Fail(ENOMEM)
        vm_flags = calc_vm_prot_bits(prot) | VM_MAY_FLAGS | self.def_flags
        if flags & MAP_GROWSDOWN:
            vm_flags |= VM_GROWSDOWN
        if flags & MAP_LOCKED:
            vm_flags |= VM_LOCKED
        if flags & MAP_STACK:
            vm_flags |= VM_NOHUGEPAGE
        addr = self.get_unmapped_area(addr, length, 0, flags, vm_flags)
        if flags & MAP_FIXED_NOREPLACE and self.tree.find_vma_intersection(addr, addr + length):
            raise _Fail(EEXIST)
        if flags & MAP_LOCKED and not self.privileged and \
                (self.locked_vm << PAGE_SHIFT) + length > self.rlimits["memlock"][0]:
            raise _Fail(abi.EAGAIN)      # mlock_future_ok (CAP_IPC_LOCK bypasses it)
        map_type = flags & MAP_TYPE
        if map_type in (MAP_SHARED, 0x03):
            if map_type == 0x03:
                raise _Fail(EINVAL)
            raise ConfigError("MAP_SHARED anonymous memory (shmem) is not modelled")
        if map_type != MAP_PRIVATE:
            raise _Fail(EINVAL)
        pgoff = addr >> PAGE_SHIFT
        if flags & MAP_NORESERVE and self.machine.overcommit != 2:
            vm_flags |= VM_NORESERVE
        self._mmap_region(addr, length, vm_flags, pgoff)
        if vm_flags & VM_LOCKED or (flags & MAP_POPULATE and not flags & MAP_NONBLOCK):
            self._populate(addr, addr + length)
        return addr

    def _mmap_region(self, addr: int, length: int, vm_flags: int, pgoff: int) -> VMA:
        """``__mmap_region`` (mm/vma.c): replace whatever lies in the range (MAP_FIXED),
        check limits, charge, then merge with a neighbour or insert a new VMA."""
        end = addr + length
        npages = length >> PAGE_SHIFT
        olds = self.tree.overlapping(addr, end)
        if olds:
            # vms_gather_munmap_vmas: split the partly covered VMAs first; the splits stay
            # even if a check below refuses the mapping (vms_abort_munmap_vmas keeps them)
            first = olds[0]
            if first.vm_start < addr:
                if end < first.vm_end and self.map_count >= self.machine.max_map_count:
                    raise _Fail(ENOMEM)
                self.tree.split(first, addr)
            last = self.tree.find_vma(end - 1)
            if last is not None and last.vm_start < end < last.vm_end:
                self.tree.split(last, end)
            self._last = None
            olds = self.tree.overlapping(addr, end)
        nr_pages = nr_accounted = 0
        for v in olds:
            nr_pages += v.pages
            if v.vm_flags & VM_ACCOUNT:
                nr_accounted += v.pages
        if not self.may_expand_vm(vm_flags, npages - nr_pages):
            raise _Fail(ENOMEM)
        accountable = (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE
        if accountable:
            if not self._charge(npages - nr_accounted):
                raise _Fail(ENOMEM)
            vm_flags |= VM_ACCOUNT
        if olds:
            # the replaced VMAs' charge is netted against the new one when it is accountable
            self._unmap_range(addr, end, uncharge=not accountable, check_count=False)
        if accountable:
            self.committed += npages
        vma = self._merge_new_range(addr, end, vm_flags, pgoff)
        self.vm_stat_account(vm_flags, npages)
        if vm_flags & VM_LOCKED:
            self.locked_vm += npages
        return vma

    def _merge_new_range(self, start: int, end: int, flags: int, pgoff: int,
                         anon_vma: int | None = None, vm_file: str | None = None,
                         just_expand: bool = False) -> VMA:
        """``vma_merge_new_range``, else a new VMA: returns the VMA now covering the range."""
        npages = (end - start) >> PAGE_SHIFT
        i = self.tree.index_of_find(start)
        vmas = self.tree.vmas
        prev = vmas[i - 1] if i > 0 and vmas[i - 1].vm_end == start else None
        nxt = vmas[i] if i < len(vmas) and vmas[i].vm_start == end else None
        left = prev is not None and can_merge_after(prev, start, flags, vm_file, pgoff, anon_vma)
        right = (not just_expand and nxt is not None
                 and can_merge_before(nxt, end, flags, vm_file, pgoff, npages, anon_vma))
        if left and right:
            assert prev is not None and nxt is not None
            right = anon_vma_compatible(prev.anon_vma, nxt.anon_vma)
        if left and right:
            assert prev is not None and nxt is not None
            prev.anon_vma = prev.anon_vma or anon_vma or nxt.anon_vma
            self.tree.remove(nxt)
            if self._last is nxt:
                self._last = None
            self.tree.set_end(prev, nxt.vm_end)
            return prev
        if left:
            assert prev is not None
            prev.anon_vma = prev.anon_vma or anon_vma
            self.tree.set_end(prev, end)
            return prev
        if right:
            assert nxt is not None
            nxt.anon_vma = nxt.anon_vma or anon_vma
            self.tree.set_start(nxt, start)
            nxt.vm_pgoff = pgoff
            return nxt
        v = VMA(start, end, flags, pgoff, vm_file, anon_vma)
        self.tree.insert(v)
        return v

    def _populate(self, start: int, end: int) -> None:
        """``__mm_populate``: fault the range in, write faults for private writable VMAs."""
        for v in self.tree.overlapping(start, end):
            if v.vm_flags & (VM_IO | VM_PFNMAP) or not v.vm_flags & VM_ACCESS_FLAGS:
                continue
            lo, hi = max(start, v.vm_start), min(end, v.vm_end)
            write = (v.vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
            self._fault_vma(v, lo, hi - lo, write, None)

    # ------------------------------------------------------------------------------------
    # munmap
    # ------------------------------------------------------------------------------------
    def sys_munmap(self, addr: int, length: int) -> int:
        """``munmap``: 0 or -errno."""
        self._alive()
        try:
            self._do_munmap(addr & U64, length & U64)
        except _Fail as e:
            return -e.err
        return 0

    def _do_munmap(self, addr: int, length: int) -> None:
        """``do_vmi_munmap``: validate the range, then unmap it (also used by mremap)."""
        if addr & (PAGE_SIZE - 1) or addr > TASK_SIZE or length > TASK_SIZE - addr:
            raise _Fail(EINVAL)
        end = addr + _page_align64(length)
        if end == addr:
            raise _Fail(EINVAL)
        self._unmap_range(addr, end)

    def _unmap_range(self, start: int, end: int, uncharge: bool = True,
                     check_count: bool = True) -> None:
        """``do_vmi_align_munmap``: split the VMAs at the ends, detach, zap the pages, free
        the page tables no one else uses, return the charge (unless ``uncharge`` is False:
        MAP_FIXED nets it against the replacing mapping)."""
        tree = self.tree
        vmas = tree.overlapping(start, end)
        if not vmas:
            return
        first = vmas[0]
        if first.vm_start < start:
            if check_count and end < first.vm_end and \
                    self.map_count >= self.machine.max_map_count:
                raise _Fail(ENOMEM)
            tree.split(first, start)
        last = tree.find_vma(end - 1)
        if last is not None and last.vm_start < end < last.vm_end:
            tree.split(last, end)
        i = tree.index_of_find(start)
        j = i
        while j < len(tree.vmas) and tree.vmas[j].vm_start < end:
            j += 1
        victims = tree.vmas[i:j]
        prev = tree.vmas[i - 1] if i > 0 else None
        nxt = tree.vmas[j] if j < len(tree.vmas) else None
        self.update_hiwater_rss()
        self.update_hiwater_vm()
        accounted = 0
        for v in victims:
            n = v.pages
            self.vm_stat_account(v.vm_flags, -n)
            if v.vm_flags & VM_ACCOUNT:
                accounted += n
            if v.vm_flags & VM_LOCKED:
                self.locked_vm -= n
        tree.remove_range(i, j)
        self._last = None
        self._forget_written()
        for v in victims:
            self.pt.zap(v.vm_start, v.vm_end)
        self.pt.free_pgtables(victims[0].vm_start, victims[-1].vm_end,
                              prev.vm_end if prev is not None else 0,
                              nxt.vm_start if nxt is not None else TASK_SIZE)
        self.committed -= accounted
        if uncharge:
            self._uncharge(accounted)

    # ------------------------------------------------------------------------------------
    # changing flags: merge or split (mprotect, madvise)
    # ------------------------------------------------------------------------------------
    def _split_checked(self, vma: VMA, addr: int) -> tuple[VMA, VMA]:
        """``split_vma``: refuses at ``map_count >= max_map_count``."""
        if self.map_count >= self.machine.max_map_count:
            raise _Fail(ENOMEM)
        return self.tree.split(vma, addr)

    def _modify(self, vma: VMA, start: int, end: int, newflags: int) -> VMA:
        """``vma_modify_flags``: give ``[start, end)`` (inside ``vma``) the flags ``newflags``,
        merging with a neighbour when the kernel would, else splitting."""
        tree = self.tree
        pgoff = vma.vm_pgoff + ((start - vma.vm_start) >> PAGE_SHIFT)
        npages = (end - start) >> PAGE_SHIFT
        prev = nxt = None
        if not vma.is_special():
            i = tree.index(vma)
            if start == vma.vm_start and i > 0 and tree.vmas[i - 1].vm_end == start:
                prev = tree.vmas[i - 1]
            if end == vma.vm_end and i + 1 < len(tree) and tree.vmas[i + 1].vm_start == end:
                nxt = tree.vmas[i + 1]
        left = prev is not None and can_merge_after(prev, start, newflags, vma.vm_file, pgoff,
                                                    vma.anon_vma)
        right = nxt is not None and can_merge_before(nxt, end, newflags, vma.vm_file, pgoff,
                                                     npages, vma.anon_vma)
        if left and right:
            assert prev is not None and nxt is not None
            right = anon_vma_compatible(prev.anon_vma, nxt.anon_vma)
        self._last = None
        if left:
            assert prev is not None
            prev.anon_vma = prev.anon_vma or vma.anon_vma
            if right:
                assert nxt is not None
                prev.anon_vma = prev.anon_vma or nxt.anon_vma
                tree.remove(vma)
                tree.remove(nxt)
                self.tree.set_end(prev, nxt.vm_end)
            elif end == vma.vm_end:
                tree.remove(vma)
                self.tree.set_end(prev, end)
            else:
                self.tree.set_end(prev, end)
                vma.vm_pgoff += npages
                tree.set_start(vma, end)
            return prev
        if right:
            assert nxt is not None
            nxt.anon_vma = nxt.anon_vma or vma.anon_vma
            if start == vma.vm_start:
                tree.remove(vma)
            else:
                self.tree.set_end(vma, start)
            tree.set_start(nxt, start)
            nxt.vm_pgoff = pgoff
            return nxt
        if vma.vm_start < start:
            _, vma = self._split_checked(vma, start)
        if vma.vm_end > end:
            self._split_checked(vma, end)
        vma.vm_flags = newflags
        self._forget_written()
        return vma

    # ------------------------------------------------------------------------------------
    # mprotect
    # ------------------------------------------------------------------------------------
    def sys_mprotect(self, start: int, length: int, prot: int) -> int:
        """``do_mprotect_pkey``: 0 or -errno; VMAs before a failure keep their new flags."""
        self._alive()
        start &= U64
        length &= U64
        prot &= 0xFFFFFFFF
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        prot &= ~grows
        if grows == PROT_GROWSDOWN | PROT_GROWSUP:
            return -EINVAL
        if start & (PAGE_SIZE - 1):
            return -EINVAL
        if length == 0:
            return 0
        length = _page_align64(length)
        end = start + length
        if length == 0 or end > U64 or end <= start:
            return -ENOMEM
        if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM):
            return -EINVAL
        vma = self.tree.find_vma_intersection(start, end)
        if vma is None:
            return -ENOMEM
        if grows & PROT_GROWSDOWN:
            if not vma.vm_flags & VM_GROWSDOWN:
                return -EINVAL
            start = vma.vm_start
        elif vma.vm_start > start:
            return -ENOMEM
        if grows & PROT_GROWSUP:
            return -EINVAL
        tmp = nstart = start
        newprot = calc_vm_prot_bits(prot)
        while vma is not None and vma.vm_start < end:
            if vma.vm_start > nstart:
                return -ENOMEM
            newflags = newprot | (vma.vm_flags & ~VM_ACCESS_FLAGS)
            if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
                return -EACCES
            tmp = min(vma.vm_end, end)
            try:
                self._mprotect_fixup(vma, nstart, tmp, newflags)
            except _Fail as e:
                return -e.err
            nstart = tmp
            if nstart >= end:
                break
            vma = self.tree.find_vma(nstart)
        if tmp < end:
            return -ENOMEM
        return 0

    def _mprotect_fixup(self, vma: VMA, start: int, end: int, newflags: int) -> None:
        """``mprotect_fixup`` (mm/mprotect.c): limits, commit charge, merge/split, counters."""
        oldflags = vma.vm_flags
        if newflags == oldflags:
            return
        npages = (end - start) >> PAGE_SHIFT
        charged = 0
        if newflags & VM_WRITE:
            if not self.may_expand_vm(newflags, npages) and self.may_expand_vm(oldflags, npages):
                raise _Fail(ENOMEM)
            if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
                if not self._charge(npages):
                    raise _Fail(ENOMEM)
                charged = npages
                newflags |= VM_ACCOUNT
        elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
            newflags &= ~VM_ACCOUNT
        try:
            self._modify(vma, start, end, newflags)
        except _Fail:
            self._uncharge(charged)
            raise
        self.committed += charged
        if oldflags & VM_ACCOUNT and not newflags & VM_ACCOUNT:
            self._uncharge(npages)
            self.committed -= npages
        self.vm_stat_account(oldflags, -npages)
        self.vm_stat_account(newflags, npages)

    # ------------------------------------------------------------------------------------
    # mremap
    # ------------------------------------------------------------------------------------
    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        """``mremap``: the (possibly new) address, or -errno (mm/mremap.c ``do_mremap``)."""
        self._alive()
        try:
            return self._do_mremap(old_addr & U64, old_len & U64, new_len & U64,
                                   flags & 0xFFFFFFFF, new_addr & U64)
        except _Fail as e:
            return -e.err

    def _do_mremap(self, addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int) -> int:
        """``do_mremap`` (mm/mremap.c, 6.18): check_mremap_params, then a multi-VMA move
        (``remap_move``), or check_prep_vma + ``mremap_to`` / ``mremap_at``."""
        # check_mremap_params
        if flags & ~MREMAP_VALID:
            raise _Fail(EINVAL)
        if addr & (PAGE_SIZE - 1):
            raise _Fail(EINVAL)
        old_len = _page_align64(old_len)
        new_len = _page_align64(new_len)
        if new_len == 0 or new_len > TASK_SIZE:
            raise _Fail(EINVAL)
        implies_new = bool(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
        if implies_new:
            # these apply to MREMAP_DONTUNMAP without MREMAP_FIXED too (new_addr is a hint)
            if new_addr > TASK_SIZE - new_len or new_addr & (PAGE_SIZE - 1):
                raise _Fail(EINVAL)
            if not flags & MREMAP_MAYMOVE:
                raise _Fail(EINVAL)
            if flags & MREMAP_DONTUNMAP and old_len != new_len:
                raise _Fail(EINVAL)
            if addr < new_addr + new_len and new_addr < addr + old_len:
                raise _Fail(EINVAL)
            if self.map_count + 2 >= self.machine.max_map_count - 3:
                raise _Fail(ENOMEM)
        if flags & MREMAP_FIXED and not flags & MREMAP_DONTUNMAP and old_len == new_len:
            return self._remap_move(addr, old_len, new_addr)
        vma = self.tree.vma_lookup(addr)
        if vma is None:
            raise _Fail(EFAULT)
        self._check_prep_vma(vma, addr, old_len, new_len, implies_new)
        if implies_new:
            return self._mremap_to(vma, addr, old_len, new_len, flags, new_addr)
        # mremap_at
        if new_len == old_len:
            return addr
        if new_len < old_len:                           # shrink_vma
            self._do_munmap(addr + new_len, old_len - new_len)
            return addr
        delta = new_len - old_len
        # expand: in place if the VMA ends here and the space above is free
        locked = bool(vma.vm_flags & VM_LOCKED)
        if old_len == vma.vm_end - addr and self._vma_expandable(vma, delta):
            self._expand_in_place(vma, delta)
            dest = addr
        else:
            if not flags & MREMAP_MAYMOVE:
                raise _Fail(ENOMEM)
            dest = self.get_unmapped_area(0, new_len, 0, 0, vma.vm_flags)
            self._move_vma(vma, addr, old_len, new_len, dest, dontunmap=False)
        if locked:                      # an mlock()ed mapping is populated as it grows
            self._populate(dest + old_len, dest + new_len)
        return dest

    def _check_prep_vma(self, vma: VMA, addr: int, old_len: int, new_len: int,
                        implies_new: bool) -> None:
        """``check_prep_vma``: what a resize or move of ``[addr, addr+old_len)`` needs."""
        if old_len == 0 and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
            raise _Fail(EINVAL)
        if not (implies_new or new_len > old_len):
            return                                      # a shrink or a no-op
        # a shrinking move unmaps the tail first: only what is left must lie in the VMA
        if min(old_len, new_len) > vma.vm_end - addr:
            raise _Fail(EFAULT)
        if new_len == old_len and not vma.is_special():
            return
        if vma.is_special():
            # VM_DONTEXPAND | VM_PFNMAP: -EFAULT (the vDSO's own move hook is not modelled)
            raise _Fail(EFAULT)
        if new_len > old_len and not self.may_expand_vm(vma.vm_flags,
                                                        (new_len - old_len) >> PAGE_SHIFT):
            raise _Fail(ENOMEM)

    def _mremap_to(self, vma: VMA, addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int) -> int:
        """``mremap_to``: MREMAP_FIXED (unmap the target first) or MREMAP_DONTUNMAP (new_addr
        is only a hint), shrink first, then ``move_vma``."""
        if flags & MREMAP_FIXED:
            self._do_munmap(new_addr, new_len)
            v = self.tree.vma_lookup(addr)
            if v is None:
                raise _Fail(EFAULT)
            vma = v
        if new_len < old_len:
            self._do_munmap(addr + new_len, old_len - new_len)
            old_len = new_len
            v = self.tree.vma_lookup(addr)
            if v is None:
                raise _Fail(EFAULT)
            vma = v
        if flags & MREMAP_DONTUNMAP and not self.may_expand_vm(vma.vm_flags,
                                                               old_len >> PAGE_SHIFT):
            raise _Fail(ENOMEM)
        if flags & MREMAP_FIXED:
            dest = new_addr
        else:
            dest = self.get_unmapped_area(new_addr, new_len, 0, 0, vma.vm_flags)
        return self._move_vma(vma, addr, old_len, new_len, dest,
                              dontunmap=bool(flags & MREMAP_DONTUNMAP))

    def _remap_move(self, start: int, length: int, new_addr: int) -> int:
        """``remap_move`` (6.17+): an MREMAP_FIXED move of equal size may span several VMAs
        and holes; each VMA moves to the same offset in the target, the gaps between source
        VMAs are kept, and only target pieces that receive a VMA are unmapped first."""
        end = start + length
        res = -1
        seen = False
        target = new_addr
        last_end = 0
        cur = start
        while cur < end:
            vma = self.tree.find_vma(cur)
            if vma is None or vma.vm_start >= end:
                break
            if not seen and start < vma.vm_start:
                raise _Fail(EFAULT)                    # no gap permitted at the start
            piece = max(vma.vm_start, cur)
            plen = min(end, vma.vm_end) - piece
            offset = vma.vm_start - last_end if seen else 0
            last_end = vma.vm_end
            if vma.is_special():                        # not vma_multi_allowed
                if seen or vma.vm_end < end:
                    raise _Fail(EFAULT)
            self._check_prep_vma(vma, piece, plen, plen, True)
            dest = target + offset
            moved = self._mremap_to(vma, piece, plen, plen, MREMAP_FIXED | MREMAP_MAYMOVE,
                                    dest)
            if not seen:
                res = moved
            seen = True
            target = moved + plen
            cur = piece + plen
        if not seen:
            raise _Fail(EFAULT)
        return res

    def _vma_expandable(self, vma: VMA, delta: int) -> bool:
        """``vma_expandable``: nothing mapped in the way and still inside TASK_SIZE (no
        stack guard gap is kept here, unlike brk and mmap)."""
        end = vma.vm_end + delta
        if self.tree.find_vma_intersection(vma.vm_end, end) is not None:
            return False
        return end - vma.vm_start <= TASK_SIZE and vma.vm_start <= TASK_SIZE - (end -
                                                                               vma.vm_start)

    def _expand_in_place(self, vma: VMA, delta: int) -> None:
        """``expand_vma_in_place``: charge, extend (merging with the next VMA), account."""
        npages = delta >> PAGE_SHIFT
        if vma.vm_flags & VM_ACCOUNT:
            if not self._charge(npages):
                raise _Fail(ENOMEM)
            self.committed += npages
        start = vma.vm_end
        end = start + delta
        i = self.tree.index(vma)
        nxt = self.tree.vmas[i + 1] if i + 1 < len(self.tree) else None
        pgoff = vma.vm_pgoff + vma.pages
        if nxt is not None and can_merge_before(nxt, end, vma.vm_flags, vma.vm_file, pgoff,
                                                npages, vma.anon_vma) \
                and anon_vma_compatible(vma.anon_vma, nxt.anon_vma):
            vma.anon_vma = vma.anon_vma or nxt.anon_vma
            self.tree.remove(nxt)
            self.tree.set_end(vma, nxt.vm_end)
        else:
            self.tree.set_end(vma, end)
        self._last = None
        self.vm_stat_account(vma.vm_flags, npages)
        if vma.vm_flags & VM_LOCKED:
            self.locked_vm += npages

    def _move_vma(self, vma: VMA, addr: int, old_len: int, new_len: int, dest: int,
                  dontunmap: bool) -> int:
        """``move_vma``/``copy_vma``: a VMA at ``dest`` with the source's flags, pgoff and
        anon_vma (so it rarely merges), the page tables moved (RSS unchanged), then the source
        unmapped with its charge kept: the net charge is only the growth."""
        if self.map_count >= self.machine.max_map_count - 3:
            raise _Fail(ENOMEM)
        flags = vma.vm_flags
        npages = new_len >> PAGE_SHIFT
        if flags & VM_ACCOUNT:
            charged = npages if dontunmap else max(new_len - old_len, 0) >> PAGE_SHIFT
            if not self._charge(charged):
                raise _Fail(ENOMEM)
        pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
        anon_vma = vma.anon_vma
        if vma.is_anonymous() and anon_vma is None:
            pgoff = dest >> PAGE_SHIFT        # copy_vma: a never-faulted VMA starts afresh
        # Only MREMAP_FIXED lands on existing mappings, and those were unmapped already.
        self._merge_new_range(dest, dest + new_len, flags, pgoff, anon_vma, vma.vm_file)
        self._last = None
        self.pt.move(addr, addr + old_len, dest)
        hiwater_vm = self.hiwater_vm
        self.vm_stat_account(flags, npages)
        if flags & VM_LOCKED:
            self.locked_vm += npages
        if flags & VM_ACCOUNT:
            self.committed += npages
        if not dontunmap:
            # VM_ACCOUNT is concealed: the source's reservation moves to the new VMA
            self._unmap_range(addr, addr + old_len, uncharge=False, check_count=False)
            self.hiwater_vm = hiwater_vm
        return dest

    # ------------------------------------------------------------------------------------
    # madvise
    # ------------------------------------------------------------------------------------
    def sys_madvise(self, start: int, length: int, advice: int) -> int:
        """``madvise``: 0 or -errno (``do_madvise`` / ``madvise_walk_vmas``)."""
        self._alive()
        start &= U64
        len_in = length & U64
        if advice not in _MADV_VALID:
            return -EINVAL
        if start & (PAGE_SIZE - 1):
            return -EINVAL
        length = _page_align64(len_in)
        if len_in and not length:
            return -EINVAL
        end = start + length
        if end > U64:
            return -EINVAL
        if end == start:
            return 0
        unmapped_error = 0
        try:
            vma = self.tree.find_vma(start)
            while True:
                if vma is None:
                    return -ENOMEM
                if start < vma.vm_start:
                    unmapped_error = -ENOMEM
                    start = vma.vm_start
                    if start >= end:
                        break
                tmp = min(vma.vm_end, end)
                self._madvise_vma(vma, start, tmp, advice)
                start = tmp
                if start >= end:
                    break
                vma = self.tree.find_vma(start)
        except _Fail as e:
            return -e.err
        return unmapped_error

    def _madvise_vma(self, vma: VMA, start: int, end: int, advice: int) -> None:
        if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE):
            if vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB) and \
                    advice != MADV_DONTNEED_LOCKED:
                raise _Fail(EINVAL)
            if advice == MADV_FREE:
                if not vma.is_anonymous():
                    raise _Fail(EINVAL)
                return          # lazily freed: RSS drops only under memory pressure
            self.update_hiwater_rss()
            self.pt.zap(start, end, reclaim_pt=True)
            return
        if advice in _MADV_FLAG_CHANGES:
            set_, clear = _MADV_FLAG_CHANGES[advice]
            if advice == MADV_DONTFORK or advice == MADV_WIPEONFORK:
                if vma.vm_flags & (VM_IO | VM_PFNMAP) or \
                        (advice == MADV_WIPEONFORK and not vma.is_anonymous()):
                    raise _Fail(EINVAL)
            newflags = (vma.vm_flags | set_) & ~clear
            if newflags != vma.vm_flags:
                self._modify(vma, start, end, newflags)
            return
        if advice == MADV_REMOVE:
            raise _Fail(EINVAL)          # only for shared mappings
        if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
            write = advice == MADV_POPULATE_WRITE
            # incompatible mappings or permissions: -EINVAL (verified on this machine)
            if vma.vm_flags & (VM_IO | VM_PFNMAP) or not vma.vm_flags & VM_ACCESS_FLAGS or \
                    (write and not vma.vm_flags & VM_WRITE):
                raise _Fail(EINVAL)
            self._fault_vma(vma, start, end - start, write, None)
            return
        # the remaining advice values change nothing this model keeps

    # ------------------------------------------------------------------------------------
    # memory accesses (the page-fault path)
    # ------------------------------------------------------------------------------------
    def write(self, addr: int, length: int = 1, every: int | None = None) -> None:
        """The CPU writes ``[addr, addr+length)`` (or one byte every ``every`` bytes).

        Fastest path: inside ``[_wlo, _whi)``, return at once. Hot path: the one-entry VMA
        cache (else one bisect), the VM_WRITE check, one ``PageTable.fault``. Everything else
        (several VMAs, stack growth, faults that become SIGSEGV, special mappings) takes
        :meth:`_access`.

        Tricky: ``[_wlo, _whi)`` lies in one VMA with VM_WRITE and every page of it has a
        present anonymous PTE with A, D and W set, and the page table does not track LRU
        recency (where every access re-stamps its page). A store there is a no-op for the
        model: the VMA check passes, and ``PageTable.fault``'s hot path returns without a
        change. It is set only right after such a check (:meth:`_note_written`) and dropped
        (:meth:`_forget_written`) by everything that can break it: the page table calls
        ``on_change`` before a zap, move, THP split, reclaim (eviction, clearing A) or
        teardown; mm drops it where VMAs change (``_modify``: vm_flags; unmap, mremap, brk,
        mmap, exit and the OOM kill go through a zap or a move anyway). PTE_W is not lowered
        by mprotect in this model (the VM_WRITE check stands for it), so ``_modify`` must drop
        it. Writes with ``every`` never take the fastest path. ``[_wlo2, _whi2)`` and the
        sorted disjoint ranges ``_wstarts``/``_wends`` keep earlier such ranges (same
        invariant, dropped together): the allocator's stores often alternate between two
        places (its tcache struct, a chunk), and a fit that scatters its stores comes back to
        many. Each earlier range is a union of ranges that each lay in written PTE extents, so
        they are no more than the PTE extents (state O(touched ranges)).
        """
        if self._wlo <= addr and addr + length <= self._whi and every is None:
            return
        if self._wlo2 <= addr and addr + length <= self._whi2 and every is None:
            return
        if self._wstarts and every is None and self._recall(addr, addr + length):
            return
        v = self._last
        if v is None or addr < v.vm_start or addr + length > v.vm_end:
            v = self.tree.vma_lookup(addr)
            if v is None or addr + length > v.vm_end or v.name is not None:
                self._access(addr, length, every, True)
                return
            self._last = v
        if v.vm_flags & VM_WRITE and length > 0:
            if v.anon_vma is None:
                self._anon_vma_prepare(v)
            pt = self.pt
            if v.vm_flags & VM_HUGEPAGE or self.thp_always:
                pt.fault(addr, length, True, every, v.vm_file is not None, self._thp_range(v))
            else:
                pt.fault(addr, length, True, every, v.vm_file is not None)
            if every is None and not pt._lru:
                self._note_written(v, addr, addr + length)
            return
        self._access(addr, length, every, True)

    def _note_written(self, v: VMA, start: int, end: int) -> None:
        """After a store to ``[start, end)`` in ``v`` (writable, not special): cache the run of
        address-adjacent present, anonymous, written (A, D, W) PTE extents around it, clipped
        to ``v`` (at most ``_NOTE_SPAN`` extents each way), joined to the cached range when
        the two meet (each part satisfies the invariant of :meth:`write` on its own). With
        recency tracked: only the one extent around the store."""
        pt = self.pt
        starts, ends, values = pt._starts, pt._ends, pt._values
        i = bisect_right(starts, start) - 1
        if i < 0 or ends[i] < end:
            return
        val = values[i]
        if val[3] & _PTE_WRITTEN != _PTE_WRITTEN or val[0] != ANON:
            return
        vs, ve = v.vm_start, v.vm_end
        lo, hi = starts[i], ends[i]
        if self.machine.track_recency:
            # Tricky: a store that spans two extents takes PageTable._fault_range, which
            # ticks the recency clock even when nothing else changes; only a store within
            # one extent is a no-op, so the cached range is that one extent.
            self._wlo = lo if lo > vs else vs
            self._whi = hi if hi < ve else ve
            return
        wlo, whi = self._wlo, self._whi
        # walk out until the VMA ends, a gap or another state, or the cached range is met
        j, stop = i, max(0, i - _NOTE_SPAN)
        while lo > vs and j > stop and ends[j - 1] == lo and not wlo <= lo <= whi:
            val = values[j - 1]
            if val[3] & _PTE_WRITTEN != _PTE_WRITTEN or val[0] != ANON:
                break
            j -= 1
            lo = starts[j]
        j, stop = i, min(len(starts) - 1, i + _NOTE_SPAN)
        while hi < ve and j < stop and starts[j + 1] == hi and not wlo <= hi <= whi:
            val = values[j + 1]
            if val[3] & _PTE_WRITTEN != _PTE_WRITTEN or val[0] != ANON:
                break
            j += 1
            hi = ends[j]
        if lo < vs:
            lo = vs
        if hi > ve:
            hi = ve
        if lo <= whi and hi >= wlo:                      # they meet: keep the union
            if wlo < lo:
                lo = wlo                    # type: ignore[assignment]
            if whi > hi:
                hi = whi                    # type: ignore[assignment]
        elif wlo <= whi:                                 # the old one moves behind
            if self._wlo2 <= self._whi2:
                self._keep_written(self._wlo2, self._whi2)  # type: ignore[arg-type]
            self._wlo2, self._whi2 = wlo, whi
        self._wlo, self._whi = lo, hi

    def _keep_written(self, lo: int, hi: int) -> None:
        """Add ``[lo, hi)`` to the earlier cached ranges, joined with those it meets (overlap
        or adjacency), so that they stay sorted and disjoint."""
        starts, ends = self._wstarts, self._wends
        i = bisect_left(ends, lo)           # first range that ends at or after lo
        if i < len(ends) and starts[i] <= lo and hi <= ends[i]:
            return                          # already inside (often: it was recalled)
        j = bisect_right(starts, hi, i)     # ranges [i, j) meet [lo, hi)
        if i < j:
            if starts[i] < lo:
                lo = starts[i]
            if ends[j - 1] > hi:
                hi = ends[j - 1]
            starts[i:j] = (lo,)
            ends[i:j] = (hi,)
        else:
            starts.insert(i, lo)
            ends.insert(i, hi)

    def _recall(self, start: int, end: int) -> bool:
        """Is ``[start, end)`` inside one of the earlier cached ranges? Then that one becomes
        the first too, the first the second, the second goes behind."""
        k = bisect_right(self._wstarts, start) - 1
        if k < 0 or end > self._wends[k]:
            return False
        lo, hi = self._wstarts[k], self._wends[k]
        if self._wlo2 <= self._whi2:
            self._keep_written(self._wlo2, self._whi2)  # type: ignore[arg-type]
        self._wlo2, self._whi2 = self._wlo, self._whi
        self._wlo, self._whi = lo, hi
        return True

    def _forget_written(self) -> None:
        self._wlo, self._whi = _NO_RANGE
        self._wlo2, self._whi2 = _NO_RANGE
        self._wstarts.clear()
        self._wends.clear()

    def read(self, addr: int, length: int = 1, every: int | None = None) -> None:
        """The CPU reads ``[addr, addr+length)``: on x86 any of r/w/x permits a read."""
        v = self._last
        if v is None or addr < v.vm_start or addr + length > v.vm_end:
            v = self.tree.vma_lookup(addr)
            if v is None or addr + length > v.vm_end or v.name is not None:
                self._access(addr, length, every, False)
                return
            self._last = v
        if v.vm_flags & VM_ACCESS_FLAGS and length > 0:
            if v.vm_flags & VM_HUGEPAGE or self.thp_always:
                self.pt.fault(addr, length, False, every, v.vm_file is not None,
                              self._thp_range(v))
            else:
                self.pt.fault(addr, length, False, every, v.vm_file is not None)
            return
        self._access(addr, length, every, False)

    @property
    def thp_always(self) -> bool:
        return self.thp_enabled == "always"

    def thp_eligible(self, v: VMA) -> bool:
        """May faults in ``v`` use 2 MiB pages? (sysfs ``enabled`` + VM_(NO)HUGEPAGE, anonymous
        private memory only; ``vma_thp_eligible``)"""
        if v.vm_file is not None or v.name is not None or v.vm_flags & VM_NOHUGEPAGE:
            return False
        if self.thp_enabled == "always":
            return True
        return self.thp_enabled == "madvise" and bool(v.vm_flags & VM_HUGEPAGE)

    def _thp_range(self, v: VMA) -> tuple[int, int] | None:
        return (v.vm_start, v.vm_end) if self.thp_eligible(v) else None

    def _access(self, addr: int, length: int, every: int | None, write: bool) -> None:
        """``do_user_addr_fault`` for every VMA the access touches, in address order."""
        self._alive()
        if length <= 0:
            return
        if every is not None and every >= length:
            every = None
            length = 1
        last = addr + ((length - 1) // every) * every if every else addr + length - 1
        cur = addr
        access = "write" if write else "read"
        while cur <= last:
            if cur >= TASK_SIZE:
                raise SegmentationFault(cur, "SEGV_MAPERR", access)
            v = self.tree.find_vma(cur)
            if v is None:
                raise SegmentationFault(cur, "SEGV_MAPERR", access)
            if v.vm_start > cur:
                if not v.vm_flags & VM_GROWSDOWN:
                    raise SegmentationFault(cur, "SEGV_MAPERR", access)
                try:
                    self._expand_downwards(v, cur)
                except _Fail:
                    raise SegmentationFault(cur, "SEGV_MAPERR", access) from None
            if write:
                if not v.vm_flags & VM_WRITE:
                    raise SegmentationFault(cur, "SEGV_ACCERR", access)
            elif not v.vm_flags & VM_ACCESS_FLAGS:
                raise SegmentationFault(cur, "SEGV_ACCERR", access)
            piece_end = min(v.vm_end, last + 1)
            self._fault_vma(v, cur, piece_end - cur, write, every)
            if not v.is_special():
                self._last = v
            if piece_end > last:
                break
            if every:
                k = -(-(v.vm_end - addr) // every)
                cur = addr + k * every
            else:
                cur = v.vm_end

    def _fault_vma(self, v: VMA, addr: int, length: int, write: bool,
                   every: int | None) -> None:
        """``handle_mm_fault`` for an access already validated against ``v``."""
        if v.vm_flags & VM_PFNMAP:
            return                      # [vvar]: PFN-mapped, never counted in RSS
        if write and v.anon_vma is None:
            self._anon_vma_prepare(v)
        file_backed = v.vm_file is not None or v.name == "[vdso]"
        self.pt.fault(addr, length, write, every, file_backed, self._thp_range(v))

    def _anon_vma_prepare(self, v: VMA) -> None:
        """``anon_vma_prepare`` + ``find_mergeable_anon_vma``: reuse a compatible
        neighbour's anon_vma (so that the two may merge later), else make a new one."""
        i = self.tree.index(v)
        vmas = self.tree.vmas
        for j in (i + 1, i - 1):
            if 0 <= j < len(vmas):
                a, b = (v, vmas[j]) if j > i else (vmas[j], v)
                other = vmas[j]
                if other.anon_vma is not None and a.vm_end == b.vm_start \
                        and a.vm_file == b.vm_file \
                        and not (a.vm_flags ^ b.vm_flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY) \
                        and b.vm_pgoff == a.vm_pgoff + a.pages:
                    v.anon_vma = other.anon_vma
                    return
        self._anon_vma_seq += 1
        v.anon_vma = self._anon_vma_seq

    def _expand_downwards(self, vma: VMA, address: int) -> None:
        """``expand_downwards`` + ``acct_stack_growth`` (mm/vma.c)."""
        address &= PAGE_MASK64
        if address < MMAP_MIN_ADDR:
            raise _Fail(abi.EPERM)
        prev = self.tree.prev_of(vma)
        if prev is not None and not prev.vm_flags & VM_GROWSDOWN and \
                prev.vm_flags & VM_ACCESS_FLAGS and address - prev.vm_end < STACK_GUARD_GAP:
            raise _Fail(ENOMEM)
        if address >= vma.vm_start:
            return
        size = vma.vm_end - address
        grow = (vma.vm_start - address) >> PAGE_SHIFT
        if grow > vma.vm_pgoff:
            raise _Fail(ENOMEM)
        # acct_stack_growth
        if not self.may_expand_vm(vma.vm_flags, grow):
            raise _Fail(ENOMEM)
        if size > self.rlimits["stack"][0]:
            raise _Fail(ENOMEM)
        if not self._charge(grow):
            raise _Fail(ENOMEM)
        if vma.vm_flags & VM_ACCOUNT:
            self.committed += grow
        else:
            self.committed_leak += grow
        if vma.anon_vma is None:
            self._anon_vma_prepare(vma)
        if vma.vm_flags & VM_LOCKED:
            self.locked_vm += grow
        self.vm_stat_account(vma.vm_flags, grow)
        self.tree.set_start(vma, address)
        vma.vm_pgoff -= grow

    # ------------------------------------------------------------------------------------
    # exit and the OOM killer (machine.Task)
    # ------------------------------------------------------------------------------------
    def exit_mmap(self) -> None:
        """``exit_mmap``: zap everything, free every table, return the commit charge."""
        if self.dead:
            return
        self.update_hiwater_rss()
        self.update_hiwater_vm()
        for v in self.tree.vmas:
            self.pt.zap(v.vm_start, v.vm_end)
        self.pt.free_pgtables(0, TASK_SIZE, 0, TASK_SIZE)
        self._uncharge(self.committed + self.committed_leak)
        self.committed = self.committed_leak = 0
        self.tree = VMATree()
        self._last = None
        self._forget_written()
        self.total_vm = self.data_vm = self.exec_vm = self.stack_vm = self.locked_vm = 0
        self.machine.release_page_table(self.pt)
        self.dead = True

    def oom_kill(self) -> None:
        """Called by the OOM killer when this mm is the victim: tear it down."""
        self.exit_mmap()

    def _alive(self) -> None:
        if self.dead:
            raise ConfigError(f"process {self.pid} has exited; its address space is gone")

    # ------------------------------------------------------------------------------------
    # views used by /proc
    # ------------------------------------------------------------------------------------
    def vma_name(self, v: VMA) -> str | None:
        """The name /proc prints: file path, special name, ``[heap]`` or ``[stack]``."""
        if v.vm_file is not None:
            return v.vm_file
        if v.name is not None:
            return v.name
        # vma_is_initial_heap / vma_is_initial_stack (strict heap test: verified here, a
        # bss VMA that ends exactly at start_brk is not named [heap])
        if v.vm_start < self.brk and v.vm_end > self.start_brk:
            return "[heap]"
        if v.vm_start <= self.start_stack <= v.vm_end:
            return "[stack]"
        return None

    def check(self) -> None:
        """Assert every invariant listed in the module docstring, then ``pt.check()``."""
        self.tree.check()
        if self.dead:
            assert len(self.tree) == 0 and self.committed == 0
            return
        total = data = exe = stack = accounted = locked = 0
        anon = file = swap = 0
        for v in self.tree.vmas:
            n = v.pages
            total += n
            if is_exec_mapping(v.vm_flags):
                exe += n
            elif is_stack_mapping(v.vm_flags):
                stack += n
            elif is_data_mapping(v.vm_flags):
                data += n
            if v.vm_flags & VM_ACCOUNT:
                accounted += n
            if v.vm_flags & VM_LOCKED:
                locked += n
            a, f, s = self.pt.counts(v.vm_start, v.vm_end)
            anon += a
            file += f
            swap += s
        assert total == self.total_vm, f"total_vm {self.total_vm} != sum {total}"
        assert data == self.data_vm, f"data_vm {self.data_vm} != sum {data}"
        assert exe == self.exec_vm, f"exec_vm {self.exec_vm} != sum {exe}"
        assert stack == self.stack_vm, f"stack_vm {self.stack_vm} != sum {stack}"
        assert accounted == self.committed, f"committed {self.committed} != {accounted}"
        assert locked == self.locked_vm, f"locked_vm {self.locked_vm} != sum {locked}"
        assert self.brk >= self.start_brk
        assert anon == self.pt.anon_pages, f"RssAnon {self.pt.anon_pages} != sum {anon}"
        assert file == self.pt.file_pages, f"RssFile {self.pt.file_pages} != sum {file}"
        assert swap == self.pt.swap_ents, f"VmSwap {self.pt.swap_ents} != sum {swap}"
        assert self._last is None or self._last in self.tree.vmas
        ws, we = self._wstarts, self._wends
        assert len(ws) == len(we)
        assert all(lo < hi for lo, hi in zip(ws, we, strict=True)), "empty cached range"
        assert all(hi < lo for hi, lo in zip(we, ws[1:], strict=False)), "cached ranges meet"
        self.pt.check()

    def __repr__(self) -> str:
        return (f"MM(pid={self.pid}, vmas={self.map_count}, total_vm={self.total_vm}, "
                f"brk={self.brk:#x})")


def abi_vm_data_default() -> int:
    """VM_DATA_DEFAULT_FLAGS (x86-64, no READ_IMPLIES_EXEC)."""
    return VM_READ | VM_WRITE | VM_MAY_FLAGS

