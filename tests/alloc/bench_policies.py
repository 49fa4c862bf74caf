"""Benchmark: events/s of every registered allocator against the glibc model, same trace.

Run: ``/work/venv/bin/python -m tests.alloc.bench_policies [N] [--kernel null|mm]
[--repeat R] [--trace FILE] [--footprint] [NAME ...]`` from the repo root. The synthetic
workload is the one of ``bench_glibc`` (55 % malloc / 45 % free over ~5000 live blocks, 3 %
realloc, 1 % calloc, sizes mostly small, a few up to 400 KB). With ``--trace`` a recorded trace
(memsim.trace.open_trace) is replayed instead. Each allocator runs R times on a fresh kernel,
interleaved round-robin so that machine load hits every allocator alike; the median of the
CPU-time rates is printed, with the ratio to glibc's median in the same run. ``--footprint``
prints each allocator's peak footprint and F4 on the trace instead (null kernel).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from memsim.alloc import Allocator, available, create
from memsim.kernel.abi import Syscalls

from .bench_glibc import _mm, workload

Ops = list[tuple[int, int, int]]


class NullKernel:
    """The allocator alone: brk always moves, mmap hands out fresh addresses downwards,
    munmap/madvise succeed, writes cost nothing."""

    def __init__(self) -> None:
        self.cur = 0x555555559000
        self.top = 0x7FFFF7FF0000

    def sys_brk(self, addr: int) -> int:
        if addr:
            self.cur = addr
        return self.cur

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        self.top -= (length + 4095) & -4096
        return self.top

    def sys_munmap(self, addr: int, length: int) -> int:
        return 0

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        return self.sys_mmap(0, new_len, 0, 0)

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        return 0

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        return 0

    def write(self, addr: int, length: int = 1) -> None:
        pass

    def read(self, addr: int, length: int = 1) -> None:
        pass


def trace_ops(path: str) -> Ops:
    """A recorded trace (memsim-trace or mtrace) as (op, slot, size) events; a memalign-family
    call is op 4 with ``size = alignment << 48 | size``."""
    from memsim.trace import open_trace

    ops: Ops = []
    slots: dict[int, int] = {}                  # recorded pointer -> slot
    spare: list[int] = []
    nslots = 0

    def new_slot(ptr: int) -> int:
        nonlocal nslots
        if spare:
            s = spare.pop()
        else:
            s = nslots
            nslots += 1
        slots[ptr] = s
        return s

    with open_trace(path, skip_bad=True) as reader:
        for op, x, y, ret, _tid, _line in reader:
            if op == "m" and ret:
                ops.append((0, new_slot(ret), x))
            elif op == "c" and ret:
                ops.append((3, new_slot(ret), x * y))
            elif op in "avp" and ret:
                align = x if op == "a" else 4096
                size = y if op == "a" else x
                ops.append((4, new_slot(ret), (align << 48) | size))
            elif op == "f" and x in slots:
                s = slots.pop(x)
                spare.append(s)
                ops.append((1, s, 0))
            elif op == "r" and x in slots and ret:
                s = slots.pop(x)
                slots[ret] = s
                ops.append((2, s, y))
            elif op == "r" and not x and ret:
                ops.append((0, new_slot(ret), y))
    return ops


def replay(a: Allocator, ops: Ops) -> None:
    slots: dict[int, int] = {}
    malloc, free, realloc, calloc = a.malloc, a.free, a.realloc, a.calloc
    for op, s, size in ops:
        if op == 0:
            slots[s] = malloc(size)
        elif op == 1:
            free(slots.pop(s, 0))
        elif op == 2:
            slots[s] = realloc(slots.get(s, 0), size) or slots.get(s, 0)
        elif op == 3:
            slots[s] = calloc(1, size)
        else:
            slots[s] = a.memalign(size >> 48, size & ((1 << 48) - 1))


def footprint(a: Allocator, ops: Ops) -> tuple[int, int]:
    """Replay ``ops`` and return (peak usage().total, peak live requested bytes)."""
    slots: dict[int, int] = {}
    req: dict[int, int] = {}
    live = peak_live = peak_total = 0
    for op, s, size in ops:
        if op == 1:
            a.free(slots.pop(s, 0))
            live -= req.pop(s, 0)
            continue
        if op == 0:
            slots[s] = a.malloc(size)
        elif op == 3:
            slots[s] = a.calloc(1, size)
        elif op == 2:
            slots[s] = a.realloc(slots.get(s, 0), size) or slots.get(s, 0)
        else:
            slots[s] = a.memalign(size >> 48, size & ((1 << 48) - 1))
            size &= (1 << 48) - 1
        live += size - req.get(s, 0)
        req[s] = size
        peak_live = max(peak_live, live)
        peak_total = max(peak_total, a.usage().total)
    return peak_total, peak_live


def main() -> None:
    args = sys.argv[1:]
    n = 200_000
    kernel = "mm"
    repeat = 3
    trace = None
    names: list[str] = []
    while args:
        a = args.pop(0)
        if a.isdigit():
            n = int(a)
        elif a == "--kernel":
            kernel = args.pop(0)
        elif a == "--repeat":
            repeat = int(args.pop(0))
        elif a == "--trace":
            trace = args.pop(0)
        elif a == "--footprint":
            kernel = "footprint"
        else:
            names.append(a)
    ops = trace_ops(trace) if trace else workload(n)
    names = names or [name for name, _ in available()]
    if kernel == "footprint":
        print(f"{len(ops)} events ({trace or 'synthetic'}): peak footprint (usage().total) "
              f"against peak live requested bytes; F4 = footprint / live - 1 (JW98 #4)")
        for name in names:
            total, live = footprint(create(name, NullKernel()), ops)
            print(f"{name:20s} {total:>13,} {live:>13,}  F4 {total / max(live, 1) - 1:8.1%}")
        return
    make: Callable[[], Syscalls | None] = {"null": NullKernel, "mm": _mm}[kernel]
    if "glibc" not in names:
        names.insert(0, "glibc")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeat):
        for name in names:
            sysc = make()
            assert sysc is not None
            a = create(name, sysc)
            c = time.process_time()
            replay(a, ops)
            rates[name].append(len(ops) / (time.process_time() - c))
    base = statistics.median(rates["glibc"])
    print(f"{len(ops)} events ({trace or 'synthetic'}), kernel {kernel}, median of {repeat}")
    for name in names:
        med = statistics.median(rates[name])
        print(f"{name:20s} {med:12,.0f} events/s  {med / base:5.2f}x glibc")


if __name__ == "__main__":
    main()
