"""PageTable: faults, zaps, free_pgtables, move, checked against a naive per-page model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.errors import OutOfMemoryKilled
from memsim.kernel.machine import Machine
from memsim.kernel.pagetable import PGDIR_SIZE, PMD_SIZE, PUD_SIZE, PageTable
from memsim.units import PAGE_SIZE, GiB, MiB

from .fakes import FakeTask


def new_pt(**kw: object) -> tuple[Machine, PageTable]:
    m = Machine(ram=kw.pop("ram", 4 * GiB), **kw)  # type: ignore[arg-type]
    return m, FakeTask(m, 100).pt


BASE = 3 * PGDIR_SIZE          # a 512 GiB-aligned address well inside user space


def tables(pt: PageTable) -> tuple[int, int, int]:
    return (pt.pud_tables.total // PGDIR_SIZE, pt.pmd_tables.total // PUD_SIZE,
            pt.pte_tables.total // PMD_SIZE)


# --- faults -----

def test_read_of_fresh_anon_page_maps_zero_page_and_builds_tables() -> None:
    m, pt = new_pt()
    pt.fault(BASE + 5 * PAGE_SIZE, 1, write=False)
    pte = pt.translate(BASE + 5 * PAGE_SIZE)
    assert pte is not None and pte.state == "zero" and pte.pfn == m.zero_pfn
    assert not pte.writable
    assert pt.anon_pages == 0 and pt.pgfault == 1
    assert tables(pt) == (1, 1, 1)
    assert pt.pgtables_bytes == 3 * PAGE_SIZE
    m.check()


def test_write_gets_a_frame_and_write_after_read_replaces_zero_page() -> None:
    m, pt = new_pt()
    free0 = m.free_frames
    pt.fault(BASE, 3 * PAGE_SIZE, write=False)
    pt.fault(BASE + PAGE_SIZE, 1, write=True)
    assert pt.anon_pages == 1
    assert [pt.translate(BASE + k * PAGE_SIZE).state for k in range(3)] == [  # type: ignore
        "zero", "frame", "zero"]
    assert pt.pgfault == 4
    assert free0 - m.free_frames == 1 + 3          # the page and three table pages
    m.check()


def test_touching_one_gib_costs_512_pte_tables_and_one_pmd_table() -> None:
    m, pt = new_pt()
    pt.fault(BASE + 4 * GiB + 12345, 1, write=True)   # the PUD table of this 512 GiB exists
    before = pt.pgtables_bytes
    pt.fault(BASE + GiB, GiB, write=True)
    assert pt.pgtables_bytes - before == (512 + 1) * PAGE_SIZE
    assert pt.anon_pages == 1 + GiB // PAGE_SIZE
    assert len(pt.ptes) == 2                         # one extent per touched range
    m.check()


def test_a_fresh_512_gib_region_also_needs_a_pud_table() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 1, write=True)
    before = pt.pgtables_bytes
    pt.fault(BASE + PGDIR_SIZE, 1, write=True)
    assert pt.pgtables_bytes - before == 3 * PAGE_SIZE


def test_fresh_range_gets_contiguous_frames() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 64 * MiB, write=True)
    first = pt.translate(BASE)
    last = pt.translate(BASE + 64 * MiB - 1)
    assert first is not None and last is not None
    assert last.pfn - first.pfn == 64 * MiB // PAGE_SIZE - 1  # type: ignore[operator]


def test_reaccess_of_resident_page_does_not_split_or_count() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 16 * PAGE_SIZE, write=True)
    n, faults = len(pt.ptes), pt.pgfault
    for k in range(100):
        pt.fault(BASE + k * 37, 16, write=k % 2 == 0)
    assert len(pt.ptes) == n and pt.pgfault == faults


def test_file_pages_read_then_private_write_copies() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 4 * PAGE_SIZE, write=False, file_backed=True)
    assert (pt.file_pages, pt.anon_pages) == (4, 0)
    pt.fault(BASE + PAGE_SIZE, 2 * PAGE_SIZE, write=True, file_backed=True)
    assert (pt.file_pages, pt.anon_pages) == (2, 2)
    pte = pt.translate(BASE + PAGE_SIZE)
    assert pte is not None and pte.writable and not pte.file and pte.dirty
    assert pt.counts(BASE, BASE + 4 * PAGE_SIZE) == (2, 2, 0)
    m.check()


def test_every_touches_one_byte_per_stride() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 10 * GiB, write=True, every=GiB)
    assert pt.anon_pages == 10
    assert tables(pt) == (1, 10, 10)
    pt.fault(BASE + 64 * MiB, 3 * PAGE_SIZE, write=True, every=100)  # small stride: all pages
    assert pt.anon_pages == 13
    m.check()


def test_translate_reports_the_walk() -> None:
    m, pt = new_pt()
    addr = BASE + 7 * GiB + 5 * PMD_SIZE + 9 * PAGE_SIZE + 17
    pt.fault(addr, 1, write=True)
    pte = pt.translate(addr)
    assert pte is not None
    assert [lvl for lvl, _, _ in pte.walk] == ["PGD", "PUD", "PMD", "PTE"]
    assert [idx for _, idx, _ in pte.walk] == [3, 7, 5, 9]
    assert all(pfn is not None for _, _, pfn in pte.walk)
    assert pt.translate(addr + PAGE_SIZE) is None


def test_bad_ranges_are_rejected() -> None:
    m, pt = new_pt()
    with pytest.raises(ValueError):
        pt.fault(BASE, -1, write=True)
    with pytest.raises(ValueError):
        pt.fault(BASE, 10, write=True, every=0)
    with pytest.raises(ValueError):
        pt.zap(BASE + 1, BASE + PAGE_SIZE)
    with pytest.raises(ValueError):
        pt.move(BASE, BASE + 2 * PAGE_SIZE, BASE + PAGE_SIZE)


# --- frees -----

def test_zap_frees_frames_and_madv_dontneed_frees_whole_pte_tables_only() -> None:
    m, pt = new_pt()
    free0 = m.free_frames
    pt.fault(BASE, 8 * MiB, write=True)
    pt.zap(BASE + MiB, BASE + 7 * MiB, reclaim_pt=True)
    # PTE tables of [2M, 4M) and [4M, 6M) lie wholly in the zapped range; the edges stay
    assert tables(pt) == (1, 1, 2)
    assert pt.anon_pages == 2 * MiB // PAGE_SIZE
    pt.zap(BASE, BASE + 8 * MiB)                   # plain zap never frees tables
    assert tables(pt) == (1, 1, 2)
    pt.free_pgtables(BASE, BASE + 8 * MiB, 0, 0)
    assert tables(pt) == (0, 0, 0)
    assert m.free_frames == free0
    m.check()


def test_free_pgtables_keeps_tables_shared_with_neighbours() -> None:
    m, pt = new_pt()
    a, b = BASE + GiB, BASE + GiB + MiB     # two "VMAs" in one 2 MiB span
    pt.fault(a, MiB, write=True)
    pt.fault(b, MiB, write=True)
    pt.zap(a, a + MiB)
    pt.free_pgtables(a, a + MiB, 0, b)          # next VMA starts at b: table stays
    assert tables(pt) == (1, 1, 1)
    pt.zap(b, b + MiB)
    pt.free_pgtables(b, b + MiB, 0, 0)          # nothing left around: all levels go
    assert tables(pt) == (0, 0, 0)
    m.check()


def test_free_pgtables_refuses_to_free_under_mapped_pages() -> None:
    m, pt = new_pt()
    pt.fault(BASE, PAGE_SIZE, write=True)
    with pytest.raises(ValueError):
        pt.free_pgtables(BASE, BASE + PAGE_SIZE, 0, 0)
    with pytest.raises(ValueError):
        pt.free_pgtables(BASE, BASE + PAGE_SIZE, BASE + PAGE_SIZE, 0)   # floor > start


# --- move -----

def test_move_keeps_frames_and_rss() -> None:
    m, pt = new_pt()
    pt.fault(BASE + 3 * PAGE_SIZE, 5 * PAGE_SIZE, write=True)
    pfns = [pt.translate(BASE + (3 + k) * PAGE_SIZE).pfn for k in range(5)]  # type: ignore
    new = BASE + 5 * GiB + 7 * PAGE_SIZE
    pt.move(BASE, BASE + 16 * PAGE_SIZE, new)
    pt.free_pgtables(BASE, BASE + 16 * PAGE_SIZE, 0, new)
    assert [pt.translate(new + (3 + k) * PAGE_SIZE).pfn for k in range(5)] == pfns  # type: ignore
    assert pt.anon_pages == 5 and pt.translate(BASE + 3 * PAGE_SIZE) is None
    assert tables(pt) == (1, 1, 1)
    m.check()


def test_aligned_move_moves_whole_tables() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 3 * GiB, write=True, every=PMD_SIZE)
    before = m.free_frames
    pt.move(BASE, BASE + 3 * GiB, BASE + 10 * GiB)
    assert m.free_frames == before                  # PMD tables re-hung: no new table
    pt.free_pgtables(BASE, BASE + 3 * GiB, 0, BASE + 10 * GiB)
    assert tables(pt) == (1, 3, 3 * 512)
    m.check()


# --- OOM from the fault path -----

def test_fault_raises_after_oom_kill_when_this_process_is_the_victim() -> None:
    m = Machine(ram=64 * MiB)
    t = FakeTask(m, 100)
    with pytest.raises(OutOfMemoryKilled) as exc:
        t.pt.fault(BASE, 128 * MiB, write=True)
    assert exc.value.pid == 100 and t.killed and t.pt.released
    assert m.oom_kills == 1
    m.check()


# --- the naive model -----

class Model:
    """Per page and per table, transcribing the kernel loops literally."""

    def __init__(self) -> None:
        self.pages: dict[int, str] = {}      # page address -> 'zero' | 'anon' | 'file'
        self.pte: set[int] = set()           # PTE tables by 2 MiB span index
        self.pmd: set[int] = set()           # PMD tables by 1 GiB span index
        self.pud: set[int] = set()           # PUD tables by 512 GiB span index
        self.huge: dict[int, str] = {}       # PMD-mapped blocks (2 MiB index) -> 'anon'|'zero'
        self.pgfault = 0

    def counts(self) -> tuple[int, int]:
        v = list(self.pages.values())
        return v.count("anon"), v.count("file")

    def fault(self, a: int, n: int, write: bool, file: bool,
              thp: tuple[int, int] | None = None) -> None:
        end = a + n * PAGE_SIZE
        if thp is not None and not file:       # do_huge_pmd_anonymous_page per empty PMD
            for b in range(a // PMD_SIZE, (end - 1) // PMD_SIZE + 1):
                bs = b * PMD_SIZE
                if thp[0] <= bs and bs + PMD_SIZE <= thp[1] and b not in self.pte:
                    self.pud.add(bs // PGDIR_SIZE)
                    self.pmd.add(bs // PUD_SIZE)
                    self.pte.add(b)
                    self.huge[b] = "anon" if write else "zero"
                    for p in range(bs, bs + PMD_SIZE, PAGE_SIZE):
                        self.pages[p] = self.huge[b]
                    self.pgfault += 1
        for p in range(a, end, PAGE_SIZE):
            b = p // PMD_SIZE
            if write and self.huge.get(b) == "zero":    # do_huge_zero_wp_pmd: a fresh THP
                self.huge[b] = "anon"
                for q in range(b * PMD_SIZE, (b + 1) * PMD_SIZE, PAGE_SIZE):
                    self.pages[q] = "anon"
                self.pgfault += 1
            self.pud.add(p // PGDIR_SIZE)
            self.pmd.add(p // PUD_SIZE)
            self.pte.add(p // PMD_SIZE)
            st_ = self.pages.get(p)
            if st_ is None:
                self.pages[p] = "anon" if write else ("file" if file else "zero")
                self.pgfault += 1
            elif write and st_ in ("zero", "file"):
                self.pages[p] = "anon"
                self.pgfault += 1

    def zap(self, s: int, e: int, reclaim: bool) -> None:
        for b in list(self.huge):
            bs = b * PMD_SIZE
            if bs + PMD_SIZE <= s or bs >= e:
                continue
            del self.huge[b]
            if s <= bs and bs + PMD_SIZE <= e:   # zap_huge_pmd frees the deposited table
                self.pte.discard(b)
        for p in [p for p in self.pages if s <= p < e]:
            del self.pages[p]
        if reclaim:
            for i in list(self.pte):
                if s <= i * PMD_SIZE and (i + 1) * PMD_SIZE <= e:
                    self.pte.discard(i)

    def free_pgtables(self, addr: int, end: int, floor: int, ceiling: int) -> None:
        """free_pgd_range with its floor/ceiling rounding, as in mm/memory.c."""
        mask64 = (1 << 64) - 1
        addr &= ~(PMD_SIZE - 1)
        if addr < floor:
            addr += PMD_SIZE
        if ceiling:
            ceiling &= ~(PMD_SIZE - 1)
            if not ceiling:
                return
        if (end - 1) > ((ceiling - 1) & mask64):
            end -= PMD_SIZE
        if addr > end - 1:
            return
        for g in sorted(self.pud):               # pgd entries with a PUD table, in range
            gs = g * PGDIR_SIZE
            if gs + PGDIR_SIZE <= addr or gs >= end:
                continue
            a0, e0 = max(addr, gs), min(end, gs + PGDIR_SIZE)
            for u in sorted(self.pmd):           # pud entries with a PMD table
                us = u * PUD_SIZE
                if us + PUD_SIZE <= a0 or us >= e0:
                    continue
                a1, e1 = max(a0, us), min(e0, us + PUD_SIZE)
                for t in sorted(self.pte):       # free_pte_range for each PMD entry
                    ts = t * PMD_SIZE
                    if ts + PMD_SIZE <= a1 or ts >= e1:
                        continue
                    self.pte.discard(t)
                start = a1 & ~(PUD_SIZE - 1)      # free_pmd_range's tail
                if start < floor:
                    continue
                c = ceiling & ~(PUD_SIZE - 1) if ceiling else 0
                if ceiling and not c:
                    continue
                if (e1 - 1) > ((c - 1) & mask64):
                    continue
                self.pmd.discard(u)
                for t in [t for t in self.pte if t * PMD_SIZE // PUD_SIZE == u]:
                    self.pte.discard(t)
            start = a0 & ~(PGDIR_SIZE - 1)        # free_pud_range's tail
            if start < floor:
                continue
            c = ceiling & ~(PGDIR_SIZE - 1) if ceiling else 0
            if ceiling and not c:
                continue
            if (e0 - 1) > ((c - 1) & mask64):
                continue
            self.pud.discard(g)
            for u in [u for u in self.pmd if u * PUD_SIZE // PGDIR_SIZE == g]:
                self.pmd.discard(u)
            for t in [t for t in self.pte if t * PMD_SIZE // PGDIR_SIZE == g]:
                self.pte.discard(t)

    def move(self, old: int, old_end: int, new: int) -> None:
        """move_page_tables, chunk by chunk."""
        def extent(size: int) -> int:
            mask = ~(size - 1)
            ext = min(((old + size) & mask) - old, old_end - old)
            return min(ext, ((new + size) & mask) - new)

        def shift_pages(lo: int, hi: int) -> None:
            moved = {p: k for p, k in self.pages.items() if lo <= p < hi}
            for p in moved:
                del self.pages[p]
            for p, k in moved.items():
                self.pages[p - old + new] = k
            blocks = {b: k for b, k in self.huge.items() if lo <= b * PMD_SIZE < hi}
            for b in blocks:
                del self.huge[b]
            for b, k in blocks.items():
                self.huge[b + (new - old) // PMD_SIZE] = k

        while old < old_end:
            ext = extent(PUD_SIZE)
            if old // PUD_SIZE in self.pmd:
                self.pud.add(new // PGDIR_SIZE)
                if ext == PUD_SIZE and new // PUD_SIZE not in self.pmd:
                    self.pmd.discard(old // PUD_SIZE)
                    self.pmd.add(new // PUD_SIZE)
                    ts = [t for t in self.pte if t * PMD_SIZE // PUD_SIZE == old // PUD_SIZE]
                    for t in ts:
                        self.pte.discard(t)
                    for t in ts:
                        self.pte.add(t + (new - old) // PMD_SIZE)
                    shift_pages(old, old + ext)
                else:
                    ext = extent(PMD_SIZE)
                    if old // PMD_SIZE in self.pte:
                        self.pmd.add(new // PUD_SIZE)
                        whole = ext == PMD_SIZE and new // PMD_SIZE not in self.pte
                        if old // PMD_SIZE in self.huge and not whole:
                            del self.huge[old // PMD_SIZE]          # split_huge_pmd
                        if whole:
                            self.pte.discard(old // PMD_SIZE)
                        self.pte.add(new // PMD_SIZE)
                        shift_pages(old, old + ext)
            old += ext
            new += ext


# Addresses: a few pages around interesting boundaries, so that every table level is exercised.
ANCHORS = [BASE - PMD_SIZE, BASE, BASE + PMD_SIZE - 8 * PAGE_SIZE, BASE + PUD_SIZE - 4 * PAGE_SIZE,
           BASE + 2 * PUD_SIZE, BASE + PGDIR_SIZE - 2 * PAGE_SIZE]
addr_st = st.builds(lambda a, k: a + k * PAGE_SIZE, st.sampled_from(ANCHORS), st.integers(0, 40))
op_st = st.one_of(
    st.tuples(st.just("fault"), addr_st, st.integers(1, 24), st.booleans(), st.booleans()),
    st.tuples(st.just("thp"), addr_st, st.integers(1, 24), st.booleans(),
              st.sampled_from([(BASE - PMD_SIZE, BASE + 2 * PMD_SIZE),
                               (BASE + PAGE_SIZE, BASE + 3 * PMD_SIZE),
                               (BASE + PUD_SIZE - PMD_SIZE, BASE + PUD_SIZE + PMD_SIZE),
                               (BASE + 2 * PUD_SIZE, BASE + 2 * PUD_SIZE + PMD_SIZE)])),
    st.tuples(st.just("zap"), addr_st, addr_st, st.booleans(), st.just(False)),
    st.tuples(st.just("unmap"), addr_st, addr_st, st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("move"), addr_st,
              st.one_of(st.integers(1, 40), st.sampled_from([512, 1024, 1 << 18, (1 << 18) + 512])),
              st.sampled_from([3 * PUD_SIZE, 3 * PUD_SIZE + PMD_SIZE, 2 * PUD_SIZE, PMD_SIZE,
                               5 * PMD_SIZE + 3 * PAGE_SIZE, PGDIR_SIZE + 7 * PAGE_SIZE,
                               -4 * PUD_SIZE]), st.just(False)),
)


def _floor_ceiling(model: Model, s: int, e: int, f: int, c: int) -> tuple[int, int]:
    below = [p + PAGE_SIZE for p in model.pages if p < s]
    above = [p for p in model.pages if p >= e]
    lo = max(below, default=0)
    hi = min(above, default=0)
    floor = lo + (s - lo) * f // 3 // PAGE_SIZE * PAGE_SIZE
    if hi == 0:
        ceiling = 0 if c == 0 else e + c * PUD_SIZE
    else:
        ceiling = hi - (hi - e) * c // 3 // PAGE_SIZE * PAGE_SIZE
    return floor, ceiling


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_st, min_size=1, max_size=25))
def test_pagetable_matches_naive_model(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    m, pt = new_pt()
    model = Model()
    for op in ops:
        if op[0] == "fault":
            _, a, n, write, file = op
            pt.fault(a, n * PAGE_SIZE, write, file_backed=file)
            model.fault(a, n, write, file)
        elif op[0] == "thp":
            _, a, n, write, vma = op
            pt.fault(a, n * PAGE_SIZE, write, thp=vma)
            model.fault(a, n, write, False, vma)
        elif op[0] == "zap":
            _, a, b, reclaim, _ = op
            s, e = min(a, b), max(a, b)
            pt.zap(s, e, reclaim_pt=reclaim)
            model.zap(s, e, reclaim)
        elif op[0] == "unmap":
            _, a, b, f, c = op
            s, e = min(a, b), max(a, b)
            if s == e:
                continue
            pt.zap(s, e)
            model.zap(s, e, False)
            floor, ceiling = _floor_ceiling(model, s, e, f, c)
            pt.free_pgtables(s, e, floor, ceiling)
            model.free_pgtables(s, e, floor, ceiling)
        else:
            _, a, n, delta, _ = op
            s, e, new = a, a + n * PAGE_SIZE, a + delta
            if (any(new <= p < new + n * PAGE_SIZE for p in model.pages) or new < 0
                    or (new < e and s < new + n * PAGE_SIZE)):
                continue     # mremap's destination is always unmapped and never overlaps
            frames = {p - s + new: pt.translate(p).pfn  # type: ignore[union-attr]
                      for p, k in model.pages.items() if s <= p < e and k != "zero"}
            pt.move(s, e, new)
            model.move(s, e, new)
            for p, pfn in frames.items():
                assert pt.translate(p).pfn == pfn  # type: ignore[union-attr]
        m.check()
        assert (pt.anon_pages, pt.file_pages) == model.counts()
        assert pt.pgfault == model.pgfault
        assert tables(pt) == (len(model.pud), len(model.pmd), len(model.pte))
        for p, kind in model.pages.items():
            pte = pt.translate(p)
            assert pte is not None
            assert (pte.state, pte.file) == ({"zero": "zero", "anon": "frame",
                                              "file": "frame"}[kind], kind == "file")
        assert pt.ptes.total == len(model.pages) * PAGE_SIZE
        assert pt.huge_anon_pages == 512 * list(model.huge.values()).count("anon")
        for p in model.pages:
            assert pt.translate(p).huge == (p // PMD_SIZE in model.huge)  # type: ignore
        # the table sets themselves, not just their sizes
        assert {s // PMD_SIZE + k for s, e, _ in pt.pte_tables
                for k in range((e - s) // PMD_SIZE)} == model.pte
        assert {s // PUD_SIZE + k for s, e, _ in pt.pmd_tables
                for k in range((e - s) // PUD_SIZE)} == model.pmd
        assert {s // PGDIR_SIZE + k for s, e, _ in pt.pud_tables
                for k in range((e - s) // PGDIR_SIZE)} == model.pud


def test_move_into_an_existing_empty_pte_table_moves_ptes_not_the_table() -> None:
    m, pt = new_pt()
    src, dst = BASE + 4 * PMD_SIZE, BASE + 2 * PUD_SIZE
    pt.fault(dst, PAGE_SIZE, write=True)
    pt.zap(dst, dst + PAGE_SIZE)                  # the PTE table at dst stays, empty
    pt.fault(src, PMD_SIZE, write=True)
    before = m.free_frames
    pt.move(src, src + PMD_SIZE, dst)
    assert m.free_frames == before                # no table allocated, none freed
    assert tables(pt) == (1, 2, 2)                # old PTE table left for free_pgtables
    assert pt.counts(dst, dst + PMD_SIZE) == (512, 0, 0)
    pt.free_pgtables(src, src + PMD_SIZE, 0, dst)
    assert tables(pt) == (1, 1, 1)                # and the PMD table of the old GiB too
    m.check()


# --- transparent huge pages ------------------------------------------------------------------

def test_thp_write_maps_one_aligned_2mib_page_with_one_fault() -> None:
    m, pt = new_pt()
    vma = (BASE, BASE + 4 * MiB)
    pt.fault(BASE + MiB + 5, 1, write=True, thp=vma)
    assert (pt.anon_pages, pt.huge_anon_pages, pt.pgfault) == (512, 512, 1)
    assert m.meminfo()["AnonHugePages"] == 2048 and m.thp_fault_alloc == 1
    assert tables(pt) == (1, 1, 1)                  # the deposited PTE table counts in VmPTE
    pte = pt.translate(BASE + MiB)
    assert pte is not None and pte.huge and [lvl for lvl, _, _ in pte.walk] == [
        "PGD", "PUD", "PMD"]
    assert pte.pfn is not None and (pte.pfn - (MiB // PAGE_SIZE)) % 512 == 0
    assert pt.anon_huge_pages_in(BASE, BASE + 4 * MiB) == 512
    m.check()


def test_thp_needs_the_whole_block_in_the_vma_and_an_empty_pmd() -> None:
    m, pt = new_pt()
    pt.fault(BASE + PAGE_SIZE, 1, write=True, thp=(BASE + PAGE_SIZE, BASE + 4 * MiB))
    assert pt.huge_anon_pages == 0 and pt.anon_pages == 1     # block starts below the VMA
    pt.fault(BASE + PMD_SIZE, 1, write=False)                  # a 4 KiB zero-page PTE first
    pt.fault(BASE + PMD_SIZE + PAGE_SIZE, 1, write=True, thp=(BASE, BASE + 4 * MiB))
    assert pt.huge_anon_pages == 0 and pt.anon_pages == 2     # PMD not empty: 4 KiB


def test_thp_read_maps_the_huge_zero_page_and_a_write_replaces_it() -> None:
    m, pt = new_pt()
    vma = (BASE, BASE + 4 * MiB)
    pt.fault(BASE, 4 * MiB, write=False, thp=vma)
    assert (pt.anon_pages, pt.pgfault) == (0, 2)
    assert pt.translate(BASE + 8192).huge  # type: ignore[union-attr]
    pt.fault(BASE + 8192, 1, write=True, thp=vma)          # a fresh THP for the block
    assert (pt.anon_pages, pt.huge_anon_pages, pt.pgfault) == (512, 512, 3)
    m.check()
    # without a free order-9 block the huge zero PMD is split and the write is 4 KiB
    m.wmark_low = m.nr_frames
    pt.fault(BASE + PMD_SIZE + 8192, 1, write=True, thp=vma)
    assert (pt.anon_pages, pt.huge_anon_pages) == (513, 512)
    assert pt.translate(BASE + PMD_SIZE).pfn == m.zero_pfn  # type: ignore[union-attr]
    assert not pt.translate(BASE + PMD_SIZE).huge  # type: ignore[union-attr]
    m.check()


def test_thp_zap_of_part_splits_and_zap_of_all_frees_the_deposit() -> None:
    m, pt = new_pt()
    vma = (BASE, BASE + 4 * MiB)
    pt.fault(BASE, 4 * MiB, write=True, thp=vma)
    assert pt.huge_anon_pages == 1024 and tables(pt) == (1, 1, 2)
    pt.zap(BASE, BASE + PAGE_SIZE)                  # part of the first block: split
    assert (pt.anon_pages, pt.huge_anon_pages) == (1023, 512)
    pt.zap(BASE + PMD_SIZE, BASE + 4 * MiB)         # the whole second block
    assert pt.huge_anon_pages == 0 and tables(pt) == (1, 1, 1)
    m.check()


def test_thp_falls_back_without_an_aligned_free_run() -> None:
    m, pt = new_pt(ram=4 * MiB)                     # 1024 frames
    pt.fault(BASE + GiB, 600 * PAGE_SIZE, write=True)   # no 512-aligned free run is left
    pt.fault(BASE, 1, write=True, thp=(BASE, BASE + 2 * MiB))
    assert pt.huge_anon_pages == 0 and pt.anon_pages == 601 and m.thp_fault_fallback == 1
    m.check()


def test_thp_moves_whole_when_aligned_and_splits_otherwise() -> None:
    m, pt = new_pt()
    pt.fault(BASE, 4 * MiB, write=True, thp=(BASE, BASE + 4 * MiB))
    pt.move(BASE, BASE + 2 * MiB, BASE + GiB)                  # aligned: stays huge
    pt.move(BASE + 2 * MiB, BASE + 4 * MiB, BASE + GiB + 2 * MiB + PAGE_SIZE)  # not aligned
    assert pt.translate(BASE + GiB).huge  # type: ignore[union-attr]
    assert not pt.translate(BASE + GiB + 2 * MiB + PAGE_SIZE).huge  # type: ignore[union-attr]
    assert pt.huge_anon_pages == 512 and pt.anon_pages == 1024
    pt.split_huge_pmd(BASE + GiB + 4096)
    assert pt.huge_anon_pages == 0
    m.check()


def test_reclaim_splits_a_huge_page_before_swapping_it() -> None:
    m = Machine(ram=8 * MiB, swap=8 * MiB, min_free_kbytes=0)
    t = FakeTask(m, 1)
    t.pt.fault(BASE, 2 * MiB, write=True, thp=(BASE, BASE + 2 * MiB))
    assert t.pt.huge_anon_pages == 512
    t.pt.fault(BASE + GiB, 6 * MiB, write=True)     # more than is left: swap some out
    assert t.pt.swap_ents > 0 and t.pt.huge_anon_pages == 0
    m.check()


# --- against this machine's kernel -------------------------------------------------------------

PROBE_HEAD = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
static char buf[16384];
static long field(const char *name) {
    int fd = open("/proc/self/status", O_RDONLY); int n = read(fd, buf, sizeof buf - 1);
    close(fd); buf[n] = 0; char *p = strstr(buf, name); return strtol(p + strlen(name), 0, 10);
}
static long rss[16], pte[16]; static int nm;
static void mark(void) { rss[nm] = field("RssAnon:"); pte[nm] = field("VmPTE:"); nm++; }
"""

PROBE_MAIN = r"""
int main(void) {
    const unsigned long M = 1UL << 20, G = 1UL << 30;
    char *raw = mmap(0, 64 * M, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    unsigned long w = ((unsigned long)raw + 4 * M + 2 * M - 1) & ~(2 * M - 1);
    if ((w & ~(G - 1)) != ((w + 16 * M - 1) & ~(G - 1))) w = (w + 16 * M) & ~(G - 1);
    char *a = (char *)w; volatile char *v = a;
    madvise(a, 8 * M, MADV_NOHUGEPAGE);
    madvise(a + 8 * M, 8 * M, MADV_HUGEPAGE);
    v[0] = 1; madvise(a, 4096, MADV_DONTNEED);                  mark();
    for (unsigned long i = 0; i < 8 * M; i += 4096) v[i] = 1;   mark();
    madvise(a + M, 6 * M, MADV_DONTNEED);                       mark();
    madvise(a, 8 * M, MADV_DONTNEED);                           mark();
    v[8 * M + 5] = 1;                                           mark();
    (void)v[10 * M];                                            mark();
    v[10 * M + 4096] = 1;                                       mark();
    munmap(a + 8 * M, 4096);                                    mark();
    v[0] = 1; munmap(a, 8 * M);                                 mark();
    munmap(a + 8 * M + 4096, 8 * M - 4096);                     mark();
    for (int i = 1; i < nm; i++) printf("%ld %ld\n", rss[i] - rss[i-1], pte[i] - pte[i-1]);
    return 0;
}
"""


def _simulated_probe() -> list[tuple[int, int]]:
    m, pt = new_pt(ram=4 * GiB)
    w = BASE + 4 * MiB
    w2 = (w + 8 * MiB, w + 16 * MiB)
    out: list[tuple[int, int]] = []
    last = [0, 0]

    def mark() -> None:
        now = [pt.anon_pages * 4, pt.pgtables_bytes // 1024]
        out.append((now[0] - last[0], now[1] - last[1]))
        last[:] = now

    pt.fault(w, 1, True)
    pt.zap(w, w + PAGE_SIZE, reclaim_pt=True)
    last[:] = [pt.anon_pages * 4, pt.pgtables_bytes // 1024]
    pt.fault(w, 8 * MiB, True)
    mark()
    pt.zap(w + MiB, w + 7 * MiB, reclaim_pt=True)
    mark()
    pt.zap(w, w + 8 * MiB, reclaim_pt=True)
    mark()
    pt.fault(w + 8 * MiB + 5, 1, True, thp=w2)
    mark()
    pt.fault(w + 10 * MiB, 1, False, thp=w2)
    mark()
    pt.fault(w + 10 * MiB + PAGE_SIZE, 1, True, thp=w2)
    mark()
    pt.zap(w + 8 * MiB, w + 8 * MiB + PAGE_SIZE)
    pt.free_pgtables(w + 8 * MiB, w + 8 * MiB + PAGE_SIZE, w + 8 * MiB, w + 8 * MiB + PAGE_SIZE)
    mark()
    pt.fault(w, 1, True)
    pt.zap(w, w + 8 * MiB)
    pt.free_pgtables(w, w + 8 * MiB, w, w + 8 * MiB + PAGE_SIZE)
    mark()
    pt.zap(w + 8 * MiB + PAGE_SIZE, w + 16 * MiB)
    pt.free_pgtables(w + 8 * MiB + PAGE_SIZE, w + 16 * MiB, w, w + 16 * MiB)
    mark()
    m.check()
    return out


def _run_probe(tmp_path, source: str) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    """Compile and run a C probe that prints one "dRssAnon dVmPTE" line per step."""
    import shutil
    import subprocess
    gcc = shutil.which("gcc")
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    try:
        with open(thp) as f:
            thp_mode = f.read()
    except OSError:
        thp_mode = ""
    if gcc is None or "[never]" in thp_mode or not thp_mode:
        pytest.skip("needs gcc and transparent huge pages")
    src = tmp_path / "probe.c"
    src.write_text(PROBE_HEAD + source)
    exe = tmp_path / "probe"
    subprocess.run([gcc, "-O1", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return [tuple(int(x) for x in line.split()) for line in out.splitlines()]


@pytest.mark.oracle
def test_table_and_thp_figures_match_this_machines_kernel(tmp_path) -> None:  # type: ignore
    """RssAnon/VmPTE deltas of MADV_DONTNEED (PT_RECLAIM), THP faults, the huge zero page and
    munmap with floor/ceiling, live from this machine's kernel, against the simulation."""
    assert _simulated_probe() == _run_probe(tmp_path, PROBE_MAIN)


MOVE_MAIN = r"""
int main(void) {
    const unsigned long M = 1UL << 20, G = 1UL << 30;
    char *raw = mmap(0, 128 * M, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    unsigned long w = ((unsigned long)raw + 4 * M + 2 * M - 1) & ~(2 * M - 1);
    if ((w & ~(G - 1)) != ((w + 64 * M - 1) & ~(G - 1))) w = (w + 64 * M) & ~(G - 1);
    char *a = (char *)w; volatile char *v = a;
    madvise(raw, 128 * M, MADV_NOHUGEPAGE);
    v[16 * M] = 1;                                              mark();
    for (unsigned long i = 0; i < 4 * M; i += 4096) v[i] = 1;   mark();
    mremap(a, 4 * M, 4 * M, MREMAP_MAYMOVE | MREMAP_FIXED, a + 32 * M);                mark();
    mremap(a + 32 * M, 4 * M, 4 * M, MREMAP_MAYMOVE | MREMAP_FIXED, a + 8 * M + 4096); mark();
    mremap(a + 8 * M + 4096, 4 * M, 4 * M, MREMAP_MAYMOVE | MREMAP_FIXED,
           a + 40 * M + 8192);                                                         mark();
    for (int i = 1; i < nm; i++) printf("%ld %ld\n", rss[i] - rss[i-1], pte[i] - pte[i-1]);
    return 0;
}
"""


def _simulated_moves() -> list[tuple[int, int]]:
    m, pt = new_pt(ram=4 * GiB)
    w = BASE + 4 * MiB
    out: list[tuple[int, int]] = []
    last = [0, 0]

    def mark() -> None:
        now = [pt.anon_pages * 4, pt.pgtables_bytes // 1024]
        out.append((now[0] - last[0], now[1] - last[1]))
        last[:] = now

    def unmap_hole(s: int, e: int) -> None:      # a hole with VMAs right on both sides
        pt.zap(s, e)
        pt.free_pgtables(s, e, s, e)

    def mremap_fixed(old: int, new: int, n: int) -> None:
        unmap_hole(new, new + n)                  # MREMAP_FIXED unmaps the destination
        pt.move(old, old + n, new)
        unmap_hole(old, old + n)

    pt.fault(w + 16 * MiB, 1, True)
    last[:] = [pt.anon_pages * 4, pt.pgtables_bytes // 1024]
    pt.fault(w, 4 * MiB, True)
    mark()
    mremap_fixed(w, w + 32 * MiB, 4 * MiB)
    mark()
    mremap_fixed(w + 32 * MiB, w + 8 * MiB + PAGE_SIZE, 4 * MiB)
    mark()
    mremap_fixed(w + 8 * MiB + PAGE_SIZE, w + 40 * MiB + 2 * PAGE_SIZE, 4 * MiB)
    mark()
    m.check()
    return out


@pytest.mark.oracle
def test_mremap_table_figures_match_this_machines_kernel(tmp_path) -> None:  # type: ignore
    """move_page_tables + unmap of the old range: VmPTE deltas live from this kernel."""
    assert _simulated_moves() == _run_probe(tmp_path, MOVE_MAIN)
