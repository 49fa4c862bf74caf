"""memsim.Process: the Python API of issue 2 (C conventions, prot strings, size_t arguments,
glibc's sbrk and thread stacks, limits, views)."""

from __future__ import annotations

import errno

import pytest

import memsim
from memsim import ConfigError, Machine, Process, SegmentationFault
from memsim.kernel.abi import RLIM_INFINITY, STACK_GUARD_GAP
from memsim.kernel.vma import VM_NOHUGEPAGE, flags_to_mnemonics
from memsim.process import parse_prot

P = 4096
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.fixture
def proc() -> Process:
    p = Process(machine=Machine(ram="24G", swap=0, overcommit=0))
    p.check()
    return p


def test_issue_example_runs(proc: Process) -> None:
    old = proc.sbrk(4096)
    assert old == proc.mm.start_brk
    addr = proc.mmap(1 << 20, prot="rw")
    assert addr is not None
    proc.write(addr, length=4096)
    assert proc.munmap(addr, 1 << 20) == 0
    assert proc.mprotect(old, 4096, "r") == 0
    proc.read(old)
    st = proc.status()
    assert {"VmSize", "VmRSS", "RssAnon", "VmData", "VmStk", "VmPTE"} <= set(st)
    assert "VmRSS:" in str(st) and "[heap]" in str(proc.maps())
    assert proc.setrlimit("data", 1 << 30, 1 << 30) == 0
    proc.check()


def test_default_machine_and_exports() -> None:
    p = Process()
    assert isinstance(p.machine, Machine) and p.pid > 0 and p.errno == 0
    assert {"Process", "Machine", "ConfigError", "SegmentationFault"} <= set(memsim.__all__)
    assert Process().pid != p.pid


def test_sbrk_is_glibc_sbrk(proc: Process) -> None:
    b0 = proc.sbrk(0)
    assert b0 == proc.mm.start_brk
    assert proc.sbrk(1) == b0
    assert proc.sbrk(5000) == b0 + 1
    assert proc.sbrk(0) == b0 + 5001
    assert proc.sbrk(-5001) == b0 + 5001 and proc.sbrk(0) == b0
    # below zero and past the top: ENOMEM without a syscall
    assert proc.sbrk(-(b0 + 1)) is None and proc.errno == errno.ENOMEM
    proc.errno = 0
    assert proc.sbrk(1 << 62) is None and proc.errno == errno.ENOMEM
    assert proc.sbrk("8k") == b0 and proc.sbrk(0) == b0 + 8 * KiB
    proc.check()


def test_sbrk_refused_by_rlimit_data_sets_enomem(proc: Process) -> None:
    proc.setrlimit("data", proc.status()["VmData"] * KiB + 512 * KiB)
    b0 = proc.sbrk(0)
    assert proc.sbrk(512 * KiB) == b0
    assert proc.sbrk(2 * MiB) is None and proc.errno == errno.ENOMEM
    assert proc.sbrk(0) == b0 + 512 * KiB            # the kernel returned the old break


def test_raw_brk_returns_the_kernels_value(proc: Process) -> None:
    b0 = proc.brk(0)
    assert proc.brk(b0 + 10) == b0 + 10
    assert proc.brk(b0 - P) == b0 + 10               # below start_brk: refused
    assert proc.sbrk(0) == b0 + 10                   # the cached break follows brk()


def test_mmap_failures_return_none_with_errno(proc: Process) -> None:
    assert proc.mmap(0) is None and proc.errno == errno.EINVAL
    assert proc.mmap(-1) is None and proc.errno == errno.ENOMEM
    a = proc.mmap(2 * P, "rw", addr=0x200000000)
    assert a == 0x200000000
    assert proc.mmap(P, "rw", addr=a, noreplace=True) is None and proc.errno == errno.EEXIST
    assert proc.mmap(P, "r", "fixed", addr=a) == a
    assert proc.mmap(P, "rw", addr=0x300000000, flags="fixed|populate") == 0x300000000


def test_munmap_mprotect_return_minus_one_with_errno(proc: Process) -> None:
    a = proc.mmap(4 * P, "rw")
    assert proc.munmap(a, -1) == -1 and proc.errno == errno.EINVAL
    assert proc.munmap(a + 1, P) == -1 and proc.errno == errno.EINVAL
    assert proc.mprotect(a, -1, "r") == -1 and proc.errno == errno.ENOMEM
    assert proc.mprotect(a, "8k", "---") == 0
    with pytest.raises(SegmentationFault) as e:
        proc.read(a)
    assert e.value.code == "SEGV_ACCERR"


@pytest.mark.parametrize("text,bits", [("", 0), ("---", 0), ("none", 0), ("r", 1), ("rw", 3),
                                       ("rx", 5), ("rwx", 7), ("w", 2), ("r-x", 5),
                                       ("RW", 3), (3, 3)])
def test_prot_strings(text: str | int, bits: int) -> None:
    assert parse_prot(text) == bits


@pytest.mark.parametrize("bad", ["q", "rr", "read", 1.5, None, True])
def test_unknown_prot_is_a_config_error(proc: Process, bad: object) -> None:
    with pytest.raises(ConfigError):
        proc.mmap(P, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):                  # ConfigError is a ValueError
        parse_prot(bad)  # type: ignore[arg-type]


def test_inputs_no_c_call_could_express_are_config_errors(proc: Process) -> None:
    a = proc.mmap(P, "rw")
    for call in (lambda: proc.mmap(1.5), lambda: proc.munmap(a, 2.0),
                 lambda: proc.write(a, 1, every=0), lambda: proc.write(a, 1, every=-4),
                 lambda: proc.read(float(a)), lambda: proc.sbrk(0.5),
                 lambda: proc.madvise(a, P, "sometimes"), lambda: proc.setrlimit("cpu", 1),
                 lambda: proc.mremap(a, P, 2 * P, "teleport"), lambda: proc.mmap("lots")):
        with pytest.raises(ConfigError):
            call()
    proc.check()


def test_negative_lengths_are_huge_size_t(proc: Process) -> None:
    a = proc.mmap(2 * P, "rw", addr=0x200000000)
    anon = proc.mm.pt.anon_pages
    with pytest.raises(SegmentationFault) as e:
        proc.write(a, -1)                            # runs to the end of the mapping
    assert e.value.addr == a + 2 * P and e.value.code == "SEGV_MAPERR"
    assert proc.mm.pt.anon_pages == anon + 2
    with pytest.raises(SegmentationFault):
        proc.read(-4096)                             # 0xfffffffffffff000


def test_write_and_read_every(proc: Process) -> None:
    a = proc.mmap(1 * MiB, "rw")
    anon = proc.status()["RssAnon"]
    proc.write(a, MiB, every=8192)                   # every other page
    assert proc.status()["RssAnon"] - anon == 512
    proc.read(a + P, MiB - P, every=8192)            # the others: zero page
    assert proc.status()["RssAnon"] - anon == 512
    proc.write(a, 0)                                 # nothing touched
    proc.check()


def test_mremap_and_madvise(proc: Process) -> None:
    a = proc.mmap(4 * P, "rw", addr=0x200000000)
    proc.write(a, 4 * P)
    assert proc.mremap(a, 4 * P, 2 * P) == a
    assert proc.mmap(P, "r", addr=a + 2 * P) == a + 2 * P
    assert proc.mremap(a, 2 * P, 8 * P) is None and proc.errno == errno.ENOMEM
    b = proc.mremap(a, 2 * P, 8 * P, maymove=True)
    assert b is not None and b != a
    assert proc.mremap(b, 8 * P, 16 * P, "maymove") is not None
    rss = proc.status()["RssAnon"]
    c = proc.mmap(4 * P, "rw")
    proc.write(c, 4 * P)
    assert proc.madvise(c, 4 * P, "dontneed") == 0
    assert proc.status()["RssAnon"] == rss
    assert proc.madvise(c + 1, P, "dontneed") == -1 and proc.errno == errno.EINVAL
    assert proc.madvise(c, P, 4) == 0
    proc.check()


def test_setrlimit_and_getrlimit(proc: Process) -> None:
    assert proc.getrlimit("stack") == (8 * MiB, RLIM_INFINITY)
    assert proc.setrlimit("as", "1G") == 0
    assert proc.getrlimit("as") == (GiB, RLIM_INFINITY)        # hard limit kept
    assert proc.setrlimit("as", "1G", "2G") == 0 and proc.getrlimit("as") == (GiB, 2 * GiB)
    assert proc.setrlimit("as", None, None) == 0
    assert proc.getrlimit("as") == (RLIM_INFINITY, RLIM_INFINITY)
    assert proc.setrlimit("data", 2 * GiB, GiB) == -1 and proc.errno == errno.EINVAL
    assert proc.setrlimit("RLIMIT_DATA", "unlimited") == 0


def test_create_thread_makes_a_glibc_stack(proc: Process) -> None:
    st0 = proc.status()
    commit0 = proc.machine.committed_pages
    n = proc.mm.map_count
    t = proc.create_thread()
    proc.check()
    assert t is not None and t.stacksize == 8 * MiB and t.guardsize == P
    assert proc.mm.map_count == n + 2
    guard = proc.mm.tree.vma_lookup(t.guard_start)
    stack = proc.mm.tree.vma_lookup(t.stack_start)
    assert (guard.vm_start, guard.vm_end) == (t.guard_start, t.guard_end)
    assert flags_to_mnemonics(guard.vm_flags) == "mr mw me nh"
    assert flags_to_mnemonics(stack.vm_flags) == "rd wr mr mw me ac nh"
    assert stack.vm_flags & VM_NOHUGEPAGE and stack.vm_end == t.stack_end
    st = proc.status()
    assert st["VmSize"] - st0["VmSize"] == 8196 and st["VmData"] - st0["VmData"] == 8192
    assert st["RssAnon"] - st0["RssAnon"] == 8
    assert proc.machine.committed_pages - commit0 == 8 * MiB // P    # the guard is not
    assert "Threads:\t2" in str(st)
    with pytest.raises(SegmentationFault) as e:
        proc.write(t.guard_end - 1)                      # overflow hits the guard
    assert e.value.code == "SEGV_ACCERR"


def test_thread_stack_size_follows_rlimit_stack_at_start() -> None:
    assert Process(stack_limit=MiB).create_thread().stacksize == MiB
    assert Process(stack_limit=None).create_thread().stacksize == 2 * MiB
    p = Process()
    p.setrlimit("stack", MiB)                             # too late for glibc's default
    assert p.create_thread().stacksize == 8 * MiB
    assert p.create_thread(stacksize=64 * KiB).stacksize == 64 * KiB
    assert p.create_thread(stacksize=1024) is None and p.errno == errno.EINVAL


def test_create_thread_fails_with_eagain_when_memory_runs_out() -> None:
    p = Process()
    p.setrlimit("as", p.status()["VmSize"] * KiB + MiB)
    assert p.create_thread() is None and p.errno == errno.EAGAIN
    p.check()


def test_main_stack_grows_up_to_rlimit_stack(proc: Process) -> None:
    stk = proc.status()["VmStk"]
    top = proc.mm.tree.vma_lookup(proc.mm.start_stack).vm_end
    proc.write(top - 2 * MiB, 2 * MiB)
    assert proc.status()["VmStk"] == max(stk, 2048)
    with pytest.raises(SegmentationFault):
        proc.write(top - 8 * MiB - 1)
    proc.check()


def test_start_brk_and_aslr_options() -> None:
    p = Process(start_brk=0x5555AAAA0000)
    assert p.sbrk(0) == 0x5555AAAA0000
    a = Process(aslr=True, seed=5)
    b = Process(aslr=True, seed=5)
    assert str(a.maps()) == str(b.maps())
    assert str(Process(aslr=True, seed=6).maps()) != str(a.maps())
    with pytest.raises(ConfigError):
        Process(start_brk=0x1234)
    with pytest.raises(ConfigError):
        Process(aslr="yes")  # type: ignore[arg-type]


def test_guard_gap_keeps_mmaps_away_from_the_stack(proc: Process) -> None:
    stack = proc.mm.tree.vma_lookup(proc.mm.start_stack)
    a = proc.mmap(P, "rw", addr=stack.vm_start - 2 * P)
    assert a is not None and a + P <= stack.vm_start - STACK_GUARD_GAP


def test_exit_releases_everything() -> None:
    m = Machine(ram="24G")
    before = m.committed_pages, m.free_frames
    p = Process(machine=m)
    a = p.mmap(MiB, "rw")
    p.write(a, MiB)
    p.create_thread()
    p.exit()
    p.check()
    m.check()
    assert (m.committed_pages, m.free_frames) == before and not p.alive
    assert p.status()["VmSize"] == 0
    with pytest.raises(ConfigError):
        p.mmap(P)


def test_smaps_view(proc: Process) -> None:
    a = proc.mmap(4 * P, "rw", addr=0x200000000)
    proc.write(a, 2 * P)
    e = proc.smaps()[0]
    assert (e.start, e.rss_anon) == (a, 2)
    assert "Anonymous:             8 kB" in str(proc.smaps())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_call_sequences_never_crash_and_keep_every_invariant(seed: int) -> None:
    """Seeded random programs, odd arguments included: only errno results or SIGSEGV, and
    check() (VMA tree, counters = sums over VMAs, commit charge, page table) after each."""
    import random

    from memsim.kernel.abi import (
        MAP_FIXED,
        MAP_FIXED_NOREPLACE,
        MAP_GROWSDOWN,
        MAP_NORESERVE,
        MAP_POPULATE,
        MAP_STACK,
        TASK_SIZE,
    )
    rng = random.Random(seed)
    m = Machine(ram="2G", overcommit=seed % 3, max_map_count=rng.choice([65530, 40]))
    p = Process(machine=m)
    regs = [p.sbrk(0), p.mm.tree.vma_lookup(p.mm.start_stack).vm_start, 0x200000000]

    def addr() -> int:
        base = rng.choice(regs)
        r = rng.random()
        if r < 0.6:
            return base + rng.randrange(-64, 64) * P
        if r < 0.7:
            return base + rng.randrange(-4096, 4096)
        if r < 0.8:
            return rng.choice([0, 1, P, TASK_SIZE, TASK_SIZE - P, -1, -P, 1 << 47, 0x10000])
        return (base + rng.randrange(-(1 << 30), 1 << 30)) & ~(P - 1)

    def length() -> int:
        r = rng.random()
        if r < 0.7:
            return rng.randrange(1, 64) * P
        if r < 0.8:
            return rng.randrange(0, 3 * P)
        if r < 0.9:
            return rng.choice([0, -1, -P, 1 << 47, 2 * MiB, 4 * MiB, GiB])
        return rng.randrange(1, 512) * P + rng.randrange(0, P)

    prots = [0, 1, 2, 3, 4, 5, 7, 8, 0x10]
    flags = [0, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_POPULATE, MAP_STACK,
             MAP_GROWSDOWN]
    for _ in range(300):
        op = rng.randrange(11)
        try:
            if op == 0:
                p.sbrk(rng.choice([1, -1]) * length())
            elif op == 1:
                p.brk(addr())
            elif op == 2:
                a = p.mmap(length(), rng.choice(prots), rng.choice(flags),
                           addr=addr() if rng.random() < 0.5 else 0)
                if a is not None:
                    regs.append(a)
            elif op == 3:
                p.munmap(addr(), length())
            elif op == 4:
                p.mprotect(addr(), length(), rng.choice(prots))
            elif op == 5:
                r = p.mremap(addr(), length(), length(), rng.choice([0, 1, 3, 5, 2, 7]), addr())
                if r is not None:
                    regs.append(r)
            elif op == 6:
                p.madvise(addr(), length(), rng.choice([4, 8, 14, 15, 10, 22, 23, 0, 99]))
            elif op in (7, 8):
                p.write(addr(), length(), every=rng.choice([None, 1, 64, P, 3 * P]))
            elif op == 9:
                p.read(addr(), length(), every=rng.choice([None, P, 8192]))
            elif rng.random() < 0.3:
                p.create_thread(rng.choice([None, 65536]))
            elif p.threads:
                p.join_thread(rng.choice(p.threads))
        except SegmentationFault:
            pass
        regs[3:] = regs[-40:]
        p.check()
    p.exit()
    m.check()


def test_thread_exit_join_and_the_glibc_stack_cache(proc: Process) -> None:
    st0 = proc.status()
    t0 = proc.create_thread()
    proc.join_thread(t0)
    base = proc.status()
    assert base["VmSize"] - st0["VmSize"] == 8196           # the stack stays mapped (cached)
    # a thread that used 1 MiB of its stack: on return everything below sp - 16 KiB goes back
    t1 = proc.create_thread()
    assert (t1.guard_start, t1.stack_end) == (t0.guard_start, t0.stack_end)   # reused
    proc.write(t1.stack_end - 0x112C - MiB, MiB)
    assert proc.status()["RssAnon"] - base["RssAnon"] == 1024
    proc.exit_thread(t1)
    assert "Threads:\t1" in str(proc.status())
    proc.join_thread(t1)
    assert proc.status()["RssAnon"] - base["RssAnon"] == 16
    # a 1 MiB stack does not fit the cached 8 MiB one (more than 4x): a new mapping
    t2 = proc.create_thread(stacksize=MiB)
    assert t2.guard_start != t0.guard_start
    proc.join_thread(t2)
    # six at once: one reuses the 8 MiB stack, five are new; joined, the cache keeps 40 MiB
    ts = [proc.create_thread() for _ in range(6)]
    for t in ts:
        proc.join_thread(t)
    proc.check()
    assert proc.status()["VmSize"] - st0["VmSize"] == 4 * 8196
    with pytest.raises(ConfigError):
        proc.join_thread(ts[0])
