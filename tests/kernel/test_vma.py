"""memsim.kernel.vma: the VMA record, flag classification, mergeability and the sorted tree."""

from __future__ import annotations

import random

import pytest

from memsim.kernel.abi import STACK_GUARD_GAP, TASK_SIZE
from memsim.kernel.vma import (
    VM_ACCOUNT,
    VM_DATA_DEFAULT_FLAGS,
    VM_EXEC,
    VM_IO,
    VM_MAY_FLAGS,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_STACK_FLAGS,
    VM_WRITE,
    VMA,
    VMATree,
    can_merge_after,
    can_merge_before,
    flags_from_mnemonics,
    flags_to_mnemonics,
    is_data_mapping,
    is_exec_mapping,
    is_stack_mapping,
)

P = 4096
RW = VM_READ | VM_WRITE | VM_MAY_FLAGS


def test_mnemonics_round_trip_in_kernel_bit_order() -> None:
    text = "rd wr mr mw me gd ac"
    flags = flags_from_mnemonics(text)
    assert flags == VM_STACK_FLAGS
    assert flags_to_mnemonics(flags) == text
    assert flags_to_mnemonics(flags_from_mnemonics("ac rd")) == "rd ac"
    with pytest.raises(ValueError):
        flags_from_mnemonics("rd zz")


def test_classification_for_vm_stat_account() -> None:
    # exec: executable and neither writable nor a stack
    assert is_exec_mapping(VM_READ | VM_EXEC)
    assert not is_exec_mapping(VM_READ | VM_WRITE | VM_EXEC)
    # data: private writable, not a stack
    assert is_data_mapping(RW) and not is_data_mapping(RW | VM_SHARED)
    assert not is_data_mapping(VM_STACK_FLAGS) and is_stack_mapping(VM_STACK_FLAGS)
    # PROT_NONE and read-only count in VmSize only
    for f in (VM_MAY_FLAGS, VM_READ | VM_MAY_FLAGS):
        assert not (is_exec_mapping(f) or is_data_mapping(f) or is_stack_mapping(f))


def test_perms_column() -> None:
    assert VMA(0, P, RW).perms() == "rw-p"
    assert VMA(0, P, VM_READ | VM_EXEC).perms() == "r-xp"
    assert VMA(0, P, VM_READ | VM_MAYSHARE | VM_SHARED).perms() == "r--s"
    assert VMA(0, P, 0).perms() == "---p"


def test_anonymous_pgoff_is_the_page_number() -> None:
    v = VMA(0x7000, 0x9000, RW)
    assert v.vm_pgoff == 7 and v.pages == 2 and v.size == 2 * P


def test_start_gap_only_for_growsdown() -> None:
    s = VMA(0x10000000, 0x10001000, VM_STACK_FLAGS)
    assert s.vm_start_gap() == 0x10000000 - STACK_GUARD_GAP
    assert VMA(0x10000000, 0x10001000, RW).vm_start_gap() == 0x10000000
    assert VMA(0x1000, 0x2000, VM_STACK_FLAGS).vm_start_gap() == 0   # clamped at 0


def test_merge_after_needs_adjacency_same_flags_and_contiguous_pgoff() -> None:
    prev = VMA(0x10000, 0x12000, RW)
    assert can_merge_after(prev, 0x12000, RW, None, 0x12, None)
    assert not can_merge_after(prev, 0x13000, RW, None, 0x13, None)        # not adjacent
    assert not can_merge_after(prev, 0x12000, RW | VM_ACCOUNT, None, 0x12, None)
    assert can_merge_after(prev, 0x12000, RW | VM_SOFTDIRTY, None, 0x12, None)  # ignored
    assert not can_merge_after(prev, 0x12000, RW, None, 0x99, None)        # pgoff (mremap)
    assert not can_merge_after(prev, 0x12000, RW, "/lib/x.so", 0x12, None)  # file differs


def test_merge_needs_compatible_anon_vma() -> None:
    prev = VMA(0x10000, 0x12000, RW, anon_vma=1)
    assert can_merge_after(prev, 0x12000, RW, None, 0x12, None)
    assert can_merge_after(prev, 0x12000, RW, None, 0x12, 1)
    assert not can_merge_after(prev, 0x12000, RW, None, 0x12, 2)
    nxt = VMA(0x12000, 0x13000, RW, anon_vma=3)
    assert can_merge_before(nxt, 0x12000, RW, None, 0x10, 2, None)
    assert not can_merge_before(nxt, 0x12000, RW, None, 0x10, 2, 4)
    assert not can_merge_before(nxt, 0x12000, RW, None, 0x11, 2, None)    # pgoff


def test_special_mappings_never_merge() -> None:
    vvar = VMA(0x10000, 0x12000, VM_READ | VM_PFNMAP | VM_IO, 0, name="[vvar]")
    assert not can_merge_after(vvar, 0x12000, vvar.vm_flags, None, 2, None)
    plain = VMA(0x10000, 0x12000, RW)
    assert not can_merge_after(plain, 0x12000, RW | VM_IO, None, 0x12, None)


def _tree(*ranges: tuple[int, int]) -> VMATree:
    t = VMATree()
    for lo, hi in ranges:
        t.insert(VMA(lo, hi, RW))
    t.check()
    return t


def test_find_vma_returns_first_vma_ending_above() -> None:
    t = _tree((0x10000, 0x12000), (0x20000, 0x30000))
    assert t.find_vma(0x0).vm_start == 0x10000
    assert t.find_vma(0x11fff).vm_start == 0x10000
    assert t.find_vma(0x12000).vm_start == 0x20000        # in the gap: the next one
    assert t.find_vma(0x30000) is None
    assert t.vma_lookup(0x12000) is None and t.vma_lookup(0x20000).vm_start == 0x20000
    assert t.find_vma_intersection(0x12000, 0x20000) is None
    assert t.find_vma_intersection(0x12000, 0x20001).vm_start == 0x20000
    v, prev = t.find_vma_prev(0x15000)
    assert v.vm_start == 0x20000 and prev.vm_start == 0x10000


def test_overlapping_insert_is_refused() -> None:
    t = _tree((0x10000, 0x12000))
    with pytest.raises(AssertionError):
        t.insert(VMA(0x11000, 0x13000, RW))
    with pytest.raises(AssertionError):
        t.insert(VMA(0xF000, 0x11000, RW))
    t.check()


def test_split_keeps_low_object_and_advances_pgoff() -> None:
    t = _tree((0x10000, 0x14000))
    low = t.vmas[0]
    lo, hi = t.split(low, 0x12000)
    t.check()
    assert lo is low and (lo.vm_start, lo.vm_end) == (0x10000, 0x12000)
    assert (hi.vm_start, hi.vm_end, hi.vm_pgoff) == (0x12000, 0x14000, 0x12)
    with pytest.raises(AssertionError):
        t.split(hi, 0x12000)                               # at the edge: not a split
    with pytest.raises(AssertionError):
        t.split(hi, 0x12800)                               # unaligned


def test_set_start_and_remove_keep_the_index() -> None:
    t = _tree((0x10000, 0x12000), (0x20000, 0x30000))
    t.set_start(t.vmas[1], 0x1F000)
    t.check()
    assert t.find_vma(0x1F000).vm_start == 0x1F000
    t.remove(t.vmas[0])
    t.check()
    assert len(t) == 1 and t.find_vma(0) is t.vmas[0]
    with pytest.raises(KeyError):
        t.index(VMA(0x50000, 0x51000, RW))


def test_random_inserts_and_lookups_agree_with_a_linear_scan() -> None:
    rng = random.Random(7)
    t = VMATree()
    ranges: list[tuple[int, int]] = []
    for _ in range(300):
        lo = rng.randrange(0, 1 << 20) * P
        hi = lo + rng.randrange(1, 16) * P
        if any(a < hi and lo < b for a, b in ranges):
            continue
        t.insert(VMA(lo, hi, VM_DATA_DEFAULT_FLAGS))
        ranges.append((lo, hi))
    t.check()
    for _ in range(500):
        addr = rng.randrange(0, (1 << 20) * P + 32 * P)
        expect = min((r for r in ranges if r[1] > addr), default=None)
        got = t.find_vma(addr)
        assert (got.vm_start, got.vm_end) == expect if expect else got is None


def _linear_highest_gap(t: VMATree, length: int, low: int, high: int) -> int | None:
    """Reference: walk every gap from the top (what unmapped_area_topdown computes)."""
    best = None
    for i in range(len(t.vmas) + 1):
        start = t.vmas[i - 1].vm_end if i > 0 else 0
        end = t.vmas[i].vm_start_gap() if i < len(t.vmas) else TASK_SIZE
        s, e = max(start, low), min(end, high)
        if e - s >= length:
            best = e if best is None else max(best, e)
    return best


def test_gap_index_agrees_with_a_linear_scan_under_random_changes() -> None:
    rng = random.Random(11)
    t = VMATree()
    for step in range(400):
        op = rng.random()
        if op < 0.5 or len(t) < 3:
            lo = rng.randrange(16, 4096) * P
            hi = lo + rng.randrange(1, 64) * P
            if t.find_vma_intersection(lo, hi) is None:
                flags = VM_STACK_FLAGS if rng.random() < 0.05 else RW
                t.insert(VMA(lo, hi, flags))
        elif op < 0.7:
            t.remove(t.vmas[rng.randrange(len(t))])
        elif op < 0.8:
            v = t.vmas[rng.randrange(len(t))]
            if v.pages > 1:
                t.split(v, v.vm_start + rng.randrange(1, v.pages) * P)
        elif op < 0.9:
            i = rng.randrange(len(t))
            v = t.vmas[i]
            limit = t.vmas[i + 1].vm_start if i + 1 < len(t) else v.vm_end + 8 * P
            t.set_end(v, rng.randrange(v.vm_start // P + 1, limit // P + 1) * P)
        else:
            i = rng.randrange(len(t))
            v = t.vmas[i]
            floor = t.vmas[i - 1].vm_end if i > 0 else 0
            t.set_start(v, rng.randrange(floor // P, v.vm_end // P) * P)
        if step % 10 == 0:
            t.check()
        for _ in range(5):
            length = rng.randrange(1, 128) * P
            low = rng.randrange(0, 2048) * P
            high = low + rng.randrange(1, 4096) * P
            assert t.highest_gap(length, low, high) == _linear_highest_gap(t, length, low, high)
    t.check()
