"""memsim.kernel.mm: the kernel rules of brk, mmap, munmap, mprotect, mremap, madvise, faults,
stack growth, limits and the commit charge (linux-mm.md §3-§8, §10, §11, §13).

The numbers here document kernel *rules* (the page-alignment of brk, the 1-page brk gap, the
2 MiB THP alignment, ...); the live comparison with this machine's kernel is in
tests/oracle. ``check()`` runs after every step.
"""

from __future__ import annotations

import errno

import pytest

from memsim.errors import ConfigError, SegmentationFault
from memsim.kernel import abi
from memsim.kernel.abi import (
    EACCES,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOMEM,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_STACK,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
    STACK_GUARD_GAP,
    TASK_SIZE,
)
from memsim.kernel.layout import Layout
from memsim.kernel.machine import Machine
from memsim.kernel.mm import MADV_POPULATE_READ, MADV_POPULATE_WRITE, MM
from memsim.kernel.vma import VM_ACCOUNT, VM_GROWSDOWN, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_WRITE

P = 4096
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def new_mm(**machine: object) -> MM:
    m = Machine(ram=machine.pop("ram", "24G"), **machine)  # type: ignore[arg-type]
    mm = MM(m, 4242, Layout.default())
    mm.check()
    return mm


@pytest.fixture
def mm() -> MM:
    return new_mm()


def ok(mm: MM, ret: int) -> int:
    mm.check()
    assert ret >= 0, f"failed with -{abi.errno_name(ret)}"
    return ret


def heap(mm: MM) -> list:
    return [v for v in mm.tree if mm.vma_name(v) == "[heap]"]


# --------------------------------------------------------------------------------------------
# brk (§3)
# --------------------------------------------------------------------------------------------
def test_brk_query_and_below_start_return_the_current_break(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    assert b0 == mm.start_brk
    assert mm.sys_brk(b0 - 1) == b0
    assert heap(mm) == []


def test_brk_keeps_the_unaligned_value_and_maps_whole_pages(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    size0, data0, commit0 = mm.total_vm, mm.data_vm, mm.machine.committed_pages
    assert ok(mm, mm.sys_brk(b0 + 1)) == b0 + 1
    (h,) = heap(mm)
    assert (h.vm_start, h.vm_end) == (b0, b0 + P)
    assert (mm.total_vm - size0, mm.data_vm - data0) == (1, 1)
    assert mm.machine.committed_pages - commit0 == 1
    assert ok(mm, mm.sys_brk(b0 + 5001)) == b0 + 5001
    (h,) = heap(mm)
    assert h.vm_end == b0 + 2 * P                         # merged, not a second VMA
    # same page: nothing changes in the VMAs
    n = mm.map_count
    assert mm.sys_brk(b0 + 5002) == b0 + 5002 and mm.map_count == n
    # shrinking to start_brk removes [heap] and the charge
    assert ok(mm, mm.sys_brk(b0)) == b0
    assert heap(mm) == [] and mm.total_vm == size0
    assert mm.machine.committed_pages == commit0


def test_brk_does_not_allocate_memory_until_touched(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    anon0 = mm.pt.anon_pages
    ok(mm, mm.sys_brk(b0 + 64 * KiB))
    assert mm.pt.anon_pages == anon0
    mm.read(b0)
    assert mm.pt.anon_pages == anon0                       # the zero page
    mm.write(b0)
    mm.write(b0 + 64 * KiB - 1)
    mm.check()
    assert mm.pt.anon_pages == anon0 + 2
    ok(mm, mm.sys_brk(b0))
    assert mm.pt.anon_pages == anon0                       # shrink frees the frames


def test_heap_never_merges_with_an_anonymous_vma_below_start_brk() -> None:
    m = Machine(ram="24G")
    start = 0x555555600000
    mm = MM(m, 1, Layout.default(start_brk=start))
    ok(mm, mm.sys_mmap(start - P, P, RW, ANON | MAP_FIXED))   # a "bss" ending at start_brk
    n = mm.map_count
    ok(mm, mm.sys_brk(start + P))
    assert mm.map_count == n + 1
    assert mm.vma_name(mm.tree.vma_lookup(start - P)) is None   # strict [heap] test


def test_brk_keeps_one_page_free_below_the_next_mapping(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    ok(mm, mm.sys_mmap(b0 + MiB, P, PROT_READ, ANON | MAP_FIXED))
    assert mm.sys_brk(b0 + MiB - P + 1) == b0                 # would leave no page
    assert mm.sys_brk(b0 + MiB - P) == b0 + MiB - P
    mm.check()


def test_brk_keeps_the_stack_guard_gap_below_a_growsdown_mapping(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    ok(mm, mm.sys_mmap(b0 + 4 * MiB, P, RW, ANON | MAP_FIXED | MAP_GROWSDOWN))
    limit = b0 + 4 * MiB - STACK_GUARD_GAP - P
    assert mm.sys_brk(limit + 1) == b0
    assert mm.sys_brk(limit) == limit


def test_brk_rlimit_data_is_checked_twice(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    data = mm.end_data - mm.start_data              # initialised data of the image
    # may_expand_vm: data_vm (all private writable mappings) in whole pages
    mm.setrlimit("data", mm.data_vm * P + 64 * KiB)
    assert mm.sys_brk(b0 + 64 * KiB) == b0 + 64 * KiB
    assert mm.sys_brk(b0 + 64 * KiB + 1) == b0 + 64 * KiB      # refused: old break
    # check_data_rlimit: (brk - start_brk) + (end_data - start_data), tested before the
    # shrink decision, so a shrink to a size still above the lowered limit is refused
    mm.setrlimit("data", 16 * KiB)
    assert mm.sys_brk(b0 + 32 * KiB) == b0 + 64 * KiB
    assert mm.sys_brk(b0 + 16 * KiB - data + 1) == b0 + 64 * KiB
    assert mm.sys_brk(b0 + 16 * KiB - data) == b0 + 16 * KiB - data
    mm.check()


def test_brk_may_expand_vm_checks_rlimit_as(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    mm.setrlimit("as", mm.total_vm * P + 8 * KiB)
    assert mm.sys_brk(b0 + 8 * KiB) == b0 + 8 * KiB
    assert mm.sys_brk(b0 + 12 * KiB) == b0 + 8 * KiB


def test_brk_beyond_the_address_space_is_refused(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    assert mm.sys_brk(TASK_SIZE + P) == b0
    assert mm.sys_brk((1 << 64) - 1) == b0                     # PAGE_ALIGN wraps to 0
    mm.check()


# --------------------------------------------------------------------------------------------
# mmap placement (§4, §5)
# --------------------------------------------------------------------------------------------
def test_mmap_is_top_down_and_adjacent_anonymous_mappings_merge(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 16 * KiB, RW, ANON))
    n = mm.map_count
    b = ok(mm, mm.sys_mmap(0, 16 * KiB, RW, ANON))
    assert b == a - 16 * KiB
    assert mm.map_count == n                                    # merged into one VMA
    assert mm.tree.vma_lookup(b).vm_end >= a + 16 * KiB
    assert a < mm.mmap_base


def test_mmap_different_protection_does_not_merge(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 4 * MiB, RW, ANON))
    n = mm.map_count
    b = ok(mm, mm.sys_mmap(a - 16 * KiB, 16 * KiB, PROT_READ, ANON))
    assert b == a - 16 * KiB and mm.map_count == n + 1


def test_thp_alignment_for_multiples_of_2mib(mm: MM) -> None:
    for length in (2 * MiB, 4 * MiB, 8 * MiB):
        a = ok(mm, mm.sys_mmap(0, length, RW, ANON))
        assert a % (2 * MiB) == 0, hex(a)
    # other lengths are packed directly below the previous mapping
    low = min(v.vm_start for v in mm.tree if v.vm_start > mm.sys_brk(0))
    c = ok(mm, mm.sys_mmap(0, 2 * MiB + P, RW, ANON))
    assert c == low - (2 * MiB + P)
    # the 2 MiB padding left a hole above the first aligned mapping: small ones go there
    d = ok(mm, mm.sys_mmap(0, 32 * KiB, PROT_READ, ANON))
    assert d > low


def test_thp_alignment_of_an_aligned_gap_moves_up_by_2mib() -> None:
    m = Machine(ram="24G")
    mm = MM(m, 1, Layout.default())
    top = ok(mm, mm.sys_mmap(0, 2 * MiB, RW, ANON))
    # fill so the next padded search ends at an aligned address
    assert top % (2 * MiB) == 0
    nxt = ok(mm, mm.sys_mmap(0, 2 * MiB, RW, ANON))
    assert nxt == top - 2 * MiB                 # directly below, still aligned


def test_hint_is_honoured_when_free_and_raised_to_mmap_min_addr(mm: MM) -> None:
    assert ok(mm, mm.sys_mmap(0x200000000, P, RW, ANON)) == 0x200000000
    assert ok(mm, mm.sys_mmap(0x1000, P, PROT_READ, ANON)) == 0x10000
    # an occupied hint falls back to the top-down search
    c = ok(mm, mm.sys_mmap(0x200000000, P, PROT_READ, ANON))
    assert c != 0x200000000 and c < mm.mmap_base
    # an unaligned hint is rounded down
    assert ok(mm, mm.sys_mmap(0x300000123, P, RW, ANON)) == 0x300000000


def test_hint_respects_the_stack_guard_gap(mm: MM) -> None:
    stack = mm.tree.vma_lookup(mm.start_stack)
    hint = stack.vm_start - P
    got = ok(mm, mm.sys_mmap(hint, P, RW, ANON))
    assert got != hint and got + P <= stack.vm_start - STACK_GUARD_GAP


def test_map_fixed_replaces_and_frees_what_was_there(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 64 * KiB, RW, ANON))
    mm.write(a, 64 * KiB)
    anon, size, commit = mm.pt.anon_pages, mm.total_vm, mm.machine.committed_pages
    assert ok(mm, mm.sys_mmap(a + 16 * KiB, 16 * KiB, RW, ANON | MAP_FIXED)) == a + 16 * KiB
    assert mm.pt.anon_pages == anon - 4
    assert mm.total_vm == size and mm.machine.committed_pages == commit
    # replacing with PROT_NONE returns the charge of the replaced pages
    ok(mm, mm.sys_mmap(a, 16 * KiB, PROT_NONE, ANON | MAP_FIXED))
    assert mm.machine.committed_pages == commit - 4


def test_map_fixed_noreplace(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 2 * P, RW, ANON))
    assert mm.sys_mmap(a + P, P, RW, ANON | MAP_FIXED_NOREPLACE) == -EEXIST
    assert ok(mm, mm.sys_mmap(a - P, P, RW, ANON | MAP_FIXED_NOREPLACE)) == a - P


def test_mmap_errors(mm: MM) -> None:
    assert mm.sys_mmap(0, 0, RW, ANON) == -EINVAL
    assert mm.sys_mmap(0, P, RW, MAP_ANONYMOUS) == -EINVAL              # neither type
    assert mm.sys_mmap(0x200000001, P, RW, ANON | MAP_FIXED) == -EINVAL
    assert mm.sys_mmap(0, 1 << 47, RW, ANON) == -ENOMEM
    assert mm.sys_mmap(0, (1 << 64) - 1, RW, ANON) == -ENOMEM          # PAGE_ALIGN wraps
    assert mm.sys_mmap(0, P, RW, MAP_PRIVATE) == -errno.EBADF      # fd -1
    with pytest.raises(ConfigError):
        mm.sys_mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS)
    mm.check()


def test_mmap_populate_faults_the_range_in(mm: MM) -> None:
    anon = mm.pt.anon_pages
    a = ok(mm, mm.sys_mmap(0, 64 * KiB, RW, ANON | MAP_POPULATE))
    assert mm.pt.anon_pages == anon + 16
    ok(mm, mm.sys_mmap(0, 64 * KiB, PROT_READ, ANON | MAP_POPULATE))   # zero pages
    ok(mm, mm.sys_mmap(0, 64 * KiB, PROT_NONE, ANON | MAP_POPULATE))   # nothing
    assert mm.pt.anon_pages == anon + 16
    assert a


def test_map_stack_sets_nohugepage(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 64 * KiB, RW, ANON | MAP_STACK))
    assert mm.tree.vma_lookup(a).vm_flags & VM_NOHUGEPAGE


# --------------------------------------------------------------------------------------------
# limits and the commit charge (§5, §13, §17)
# --------------------------------------------------------------------------------------------
def test_rlimit_data_applies_to_private_writable_mappings_only(mm: MM) -> None:
    mm.setrlimit("data", mm.data_vm * P + MiB)
    assert mm.sys_mmap(0, 2 * MiB, RW, ANON) == -ENOMEM
    ok(mm, mm.sys_mmap(0, 2 * MiB, PROT_READ, ANON))
    a = ok(mm, mm.sys_mmap(0, 4 * MiB, PROT_NONE, ANON))
    # mprotect to writable: "becomes data" is checked too
    assert mm.sys_mprotect(a, 2 * MiB, RW) == -ENOMEM
    mm.check()


def test_rlimit_data_zero_soft_limit_valgrind_exception(mm: MM) -> None:
    mm.setrlimit("data", 0, RLIM_INFINITY)
    ok(mm, mm.sys_mmap(0, MiB, RW, ANON))


def test_rlimit_as_counts_every_mapping(mm: MM) -> None:
    mm.setrlimit("as", mm.total_vm * P + 4 * MiB)
    ok(mm, mm.sys_mmap(0, 2 * MiB, PROT_READ, ANON))
    assert mm.sys_mmap(0, 4 * MiB, PROT_READ, ANON) == -ENOMEM
    b0 = mm.sys_brk(0)
    assert mm.sys_brk(b0 + 4 * MiB) == b0


def test_commit_charge_table(mm: MM) -> None:
    c = mm.machine
    base = c.committed_pages
    a = ok(mm, mm.sys_mmap(0, GiB, RW, ANON))
    assert c.committed_pages - base == GiB // P
    ok(mm, mm.sys_mmap(0, GiB, PROT_READ, ANON))
    ok(mm, mm.sys_mmap(0, GiB, PROT_NONE, ANON))
    ok(mm, mm.sys_mmap(0, GiB, RW, ANON | MAP_NORESERVE))
    assert c.committed_pages - base == GiB // P
    ok(mm, mm.sys_munmap(a, GiB))
    assert c.committed_pages == base


def test_mprotect_commit_rules(mm: MM) -> None:
    c = mm.machine
    base = c.committed_pages
    a = ok(mm, mm.sys_mmap(0, GiB, PROT_NONE, ANON))
    ok(mm, mm.sys_mprotect(a, GiB, RW))                    # PROT_NONE -> RW charges
    assert c.committed_pages - base == GiB // P
    ok(mm, mm.sys_mprotect(a, GiB, PROT_READ))             # never faulted: uncharged
    assert c.committed_pages == base
    ok(mm, mm.sys_mprotect(a, GiB, RW))
    mm.write(a)
    ok(mm, mm.sys_mprotect(a, GiB, PROT_READ))             # faulted: the charge stays
    assert c.committed_pages - base == GiB // P
    assert mm.tree.vma_lookup(a).vm_flags & VM_ACCOUNT


def test_overcommit_mode_0_refuses_only_single_absurd_requests() -> None:
    mm = new_mm(ram="1G")
    assert mm.sys_mmap(0, 2 * GiB, RW, ANON) == -ENOMEM
    ok(mm, mm.sys_mmap(0, 2 * GiB, RW, ANON | MAP_NORESERVE))
    ok(mm, mm.sys_mmap(0, 768 * MiB, RW, ANON))
    ok(mm, mm.sys_mmap(0, 768 * MiB, RW, ANON))             # the sum may exceed RAM


def test_overcommit_mode_1_always_grants() -> None:
    mm = new_mm(ram="1G", overcommit=1)
    ok(mm, mm.sys_mmap(0, 64 * GiB, RW, ANON))


def test_overcommit_mode_2_enforces_the_commit_limit_and_ignores_noreserve() -> None:
    mm = new_mm(ram="1G", overcommit=2)
    limit = mm.machine.commit_limit_pages()
    used = mm.machine.committed_pages
    room = (limit - used) * P
    assert mm.sys_mmap(0, room + MiB, RW, ANON) == -ENOMEM
    assert mm.sys_mmap(0, room + MiB, RW, ANON | MAP_NORESERVE) == -ENOMEM
    a = ok(mm, mm.sys_mmap(0, room // 2, RW, ANON))
    b0 = mm.sys_brk(0)
    assert mm.sys_brk(b0 + room) == b0                      # brk is charged too
    ok(mm, mm.sys_munmap(a, room // 2))
    assert mm.machine.committed_pages == used


def test_max_map_count_rules() -> None:
    mm = new_mm(max_map_count=40)
    a = ok(mm, mm.sys_mmap(0, 64 * P, RW, ANON))
    # mprotect every other page until the split is refused (map_count >= max)
    err = 0
    for i in range(1, 64, 2):
        err = mm.sys_mprotect(a + i * P, P, PROT_READ)
        mm.check()
        if err:
            break
    assert err == -ENOMEM and mm.map_count == 40
    # munmap of a hole in the middle of a VMA needs map_count < max
    v = max((v for v in mm.tree if v.pages >= 3), key=lambda v: v.pages, default=None)
    if v is not None:
        assert mm.sys_munmap(v.vm_start + P, P) == -ENOMEM
    # mmap checks map_count > max (one more VMA is allowed)
    ok(mm, mm.sys_mmap(0x200000000, P, RW, ANON))
    assert mm.map_count == 41
    assert mm.sys_mmap(0x300000000, P, RW, ANON) == -ENOMEM


# --------------------------------------------------------------------------------------------
# munmap (§7)
# --------------------------------------------------------------------------------------------
def test_munmap_errors_and_no_op(mm: MM) -> None:
    assert mm.sys_munmap(0x200000000, 0) == -EINVAL
    assert mm.sys_munmap(0x200000001, P) == -EINVAL
    assert mm.sys_munmap(0x200000000, (1 << 64) - 1) == -EINVAL
    assert mm.sys_munmap(TASK_SIZE + P, P) == -EINVAL
    assert mm.sys_munmap(0x200000000, P) == 0               # nothing there: success


def test_munmap_hole_splits_and_rounds_up_to_pages(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    mm.write(a, 4 * P)
    n, anon = mm.map_count, mm.pt.anon_pages
    ok(mm, mm.sys_munmap(a + P, 1))                         # one byte = one page
    assert mm.map_count == n + 1 and mm.pt.anon_pages == anon - 1
    ok(mm, mm.sys_munmap(a, 4 * P))                         # spans the hole
    assert mm.map_count == n - 1 and mm.pt.anon_pages == anon - 4


def test_munmap_frees_page_tables(mm: MM) -> None:
    pte0 = mm.pt.pgtables_bytes
    a = ok(mm, mm.sys_mmap(0, GiB, RW, ANON))
    mm.write(a, GiB, every=P)
    assert mm.pt.pgtables_bytes - pte0 >= 512 * P
    ok(mm, mm.sys_munmap(a, GiB))
    assert mm.pt.pgtables_bytes == pte0


# --------------------------------------------------------------------------------------------
# mprotect (§8.1)
# --------------------------------------------------------------------------------------------
def test_mprotect_split_and_remerge(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 8 * P, RW, ANON))
    n = mm.map_count
    ok(mm, mm.sys_mprotect(a, P, PROT_READ))
    assert mm.map_count == n + 1
    ok(mm, mm.sys_mprotect(a + 4 * P, P, PROT_READ))
    assert mm.map_count == n + 3
    ok(mm, mm.sys_mprotect(a + 4 * P, P, RW))
    ok(mm, mm.sys_mprotect(a, P, RW))
    assert mm.map_count == n


def test_mprotect_changes_vmdata(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 16 * P, RW, ANON))
    data = mm.data_vm
    ok(mm, mm.sys_mprotect(a, 16 * P, PROT_READ))
    assert mm.data_vm == data - 16
    ok(mm, mm.sys_mprotect(a, 16 * P, PROT_READ | PROT_EXEC))
    assert mm.exec_vm >= 16


def test_mprotect_errors(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    assert mm.sys_mprotect(a + 1, P, PROT_READ) == -EINVAL
    assert mm.sys_mprotect(a, 0, PROT_READ) == 0
    assert mm.sys_mprotect(a, P, 0x10) == -EINVAL
    assert mm.sys_mprotect(a, (1 << 64) - 1, PROT_READ) == -ENOMEM
    assert mm.sys_mprotect(a + 4 * P, P, PROT_READ) == -ENOMEM       # nothing there
    assert mm.sys_mprotect(a, 8 * P, PROT_READ) == -ENOMEM           # hole after it
    assert not mm.tree.vma_lookup(a).vm_flags & VM_WRITE             # first part changed
    mm.check()


def test_mprotect_beyond_may_flags_is_eacces(mm: MM) -> None:
    v = next(v for v in mm.tree if v.name == "[vvar]")
    assert mm.sys_mprotect(v.vm_start, P, RW) == -EACCES


# --------------------------------------------------------------------------------------------
# mremap (§8.2)
# --------------------------------------------------------------------------------------------
def test_mremap_shrink_grow_in_place_and_move(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    assert ok(mm, mm.sys_mremap(a, 4 * P, 2 * P, 0)) == a
    assert mm.tree.vma_lookup(a).vm_end == a + 2 * P
    assert ok(mm, mm.sys_mremap(a, 2 * P, 4 * P, 0)) == a
    ok(mm, mm.sys_mmap(a + 4 * P, P, PROT_READ, ANON | MAP_FIXED))      # blocker
    assert mm.sys_mremap(a, 4 * P, 8 * P, 0) == -ENOMEM
    mm.write(a, 4 * P)
    anon, commit = mm.pt.anon_pages, mm.machine.committed_pages
    b = ok(mm, mm.sys_mremap(a, 4 * P, 8 * P, MREMAP_MAYMOVE))
    assert b != a and mm.tree.vma_lookup(a) is None
    assert mm.pt.anon_pages == anon                            # pages moved, not copied
    assert mm.machine.committed_pages - commit == 4             # only the growth
    assert mm.pt.counts(b, b + 4 * P)[0] == 4


def test_mremap_errors(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    assert mm.sys_mremap(a, P, 2 * P, 8) == -EINVAL
    assert mm.sys_mremap(a + 1, P, 2 * P, 0) == -EINVAL
    assert mm.sys_mremap(a, P, 0, 0) == -EINVAL
    assert mm.sys_mremap(a, 0, P, MREMAP_MAYMOVE) == -EINVAL
    assert mm.sys_mremap(0x300000000, P, 2 * P, MREMAP_MAYMOVE) == -EFAULT
    assert mm.sys_mremap(a, P, P, MREMAP_FIXED, 0x300000000) == -EINVAL      # needs MAYMOVE
    assert mm.sys_mremap(a, P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP) == -EINVAL
    assert mm.sys_mremap(a, 8 * P, 16 * P, MREMAP_MAYMOVE) == -EFAULT        # spans VMAs
    mm.check()


def test_mremap_fixed_replaces_the_target(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    t = ok(mm, mm.sys_mmap(0x300000000, 4 * P, RW, ANON))
    mm.write(a, 4 * P)
    mm.write(t, 4 * P)
    anon = mm.pt.anon_pages
    assert ok(mm, mm.sys_mremap(a, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, t)) == t
    assert mm.pt.anon_pages == anon - 4 and mm.tree.vma_lookup(a) is None


def test_mremap_dontunmap_keeps_an_empty_source(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    mm.write(a, 4 * P)
    commit = mm.machine.committed_pages
    b = ok(mm, mm.sys_mremap(a, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP))
    assert mm.tree.vma_lookup(a) is not None and mm.pt.counts(a, a + 4 * P)[0] == 0
    assert mm.pt.counts(b, b + 4 * P)[0] == 4
    assert mm.machine.committed_pages - commit == 4


# --------------------------------------------------------------------------------------------
# madvise
# --------------------------------------------------------------------------------------------
def test_madvise_dontneed_frees_pages_and_tables_but_keeps_the_vma(mm: MM) -> None:
    pte0 = mm.pt.pgtables_bytes
    a = ok(mm, mm.sys_mmap(0, 64 * MiB, RW, ANON))
    mm.write(a, 64 * MiB, every=P)
    anon, n, size = mm.pt.anon_pages, mm.map_count, mm.total_vm
    ok(mm, mm.sys_madvise(a, 64 * MiB, abi.MADV_DONTNEED))
    assert mm.pt.anon_pages == anon - 16384
    assert (mm.map_count, mm.total_vm) == (n, size)
    assert mm.pt.pgtables_bytes <= pte0 + 2 * P              # PTE tables reclaimed
    mm.read(a)                                               # still mapped
    mm.check()


def test_madvise_errors(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 3 * P, RW, ANON))
    ok(mm, mm.sys_munmap(a + P, P))
    assert mm.sys_madvise(a, 3 * P, abi.MADV_DONTNEED) == -ENOMEM      # hole (done anyway)
    assert mm.sys_madvise(0x300000000, P, abi.MADV_DONTNEED) == -ENOMEM
    assert mm.sys_madvise(a + 1, P, abi.MADV_DONTNEED) == -EINVAL
    assert mm.sys_madvise(a, (1 << 64) - 1, abi.MADV_DONTNEED) == -EINVAL
    assert mm.sys_madvise(a, 0, abi.MADV_DONTNEED) == 0
    assert mm.sys_madvise(a, P, 12345) == -EINVAL
    vvar = next(v for v in mm.tree if v.name == "[vvar]")
    assert mm.sys_madvise(vvar.vm_start, P, abi.MADV_DONTNEED) == -EINVAL


def test_madvise_hugepage_changes_flags_with_split_and_merge(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 4 * P, RW, ANON))
    n = mm.map_count
    ok(mm, mm.sys_madvise(a + P, P, abi.MADV_HUGEPAGE))
    assert mm.map_count == n + 2 and mm.tree.vma_lookup(a + P).vm_flags & VM_HUGEPAGE
    ok(mm, mm.sys_madvise(a + P, P, abi.MADV_NOHUGEPAGE))
    assert mm.tree.vma_lookup(a + P).vm_flags & VM_NOHUGEPAGE


# --------------------------------------------------------------------------------------------
# faults (§10) and the stack (§11)
# --------------------------------------------------------------------------------------------
def test_access_outside_any_vma_is_maperr(mm: MM) -> None:
    with pytest.raises(SegmentationFault) as e:
        mm.write(0x200000000)
    assert e.value.code == "SEGV_MAPERR" and e.value.addr == 0x200000000
    with pytest.raises(SegmentationFault):
        mm.read(TASK_SIZE + 5)


def test_access_against_protection_is_accerr(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 2 * P, PROT_NONE, ANON))
    with pytest.raises(SegmentationFault) as e:
        mm.read(a + 8)
    assert e.value.code == "SEGV_ACCERR" and e.value.addr == a + 8
    ok(mm, mm.sys_mprotect(a, P, PROT_READ))
    mm.read(a)
    with pytest.raises(SegmentationFault) as e:
        mm.write(a)
    assert e.value.code == "SEGV_ACCERR"
    ok(mm, mm.sys_mprotect(a, P, PROT_EXEC))
    mm.read(a)                              # x86: exec-only is readable
    ok(mm, mm.sys_mprotect(a, P, PROT_WRITE))
    mm.read(a)                              # write implies read


def test_access_spanning_vmas_faults_each_and_stops_at_the_bad_byte(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 2 * P, RW, ANON))
    ok(mm, mm.sys_mmap(a + 2 * P, 2 * P, PROT_READ, ANON | MAP_FIXED))
    anon = mm.pt.anon_pages
    with pytest.raises(SegmentationFault) as e:
        mm.write(a, 4 * P)
    assert e.value.addr == a + 2 * P and e.value.code == "SEGV_ACCERR"
    assert mm.pt.anon_pages == anon + 2          # the bytes before were written
    mm.read(a, 4 * P)
    # strided accesses skip what they do not touch
    ok(mm, mm.sys_munmap(a + P, P))
    mm.write(a, 2 * P, every=2 * P)              # touches a only
    with pytest.raises(SegmentationFault):
        mm.write(a, 2 * P, every=P)
    mm.check()


def test_read_maps_the_zero_page_and_write_a_frame(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, MiB, RW, ANON))
    anon = mm.pt.anon_pages
    mm.read(a, MiB)
    assert mm.pt.anon_pages == anon
    mm.write(a, MiB)
    assert mm.pt.anon_pages == anon + 256
    mm.check()


def test_stack_grows_on_fault_and_is_charged(mm: MM) -> None:
    stack = mm.tree.vma_lookup(mm.start_stack)
    lo = stack.vm_start
    stk, commit = mm.stack_vm, mm.machine.committed_pages
    mm.write(lo - 1 * MiB)
    mm.check()
    assert stack.vm_start == lo - MiB and mm.stack_vm == stk + 256
    assert mm.machine.committed_pages - commit == 256
    assert stack.vm_flags & VM_GROWSDOWN


def test_stack_growth_is_limited_by_rlimit_stack_on_the_whole_vma(mm: MM) -> None:
    stack = mm.tree.vma_lookup(mm.start_stack)
    mm.setrlimit("stack", 512 * KiB)
    mm.write(stack.vm_end - 512 * KiB)
    with pytest.raises(SegmentationFault) as e:
        mm.write(stack.vm_end - 512 * KiB - 1)
    assert e.value.code == "SEGV_MAPERR"


def test_stack_guard_gap_against_an_accessible_neighbour(mm: MM) -> None:
    stack = mm.tree.vma_lookup(mm.start_stack)
    blocker = stack.vm_start - 2 * MiB
    ok(mm, mm.sys_mmap(blocker, P, PROT_READ, ANON | MAP_FIXED))
    with pytest.raises(SegmentationFault):
        mm.write(stack.vm_start - MiB - 8 * KiB)     # would come within 1 MiB of it
    ok(mm, mm.sys_mprotect(blocker, P, PROT_NONE))    # inaccessible neighbours do not count
    mm.write(stack.vm_start - MiB - 8 * KiB)
    mm.check()


def test_stack_growth_respects_rlimit_as(mm: MM) -> None:
    stack = mm.tree.vma_lookup(mm.start_stack)
    mm.setrlimit("as", mm.total_vm * P + 8 * KiB)
    mm.write(stack.vm_start - 8 * KiB)
    with pytest.raises(SegmentationFault):
        mm.write(stack.vm_start - P)


# --------------------------------------------------------------------------------------------
# accounting and teardown (§14)
# --------------------------------------------------------------------------------------------
def test_status_counters_equal_the_sums_over_vmas_after_a_mixed_sequence(mm: MM) -> None:
    b0 = mm.sys_brk(0)
    a = ok(mm, mm.sys_mmap(0, 8 * MiB, RW, ANON))
    ok(mm, mm.sys_brk(b0 + 300 * KiB))
    mm.write(b0, 300 * KiB, every=1000)
    mm.write(a + MiB, 3 * MiB)
    ok(mm, mm.sys_mprotect(a + 2 * MiB, MiB, PROT_READ))
    ok(mm, mm.sys_munmap(a + 5 * MiB, MiB))
    ok(mm, mm.sys_mremap(a, MiB, 2 * MiB, MREMAP_MAYMOVE))
    ok(mm, mm.sys_madvise(a + 3 * MiB, MiB, abi.MADV_DONTNEED))
    ok(mm, mm.sys_brk(b0 + 100 * KiB))
    mm.check()                                   # the sums are asserted inside


def test_exit_returns_everything() -> None:
    m = Machine(ram="24G")
    commit0 = m.committed_pages
    free0 = m.free_frames
    mm = MM(m, 7, Layout.default())
    a = ok(mm, mm.sys_mmap(0, 4 * MiB, RW, ANON))
    mm.write(a, 4 * MiB)
    mm.exit_mmap()
    mm.check()
    assert m.committed_pages == commit0 and m.free_frames == free0
    m.check()
    with pytest.raises(ConfigError):
        mm.sys_brk(0)


def test_a_tib_costs_what_a_mib_costs(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0, 1 << 40, RW, ANON | MAP_NORESERVE))
    mm.write(a, 1 << 40, every=1 << 30)          # one byte per GiB
    mm.read(a + (1 << 39), 64 * MiB)
    ok(mm, mm.sys_munmap(a, 1 << 40))
    mm.check()


def test_special_mappings_refuse_dontneed_populate_and_growth(mm: MM) -> None:
    vvar = next(v for v in mm.tree if v.name == "[vvar]")
    vdso = next(v for v in mm.tree if v.name == "[vdso]")
    assert mm.sys_mremap(vvar.vm_start, P, 2 * P, MREMAP_MAYMOVE) == -EFAULT
    assert mm.sys_mremap(vdso.vm_start, P, 2 * P, MREMAP_MAYMOVE) == -EFAULT
    assert mm.sys_madvise(vdso.vm_start, P, abi.MADV_FREE) == -EINVAL
    a = ok(mm, mm.sys_mmap(0x200000000, 2 * P, PROT_NONE, ANON))
    assert mm.sys_madvise(a, 2 * P, MADV_POPULATE_READ) == -EINVAL
    ok(mm, mm.sys_mprotect(a, 2 * P, PROT_READ))
    assert mm.sys_madvise(a, 2 * P, MADV_POPULATE_WRITE) == -EINVAL
    ok(mm, mm.sys_mprotect(a, 2 * P, RW))
    anon = mm.pt.anon_pages
    ok(mm, mm.sys_madvise(a, 2 * P, MADV_POPULATE_WRITE))
    assert mm.pt.anon_pages == anon + 2


def test_madv_hugepage_gives_2mib_pages_under_the_madvise_policy(mm: MM) -> None:
    assert mm.thp_enabled == "madvise"
    a = ok(mm, mm.sys_mmap(0, 4 * MiB, RW, ANON))           # 2 MiB aligned (THP search)
    anon, pte = mm.pt.anon_pages, mm.pt.pgtables_bytes
    mm.write(a)
    assert mm.pt.anon_pages == anon + 1                      # no madvise: a 4 KiB page
    ok(mm, mm.sys_madvise(a, 4 * MiB, abi.MADV_HUGEPAGE))
    assert mm.thp_eligible(mm.tree.vma_lookup(a))
    mm.write(a + 2 * MiB)
    mm.check()
    assert mm.pt.anon_pages == anon + 1 + 512                # one huge page
    mm.read(a + 3 * MiB)
    assert mm.pt.anon_pages == anon + 513                    # huge zero page: no RSS
    assert mm.pt.pgtables_bytes > pte
    stack = ok(mm, mm.sys_mmap(0, 4 * MiB, RW, ANON | MAP_STACK))
    ok(mm, mm.sys_madvise(stack, 4 * MiB, abi.MADV_HUGEPAGE))
    assert mm.thp_eligible(mm.tree.vma_lookup(stack))        # madvise clears NOHUGEPAGE


def test_failed_map_fixed_keeps_the_splits_of_the_replaced_range(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 16 * P, PROT_READ, ANON))
    n = mm.map_count
    mm.setrlimit("as", mm.total_vm * P)                   # no growth at all
    assert mm.sys_mmap(a + 4 * P, 16 * P, PROT_READ, ANON | MAP_FIXED) == -ENOMEM
    mm.check()
    assert mm.map_count == n + 1                          # split at a+4P, kept


def test_mremap_dontunmap_checks_new_addr_and_uses_it_as_a_hint(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 16 * P, RW, ANON))
    flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP
    assert mm.sys_mremap(a, P, P, flags, a) == -EINVAL               # overlap
    assert mm.sys_mremap(a, P, P, flags, a + 1) == -EINVAL           # unaligned
    assert mm.sys_mremap(a, P, P, flags, TASK_SIZE) == -EINVAL       # out of range
    assert mm.sys_mremap(0, P, P, flags) == -EINVAL                  # before the lookup
    assert ok(mm, mm.sys_mremap(a, P, P, flags, 0x300000000)) == 0x300000000


def test_mremap_fixed_shrink_needs_only_the_kept_part_in_one_vma(mm: MM) -> None:
    a = ok(mm, mm.sys_mmap(0x200000000, 16 * P, RW, ANON))
    b = ok(mm, mm.sys_mmap(a - 16 * P, 16 * P, PROT_READ, ANON | MAP_FIXED))
    size = mm.total_vm
    r = mm.sys_mremap(b, 32 * P, P, MREMAP_MAYMOVE | MREMAP_FIXED, 0x300000000)
    assert ok(mm, r) == 0x300000000
    assert mm.total_vm == size - 31
    assert mm.tree.find_vma_intersection(b, a + 16 * P) is None


def test_mremap_fixed_moves_several_vmas_keeping_their_gaps(mm: MM) -> None:
    t = ok(mm, mm.sys_mmap(0x300000000, 16 * P, PROT_READ, ANON))
    s = ok(mm, mm.sys_mmap(0x200000000, 16 * P, RW, ANON))
    mm.write(s, 16 * P)
    ok(mm, mm.sys_munmap(s + 4 * P, 4 * P))                  # source: two VMAs, a hole
    anon = mm.pt.anon_pages
    assert ok(mm, mm.sys_mremap(s, 16 * P, 16 * P, MREMAP_MAYMOVE | MREMAP_FIXED, t)) == t
    assert mm.tree.find_vma_intersection(s, s + 16 * P) is None
    assert mm.pt.anon_pages == anon and mm.pt.counts(t, t + 16 * P)[0] == 12
    hole = mm.tree.vma_lookup(t + 4 * P)                     # the target under the hole stays
    assert hole is not None and hole.perms() == "r--p"
    assert mm.sys_mremap(0x400000000, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, t) == -EFAULT


def test_map_hugetlb_without_a_pool_map_32bit_and_map_locked(mm: MM) -> None:
    from memsim.kernel.mm import MAP_32BIT, MAP_HUGETLB, MAP_LOCKED
    assert mm.sys_mmap(0, 2 * MiB, RW, ANON | MAP_HUGETLB) == -ENOMEM
    a = ok(mm, mm.sys_mmap(0, P, RW, ANON | MAP_32BIT))
    assert a == 0x40000000                                    # bottom-up in [1 GiB, 2 GiB)
    assert ok(mm, mm.sys_mmap(0, P, RW, ANON | MAP_32BIT)) == a + P
    anon = mm.pt.anon_pages
    b = ok(mm, mm.sys_mmap(0, 16 * P, RW, ANON | MAP_LOCKED))  # populated, VmLck
    assert mm.pt.anon_pages == anon + 16 and mm.locked_vm == 16
    assert mm.sys_madvise(b, P, abi.MADV_DONTNEED) == -EINVAL   # locked pages stay
    c = ok(mm, mm.sys_mremap(b, 16 * P, 32 * P, MREMAP_MAYMOVE))
    assert mm.locked_vm == 32 and c
    ok(mm, mm.sys_munmap(c, 32 * P))
    assert mm.locked_vm == 0
    mm.privileged = False
    mm.setrlimit("memlock", 8 * P)
    assert mm.sys_mmap(0, 16 * P, RW, ANON | MAP_LOCKED) == -abi.EAGAIN
