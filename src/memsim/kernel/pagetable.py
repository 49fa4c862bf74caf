"""One process's x86-64 four-level page tables and the state of every touched page, as extents.

The walk the MMU does for a virtual address (4 KiB pages, 4 levels, 512 entries per table)::

     47      39 38      30 29      21 20      12 11         0
    +----------+----------+----------+----------+------------+
    | PGD idx  | PUD idx  | PMD idx  | PTE idx  |   offset   |
    +----------+----------+----------+----------+------------+
         |          |          |          |
    CR3->PGD ----> PUD ------> PMD ------> PTE table ----> frame (or zero page / swap entry)
         one per   one per     one per     one per
         process   512 GiB     1 GiB       2 MiB

The PGD exists from creation (one frame, not counted in VmPTE). Lower tables are allocated on
demand when a fault needs an entry under them (``__pud_alloc``, ``__pmd_alloc``, ``pte_alloc``)
and each occupies one frame; ``pgtables_bytes`` (VmPTE) = 4096 x (PUD + PMD + PTE tables).

Nothing is kept per page or per table. Four :class:`~memsim.kernel.ranges.ExtentMap` s::

    pud_tables  [S, E) -> pfn   tables present for the 512 GiB spans in [S, E); the table for
    pmd_tables  [S, E) -> pfn   span k of the extent is frame pfn + k (runs of frames)
    pte_tables  [S, E) -> pfn   (spans of 1 GiB resp. 2 MiB)

    ptes        [S, E) -> (kind, base, stamp, flags)      page-aligned, one value per run:
        kind  ZERO  base = the zero page's PFN      read-only, no RSS
              ANON  base = PFN of the first page    RssAnon; page k of the run -> base + k
              FILE  base = PFN of the first page    RssFile (page-cache page of the image)
              SWAP  base = first swap slot          VmSwap; not present
        stamp recency for reclaim (0 when the machine does not track recency)
        flags PTE_A accessed, PTE_D dirty, PTE_W writable (bits 5, 6, 1 of a real PTE),
              PTE_HUGE mapped by a PMD (a transparent huge page, see below)

A never-touched page has no PTE (a gap). Touching a fresh GiB costs one ptes extent, one
pte_tables extent of 512 tables and one pmd_tables extent, whatever the size.

Faults (``fault``), after the caller (mm) validated the access against the VMA:

================  =========  =====================================================
PTE state         access     effect (kernel function mirrored)
================  =========  =====================================================
none, anon        read       map the zero page (``do_anonymous_page``), pgfault
none, anon/file   write      fresh frame, RssAnon+1 (``do_anonymous_page`` /
                             ``do_cow_fault``), pgfault
none, file        read       page-cache frame, RssFile+1 (``do_read_fault``), pgfault
zero page         write      fresh frame, RssAnon+1 (``do_wp_page``), pgfault
file page         write      private copy: RssFile-1, RssAnon+1 (``wp_page_copy``)
swap entry        any        frame, slot freed, VmSwap-1, RssAnon+1, major fault
                             (``do_swap_page``)
present, allowed  any        no fault: the CPU sets A (and D on a write)
================  =========  =====================================================

The hot path (every page of the access already present with the needed bits, and no
re-stamping for LRU due) is one ``bisect`` and three comparisons.

Transparent huge pages (mm/huge_memory.c), when the caller passes ``thp=(vm_start, vm_end)``:
a fault in a 2 MiB block that lies wholly inside the VMA and has no PTE table yet (pmd_none)
maps the whole block by PMD (``do_huge_pmd_anonymous_page``): a write gets 512 frames from one
512-aligned run (RssAnon +512, one fault), a read the huge zero page; either way one PTE table
is deposited (VmPTE +4 KiB). Such PTE extents carry PTE_HUGE and a block is all huge or not at
all. A write to the huge zero page gets a fresh THP (``do_huge_zero_wp_pmd``; verified on this
6.18 machine: RssAnon +2048 kB, VmPTE +0). A zap/move/VMA boundary that covers part of a block,
and reclaim, split the PMD (``__split_huge_pmd``): the deposited table then holds 512 PTEs and
the flag goes; zapping a whole huge block frees its deposited table (``zap_huge_pmd``).

Frees: ``zap`` (``zap_pte_range``; with ``reclaim_pt`` the 6.18 CONFIG_PT_RECLAIM rule of
MADV_DONTNEED: a PTE table is freed when the zapped range covers its whole 2 MiB span),
``free_pgtables`` (``free_pgd_range``/``free_pud_range``/``free_pmd_range``: a table is freed
when its span meets ``[start, end)`` and lies within ``[floor, ceiling)``; the kernel gets
there by rounding ``floor`` up and ``ceiling`` down at PMD_SIZE, PUD_SIZE and PGDIR_SIZE),
``move`` (``move_page_tables``: whole PMD tables move when old and new are 1 GiB aligned,
whole PTE tables when 2 MiB aligned, otherwise PTEs move into tables allocated at the
destination). The RssAnon/VmPTE figures of PT_RECLAIM, THP faults, the huge zero page and
munmap's floor/ceiling are checked live against this machine's kernel in
tests/kernel/test_pagetable.py.

Invariants (:meth:`PageTable.check`): every map is sorted, disjoint and coalesced; table spans
are aligned to their size; every PTE lies under a PTE table, every PTE table under a PMD
table, every PMD table under a PUD table; PTE extents are page aligned and their kinds, flags
and bases are consistent (the zero page's PFN for ZERO, frames below nr_frames, slots below
swap_pages); a huge block is wholly huge, backed by one 512-aligned contiguous run and has its
deposited PTE table; ``anon_pages``, ``file_pages``, ``swap_ents`` and ``huge_anon_pages``
equal the totals of their extents.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsim.kernel.abi import TASK_SIZE
from memsim.kernel.ranges import ExtentMap
from memsim.units import PAGE_SHIFT, PAGE_SIZE, GiB, MiB, align_down, align_up

if TYPE_CHECKING:
    from memsim.kernel.machine import Machine, Task

__all__ = ["PageTable", "Pte", "PMD_SIZE", "PUD_SIZE", "PGDIR_SIZE",
           "ZERO", "ANON", "FILE", "SWAP", "PTE_A", "PTE_D", "PTE_W"]

PMD_SIZE = 2 * MiB              # span of one PTE table (one PMD entry)
PUD_SIZE = 1 * GiB              # span of one PMD table (one PUD entry)
PGDIR_SIZE = 512 * GiB          # span of one PUD table (one PGD entry)
_TOP = 1 << 64                  # "no ceiling" (the kernel's USER_PGTABLES_CEILING == 0)

# PTE kinds and flag bits
ZERO, ANON, FILE, SWAP = 0, 1, 2, 3
KIND_NAMES = {ZERO: "zero", ANON: "frame", FILE: "frame", SWAP: "swap"}
PTE_A = 1                       # accessed (x86 bit 5)
PTE_D = 2                       # dirty    (x86 bit 6)
PTE_W = 4                       # writable (x86 bit 1)
PTE_HUGE = 8                    # part of a PMD-mapped 2 MiB page (x86 PS bit 7 in the PMD)
HPAGE_PMD_NR = PMD_SIZE // PAGE_SIZE     # 512 pages per transparent huge page
_NEED_READ = PTE_A
_NEED_WRITE = PTE_A | PTE_D | PTE_W
_FRESH_ANON = PTE_A | PTE_D | PTE_W
_PAGE_MASK = ~(PAGE_SIZE - 1)
_RECENT_MAX_BYTES = 16 * PAGE_SIZE      # LRU: accesses up to this size are noted, not split
_RECENT_MIN_LIMIT = 4096                # pages noted before the stamps are applied

PteValue = tuple[int, int, int, int]          # (kind, base, stamp, flags)


def _pte_slice(v: PteValue, offset: int) -> PteValue:
    """The value of the part of a PTE extent starting ``offset`` bytes in."""
    if v[0] == ZERO and not v[3] & PTE_HUGE:
        return v                # every small zero-page PTE points at the same frame
    return (v[0], v[1] + (offset >> PAGE_SHIFT), v[2], v[3])


def _table_slicer(span: int):  # noqa: ANN202 - small closure factory
    def sl(pfn: int, offset: int) -> int:
        return pfn + offset // span
    return sl


@dataclass(frozen=True)
class Pte:
    """What :meth:`PageTable.translate` found for one address.

    ``state`` is ``'zero'``, ``'frame'`` or ``'swap'``; ``pfn`` is set for zero/frame,
    ``swap_slot`` for swap. ``walk`` lists ``(level, index, table_pfn)`` for PGD, PUD, PMD and
    PTE tables (no PTE level for a PMD-mapped huge page: ``huge``). ``file`` tells a page-cache
    page from an anonymous one.
    """

    addr: int
    state: str
    pfn: int | None
    swap_slot: int | None
    writable: bool
    accessed: bool
    dirty: bool
    file: bool
    walk: tuple[tuple[str, int, int], ...]
    huge: bool = False


class PageTable:
    """One process's x86-64 4-level page tables, built lazily, and the state of every touched
    page (none / zero page / frame / swap entry) kept as extents, never per page.

    Created by :meth:`Machine.new_page_table`. All addresses are byte addresses.
    """

    def __init__(self, machine: Machine, owner: Task) -> None:
        self.machine = machine
        self.owner = owner
        self.ptes: ExtentMap[PteValue] = ExtentMap(_pte_slice)
        # aliases of the ptes lists for the hot path (ExtentMap mutates them in place)
        self._starts = self.ptes.starts
        self._ends = self.ptes.ends
        self._values = self.ptes.values
        self.pud_tables: ExtentMap[int] = ExtentMap(_table_slicer(PGDIR_SIZE))
        self.pmd_tables: ExtentMap[int] = ExtentMap(_table_slicer(PUD_SIZE))
        self.pte_tables: ExtentMap[int] = ExtentMap(_table_slicer(PMD_SIZE))
        self.anon_pages = 0         # MM_ANONPAGES
        self.file_pages = 0         # MM_FILEPAGES
        self.swap_ents = 0          # MM_SWAPENTS
        self.huge_anon_pages = 0    # anon pages mapped by PMD (smaps AnonHugePages)
        self.pgfault = 0
        self.pgmajfault = 0
        self.dead = False           # chosen by the OOM killer
        self.released = False       # unregistered from the machine
        self._lru = machine.track_recency and machine.replacement == "lru"
        # LRU: page -> stamp of accesses to resident pages not yet applied to ``ptes``
        self._recent: dict[int, int] = {}
        self._recent_min = _RECENT_MIN_LIMIT
        self._recent_limit = _RECENT_MIN_LIMIT
        self.pgd_pfn = machine._alloc_frames_all(1, None)[0][0]
        # Called before any change that can take a PTE's A, D or W bit away or remove a present
        # PTE (zap, move, reclaim, THP split, teardown): MM drops its resident-and-writable
        # cache (MM.write's fast path) there.
        self.on_change: Callable[[], None] | None = None

    # --- counters --------------------------------------------------------------------------
    @property
    def pgtables_bytes(self) -> int:
        """mm_pgtables_bytes: 4096 x (PUD + PMD + PTE tables); the PGD is not counted."""
        return PAGE_SIZE * (self.pud_tables.total // PGDIR_SIZE
                            + self.pmd_tables.total // PUD_SIZE
                            + self.pte_tables.total // PMD_SIZE)

    @property
    def table_frames(self) -> int:
        """Frames holding this process's page tables, its PGD included."""
        return (0 if self.released else 1) + self.pgtables_bytes // PAGE_SIZE

    @property
    def rss(self) -> int:
        """get_mm_rss: resident pages (anon + file)."""
        return self.anon_pages + self.file_pages

    def __repr__(self) -> str:
        return (f"PageTable(pid={self.owner.pid}, anon={self.anon_pages}, "
                f"file={self.file_pages}, swap={self.swap_ents}, "
                f"pgtables_bytes={self.pgtables_bytes}, extents={len(self.ptes)})")

    def _changed(self) -> None:
        cb = self.on_change
        if cb is not None:
            cb()

    # --- faults ------------------------------------------------------------------------------
    def fault(self, addr: int, length: int, write: bool, every: int | None = None,
              file_backed: bool = False, thp: tuple[int, int] | None = None) -> None:
        """The CPU touches the bytes ``[addr, addr+length)`` (with ``every``: the bytes addr,
        addr+every, ... below addr+length). See the module docstring for the effects; the
        caller has checked the access against one VMA. May reclaim and OOM-kill; if this
        process is the victim, raises OutOfMemoryKilled after ``owner.oom_kill()`` ran.

        ``thp=(vm_start, vm_end)``: the VMA may use transparent huge pages (the caller applied
        the sysfs policy and VM_HUGEPAGE/VM_NOHUGEPAGE); see :meth:`_fault_huge`."""
        if every is None and length > 0 and addr >= 0:
            # hot path: one extent covers the access and has every bit the access needs
            end = addr + length
            i = bisect_right(self._starts, addr) - 1
            if i >= 0 and self._ends[i] >= end:
                v = self._values[i]
                need = _NEED_WRITE if write else _NEED_READ
                if v[3] & need == need:
                    if not self._lru or v[0] == ZERO:
                        return
                    # LRU: nothing to re-stamp if this page alone was touched last
                    m = self.machine
                    page = addr & _PAGE_MASK
                    if (m._last_pt is self and m._last_page == page
                            and end <= page + PAGE_SIZE and m._last_epoch == m.epoch):
                        return
                    page_end = (end + PAGE_SIZE - 1) & _PAGE_MASK
                    if page_end - page <= _RECENT_MAX_BYTES:
                        # note the access; the stamps are applied in one pass later
                        stamp = m._tick()
                        recent = self._recent
                        for p in range(page, page_end, PAGE_SIZE):
                            recent[p] = stamp
                        if page_end - page == PAGE_SIZE:
                            m._last_pt, m._last_page, m._last_epoch = self, page, stamp
                        else:
                            m._last_pt = None
                        if len(recent) > self._recent_limit:
                            self._apply_recent()
                        return
        elif length <= 0 or addr < 0:
            if length == 0:
                return
            raise ValueError(f"fault: bad range addr={addr:#x} length={length}")
        elif every is not None and every != 1:
            if every <= 0:
                raise ValueError(f"fault: every must be positive, got {every}")
            last = addr + (length - 1) // every * every
            if every > PAGE_SIZE:
                self._fault_sparse(addr, last, every, write, file_backed, thp)
                return
            end = last + 1
        else:
            end = addr + length
        self._fault_range(addr & ~(PAGE_SIZE - 1), align_up(end, PAGE_SIZE), write,
                          file_backed, thp)

    def _fault_sparse(self, addr: int, last: int, every: int, write: bool,
                      file_backed: bool, thp: tuple[int, int] | None) -> None:
        """One byte every ``every`` (> one page) bytes: each touch is its own page."""
        ptes = self.ptes
        need = _NEED_WRITE if write else _NEED_READ
        a = addr
        while a <= last:
            i = bisect_right(ptes.starts, a) - 1
            if not (i >= 0 and ptes.ends[i] > a and ptes.values[i][3] & need == need
                    and not self._lru):
                page = a & ~(PAGE_SIZE - 1)
                self._fault_range(page, page + PAGE_SIZE, write, file_backed, thp)
            a += every

    def _fault_range(self, start: int, end: int, write: bool, file_backed: bool,
                     thp: tuple[int, int] | None = None) -> None:
        """handle_mm_fault over the page-aligned ``[start, end)``, one extent piece at a time.

        Tables are allocated one GiB of the range at a time, just ahead of its pages (the
        kernel allocates them per 2 MiB as it goes; this keeps a fault that ends in the OOM
        killer within 2 MiB of table frames of the kernel's count)."""
        m = self.machine
        stamp = m._tick() if m.track_recency else 0
        ptes = self.ptes
        chunk = start
        while chunk < end:
            chunk_end = min(end, align_down(chunk, PUD_SIZE) + PUD_SIZE)
            if thp is not None and not file_backed:
                self._fault_huge(chunk, chunk_end, write, thp)
            self._ensure_tables(chunk, chunk_end)
            pos = chunk
            while pos < chunk_end:
                starts = ptes.starts
                i = bisect_right(starts, pos) - 1
                if i >= 0 and ptes.ends[i] > pos:
                    pe = min(ptes.ends[i], chunk_end)
                    v: PteValue | None = ptes.values[i]
                    if starts[i] != pos:
                        v = _pte_slice(ptes.values[i], pos - starts[i])
                else:
                    pe = min(chunk_end, starts[i + 1]) if i + 1 < len(starts) else chunk_end
                    v = None
                pos = self._fault_piece(pos, pe, v, write, file_backed, stamp)
            chunk = chunk_end
        if self._lru:
            if end - start == PAGE_SIZE:
                m._last_pt, m._last_page, m._last_epoch = self, start, m.epoch
            else:
                m._last_pt = None

    def _fault_piece(self, ps: int, pe: int, v: PteValue | None, write: bool,
                     file_backed: bool, stamp: int) -> int:
        """Fault ``[ps, pe)``, all in one state ``v``; return how far it got."""
        if v is None:
            if write:                                   # do_anonymous_page / do_cow_fault
                return self._map_new(ps, pe, ANON, _FRESH_ANON, stamp, None)
            if file_backed:                             # do_read_fault
                return self._map_new(ps, pe, FILE, PTE_A, stamp, None)
            self.ptes.set(ps, pe, (ZERO, self.machine.zero_pfn, 0, PTE_A))
            self.pgfault += (pe - ps) >> PAGE_SHIFT
            return pe
        kind = v[0]
        if v[3] & PTE_HUGE and kind == ZERO and write:
            # do_huge_zero_wp_pmd: a write to the huge zero page gets a fresh THP (one fault,
            # the deposited table stays); without an order-9 block the PMD is split into 512
            # PTEs of the small zero page and the write faults in 4 KiB
            b = align_down(ps, PMD_SIZE)
            pfn = self.machine._alloc_huge()
            if pfn is None:
                self.machine.thp_fault_fallback += 1
                self._split_huge(ps, ps + PAGE_SIZE)
                return ps
            m = self.machine
            stamp = m._tick() if m.track_recency else 0
            self.ptes.set(b, b + PMD_SIZE, (ANON, pfn, stamp, _FRESH_ANON | PTE_HUGE))
            self.anon_pages += HPAGE_PMD_NR
            self.huge_anon_pages += HPAGE_PMD_NR
            self.pgfault += 1
            m.thp_fault_alloc += 1
            if m.track_recency:
                m._index_push(stamp, self, b, b + PMD_SIZE)
            return min(pe, b + PMD_SIZE)
        if kind == ZERO:
            if write:                                   # do_wp_page on the zero page
                return self._map_new(ps, pe, ANON, _FRESH_ANON, stamp, v)
            return pe
        if kind == SWAP:                                # do_swap_page
            flags = _FRESH_ANON if write else PTE_A | PTE_W
            return self._map_new(ps, pe, ANON, flags, stamp, v)
        if kind == FILE and write:                      # wp_page_copy of a private file page
            return self._map_new(ps, pe, ANON, _FRESH_ANON, stamp, v)
        # present and permitted: the CPU sets A (and D); LRU re-stamps
        add = PTE_A | PTE_D if write else PTE_A
        restamp = self._lru and v[2] != stamp
        if v[3] & add != add or restamp:
            us, ue = ps, pe
            if v[3] & PTE_HUGE:                         # one PMD: A, D and recency per 2 MiB
                us, ue = align_down(ps, PMD_SIZE), align_up(pe, PMD_SIZE)

            def upd(s: int, e: int, val: PteValue) -> PteValue:
                return (val[0], val[1], stamp if restamp else val[2], val[3] | add)
            self.ptes.update(us, ue, upd)
            if restamp:
                self.machine._index_push(stamp, self, us, ue)
        return pe

    def _map_new(self, ps: int, pe: int, kind: int, flags: int, stamp: int,
                 old: PteValue | None) -> int:
        """Give ``[ps, pe)`` fresh frames (as many as the machine grants), releasing what
        ``old`` held there (file frames, swap slots). Return the end of what was mapped."""
        m = self.machine
        runs = m._alloc_frames((pe - ps) >> PAGE_SHIFT, self, pin=(ps, pe))
        if m.track_recency:
            stamp = m._tick()       # loaded now: newer than anything reclaim just re-stamped
        pos = ps
        for pfn, cnt in runs:
            e = pos + (cnt << PAGE_SHIFT)
            if old is not None and old[0] != ZERO:
                first = old[1] + ((pos - ps) >> PAGE_SHIFT)
                if old[0] == FILE:
                    m._free_frames(first, cnt)
                    self.file_pages -= cnt
                else:                                   # SWAP
                    m._free_slots(first, cnt)
                    self.swap_ents -= cnt
                    self.pgmajfault += cnt
                    m.pswpin += cnt
            self.ptes.set(pos, e, (kind, pfn, stamp, flags))
            pos = e
        n = (pos - ps) >> PAGE_SHIFT
        if kind == ANON:
            self.anon_pages += n
        else:
            self.file_pages += n
        self.pgfault += n
        if m.track_recency:
            m._index_push(stamp, self, ps, pos)
        return pos

    # --- transparent huge pages (mm/huge_memory.c) -----------------------------------------------
    def _fault_huge(self, start: int, end: int, write: bool, thp: tuple[int, int]) -> None:
        """do_huge_pmd_anonymous_page for every 2 MiB block of ``[start, end)`` that lies wholly
        inside the VMA ``thp`` and whose PMD is still empty (no PTE table). A write gets 512
        frames from one 512-aligned free run (an order-9 allocation; without one, or below the
        low watermark, it falls back to 4 KiB pages: we model no compaction), RssAnon +512 and
        one fault; a read maps the huge zero page (no RSS). Either way one PTE table is
        deposited (VmPTE +4 KiB), as the kernel does for a later split."""
        vs, ve = thp
        m = self.machine
        b = align_down(start, PMD_SIZE)
        while b < end:
            if vs <= b and b + PMD_SIZE <= ve and self.pte_tables.find(b) < 0:
                self._ensure_level(self.pud_tables, PGDIR_SIZE, b, b + 1)
                self._ensure_level(self.pmd_tables, PUD_SIZE, b, b + 1)
                table = m._alloc_frames_all(1, self)[0][0]     # pte_alloc_one (deposit)
                if write:
                    pfn = m._alloc_huge()
                    if pfn is None:
                        m.thp_fault_fallback += 1
                        m._free_frames(table, 1)
                    else:
                        stamp = m._tick() if m.track_recency else 0
                        self.pte_tables.set(b, b + PMD_SIZE, table)
                        self.ptes.set(b, b + PMD_SIZE, (ANON, pfn, stamp, _FRESH_ANON | PTE_HUGE))
                        self.anon_pages += HPAGE_PMD_NR
                        self.huge_anon_pages += HPAGE_PMD_NR
                        self.pgfault += 1
                        m.thp_fault_alloc += 1
                        if m.track_recency:
                            m._index_push(stamp, self, b, b + PMD_SIZE)
                else:
                    hz = m._huge_zero_page() if m.thp_use_zero_page else None
                    if hz is None:
                        m._free_frames(table, 1)
                    else:
                        self.pte_tables.set(b, b + PMD_SIZE, table)
                        self.ptes.set(b, b + PMD_SIZE, (ZERO, hz, 0, PTE_A | PTE_HUGE))
                        self.pgfault += 1
            b += PMD_SIZE

    def _split_huge(self, lo: int, hi: int) -> None:
        """__split_huge_pmd for every PMD-mapped block meeting ``[lo, hi)``: the deposited PTE
        table now holds 512 PTEs; anon pages stay where they are (AnonHugePages goes down), a
        huge zero page becomes 512 small zero-page PTEs."""
        self._changed()
        blo, bhi = align_down(lo, PMD_SIZE), align_up(hi, PMD_SIZE)
        if not any(v[3] & PTE_HUGE for _, _, v in self.ptes.items(blo, bhi)):
            return
        zero = self.machine.zero_pfn
        split = 0

        def upd(s: int, e: int, val: PteValue) -> PteValue:
            nonlocal split
            if not val[3] & PTE_HUGE:
                return val
            if val[0] == ZERO:
                return (ZERO, zero, 0, val[3] & ~PTE_HUGE)
            split += (e - s) >> PAGE_SHIFT
            return (val[0], val[1], val[2], val[3] & ~PTE_HUGE)
        self.ptes.update(blo, bhi, upd)
        self.huge_anon_pages -= split

    def split_huge_pmd(self, addr: int) -> None:
        """vma_adjust_trans_huge: a VMA boundary at ``addr`` inside a PMD-mapped block (mprotect
        or madvise of part of it) splits that block into 4 KiB PTEs. No-op when aligned."""
        if addr % PMD_SIZE:
            self._split_huge(addr, addr + 1)

    def anon_huge_pages_in(self, start: int, end: int) -> int:
        """Anonymous pages mapped by PMD within ``[start, end)``: smaps AnonHugePages / 4 KiB."""
        n = 0
        for s, e, v in self.ptes.items(start, end):
            if v[0] == ANON and v[3] & PTE_HUGE:
                n += (e - s) >> PAGE_SHIFT
        return n

    # --- page-table pages ------------------------------------------------------------------------
    def _levels(self) -> tuple[tuple[ExtentMap[int], int], ...]:
        return ((self.pud_tables, PGDIR_SIZE), (self.pmd_tables, PUD_SIZE),
                (self.pte_tables, PMD_SIZE))

    def _ensure_tables(self, start: int, end: int) -> None:
        """__pud_alloc / __pmd_alloc / pte_alloc for every table ``[start, end)`` needs."""
        for tables, span in self._levels():
            self._ensure_level(tables, span, start, end)

    def _ensure_level(self, tables: ExtentMap[int], span: int, start: int, end: int) -> None:
        lo, hi = align_down(start, span), align_up(end, span)
        i = bisect_right(tables.starts, lo) - 1
        if i >= 0 and tables.ends[i] >= hi:
            return
        for gs, ge in tables.gaps(lo, hi):
            runs = self.machine._alloc_frames_all((ge - gs) // span, self)
            for pfn, cnt in runs:
                tables.set(gs, gs + cnt * span, pfn)
                gs += cnt * span

    def _drop_tables(self, tables: ExtentMap[int], span: int, lo: int, hi: int) -> None:
        """Free the tables of one level whose spans lie in ``[lo, hi)`` (span aligned)."""
        if lo >= hi:
            return
        for s, e, pfn in tables.delete(lo, hi):
            self.machine._free_frames(pfn, (e - s) // span)

    # --- frees ------------------------------------------------------------------------------------
    def zap(self, start: int, end: int, reclaim_pt: bool = False) -> None:
        """zap_page_range: drop every PTE in ``[start, end)`` (page aligned): frames and swap
        slots freed, counters down. ``reclaim_pt`` (MADV_DONTNEED, CONFIG_PT_RECLAIM) also frees
        the PTE tables whose whole 2 MiB span lies in ``[start, end)``."""
        self._changed()
        self._check_range("zap", start, end)
        m = self.machine
        if start % PMD_SIZE:
            self._split_huge(start, start + 1)       # zap_pmd_range splits a partial THP
        if end % PMD_SIZE:
            self._split_huge(end - 1, end)
        for s, e, v in self.ptes.delete(start, end):
            n = (e - s) >> PAGE_SHIFT
            kind = v[0]
            if v[3] & PTE_HUGE:                       # zap_huge_pmd: the deposit goes too
                self._drop_tables(self.pte_tables, PMD_SIZE, align_down(s, PMD_SIZE),
                                  align_up(e, PMD_SIZE))
                if kind == ANON:
                    self.huge_anon_pages -= n
            if kind == ANON:
                self.anon_pages -= n
                m._free_frames(v[1], n)
            elif kind == FILE:
                self.file_pages -= n
                m._free_frames(v[1], n)
            elif kind == SWAP:
                self.swap_ents -= n
                m._free_slots(v[1], n)
        if reclaim_pt:
            self._drop_tables(self.pte_tables, PMD_SIZE, align_up(start, PMD_SIZE),
                              align_down(end, PMD_SIZE))

    def free_pgtables(self, start: int, end: int, floor: int, ceiling: int) -> None:
        """free_pgd_range after an unmap of ``[start, end)``: free each PTE/PMD/PUD table whose
        span meets ``[start, end)`` and lies within ``[floor, ceiling)``. ``ceiling`` 0 (the
        kernel's USER_PGTABLES_CEILING) or >= TASK_SIZE means no ceiling."""
        self._check_range("free_pgtables", start, end)
        ceil = _TOP if ceiling == 0 or ceiling >= TASK_SIZE else ceiling
        if floor > start or end > ceil:
            raise ValueError(f"free_pgtables: [{start:#x}, {end:#x}) is not within "
                             f"floor {floor:#x} / ceiling {ceiling:#x}")
        windows = []
        for _tables, span in reversed(self._levels()):      # PTE, PMD, PUD
            lo = max(align_down(start, span), align_up(floor, span))
            hi = min(align_up(end, span), align_down(ceil, span))
            if lo < hi:
                if self.ptes.covered(lo, hi):
                    s, _, _ = self.ptes.items(lo, hi)[0]
                    raise ValueError(f"free_pgtables: page {s:#x} under a table being freed "
                                     f"is still mapped (zap it first)")
                windows.append((lo, hi))
        for lo, hi in windows:
            # a table and every table below it inside its span go together
            for tables, span in self._levels():
                self._drop_tables(tables, span, align_up(lo, span), align_down(hi, span))

    def move(self, old_start: int, old_end: int, new_start: int, realign: bool = False) -> None:
        """move_page_tables (mremap): the page states move with their frames (RSS unchanged).
        Following the kernel loop: where both addresses are 1 GiB aligned with a whole GiB to
        go and the destination has no PMD table, the PMD table itself moves; likewise the PTE
        table at 2 MiB; otherwise the PTEs move into tables allocated at the destination. Only
        chunks with a table at the old address do anything. The caller then calls
        free_pgtables on the old range.

        ``realign=True`` says that ``can_align_down`` holds for both ranges (each starts its
        VMA and no VMA lies between it and the PMD boundary below; mm knows the VMAs): then,
        as ``try_realign_addr`` does, mutually misaligned-by-the-same-offset addresses are moved
        from that PMD boundary so that whole PTE tables can move."""
        self._changed()
        self._check_range("move", old_start, old_end)
        self._apply_recent()            # noted accesses follow their pages
        if new_start % PAGE_SIZE or new_start < 0:
            raise ValueError(f"move: new_start {new_start:#x} is not page aligned")
        length = old_end - old_start
        new_end = new_start + length
        if new_start < old_end and old_start < new_end:
            raise ValueError("move: old and new ranges overlap")
        off = old_start % PMD_SIZE
        if (realign and off and new_start % PMD_SIZE == off and length >= PMD_SIZE - off
                and not (new_start - off < old_end and old_start - off < new_end)):
            old_start -= off                                # try_realign_addr
            new_start -= off
        old, new = old_start, new_start
        while old < old_end:
            ext = _get_extent(PUD_SIZE, old, new, old_end)
            if self.pmd_tables.find(old) < 0:               # get_old_pud() == NULL
                j = self.pmd_tables.first_index(old)
                nxt = self.pmd_tables.starts[j] if j < len(self.pmd_tables) else old_end
                step = max(ext, min(nxt, old_end) - old)
                old += step
                new += step
                continue
            self._ensure_level(self.pud_tables, PGDIR_SIZE, new, new + 1)   # alloc_new_pud
            if ext == PUD_SIZE and self.pmd_tables.find(new) < 0:
                self._move_tables(old, new, PUD_SIZE)       # move_normal_pud
                old += ext
                new += ext
                continue
            ext = _get_extent(PMD_SIZE, old, new, old_end)
            if self.pte_tables.find(old) < 0:               # get_old_pmd() == NULL
                old += ext
                new += ext
                continue
            self._ensure_level(self.pmd_tables, PUD_SIZE, new, new + 1)     # alloc_new_pmd
            v_old = self.ptes.get(old)
            if (v_old is not None and v_old[3] & PTE_HUGE
                    and not (ext == PMD_SIZE and self.pte_tables.find(new) < 0)):
                self._split_huge(old, old + 1)              # split_huge_pmd, then PTEs move
            if ext == PMD_SIZE and self.pte_tables.find(new) < 0:
                self._move_tables(old, new, PMD_SIZE)       # move_normal_pmd
            else:
                self._ensure_level(self.pte_tables, PMD_SIZE, new, new + 1)  # pte_alloc
                self._move_ptes(old, old + ext, new)        # move_ptes
            old += ext
            new += ext

    def _move_tables(self, old: int, new: int, span: int) -> None:
        """Re-hang the table covering ``[old, old+span)`` (and everything below it) at new."""
        for tables, tspan in self._levels():
            if tspan > span:
                continue            # the table above stays; it gets/keeps its own entry
            for s, e, pfn in tables.delete(old, old + span):
                tables.set(s - old + new, e - old + new, pfn)
        self._move_ptes(old, old + span, new)

    def _move_ptes(self, old: int, old_end: int, new: int) -> None:
        m = self.machine
        for s, e, v in self.ptes.delete(old, old_end):
            ns, ne = s - old + new, e - old + new
            self.ptes.set(ns, ne, v)
            if m.track_recency and (v[0] == ANON or v[0] == FILE):
                m._index_push(v[2], self, ns, ne)

    # --- LRU bookkeeping -----------------------------------------------------------------------
    def _apply_recent(self) -> None:
        """Fold the noted accesses (``_recent``: page -> stamp) into the PTE extents in one
        merge pass: a resident page gets the newer of its stamp and the noted one, which splits
        its extent. One pass over the extents per batch instead of a list insert per access
        keeps exact LRU cheap when many pages are touched in random order."""
        recent = self._recent
        if not recent:
            return
        items = sorted(recent.items())
        recent.clear()
        ptes = self.ptes
        starts, ends, values = ptes.starts, ptes.ends, ptes.values
        i0 = ptes.first_index(items[0][0])
        i1 = bisect_right(starts, items[-1][0])
        new_s: list[int] = []
        new_e: list[int] = []
        new_v: list[PteValue] = []
        pushes: list[tuple[int, int, int]] = []

        def emit(s: int, e: int, v: PteValue) -> None:
            if new_e and new_e[-1] == s and _pte_slice(new_v[-1], s - new_s[-1]) == v:
                new_e[-1] = e
            else:
                new_s.append(s)
                new_e.append(e)
                new_v.append(v)

        k, n_items = 0, len(items)
        idx = i0
        while idx < i1:
            s, e, v = starts[idx], ends[idx], values[idx]
            while k < n_items and items[k][0] < s:
                k += 1                                  # noted pages no longer mapped
            if k == n_items or items[k][0] >= e:
                # no noted page in this extent: copy it and the untouched ones after it
                nxt = i1 if k == n_items else max(idx + 1, bisect_right(starts, items[k][0]) - 1)
                nxt = min(nxt, i1)
                emit(s, e, v)
                new_s.extend(starts[idx + 1:nxt])
                new_e.extend(ends[idx + 1:nxt])
                new_v.extend(values[idx + 1:nxt])
                idx = nxt
                continue
            idx += 1
            if v[0] != ANON and v[0] != FILE:
                emit(s, e, v)
                continue
            cursor = s
            while k < n_items and items[k][0] < e:
                p, t = items[k]
                k += 1
                if t <= v[2]:
                    continue
                if p > cursor:
                    emit(cursor, p, _pte_slice(v, cursor - s))
                emit(p, p + PAGE_SIZE, (v[0], v[1] + ((p - s) >> PAGE_SHIFT), t, v[3]))
                pushes.append((t, p, p + PAGE_SIZE))
                cursor = p + PAGE_SIZE
            if cursor < e:
                emit(cursor, e, v if cursor == s else _pte_slice(v, cursor - s))
        # a run built here may continue the extents just outside the rebuilt slice
        if i1 < len(starts) and new_e and new_e[-1] == starts[i1] and \
                _pte_slice(new_v[-1], new_e[-1] - new_s[-1]) == values[i1]:
            new_e[-1] = ends[i1]
            i1 += 1
        if i0 > 0 and new_s and ends[i0 - 1] == new_s[0] and \
                _pte_slice(values[i0 - 1], ends[i0 - 1] - starts[i0 - 1]) == new_v[0]:
            i0 -= 1
            new_s[0] = starts[i0]
        starts[i0:i1] = new_s
        ends[i0:i1] = new_e
        values[i0:i1] = new_v
        m = self.machine
        for t, p, e in pushes:
            m._index_push(t, self, p, e)
        self._recent_limit = max(self._recent_min, len(starts))

    # --- reclaim hooks (called by the machine) ---------------------------------------------------
    def _set_stamp_clear_a(self, start: int, end: int, stamp: int) -> None:
        self._changed()
        def upd(s: int, e: int, val: PteValue) -> PteValue:
            return (val[0], val[1], stamp, val[3] & ~PTE_A)
        self.ptes.update(start, end, upd)

    def _evict(self, start: int, end: int, v: PteValue, want: int) -> int:
        """Reclaim up to ``want`` pages from the resident piece ``[start, end)`` (value ``v``
        at ``start``): anon pages to swap slots, file pages dropped. Returns pages freed."""
        self._changed()
        m = self.machine
        n = min((end - start) >> PAGE_SHIFT, want)
        if n <= 0:
            return 0
        if v[3] & PTE_HUGE:                              # a THP is split before swap-out
            self._split_huge(start, end)
            v = (v[0], v[1], v[2], v[3] & ~PTE_HUGE)
        if v[0] == FILE:
            self.ptes.delete(start, start + (n << PAGE_SHIFT))
            m._free_frames(v[1], n)
            self.file_pages -= n
            m.pgsteal_file += n
            return n
        n = min(n, m._free_swap.total)
        pos = start
        for slot, cnt in m._take(m._free_swap, n):      # add_to_swap + try_to_unmap
            e = pos + (cnt << PAGE_SHIFT)
            self.ptes.set(pos, e, (SWAP, slot, 0, 0))
            m._free_frames(v[1] + ((pos - start) >> PAGE_SHIFT), cnt)
            pos = e
        self.anon_pages -= n
        self.swap_ents += n
        m.pswpout += n
        return n

    def _teardown(self) -> None:
        """exit_mmap's last steps: zap everything left, free every table and the PGD."""
        self._changed()
        if self.ptes:
            self.zap(self.ptes.starts[0], self.ptes.ends[-1])
        for tables, span in self._levels():
            if tables:
                self._drop_tables(tables, span, tables.starts[0], tables.ends[-1])
        if not self.released:
            self.machine._free_frames(self.pgd_pfn, 1)

    # --- queries ----------------------------------------------------------------------------------
    def counts(self, start: int, end: int) -> tuple[int, int, int]:
        """(anon resident pages, file resident pages, swap entries) within ``[start, end)``."""
        anon = file = swap = 0
        for s, e, v in self.ptes.items(start, end):
            n = (e - s) >> PAGE_SHIFT
            if v[0] == ANON:
                anon += n
            elif v[0] == FILE:
                file += n
            elif v[0] == SWAP:
                swap += n
        return anon, file, swap

    def translate(self, addr: int) -> Pte | None:
        """The page-table walk for one address: None if there is no PTE."""
        if not 0 <= addr < _TOP:
            raise ValueError(f"translate: bad address {addr:#x}")
        v = self.ptes.get(addr)
        if v is None:
            return None
        page = addr & ~(PAGE_SIZE - 1)
        kind, base, _, flags = v
        huge = bool(flags & PTE_HUGE)
        walk = (("PGD", (addr >> 39) & 511, self.pgd_pfn),
                ("PUD", (addr >> 30) & 511, self.pud_tables.get(page)),
                ("PMD", (addr >> 21) & 511, self.pmd_tables.get(page)))
        if not huge:
            walk += (("PTE", (addr >> 12) & 511, self.pte_tables.get(page)),)
        return Pte(addr=addr, state=KIND_NAMES[kind],
                   pfn=None if kind == SWAP else base,
                   swap_slot=base if kind == SWAP else None,
                   writable=bool(flags & PTE_W), accessed=bool(flags & PTE_A),
                   dirty=bool(flags & PTE_D), file=kind == FILE,
                   walk=walk, huge=huge)  # type: ignore[arg-type]

    # --- verification -----------------------------------------------------------------------------
    @staticmethod
    def _check_range(what: str, start: int, end: int) -> None:
        if start % PAGE_SIZE or end % PAGE_SIZE or start < 0 or end < start:
            raise ValueError(f"{what}: [{start:#x}, {end:#x}) is not a page-aligned range")

    def _physical_runs(self) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
        """(frame runs, swap slot runs) this page table owns, for Machine.check."""
        who = f"pid {self.owner.pid}"
        frames: list[tuple[int, int, str]] = []
        slots: list[tuple[int, int, str]] = []
        if not self.released:
            frames.append((self.pgd_pfn, 1, f"{who} PGD"))
        for tables, span in self._levels():
            for s, e, pfn in tables:
                frames.append((pfn, (e - s) // span, f"{who} page tables"))
        for s, e, v in self.ptes:
            n = (e - s) >> PAGE_SHIFT
            if v[0] == ANON or v[0] == FILE:
                frames.append((v[1], n, f"{who} page {s:#x}"))
            elif v[0] == SWAP:
                slots.append((v[1], n, f"{who} swap entry {s:#x}"))
        return frames, slots

    def _check_huge(self, s: int, e: int, v: PteValue) -> None:
        """A PMD-mapped piece: its blocks are wholly huge, backed by 512-aligned frame runs,
        and each has its deposited PTE table."""
        for b in range(align_down(s, PMD_SIZE), e, PMD_SIZE):
            head = self.ptes.get(b)
            if head is None or head[1] % HPAGE_PMD_NR:
                raise AssertionError(f"huge block {b:#x} not backed by an aligned run: {head}")
            if self.ptes.covered(b, b + PMD_SIZE) != PMD_SIZE:
                raise AssertionError(f"huge block {b:#x} has holes")
            for ps, _, pv in self.ptes.items(b, b + PMD_SIZE):
                if not pv[3] & PTE_HUGE or pv[0] != v[0]:
                    raise AssertionError(f"huge block {b:#x} is partly small: {pv} at {ps:#x}")
                if pv[1] != head[1] + ((ps - b) >> PAGE_SHIFT):
                    raise AssertionError(f"huge block {b:#x}: frames not contiguous at {ps:#x}")
            if self.pte_tables.find(b) < 0:
                raise AssertionError(f"huge block {b:#x} has no deposited PTE table")

    def check(self) -> None:
        """Assert the invariants in the module docstring."""
        m = self.machine
        self.ptes.check()
        parent: ExtentMap[int] | None = None
        for tables, span in self._levels():
            tables.check()
            for s, e, pfn in tables:
                if s % span or e % span:
                    raise AssertionError(f"table extent [{s:#x}, {e:#x}) not {span:#x}-aligned")
                if not (0 < pfn and pfn + (e - s) // span <= m.nr_frames):
                    raise AssertionError(f"table frames {pfn}.. out of range")
                if parent is not None and not parent.contains(s, e):
                    raise AssertionError(f"tables for [{s:#x}, {e:#x}) have no parent table")
            parent = tables
        anon = file = swap = huge = 0
        for s, e, v in self.ptes:
            if s % PAGE_SIZE or e % PAGE_SIZE:
                raise AssertionError(f"PTE extent [{s:#x}, {e:#x}) not page aligned")
            if not self.pte_tables.contains(s, e):
                raise AssertionError(f"PTEs [{s:#x}, {e:#x}) have no PTE table")
            n = (e - s) >> PAGE_SHIFT
            kind, base, _, flags = v
            if flags & PTE_HUGE:
                self._check_huge(s, e, v)
                if kind == ANON:
                    huge += n
            if kind == ZERO:
                if flags & PTE_HUGE:
                    hz = m.huge_zero_pfn
                    if hz is None or not hz <= base < hz + HPAGE_PMD_NR:
                        raise AssertionError(f"bad huge zero-page PTE at {s:#x}: {v}")
                elif base != m.zero_pfn:
                    raise AssertionError(f"bad zero-page PTE at {s:#x}: {v}")
                if flags & (PTE_W | PTE_D):
                    raise AssertionError(f"writable zero-page PTE at {s:#x}: {v}")
            elif kind == ANON or kind == FILE:
                if not (0 < base and base + n <= m.nr_frames):
                    raise AssertionError(f"frames of [{s:#x}, {e:#x}) out of range: {v}")
                if kind == ANON and not flags & PTE_W:
                    raise AssertionError(f"anonymous page at {s:#x} not writable: {v}")
                if kind == FILE and flags & (PTE_W | PTE_D):
                    raise AssertionError(f"private file page at {s:#x} writable: {v}")
                if kind == ANON:
                    anon += n
                else:
                    file += n
            elif kind == SWAP:
                if not (0 <= base and base + n <= m.swap_pages) or flags:
                    raise AssertionError(f"bad swap entry at {s:#x}: {v}")
                swap += n
            else:
                raise AssertionError(f"unknown PTE kind at {s:#x}: {v}")
        if huge != self.huge_anon_pages:
            raise AssertionError(f"huge_anon_pages {self.huge_anon_pages} != extents {huge}")
        if (anon, file, swap) != (self.anon_pages, self.file_pages, self.swap_ents):
            raise AssertionError(
                f"counters anon/file/swap {self.anon_pages}/{self.file_pages}/"
                f"{self.swap_ents} != extents {anon}/{file}/{swap}")


def _get_extent(size: int, old: int, new: int, old_end: int) -> int:
    """mremap's get_extent(): bytes to the next ``size`` boundary of old or new, at most the
    rest of the range."""
    mask = ~(size - 1)
    extent = ((old + size) & mask) - old
    extent = min(extent, old_end - old)
    return min(extent, ((new + size) & mask) - new)
