"""Space utilization as the CS:APP Malloc Lab driver (``mdriver``) computes it, and its score.

mdriver (``eval_mm_util``) replays a trace on a fresh heap and keeps two numbers::

    total    = sum of the *requested* sizes of the blocks live now
               malloc(n): += n      realloc(p, n): += n - (size asked for p before)
               free(p):   -= (size asked for p)
    peak     = max of total after every malloc and realloc
    util     = peak / mem_heapsize()    (the heap at the end: memlib's heap never shrinks,
                                         so that is its high-water mark)

and prints it per trace with ``%5.0f%%`` (rounded to the nearest percent, ties to even as
printf does), then the plain mean over *all* traces (a trace that failed the correctness
check counts 0)::

    trace  valid  util     ops      secs  Kops
     0       yes   99%    5694  0.012556   453
    ...
    Total          74%  112372  0.700151   160
    Perf index = 44 (util) + 40 (thru) = 84/100

The performance index (classic handout, config.h): ``p1 = UTIL_WEIGHT * avg_util``, ``p2 =
(1 - UTIL_WEIGHT) * min(1, avg_throughput / AVG_LIBC_THRUPUT)`` with ``UTIL_WEIGHT`` 0.60 and
``AVG_LIBC_THRUPUT`` 600e3 ops/s, ``perf index = 100 * (p1 + p2)`` (:func:`perf_index`).
memsim simulates no time, so it reports the utilization part and leaves the throughput part
to a caller that measured one.

Correctness (``eval_mm_valid``) is checked in the same replay: every request must succeed
(non-NULL), every payload must be ``alignment``-aligned, lie inside the heap (for allocators
that expose memlib's ``mem_heap_lo``/``mem_heap_hi``) and not overlap a live payload. The
overlap test here is the exact interval test; mdriver's misses a new block that strictly
contains an old one (it tests only the new block's two ends). Data preservation across
realloc is not checked (the simulation holds no bytes).

The denominator for an allocator without memlib (glibc, the seqfit family ...) is its
footprint's high-water mark: the bytes it got from the kernel (break above the start, plus its
mappings), measured at the system-call boundary; for memlib-based allocators (``csapp-*``) the
two are the same number, ``mem_heapsize()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedDict

from memsim.alloc.base import Allocator
from memsim.kernel.abi import Syscalls
from memsim.trace.format import Call

__all__ = ["AVG_LIBC_THRUPUT", "Footprint", "TraceUtil", "UTIL_WEIGHT", "average_util",
           "format_report", "perf_index", "replay_util"]

#: config.h of the classic handout
UTIL_WEIGHT = 0.60
AVG_LIBC_THRUPUT = 600e3          # ops per second


class Footprint:
    """A :class:`Syscalls` that passes every call to ``sys`` and counts the bytes the
    allocator holds (break above where it started, plus mapped bytes) and their peak."""

    def __init__(self, sys: Syscalls) -> None:
        self.sys = sys
        self.write = sys.write
        self.read = sys.read
        self.start_brk: int | None = None
        self.brk_bytes = 0
        self.mapped = 0
        self.peak = 0

    def _note(self) -> None:
        now = self.brk_bytes + self.mapped
        if now > self.peak:
            self.peak = now

    @property
    def current(self) -> int:
        return self.brk_bytes + self.mapped

    def sys_brk(self, addr: int) -> int:
        if self.start_brk is None:
            self.start_brk = self.sys.sys_brk(0)
        r = self.sys.sys_brk(addr)
        self.brk_bytes = max(r - self.start_brk, 0)
        self._note()
        return r

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        r = self.sys.sys_mmap(addr, length, prot, flags)
        if r >= 0:
            self.mapped += length
            self._note()
        return r

    def sys_munmap(self, addr: int, length: int) -> int:
        r = self.sys.sys_munmap(addr, length)
        if r == 0:
            self.mapped -= length
        return r

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        r = self.sys.sys_mremap(old_addr, old_len, new_len, flags, new_addr)
        if r >= 0:
            self.mapped += new_len - old_len
            self._note()
        return r

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.sys.sys_mprotect(addr, length, prot)

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        return self.sys.sys_madvise(addr, length, advice)

    def __getattr__(self, name: str) -> Any:
        # anything else an allocator may ask of its Syscalls, unchanged
        return getattr(self.sys, name)


@dataclass
class TraceUtil:
    """mdriver's figures for one trace."""

    name: str
    valid: bool = True
    ops: int = 0                  # requests replayed (mdriver's "ops": the trace's num_ops)
    peak_payload: int = 0         # bytes
    heap_size: int = 0            # bytes
    error: str | None = None      # why the trace is not valid ("ERROR [trace 0, line 7]: ...")
    weight: int = 1
    #: whether the trace enters the average (the CMU driver's weights 0 and 3 do not)
    counts: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def util(self) -> float:
        """peak payload / heap size; 0 for an invalid trace (mdriver never computes it)."""
        if not self.valid or not self.heap_size:
            return 0.0
        return self.peak_payload / self.heap_size

    def as_dict(self) -> dict[str, Any]:
        return {"trace": self.name, "valid": self.valid, "util": self.util,
                "ops": self.ops, "peak_payload": self.peak_payload,
                "heap_size": self.heap_size, "error": self.error, **self.extra}


def replay_util(calls: Iterable[Call], allocator: Allocator, footprint: Footprint | None = None,
                *, name: str = "trace", alignment: int = 8, index: int = 0) -> TraceUtil:
    """Replay ``calls`` on ``allocator`` as mdriver's eval_mm_valid + eval_mm_util do.

    ``footprint`` is the :class:`Footprint` the allocator was built on (for the heap size of
    allocators without memlib). ``index`` is the trace number used in error messages.
    """
    res = TraceUtil(name=name)
    mm_init = getattr(allocator, "mm_init", None)
    if mm_init is not None and mm_init() < 0:
        res.valid = False
        res.error = f"ERROR [trace {index}, line 0]: mm_init failed."
        return res
    lo_hi = None
    if hasattr(allocator, "mem_heap_lo"):
        lo_hi = (allocator.mem_heap_lo, allocator.mem_heap_hi)  # type: ignore[attr-defined]
    live: dict[int, tuple[int, int]] = {}     # trace pointer -> (payload, requested size)
    ranges: SortedDict = SortedDict()          # payload start -> end (exclusive)
    total = peak = 0
    ops = 0

    def fail(lineno: int, msg: str) -> TraceUtil:
        res.valid = False
        res.error = f"ERROR [trace {index}, line {lineno}]: {msg}"
        res.ops = ops
        return res

    def add_range(p: int, size: int) -> str | None:
        if p % alignment:
            return f"Payload address ({p:#x}) not aligned to {alignment} bytes"
        end = p + max(size, 1)
        if lo_hi is not None:
            lo, hi = lo_hi[0](), lo_hi[1]()
            if p < lo or end - 1 > hi:
                return f"Payload ({p:#x}:{end - 1:#x}) lies outside heap ({lo:#x}:{hi:#x})"
        i = ranges.bisect_right(p)
        for j in (i - 1, i):
            if 0 <= j < len(ranges):
                q, qe = ranges.peekitem(j)
                if q < end and p < qe:
                    return (f"Payload ({p:#x}:{end - 1:#x}) overlaps another payload "
                            f"({q:#x}:{qe - 1:#x})")
        ranges[p] = end
        return None

    for op, a, b, ret, _tid, lineno in calls:
        ops += 1
        if op == "f":
            if a == 0:
                allocator.free(0)
                continue
            p, size = live.pop(a)
            ranges.pop(p, None)
            allocator.free(p)
            total -= size
            continue
        if op == "r" and a:
            if ret == 0 and b:
                continue                        # failed in the recording: nothing moved
            p, old = live.pop(a)
            ranges.pop(p, None)
            if b == 0:                          # realloc(p, 0): a free
                allocator.realloc(p, 0)
                total -= old
                continue
            q = allocator.realloc(p, b)
            if not q:
                return fail(lineno, "mm_realloc failed." + _hint(allocator, b))
            why = add_range(q, b)
            if why:
                return fail(lineno, why)
            live[ret] = (q, b)
            total += b - old
        else:
            if op == "m" or op == "r":
                size = a if op == "m" else b
                q = allocator.malloc(size) if op == "m" else allocator.realloc(0, size)
            elif op == "c":
                size = a * b
                q = allocator.calloc(a, b)
            elif op == "a":
                size = b
                q = allocator.memalign(a, b)
            elif op == "v":
                size = a
                q = allocator.valloc(a)
            else:
                size = a
                q = allocator.pvalloc(a)
            if not q:
                if ret == 0:
                    continue                    # it failed in the recording too
                return fail(lineno, "mm_malloc failed." + _hint(allocator, size))
            why = add_range(q, size)
            if why:
                return fail(lineno, why)
            live[ret] = (q, size)
            total += size
        if total > peak:
            peak = total
    res.ops = ops
    res.peak_payload = peak
    heapsize = getattr(allocator, "mem_heapsize", None)
    if heapsize is not None:
        res.heap_size = heapsize()
    elif footprint is not None:
        res.heap_size = footprint.peak
    else:
        res.heap_size = allocator.usage().total
    return res


def _hint(allocator: Allocator, size: int) -> str:
    """Why a memlib allocator may have failed: its MAX_HEAP."""
    limit = getattr(allocator, "max_heap", None)
    if limit is None:
        return ""
    return (f" ({size:,} bytes asked; memlib's heap is limited to {limit:,} bytes, "
            f"MAX_HEAP: see --max-heap)")


def average_util(results: list[TraceUtil]) -> float:
    """mdriver's ``avg_mm_util``: the mean utilization over all traces (invalid ones 0;
    traces with ``counts`` False, the CMU driver's weights 0 and 3, left out)."""
    counted = [r for r in results if r.counts]
    if not counted:
        return 0.0
    return sum(r.util for r in counted) / len(counted)


def perf_index(avg_util: float, avg_throughput: float | None = None, *,
               util_weight: float = UTIL_WEIGHT,
               libc_thruput: float = AVG_LIBC_THRUPUT) -> tuple[float, float | None, float | None]:
    """``(p1, p2, perfindex)`` as mdriver computes them, in points of 100 (p2 and the index
    are None when no throughput, in ops per second, is given)."""
    p1 = util_weight * avg_util
    if avg_throughput is None:
        return p1 * 100.0, None, None
    if avg_throughput > libc_thruput:
        p2 = 1.0 - util_weight
    else:
        p2 = (1.0 - util_weight) * (avg_throughput / libc_thruput)
    return p1 * 100.0, p2 * 100.0, (p1 + p2) * 100.0


def _pct(x: float) -> str:
    """printf's ``%5.0f`` of x*100 (Python's format rounds exactly like glibc's printf)."""
    return f"{x * 100.0:5.0f}"


def format_report(results: list[TraceUtil], title: str = "mm malloc",
                  names: bool = True) -> str:
    """mdriver's ``printresults`` table (without the secs and Kops columns: memsim measures
    no time), the Total line and the utilization part of the perf index."""
    lines = [f"Results for {title}:",
             f"{'trace':>5s}{' valid':>7s} {'util':>5s}{'ops':>8s}" + ("  name" if names else "")]
    ops = 0
    for i, r in enumerate(results):
        tail = f"  {r.name}" if names else ""
        if not r.counts:
            tail += f"  (weight {r.weight}: not in the average)"
        if r.valid:
            lines.append(f"{i:2d}{'yes':>10s}{_pct(r.util)}%{r.ops:8.0f}{tail}")
            ops += r.ops
        else:
            lines.append(f"{i:2d}{'no':>10s}{'-':>6s}{'-':>8s}{tail}")
    n = len(results)
    errors = [r for r in results if not r.valid]
    if not errors and n:
        lines.append(f"{'Total       ':>12s}{_pct(average_util(results))}%{ops:8.0f}")
        p1, _, _ = perf_index(average_util(results))
        lines.append(f"Perf index = {p1:.0f} (util) + ? (thru): memsim simulates no time; "
                     f"the throughput part is {100 * (1 - UTIL_WEIGHT):.0f} points at "
                     f"{AVG_LIBC_THRUPUT / 1e3:.0f} Kops/s or more")
    else:
        lines.append(f"{'Total       ':>12s}{'-':>6s}{'-':>8s}")
        for r in errors:
            if r.error:
                lines.append(r.error)
        lines.append(f"Terminated with {len(errors)} errors")
    return "\n".join(lines) + "\n"

