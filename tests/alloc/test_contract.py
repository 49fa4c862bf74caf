"""Every registered allocator (glibc included), through the same property-based cases.

Each allocator runs on the simulated kernel (``memsim.Process().mm``) and after every call:
results are aligned (the allocator's ``alignment``, 16 unless it says otherwise, or the
memalign alignment), never overlap a live block, offer at
least the bytes asked for, ``check()`` holds, and the HeapUsage buckets add up to the
footprint. With RLIMIT_DATA or RLIMIT_AS set low, an allocator returns NULL only in a call in
which the kernel refused memory (brk did not move, mmap failed), and without limits it never
returns NULL. The same calls give the same addresses twice. Misuse raises AllocatorAbort.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.alloc import Allocator, AllocatorAbort, available, create
from memsim.kernel.mm import MM
from memsim.process import Process
from memsim.units import PAGE_SIZE

NAMES = [name for name, _ in available()]
#: examples per allocator and property (raise it for a long local run)
EXAMPLES = int(os.environ.get("MEMSIM_CONTRACT_EXAMPLES", "25"))
ALIGNMENTS = [32, 48, 64, 256, 4096, 65536]

SIZES = st.one_of(st.integers(0, 128), st.integers(0, 1100), st.integers(1100, 70000),
                  st.integers(100000, 600000))
OP = st.one_of(
    st.tuples(st.just("malloc"), SIZES),
    st.tuples(st.just("malloc"), SIZES),
    st.tuples(st.just("free"), st.integers(0, 1000)),
    st.tuples(st.just("free"), st.integers(0, 1000)),
    st.tuples(st.just("realloc"), st.integers(0, 1000), SIZES),
    st.tuples(st.just("calloc"), st.integers(1, 8), st.integers(0, 5000)),
    st.tuples(st.just("memalign"), st.sampled_from(ALIGNMENTS), SIZES),
    st.tuples(st.just("trim"), st.sampled_from([0, 65536])),
)
OPS = st.lists(OP, max_size=50)


class Watch:
    """The process's MM as the allocator's Syscalls, noting every refused request."""

    def __init__(self, mm: MM) -> None:
        self.mm = mm
        self.refused = 0
        self.write = mm.write
        self.read = mm.read

    def sys_brk(self, addr: int) -> int:
        r = self.mm.sys_brk(addr)
        if addr and r != addr:
            self.refused += 1
        return r

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        r = self.mm.sys_mmap(addr, length, prot, flags)
        if r < 0:
            self.refused += 1
        return r

    def sys_munmap(self, addr: int, length: int) -> int:
        return self.mm.sys_munmap(addr, length)

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        r = self.mm.sys_mremap(old_addr, old_len, new_len, flags, new_addr)
        if r < 0:
            self.refused += 1
        return r

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.mm.sys_mprotect(addr, length, prot)

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        return self.mm.sys_madvise(addr, length, advice)


def _overlap(live: dict[int, int], p: int, n: int) -> str:
    for q, m in live.items():
        if q < p + max(n, 1) and p < q + max(m, 1):
            return f"{p:#x}+{n} overlaps {q:#x}+{m}"
    return ""


def _accounted(a: Allocator, mm: MM | None = None, vm0: int = 0) -> None:
    """The buckets add up to the footprint, and the footprint is the address space the
    kernel gave the allocator (its VmSize growth, within the last page of the break)."""
    u = a.usage()
    parts = u.in_use + u.cached + u.free + u.top + u.overhead
    assert parts == u.total, f"{a.name}: buckets {u.as_dict()} do not add up"
    assert min(u.as_dict().values()) >= 0, f"{a.name}: negative bucket {u.as_dict()}"
    if mm is not None:
        held = (mm.total_vm - vm0) * PAGE_SIZE
        assert 0 <= held - u.total < PAGE_SIZE, \
            f"{a.name}: footprint {u.total} but the kernel mapped {held} bytes for it"


def run(name: str, ops: list[tuple[Any, ...]], limits: dict[str, int] | None = None,
        options: dict[str, Any] | None = None) -> tuple[list[int], int]:
    """Run ``ops`` through allocator ``name`` checking the contract after every call.

    Returns the pointers returned (0 for NULL) and the number of NULLs."""
    proc = Process()
    if limits:
        for res, extra in limits.items():
            base = proc.mm.data_vm if res == "data" else proc.mm.total_vm
            proc.setrlimit(res, base * PAGE_SIZE + extra)
    watch = Watch(proc.mm)
    vm0 = proc.mm.total_vm
    a = create(name, watch, options)
    base_align = getattr(a, "alignment", 16)     # what the allocator promises (16 unless
    live: dict[int, int] = {}                    # it says otherwise, e.g. CS:APP's 8)
    out: list[int] = []
    nulls = 0
    for op in ops:
        kind = op[0]
        before = watch.refused
        align = base_align
        want = 0
        if kind == "malloc":
            want = op[1]
            p = a.malloc(want)
        elif kind == "calloc":
            want = op[1] * op[2]
            p = a.calloc(op[1], op[2])
        elif kind == "memalign":
            align = max(1 << (op[1] - 1).bit_length(), base_align)
            want = op[2]
            p = a.memalign(op[1], want)
        elif kind == "trim":
            a.malloc_trim(op[1])
            a.check()
            _accounted(a, proc.mm, vm0)
            continue
        else:
            if not live:
                continue
            victim = sorted(live)[op[1] % len(live)]
            if kind == "free":
                del live[victim]
                a.free(victim)
                a.check()
                _accounted(a, proc.mm, vm0)
                continue
            want = op[2]
            old = live.pop(victim)
            p = a.realloc(victim, want)
            if not p and want:
                assert a.malloc_usable_size(victim) == old, f"{name}: failed realloc moved"
                live[victim] = old
        out.append(p)
        if p:
            assert p % align == 0, f"{name}: {op} gave {p:#x}, not {align}-aligned"
            n = a.malloc_usable_size(p)
            assert n >= want, f"{name}: {op} usable {n} < {want}"
            assert not _overlap(live, p, n), f"{name}: {op}: {_overlap(live, p, n)}"
            live[p] = n
        elif want:
            # C leaves a NULL for a zero-size request to the implementation (C11 7.22.3);
            # any other NULL must come from a refusal of the kernel
            nulls += 1
            assert watch.refused > before, f"{name}: {op} returned NULL, the kernel refused " \
                                           f"nothing (limits {limits})"
            assert a.errno, f"{name}: NULL without errno"
        a.check()
        _accounted(a, proc.mm, vm0)
    for p in sorted(live):
        a.free(p)
    a.check()
    _accounted(a, proc.mm, vm0)
    return out, nulls


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_contract_holds_after_every_call(name: str, ops: list[tuple[Any, ...]]) -> None:
    _, nulls = run(name, ops)
    assert nulls == 0, f"{name} returned NULL with memory to spare"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(EXAMPLES * 3 // 5, 1), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, resource=st.sampled_from(["data", "as"]),
       extra=st.integers(0, 3 * 1024 * 1024))
def test_null_only_when_the_kernel_refuses(name: str, ops: list[tuple[Any, ...]],
                                           resource: str, extra: int) -> None:
    run(name, ops, {resource: extra})


@pytest.mark.parametrize("name", NAMES)
def test_a_low_rlimit_makes_requests_fail(name: str) -> None:
    ops = [("malloc", 200_000)] * 12 + [("malloc", 5000)] * 40 + [("memalign", 4096, 9000)]
    _, nulls = run(name, ops, {"data": 256 * 1024})
    assert nulls > 0, f"{name}: no NULL with RLIMIT_DATA 256 KiB above the program's data"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(EXAMPLES // 5, 1), deadline=None)
@given(ops=OPS)
def test_same_calls_give_same_addresses(name: str, ops: list[tuple[Any, ...]]) -> None:
    first, _ = run(name, ops)
    second, _ = run(name, ops)
    assert first == second


@pytest.mark.parametrize("name", NAMES)
def test_misuse_is_never_ignored(name: str) -> None:
    a = create(name, Process().mm)
    p = a.malloc(100)
    q = a.malloc(100)
    a.free(p)
    with pytest.raises(AllocatorAbort):
        a.free(q + 8)                              # never returned
    with pytest.raises(AllocatorAbort):
        a.free(p)                                  # double free
    assert a.malloc_usable_size(0) == 0


@pytest.mark.parametrize("name", NAMES)
def test_realloc_zero_frees_and_null_mallocs(name: str) -> None:
    a = create(name, Process().mm)
    p = a.realloc(0, 40)
    assert p and a.malloc_usable_size(p) >= 40
    q = a.realloc(p, 4000)
    assert q and a.malloc_usable_size(q) >= 4000
    assert a.realloc(q, 0) == 0
    a.check()
    with pytest.raises(AllocatorAbort):
        a.free(q)


@pytest.mark.parametrize("name", NAMES)
def test_writes_go_through_the_kernel(name: str) -> None:
    """RSS comes from the allocator's own stores: a fresh heap has resident pages."""
    proc = Process()
    before = proc.mm.rss
    a = create(name, proc.mm)
    assert a.malloc(100)
    assert proc.mm.rss > before, f"{name} wrote no page"


def test_every_allocator_has_a_one_line_description() -> None:
    for name, description in available():
        assert description and "\n" not in description and len(description) < 160, name
    assert {"glibc", "first-fit", "next-fit", "best-fit", "worst-fit", "segfit",
            "simple-seg", "buddy", "sizeclass"} <= set(NAMES)


def test_mm_is_a_syscalls() -> None:
    from memsim.kernel.abi import Syscalls

    assert isinstance(Watch(Process().mm), Syscalls)


#: non-default configurations of the classic allocators, held to the same contract
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("seqfit", {"header": 0, "min_block": 32, "footer": "free"}),
    ("seqfit", {"header": 0, "min_block": 16, "lists": "implicit", "coalesce": "none"}),
    ("seqfit", {"alignment": 8, "min_block": 32}),
    ("seqfit", {"alignment": 32, "min_block": 64, "header": 16}),
    ("seqfit", {"order": "lifo", "coalesce": "deferred"}),
    ("seqfit", {"order": "fifo", "coalesce": "none", "placement": "next"}),
    ("seqfit", {"order": "size", "placement": "worst", "coalesce": "deferred"}),
    ("seqfit", {"order": "lifo", "placement": "best"}),
    ("seqfit", {"lists": "implicit", "placement": "next", "min_block": 16,
                "coalesce": "deferred"}),
    ("seqfit", {"mmap_threshold": 65536, "realloc": "copy"}),
    ("seqfit", {"grow": 0, "prologue": 24}),
    ("segfit", {"small_max": 64, "coalesce": "deferred"}),
    ("segfit", {"mmap_threshold": 200000, "coalesce": "none"}),
    ("buddy", {"header": 0}),
    ("buddy", {"arena": 4096}),
    ("simple-seg", {"header": 16}),
    ("simple-seg", {"classes": "pow2x3", "max_class": 256, "run": 8192}),
    ("sizeclass", {"retire_delay": 0, "reset": "free"}),
    ("sizeclass", {"retire_delay": 3, "reset": "none"}),
]


@pytest.mark.parametrize(("name", "options"), CONFIGS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
@settings(max_examples=max(EXAMPLES * 2 // 5, 1), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, limit=st.one_of(st.none(), st.integers(0, 3 * 1024 * 1024)))
def test_configurations_keep_the_contract(name: str, options: dict[str, Any],
                                          ops: list[tuple[Any, ...]], limit: int | None
                                          ) -> None:
    run(name, ops, None if limit is None else {"data": limit}, options)
