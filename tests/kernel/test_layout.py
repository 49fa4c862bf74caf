"""memsim.kernel.layout: the process image at exec (linux-mm.md §0 address map, §2, §19)."""

from __future__ import annotations

import pytest

from memsim.errors import ConfigError
from memsim.kernel.abi import RLIM_INFINITY, STACK_GUARD_GAP, STACK_TOP, TASK_SIZE
from memsim.kernel.layout import (
    ELF_ET_DYN_BASE,
    MMAP_GAP_MAX,
    MMAP_GAP_MIN,
    Layout,
    mmap_base,
)
from memsim.kernel.vma import VM_ACCOUNT, VM_GROWSDOWN
from memsim.units import page_align

P = 4096
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def test_mmap_base_rule_without_aslr() -> None:
    # TASK_SIZE - clamp(RLIMIT_STACK + stack_guard_gap, 128 MiB, TASK_SIZE/6*5)
    assert mmap_base(8 * MiB, 0, False) == TASK_SIZE - MMAP_GAP_MIN == 0x7FFFF7FFF000
    assert mmap_base(GiB, 0, False) == TASK_SIZE - GiB - STACK_GUARD_GAP == 0x7FFFBFEFF000
    assert mmap_base(RLIM_INFINITY, 0, False) == page_align(TASK_SIZE - MMAP_GAP_MAX) \
        == 0x155555556000


def test_mmap_base_with_aslr_adds_the_stack_randomisation_pad() -> None:
    rnd = 0x1234 * P
    assert mmap_base(8 * MiB, rnd, True) == \
        TASK_SIZE - (8 * MiB + STACK_GUARD_GAP + (0x3FFFFF << 12)) - rnd


def test_default_image_is_the_measured_small_program() -> None:
    lay = Layout.default()
    lay.check()
    assert lay.segments[0].start == ELF_ET_DYN_BASE
    assert lay.mmap_base == 0x7FFFF7FFF000
    assert max(s.end for s in lay.segments if s.region == "mmap") == lay.mmap_base
    stack = [s for s in lay.segments if s.region == "stack"][0]
    assert stack.end == STACK_TOP and stack.end - stack.start == 132 * KiB
    assert stack.flags & VM_GROWSDOWN and stack.flags & VM_ACCOUNT
    # start_brk = PAGE_ALIGN(end of bss) = the end of the image when not randomised
    assert lay.start_brk == lay.image_end
    assert lay.start_code <= lay.end_code and lay.start_data <= lay.end_data <= lay.start_brk
    names = {s.name for s in lay.segments}
    assert {"[vvar]", "[vdso]"} <= names


def test_stack_limit_moves_mmap_base_and_bounds_the_initial_stack() -> None:
    lay = Layout.default(rlimit_stack=GiB)
    assert lay.mmap_base == 0x7FFFBFEFF000
    assert max(s.end for s in lay.segments if s.region == "mmap") == lay.mmap_base
    small = Layout.default(rlimit_stack=64 * KiB)
    stack = [s for s in small.segments if s.region == "stack"][0]
    assert stack.end - stack.start == 64 * KiB
    with pytest.raises(ConfigError):
        Layout.default(rlimit_stack=0)


def test_aslr_is_seeded_and_within_the_kernel_ranges() -> None:
    a = Layout.default(aslr=True, seed=1)
    b = Layout.default(aslr=True, seed=1)
    c = Layout.default(aslr=True, seed=2)
    assert a == b and a != c
    for lay in (a, c):
        lay.check()
        gap = 8 * MiB + STACK_GUARD_GAP + (0x3FFFFF << 12)
        assert TASK_SIZE - gap - (1 << 40) <= lay.mmap_base <= TASK_SIZE - gap
        stack = [s for s in lay.segments if s.region == "stack"][0]
        assert STACK_TOP - 16 * GiB <= stack.end <= STACK_TOP
        assert lay.image_end + P <= lay.start_brk < lay.image_end + P + GiB
        assert ELF_ET_DYN_BASE <= lay.segments[0].start < ELF_ET_DYN_BASE + (1 << 40)


def test_start_brk_may_be_placed_and_is_validated() -> None:
    lay = Layout.default(start_brk=0x555555600000)
    assert lay.start_brk == 0x555555600000
    for bad in (0x555555600001, 0x7FFFF7E00000, 0x12000):
        with pytest.raises(ConfigError):
            Layout.default(start_brk=bad)
    # below the image: a non-PIE program whose break follows its image
    low = Layout.default(start_brk=0x4C6000)
    low.check()
    assert low.image_end == low.start_brk == 0x4C6000
    assert low.start_code < low.end_code < low.start_data < low.end_data <= low.start_brk
    assert low.mmap_base == Layout.default().mmap_base


def test_unlimited_stack_puts_the_libraries_below_the_program() -> None:
    lay = Layout.default(rlimit_stack=RLIM_INFINITY)
    lay.check()
    libs = [s for s in lay.segments if s.region == "mmap"]
    assert max(s.end for s in libs) == lay.mmap_base == 0x155555556000
    assert lay.segments == sorted(lay.segments, key=lambda s: s.start)
