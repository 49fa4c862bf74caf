"""The machine: physical page frames, the zero page, swap, overcommit, reclaim and the OOM killer.

One :class:`Machine` is shared by every simulated process. It owns the *physical* side of memory
(frames and swap slots, both numbered) and the global ``vm.*`` policy; each process's
:class:`~memsim.kernel.pagetable.PageTable` owns the *virtual* side (which page maps which
frame). The page tables call the machine for frames and slots; the machine calls back into the
page tables only to evict pages (reclaim) and asks a task to die (OOM).

Physical frames (PFN = page frame number, frame ``n`` is bytes ``n*4096 .. n*4096+4095``)::

    PFN 0        1 ..................................................... nr_frames-1
        [zero]   [pgd A][pte tables A][anon run A ........][pgd B][ free ...........]
        the one  every frame belongs to exactly one owner: free, the zero page, a resident
        zero     page of one process (anon or file), or a page-table page of one process
        page

PFN 0 stands for the zero page (the real one sits at some kernel PFN). Frames are given out
from the free-PFN extent set lowest PFN first, as runs: a fault on a
fresh 1 GiB range gets one contiguous run of 262144 frames when the free set has one, so a
resident extent of a page table stays one extent. Nothing is ever kept per frame: a TiB costs
what a MiB costs. Swap slots are numbered and handed out the same way.

Watermarks (a simplified mm/page_alloc.c, documented choice). ``min_free_kbytes`` defaults to
the kernel's ``calculate_min_free_kbytes`` formula ``isqrt(ram_kB * 16)``, capped at 256 MiB as
in the kernel, and (our addition, so that a tiny teaching machine is not mostly reserve)
at 1/64 of RAM; it is *not* raised for THP as ``khugepaged`` does on a real machine. Then
``min = min_free_kbytes / 4`` pages, ``low = min + d``, ``high = min + 2 d`` with
``d = max(min / 4, nr_frames * 10 / 10000)`` (``__setup_per_zone_wmarks``, scale factor 10).

* An allocation of ``k`` frames that would leave fewer than ``low`` free frames first reclaims
  until ``high + k`` frames are free or nothing more can be evicted ("kswapd", run
  synchronously).
* It is then granted ``min(k, free - min)`` frames: an order-0 allocation succeeds while free
  frames stay above ``min`` (``__zone_watermark_ok``). A caller that needs more calls again.
* If nothing can be granted, the OOM killer picks a victim (``out_of_memory``), the victim's
  owner tears its address space down, and the allocation is retried. If the victim is the
  faulting task, :class:`memsim.errors.OutOfMemoryKilled` is raised after its ``oom_kill()``.

Reclaim (``shrink_folio_list``). Anonymous pages go to swap (a slot each; the PTE becomes a swap
entry, MM_ANONPAGES-1, MM_SWAPENTS+1); without free swap they cannot be reclaimed at all.
File pages (the image's text/data) are dropped. Page-table pages are never reclaimed. The
victim order is the replacement policy chosen at construction:

* ``"fifo"``: oldest *loaded* page first (load = first fault or swap-in).
* ``"lru"``: least recently *accessed* page first, exact per page, except that the pages
  touched by one ``fault()`` call share one time stamp (among them: address order).
* ``"clock"``: second chance over the PTE accessed bit (``folio_referenced``): the oldest loaded
  page with A set has A cleared and goes to the tail; the first one found with A clear is evicted.

Recency tracking and its cost. Every resident PTE extent carries a stamp; a global heap holds
``(stamp, page table, range)`` entries in stamp order, validated lazily when popped (entries for
ranges that have since been zapped, moved or re-stamped are skipped) and rebuilt when stale
entries outnumber live extents. Stamps are only needed when anonymous pages can be reclaimed,
so ``track_recency`` defaults to ``swap > 0``. Without it all stamps are 0, pages faulted by
separate calls merge into one extent, a re-access of a resident page changes nothing (the hot
path is one bisect) and the rare file-page reclaim goes in address order. With it, FIFO and
clock still cost nothing on a re-access (clock only sets an accessed bit that a sweep has
cleared). With ``"lru"`` every access re-stamps the pages it touches, unless it stays in the
single page touched last. A small access (up to 16 pages) to resident pages is only *noted*
(page -> stamp in a dict); the notes are folded into the extents in one merge pass when there
are as many as extents, and always before reclaim picks a victim, so the order is exact while
each access costs a dict store instead of a list insert. Folding splits extents, so state
grows to (at worst) one extent per page accessed out of order: exact LRU costs state
proportional to the pages touched, and only when swap is configured. Measured on this 2-CPU
machine, 16-byte writes at random addresses of a resident heap: about 2 M accesses/s with
FIFO or clock; with LRU about 115 k/s over 64 MiB (16 k extents) and 70 k/s over 1 GiB
(150 k extents).

Transparent huge pages: ``thp`` is the sysfs ``enabled`` knob (``always``/``madvise``/
``never``, read by mm to decide which VMAs may use them) and ``thp_use_zero_page`` the
``use_zero_page`` knob. A THP fault takes one 512-aligned free run (an order-9 buddy block)
only while free frames stay above the low watermark; otherwise it falls back to 4 KiB pages
(we model neither compaction nor khugepaged). The huge zero page is allocated on first use
and kept (512 frames owned, like the zero page, by the machine).

Swap-in (``do_swap_page``) is a major fault; the slot is freed at once (as when the page is
exclusive and written; we keep no swap cache).

Overcommit (mm/util.c): :meth:`Machine.vm_enough_memory` is ``__vm_enough_memory`` for modes
0/1/2 and :meth:`Machine.commit_limit_pages` is ``vm_commit_limit``; Committed_AS is
``committed_pages``.

OOM (mm/oom_kill.c): :meth:`Machine.oom_badness` (rss + swap entries + page-table pages +
``oom_score_adj * (totalpages / 1000)``), ``select_bad_process`` (max points, ties to the later
task), :meth:`Machine.oom_score` (``/proc/PID/oom_score``, fs/proc/base.c ``proc_oom_score``).

Invariants (:meth:`Machine.check`): the free frames, the zero page(s), every registered process's
resident pages and page-table pages (its PGD included) are disjoint PFN runs that together
cover ``[0, nr_frames)`` exactly; free swap slots and every process's swap entries are disjoint
runs that cover ``[0, swap_pages)`` exactly; each page table passes its own ``check()``.
"""

from __future__ import annotations

import heapq
from math import isqrt
from typing import TYPE_CHECKING, Protocol

from memsim.errors import ConfigError, MemsimError, OutOfMemoryKilled
from memsim.kernel.ranges import ExtentMap
from memsim.units import PAGE_SHIFT, PAGE_SIZE, GiB, parse_size

if TYPE_CHECKING:
    from memsim.kernel.pagetable import PageTable

__all__ = ["Machine", "Task", "REPLACEMENT_POLICIES", "host_memtotal"]

REPLACEMENT_POLICIES = ("fifo", "lru", "clock")
THP_MODES = ("always", "madvise", "never")
HPAGE_PMD_NR = 512                      # frames in one PMD-mapped huge page (order 9)
OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
DEFAULT_RAM = 24 * GiB                  # fallback when /proc/meminfo cannot be read
MIN_FREE_KBYTES_MAX = 262144            # kernel clamp of calculate_min_free_kbytes
WATERMARK_SCALE_FACTOR = 10             # vm.watermark_scale_factor default (per 10000)
MIN_FRAMES = 4                          # smallest machine we agree to simulate
_KB_PER_PAGE = PAGE_SIZE // 1024


class Task(Protocol):
    """What the machine needs of a process (mm's MM object)."""

    pid: int
    oom_score_adj: int

    def oom_kill(self) -> None: ...


def host_memtotal() -> int | None:
    """MemTotal of this machine in bytes, from /proc/meminfo (None if unreadable)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero), as in the kernel's long arithmetic."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


class Machine:
    """The hardware and its vm.* sysctls, shared by every simulated process.

    ``ram``/``swap`` are sizes (int bytes or strings like ``"64M"``); ``ram=None`` takes this
    machine's MemTotal. ``replacement`` is ``"fifo"``, ``"lru"`` or ``"clock"``.
    ``track_recency`` (default: ``swap > 0``) and ``min_free_kbytes`` (default: the kernel
    formula, see the module docstring) are additions to the interface.
    """

    def __init__(self, ram: int | str | None = None,
                 swap: int | str = 0,
                 overcommit: int = 0,
                 overcommit_ratio: int = 50, overcommit_kbytes: int = 0,
                 replacement: str = "lru",
                 max_map_count: int = 65530,
                 admin_reserve_kbytes: int = 8192, user_reserve_kbytes: int | None = None,
                 min_free_kbytes: int | None = None,
                 track_recency: bool | None = None,
                 thp: str = "madvise", thp_use_zero_page: bool = True) -> None:
        try:
            ram_bytes = (host_memtotal() or DEFAULT_RAM) if ram is None else parse_size(ram)
            swap_bytes = parse_size(swap)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if ram_bytes // PAGE_SIZE < MIN_FRAMES:
            raise ConfigError(f"ram must be at least {MIN_FRAMES} pages "
                              f"({MIN_FRAMES * PAGE_SIZE} bytes), got {ram_bytes}")
        if overcommit not in (0, 1, 2):
            raise ConfigError(f"overcommit must be 0, 1 or 2 (vm.overcommit_memory), "
                              f"got {overcommit!r}")
        if thp not in THP_MODES:
            raise ConfigError(f"thp must be one of {', '.join(THP_MODES)} "
                              f"(/sys/kernel/mm/transparent_hugepage/enabled), got {thp!r}")
        if replacement not in REPLACEMENT_POLICIES:
            raise ConfigError(f"replacement must be one of {', '.join(REPLACEMENT_POLICIES)}, "
                              f"got {replacement!r}")
        for name, val in (("overcommit_ratio", overcommit_ratio),
                          ("overcommit_kbytes", overcommit_kbytes),
                          ("max_map_count", max_map_count),
                          ("admin_reserve_kbytes", admin_reserve_kbytes)):
            if not isinstance(val, int) or val < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {val!r}")

        self.nr_frames = ram_bytes // PAGE_SIZE          # totalram_pages
        self.swap_pages = swap_bytes // PAGE_SIZE        # total_swap_pages
        self.zero_pfn = 0                                # the shared zero page
        self.replacement = replacement
        self.overcommit = overcommit
        self._overcommit_ratio = overcommit_ratio
        self._overcommit_kbytes = overcommit_kbytes
        self.max_map_count = max_map_count
        ram_kb = self.nr_frames * _KB_PER_PAGE
        self.admin_reserve_kbytes = admin_reserve_kbytes
        self.user_reserve_kbytes = (min(ram_kb // 32, 131072) if user_reserve_kbytes is None
                                    else user_reserve_kbytes)
        self.committed_pages = 0                         # Committed_AS (vm_committed_as)

        if min_free_kbytes is None:
            min_free_kbytes = min(isqrt(ram_kb * 16), MIN_FREE_KBYTES_MAX, ram_kb // 64)
        self.min_free_kbytes = min_free_kbytes
        self.wmark_min = min_free_kbytes // _KB_PER_PAGE
        delta = max(self.wmark_min // 4,
                    self.nr_frames * WATERMARK_SCALE_FACTOR // 10000)
        self.wmark_low = self.wmark_min + delta
        self.wmark_high = self.wmark_min + 2 * delta
        if self.wmark_min >= self.nr_frames - 1:
            raise ConfigError(f"min_free_kbytes={min_free_kbytes} leaves no usable memory")

        self.track_recency = self.swap_pages > 0 if track_recency is None else track_recency
        self.thp_enabled = thp                       # transparent_hugepage/enabled
        self.thp_use_zero_page = thp_use_zero_page   # transparent_hugepage/use_zero_page
        self.huge_zero_pfn: int | None = None        # allocated on first use, then kept

        # physical state
        self._free: ExtentMap[bool] = ExtentMap()        # free PFN runs
        self._free.set(1, self.nr_frames, True)
        self._free_swap: ExtentMap[bool] = ExtentMap()   # free swap slot runs
        if self.swap_pages:
            self._free_swap.set(0, self.swap_pages, True)
        self._pts: list[PageTable] = []                  # the task list, in creation order

        # reclaim state
        self.epoch = 0                                   # recency clock (stamps)
        self._heap: list[tuple[int, int, PageTable, int, int]] = []
        self._seq = 0
        self._pushes_since_check = 0
        self._pin: tuple[PageTable, int, int] | None = None   # range being faulted: not evicted
        self._reclaiming = False
        self._last_pt: PageTable | None = None        # LRU: the single page touched last
        self._last_page = -1
        self._last_epoch = -1                          # ... at this epoch

        # vmstat-like event counters
        self.pswpin = 0
        self.pswpout = 0
        self.pgsteal_file = 0
        self.oom_kills = 0
        self.thp_fault_alloc = 0
        self.thp_fault_fallback = 0

    # --- sysctls with kernel side effects -------------------------------------------------
    @property
    def overcommit_ratio(self) -> int:
        return self._overcommit_ratio

    @overcommit_ratio.setter
    def overcommit_ratio(self, value: int) -> None:
        """overcommit_ratio_handler: writing the ratio zeroes overcommit_kbytes."""
        self._overcommit_ratio = value
        self._overcommit_kbytes = 0

    @property
    def overcommit_kbytes(self) -> int:
        return self._overcommit_kbytes

    @overcommit_kbytes.setter
    def overcommit_kbytes(self, value: int) -> None:
        """overcommit_kbytes_handler: writing kbytes zeroes overcommit_ratio."""
        self._overcommit_kbytes = value
        self._overcommit_ratio = 0

    # --- simple views ----------------------------------------------------------------------
    @property
    def free_frames(self) -> int:
        return self._free.total

    @property
    def free_swap_pages(self) -> int:
        return self._free_swap.total

    @property
    def totalpages(self) -> int:
        """totalram_pages + total_swap_pages: the OOM killer's scale."""
        return self.nr_frames + self.swap_pages

    @property
    def page_tables(self) -> list[PageTable]:
        """The registered page tables, in task-list (creation) order."""
        return list(self._pts)

    def __repr__(self) -> str:
        return (f"Machine(ram={self.nr_frames * PAGE_SIZE}, swap={self.swap_pages * PAGE_SIZE}, "
                f"overcommit={self.overcommit}, replacement={self.replacement!r}, "
                f"free_frames={self.free_frames})")

    # --- overcommit (mm/util.c) -----------------------------------------------------------
    def commit_limit_pages(self) -> int:
        """vm_commit_limit(): CommitLimit in pages (no hugetlb pages here)."""
        if self._overcommit_kbytes:
            allowed = self._overcommit_kbytes >> (PAGE_SHIFT - 10)
        else:
            allowed = self.nr_frames * self._overcommit_ratio // 100
        return allowed + self.swap_pages

    def vm_enough_memory(self, total_vm_pages: int, npages: int,
                         cap_sys_admin: bool = True) -> bool:
        """__vm_enough_memory: charge ``npages`` to Committed_AS first; on failure undo it.

        Mode 1 always succeeds; mode 0 fails only a single request larger than RAM + swap;
        mode 2 succeeds while Committed_AS (including this request) stays below CommitLimit
        minus the admin reserve (non-root) and minus min(total_vm/32, user reserve).
        """
        if npages < 0:
            raise ValueError(f"vm_enough_memory: negative page count {npages}")
        self.committed_pages += npages                  # vm_acct_memory
        if self.overcommit == 1:                        # OVERCOMMIT_ALWAYS
            return True
        if self.overcommit == 0:                        # OVERCOMMIT_GUESS
            if npages > self.nr_frames + self.swap_pages:
                self.committed_pages -= npages
                return False
            return True
        allowed = self.commit_limit_pages()             # OVERCOMMIT_NEVER
        if not cap_sys_admin:
            allowed -= self.admin_reserve_kbytes >> (PAGE_SHIFT - 10)
        reserve = self.user_reserve_kbytes >> (PAGE_SHIFT - 10)
        allowed -= min(total_vm_pages // 32, reserve)
        if self.committed_pages < allowed:
            return True
        self.committed_pages -= npages
        return False

    def vm_unacct_memory(self, npages: int) -> None:
        """vm_unacct_memory: give a charge back."""
        if npages < 0 or npages > self.committed_pages:
            raise ValueError(f"vm_unacct_memory({npages}) with Committed_AS="
                             f"{self.committed_pages} pages")
        self.committed_pages -= npages

    # --- /proc/meminfo -----------------------------------------------------------------------
    def meminfo(self) -> dict[str, int]:
        """The /proc/meminfo lines this model knows, in kB. PageTables counts every
        page-table page including each process's PGD."""
        anon = sum(pt.anon_pages for pt in self._pts)
        huge = sum(pt.huge_anon_pages for pt in self._pts)
        file = sum(pt.file_pages for pt in self._pts)
        tables = sum(pt.table_frames for pt in self._pts)
        k = _KB_PER_PAGE
        return {
            "MemTotal": self.nr_frames * k,
            "MemFree": self.free_frames * k,
            "MemAvailable": (self.free_frames + file) * k,
            "SwapTotal": self.swap_pages * k,
            "SwapFree": self.free_swap_pages * k,
            "AnonPages": anon * k,
            "AnonHugePages": huge * k,
            "Mapped": file * k,
            "PageTables": tables * k,
            "CommitLimit": self.commit_limit_pages() * k,
            "Committed_AS": self.committed_pages * k,
        }

    # --- page tables --------------------------------------------------------------------------
    def new_page_table(self, owner: Task) -> PageTable:
        """A fresh page table (with its PGD frame) for ``owner``, registered for reclaim/OOM."""
        from memsim.kernel.pagetable import PageTable
        pt = PageTable(self, owner)
        self._pts.append(pt)
        return pt

    def release_page_table(self, pt: PageTable) -> None:
        """exit_mmap's end: free whatever ``pt`` still holds and its PGD, then unregister."""
        if pt not in self._pts:
            raise ValueError(f"page table of pid {pt.owner.pid} is not registered")
        pt._teardown()
        self._pts.remove(pt)
        pt.released = True

    # --- frames and slots ----------------------------------------------------------------------
    def _take(self, free: ExtentMap[bool], n: int) -> list[tuple[int, int]]:
        """Take ``n`` units from a free extent set, lowest first, as (first, count) runs."""
        runs: list[tuple[int, int]] = []
        starts, ends = free.starts, free.ends
        while n:
            s, e = starts[0], ends[0]
            cnt = min(n, e - s)
            runs.append((s, cnt))
            free.delete(s, s + cnt)
            n -= cnt
        return runs

    def _take_aligned(self, n: int) -> int | None:
        """An ``n``-aligned run of ``n`` free frames (a buddy block of that order), or None."""
        for s, e, _ in self._free:
            a = -(-s // n) * n
            if a + n <= e:
                self._free.delete(a, a + n)
                return a
        return None

    def _alloc_huge(self) -> int | None:
        """An order-9 allocation for a THP fault: only from an aligned free run and only while
        free frames stay above the low watermark (no compaction or reclaim for it: the fault
        falls back to 4 KiB pages instead)."""
        if self._free.total - HPAGE_PMD_NR < self.wmark_low:
            return None
        return self._take_aligned(HPAGE_PMD_NR)

    def _huge_zero_page(self) -> int | None:
        """The huge zero page (mm_get_huge_zero_folio): allocated once, kept."""
        if self.huge_zero_pfn is None:
            self.huge_zero_pfn = self._alloc_huge()
        return self.huge_zero_pfn

    def _free_frames(self, pfn: int, count: int) -> None:
        self._free.set(pfn, pfn + count, True)

    def _free_slots(self, slot: int, count: int) -> None:
        self._free_swap.set(slot, slot + count, True)

    def _alloc_frames(self, n: int, requester: PageTable | None,
                      pin: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """Grant between 1 and ``n`` frames (as PFN runs), reclaiming and OOM-killing as the
        module docstring describes. ``pin`` is a range of ``requester`` not to evict."""
        self._pin = (requester, pin[0], pin[1]) if (pin and requester) else None
        try:
            while True:
                free = self._free.total
                if free - n < self.wmark_low and self._evictable_pages():
                    self._reclaim(self.wmark_high + n)
                    free = self._free.total
                grant = min(n, free - self.wmark_min)
                if grant > 0:
                    return self._take(self._free, grant)
                self.out_of_memory(requester)
        finally:
            self._pin = None

    def _alloc_frames_all(self, n: int, requester: PageTable | None) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        while n:
            got = self._alloc_frames(n, requester)
            runs.extend(got)
            n -= sum(c for _, c in got)
        return runs

    # --- reclaim (mm/vmscan.c, simplified) ---------------------------------------------------
    def _tick(self) -> int:
        self.epoch += 1
        return self.epoch

    def _index_push(self, stamp: int, pt: PageTable, start: int, end: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (stamp, self._seq, pt, start, end))
        self._pushes_since_check += 1
        if self._pushes_since_check >= 4096 and not self._reclaiming:
            self._pushes_since_check = 0
            live = sum(len(p.ptes) for p in self._pts)
            if len(self._heap) > 2 * live + 4096:
                self._rebuild_index()

    def _rebuild_index(self) -> None:
        """Drop stale entries: one entry per resident extent, in stamp order."""
        from memsim.kernel.pagetable import ANON, FILE
        heap: list[tuple[int, int, PageTable, int, int]] = []
        for pt in self._pts:
            pt._apply_recent()
        for pt in self._pts:
            for s, e, v in zip(pt.ptes.starts, pt.ptes.ends, pt.ptes.values, strict=True):
                if v[0] == ANON or v[0] == FILE:
                    self._seq += 1
                    heap.append((v[2], self._seq, pt, s, e))
        heapq.heapify(heap)
        self._heap = heap

    def _evictable_pages(self) -> int:
        file = sum(pt.file_pages for pt in self._pts)
        if self._free_swap.total:
            return file + sum(pt.anon_pages for pt in self._pts)
        return file

    def _unpinned(self, pt: PageTable, s: int, e: int) -> list[tuple[int, int, bool]]:
        """``[s, e)`` cut into (start, end, pinned) parts around the range being faulted."""
        pin = self._pin
        if pin is None or pin[0] is not pt or e <= pin[1] or pin[2] <= s:
            return [(s, e, False)]
        parts = []
        if s < pin[1]:
            parts.append((s, pin[1], False))
        parts.append((max(s, pin[1]), min(e, pin[2]), True))
        if pin[2] < e:
            parts.append((pin[2], e, False))
        return parts

    def _reclaim(self, target_free: int) -> None:
        """shrink_folio_list in policy order until ``target_free`` frames are free or nothing
        more can be evicted."""
        deferred: list[tuple[int, PageTable, int, int]] = []
        for pt in self._pts:
            pt._apply_recent()          # every noted access counts before a victim is chosen
        self._reclaiming = True
        try:
            while self._free.total < target_free:
                if not self._heap:
                    if not self._reclaim_by_address(target_free):
                        break
                    continue
                self._reclaim_entry(heapq.heappop(self._heap), target_free, deferred)
        finally:
            self._reclaiming = False
        for stamp, pt, s, e in deferred:
            self._index_push(stamp, pt, s, e)

    def _reclaim_entry(self, entry: tuple[int, int, PageTable, int, int], target_free: int,
                       deferred: list[tuple[int, PageTable, int, int]]) -> None:
        """Scan one index entry: skip what is stale, give second chances (clock), evict."""
        from memsim.kernel.pagetable import ANON, FILE, PTE_A, _pte_slice
        stamp, _, pt, s, e = entry
        if pt.released or pt.dead:
            return
        clock = self.replacement == "clock"
        for ps0, pe0, v0 in pt.ptes.items(s, e):
            if (v0[0] != ANON and v0[0] != FILE) or v0[2] != stamp:
                continue                                 # stale: zapped, moved or re-stamped
            for ps, pe, pinned in self._unpinned(pt, ps0, pe0):
                v = v0 if ps == ps0 else _pte_slice(v0, ps - ps0)
                if self._free.total >= target_free:
                    self._seq += 1
                    heapq.heappush(self._heap, (stamp, self._seq, pt, ps, e))
                    return
                if pinned or (v[0] == ANON and not self._free_swap.total):
                    deferred.append((stamp, pt, ps, pe))
                    continue
                if clock and v[3] & PTE_A:               # folio_referenced: second chance
                    new = self._tick()
                    pt._set_stamp_clear_a(ps, pe, new)
                    self._index_push(new, pt, ps, pe)
                    continue
                done = pt._evict(ps, pe, v, target_free - self._free.total)
                if ps + done * PAGE_SIZE < pe:
                    self._seq += 1
                    heapq.heappush(self._heap, (stamp, self._seq, pt, ps + done * PAGE_SIZE, e))
                    return

    def _reclaim_by_address(self, target_free: int) -> bool:
        """Fallback when no recency is tracked: evict in task order, then address order."""
        from memsim.kernel.pagetable import ANON, FILE, _pte_slice
        progress = False
        for pt in list(self._pts):
            if pt.dead:
                continue
            for s0, e0, v0 in pt.ptes:
                if not (v0[0] == FILE or (v0[0] == ANON and self._free_swap.total)):
                    continue
                for s, e, pinned in self._unpinned(pt, s0, e0):
                    if self._free.total >= target_free:
                        return True
                    if pinned:
                        continue
                    v = v0 if s == s0 else _pte_slice(v0, s - s0)
                    if pt._evict(s, e, v, target_free - self._free.total):
                        progress = True
        return progress

    # --- OOM killer (mm/oom_kill.c) ------------------------------------------------------------
    def oom_badness(self, pt: PageTable) -> int | None:
        """oom_badness(): None stands for LONG_MIN (never chosen)."""
        adj = pt.owner.oom_score_adj
        if adj == OOM_SCORE_ADJ_MIN or pt.dead or pt.released:
            return None
        points = (pt.anon_pages + pt.file_pages + pt.swap_ents
                  + pt.pgtables_bytes // PAGE_SIZE)
        points += adj * (self.totalpages // 1000)
        return points

    def select_bad_process(self) -> tuple[PageTable | None, int]:
        """The victim with the most points; ties go to the later task."""
        chosen: PageTable | None = None
        chosen_points = 0
        for pt in self._pts:
            points = self.oom_badness(pt)
            if points is None:
                continue
            if chosen is None or points >= chosen_points:
                chosen, chosen_points = pt, points
        return chosen, chosen_points

    def out_of_memory(self, requester: PageTable | None) -> None:
        """out_of_memory(): kill the worst task; raise if it is ``requester``."""
        victim, points = self.select_bad_process()
        if victim is None:
            raise MemsimError("Kernel panic - not syncing: System is deadlocked on memory "
                              "(out of memory and no killable processes)")
        self.oom_kills += 1
        anon_kb = victim.anon_pages * _KB_PER_PAGE
        file_kb = victim.file_pages * _KB_PER_PAGE
        victim.dead = True
        victim.owner.oom_kill()
        if not victim.released:
            self.release_page_table(victim)
        if victim is requester:
            raise OutOfMemoryKilled(
                victim.owner.pid, points,
                f"Out of memory: Killed process {victim.owner.pid} "
                f"(anon-rss:{anon_kb}kB, file-rss:{file_kb}kB, "
                f"oom_score_adj:{victim.owner.oom_score_adj})")

    def oom_score(self, owner: Task) -> int:
        """/proc/PID/oom_score: (1000 + points*1000/totalpages) * 2/3, 0 for LONG_MIN."""
        for pt in self._pts:
            if pt.owner is owner:
                badness = self.oom_badness(pt)
                if badness is None:
                    return 0
                return _cdiv((1000 + _cdiv(badness * 1000, self.totalpages)) * 2, 3)
        raise ValueError(f"no page table registered for pid {owner.pid}")

    # --- verification -------------------------------------------------------------------------
    def check(self) -> None:
        """Assert the invariants in the module docstring."""
        frames: list[tuple[int, int, str]] = [(self.zero_pfn, 1, "zero page")]
        if self.huge_zero_pfn is not None:
            frames.append((self.huge_zero_pfn, HPAGE_PMD_NR, "huge zero page"))
        frames += [(s, e - s, "free") for s, e, _ in self._free]
        slots: list[tuple[int, int, str]] = [(s, e - s, "free") for s, e, _ in self._free_swap]
        self._free.check()
        self._free_swap.check()
        for pt in self._pts:
            pt.check()
            f, sl = pt._physical_runs()
            frames += f
            slots += sl
        self._check_cover(frames, self.nr_frames, "frame")
        self._check_cover(slots, self.swap_pages, "swap slot")
        if self.committed_pages < 0:
            raise AssertionError(f"Committed_AS negative: {self.committed_pages}")

    @staticmethod
    def _check_cover(runs: list[tuple[int, int, str]], n: int, what: str) -> None:
        runs.sort()
        pos = 0
        for first, count, owner in runs:
            if count <= 0:
                raise AssertionError(f"empty {what} run at {first} ({owner})")
            if first != pos:
                kind = "owned twice" if first < pos else "owned by nobody"
                where = first if first < pos else pos
                raise AssertionError(f"{what} {where} {kind} (next run: {owner})")
            pos = first + count
        if pos != n:
            raise AssertionError(f"{what}s {pos}..{n - 1} owned by nobody")
