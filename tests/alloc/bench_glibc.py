"""Benchmark: events/s of the glibc model on a synthetic 1M-call replay.

Run: ``/work/venv/bin/python -m tests.alloc.bench_glibc [N] [--profile]`` from the repo root.
The workload is trace-like: 55 % malloc / 45 % free over a live set of ~5000 chunks, sizes
mostly small (tcache/fastbin), some small-bin and large-bin, a few mmapped; 3 % realloc,
1 % calloc. Three kernels are timed: a no-op Syscalls (the allocator alone), the tests'
FakeSyscalls (page set), and memsim.kernel.mm.MM when it can be built. Rates are per second
of this process's CPU time, so that other jobs on the machine do not skew them.
"""

from __future__ import annotations

import cProfile
import pstats
import random
import sys
import time
from collections.abc import Callable

from memsim.alloc.glibc import Glibc236
from memsim.kernel.abi import Syscalls

from .fakesys import FakeSyscalls


class NullSyscalls(FakeSyscalls):
    """FakeSyscalls without page tracking and with a no-op write."""

    def __init__(self) -> None:
        super().__init__(track_pages=False)

    def write(self, addr: int, length: int = 1) -> None:
        pass


def workload(n: int, seed: int = 1) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    ops: list[tuple[int, int, int]] = []     # (op, slot, size): 0 malloc 1 free 2 realloc 3 calloc
    live: list[int] = []
    free_slots = list(range(20000))
    for _ in range(n):
        r = rng.random()
        if live and (r < 0.45 or len(live) > 5000):
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            s = live.pop()
            free_slots.append(s)
            ops.append((1, s, 0))
            continue
        x = rng.random()
        size = (rng.randrange(1, 128) if x < 0.6 else rng.randrange(128, 1024) if x < 0.85
                else rng.randrange(1024, 16384) if x < 0.98 else rng.randrange(16384, 400000))
        if live and r < 0.48:
            ops.append((2, rng.choice(live), size))
        elif r < 0.49:
            s = free_slots.pop()
            live.append(s)
            ops.append((3, s, size))
        else:
            s = free_slots.pop()
            live.append(s)
            ops.append((0, s, size))
    return ops


def replay(g: Glibc236, ops: list[tuple[int, int, int]]) -> None:
    slots = [0] * 20000
    malloc, free, realloc, calloc = g.malloc, g.free, g.realloc, g.calloc
    for op, s, size in ops:
        if op == 0:
            slots[s] = malloc(size)
        elif op == 1:
            free(slots[s])
            slots[s] = 0
        elif op == 2:
            slots[s] = realloc(slots[s], size) or slots[s]
        else:
            slots[s] = calloc(1, size)


def _mm() -> Syscalls | None:
    try:
        from memsim.kernel.machine import Machine
        from memsim.kernel.mm import MM
        return MM(Machine(), 1000)  # type: ignore[call-arg]
    except Exception as exc:                                     # noqa: BLE001
        print(f"(memsim.kernel.mm.MM unavailable: {exc})")
        return None


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
    ops = workload(n)
    kernels: list[tuple[str, Callable[[], Syscalls | None]]] = [
        ("null syscalls", NullSyscalls), ("FakeSyscalls", FakeSyscalls), ("kernel MM", _mm)]
    for name, make in kernels:
        sysc = make()
        if sysc is None:
            continue
        g = Glibc236(sysc)
        t = time.perf_counter()
        c = time.process_time()
        if "--profile" in sys.argv and name == "null syscalls":
            prof = cProfile.Profile()
            prof.runcall(replay, g, ops)
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        else:
            replay(g, ops)
        dt = time.perf_counter() - t
        dc = time.process_time() - c
        print(f"{name:14s} {n} events in {dt:.2f} s wall, {dc:.2f} s CPU = "
              f"{n / dc:,.0f} events/s of CPU (live chunks {len(g.av.inuse)}, "
              f"system_mem {g.av.system_mem:#x})")


if __name__ == "__main__":
    main()
