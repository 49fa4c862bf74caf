"""Replay a recorded trace through a simulated allocator, and check it against the recording.

A trace (memsim-trace v1, or an mtrace log) is the sequence of malloc-family calls a real
program made, with the address glibc returned for each. :func:`replay` makes the same calls,
in the same order, on a fresh simulated process whose heap starts at the trace's ``brk0``
(the program break the real process had before its first malloc), through an allocator
model from :mod:`memsim.alloc` (``"glibc"`` by default)::

      trace file ──(streamed by memsim.trace.open_trace)──► replay loop
                                                              │  live: real ptr -> (sim ptr, size)
                                                              ▼
                               allocator model (memsim.alloc.create(name, syscalls))
                                                              │ sys_brk/sys_mmap/... │ write
                                                              ▼                      │
                               SyscallLog (counts; strace lines for --emit-syscalls) │
                                                              ▼                      ▼
                               memsim.Process: MM (VMAs, brk) and page table (RssAnon)

Object identity
---------------

A trace names objects by the address the real allocator returned. The replay keeps one dict,
``live``, from each *recorded* address still live to the *simulated* address of the same
object (and its size). A later ``f PTR`` or ``r PTR ...`` looks the recorded address up and
hands the simulated one to the model. So after the model disagrees with the real glibc
(another address, NULL, an mmapped chunk at another place), the replay still frees and
resizes the right objects: it stays meaningful to the end. The dict holds live objects only
(an entry is removed at the free), and the trace is streamed, so memory is O(live objects)
whatever the length of the trace.

What the program does with its memory
-------------------------------------

The trace records calls, not the program's loads and stores. With ``touch=True`` (the
default) the replay assumes the program writes every byte it asked for, once, right after
the allocation (``[ptr, ptr+size)``; after a realloc the whole new size): for such a
program the simulated RssAnon equals the real kernel's (tests/trace/test_replay_rss.py
compares them). ``touch=False`` replays only the allocator's own stores (headers, links,
calloc's clearing, realloc's copy).

Checking (:func:`check`)
------------------------

Each call that returns a pointer is compared with the recording:

- a heap chunk matches when the simulated address equals the recorded one;
- an mmapped chunk matches when the recorded pointer lies outside the real brk heap and the
  simulated one outside the simulated brk heap (an mmapped chunk): the two processes have
  different libraries mapped, so mmap addresses are not comparable, but the decision to mmap
  is;
- NULL matches NULL.

Frees return nothing and are not counted. At the first divergence the result carries the
context: the last calls before it with both addresses, and the allocator's bins at that
point (the model's own dump when it has one, else :func:`heap_dump`). By default the check
stops there; ``keep_going=True`` replays to the end and counts every divergence.

Hot loop
--------

:meth:`Replayer.feed` is one ``for`` over the calls of the streamed trace, dispatching on the
op letter with the commonest first (``f``, ``m``), allocator methods and dict methods bound
to locals. Counting, the live-bytes peak and the progress callback (every 65,536 calls) are
the only bookkeeping. :meth:`Replayer.step` is the same logic one call at a time, used where
each call's simulated result is needed (``check``, ``--emit-trace``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from memsim.alloc.base import Allocator, AllocatorAbort, create
from memsim.errors import ConfigError, Signal, TraceError
from memsim.kernel.layout import Layout
from memsim.process import Process
from memsim.trace import open_trace
from memsim.trace.format import Call, TraceWriter
from memsim.trace.syscall_log import SYSCALL_NAMES, SyscallLog
from memsim.units import PAGE_SIZE

if TYPE_CHECKING:
    from memsim.kernel.machine import Machine

__all__ = [
    "CONTEXT_CALLS",
    "CheckResult",
    "Divergence",
    "ReplayResult",
    "Replayer",
    "check",
    "format_call_line",
    "heap_dump",
    "iter_calls",
    "open_for_replay",
    "replay",
]

#: How many calls before a divergence :func:`check` shows.
CONTEXT_CALLS = 10
#: How many divergences a keep-going check lists (all are counted).
DIVERGENCE_EXAMPLES = 20
#: Calls between two progress callbacks.
PROGRESS_EVERY = 1 << 16

OP_NAMES = {"m": "malloc", "c": "calloc", "r": "realloc", "f": "free", "a": "memalign",
            "v": "valloc", "p": "pvalloc"}

Source = str | os.PathLike[str] | BinaryIO


def format_call_line(op: str, a: int, b: int, ret: int) -> str:
    """A call as its trace line (without the thread field)."""
    if op == "m" or op == "v" or op == "p":
        return f"{op} {a} {ret:#x}"
    if op == "f":
        return f"f {a:#x}"
    if op == "c" or op == "a":
        return f"{op} {a} {b} {ret:#x}"
    if op == "r":
        return f"r {a:#x} {b} {ret:#x}"
    return f"{op} ?"


# --- results ----------------------------------------------------------------------------------

@dataclass
class ReplayResult:
    """What a replay did, and the state of the simulated process at its end.

    Bytes are bytes; ``rss_anon_kb`` is /proc/PID/status RssAnon of the simulated process (kB,
    like the kernel), ``rss_anon_start_kb`` the same before the first call, so their difference
    is the anonymous memory the replay made resident (the heap's and the mmapped chunks').
    """

    trace: str
    allocator: str
    calls: int = 0
    ops: dict[str, int] = field(default_factory=dict)     # "malloc" -> calls ...
    threads: int = 0                                       # distinct t= values in the trace
    brk0: int | None = None                                # from the trace
    start_brk: int = 0                                     # where the simulated heap starts
    touch: bool = True
    live_objects: int = 0
    peak_live_objects: int = 0
    live_bytes: int = 0                                    # requested bytes the program holds
    peak_live_bytes: int = 0
    heap_bytes: int = 0                                    # brk - start_brk at the end
    peak_heap_bytes: int = 0
    mapped_bytes: int = 0                                  # the allocator's own mappings
    peak_mapped_bytes: int = 0
    rss_anon_kb: int = 0
    rss_anon_start_kb: int = 0
    syscalls: dict[str, int] = field(default_factory=dict)
    failed_allocations: int = 0      # the model returned NULL where the program got memory
    seconds: float = 0.0
    skipped: int = 0
    skip_report: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_anon_delta_kb(self) -> int:
        """RssAnon the replay added (kB)."""
        return self.rss_anon_kb - self.rss_anon_start_kb

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["events_per_second"] = round(self.events_per_second, 1)
        d["rss_anon_delta_kb"] = self.rss_anon_delta_kb
        d["seconds"] = round(self.seconds, 6)
        d["brk0"] = None if self.brk0 is None else f"{self.brk0:#x}"
        d["start_brk"] = f"{self.start_brk:#x}"
        return d


@dataclass
class Divergence:
    """The first call where the model and the recording disagree, with what led to it."""

    lineno: int
    line: str                    # the trace line
    expected: int                # the recorded pointer
    got: int                     # the simulated pointer
    kind: str                    # "address", "heap/mmap", "mmap/heap", "null"
    context: list[str] = field(default_factory=list)   # the calls before, one line each
    heap: str = ""               # the allocator's bins (see heap_when)
    heap_when: str = "after the call"   # "before the call" when the trace could be re-read

    def describe(self) -> str:
        return (f"line {self.lineno}: {self.line}: recorded {self.expected:#x}, simulated "
                f"{self.got:#x} ({_KIND_TEXT.get(self.kind, self.kind)})")


_KIND_TEXT = {
    "address": "another heap address",
    "heap/mmap": "the real chunk is in the brk heap, the simulated one is mmapped",
    "mmap/heap": "the real chunk is mmapped, the simulated one is in the brk heap",
    "null": "one of them is NULL",
}


@dataclass
class CheckResult:
    """How many calls returned what the real glibc returned; the first divergence."""

    replay: ReplayResult
    compared: int = 0            # calls that return a pointer (all but free)
    matched: int = 0
    heap_matched: int = 0        # of matched: equal heap addresses
    mmap_matched: int = 0        # of matched: both mmapped chunks
    null_matched: int = 0        # of matched: both NULL
    mismatched: int = 0
    first: Divergence | None = None
    divergences: list[tuple[int, str, str]] = field(default_factory=list)  # (line, text, kind)
    stopped: bool = False        # stopped at the first divergence (not keep-going)
    first_index: int = 0         # 1-based index of the first divergent call in the trace

    @property
    def share(self) -> float:
        """Matched / compared (1.0 for a trace without allocations)."""
        return self.matched / self.compared if self.compared else 1.0

    @property
    def ok(self) -> bool:
        return self.mismatched == 0 and self.replay.skipped == 0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "trace": self.replay.trace, "allocator": self.replay.allocator,
            "calls": self.replay.calls, "compared": self.compared, "matched": self.matched,
            "heap_matched": self.heap_matched, "mmap_matched": self.mmap_matched,
            "null_matched": self.null_matched, "mismatched": self.mismatched,
            "share": self.share, "ok": self.ok, "stopped_at_first_divergence": self.stopped,
            "threads": self.replay.threads, "skipped": self.replay.skipped,
            "first_divergence": None,
            "divergences": [{"line": n, "call": t, "kind": k} for n, t, k in self.divergences],
            "seconds": round(self.replay.seconds, 6), "notes": self.replay.notes,
        }
        if self.first is not None:
            f = self.first
            d["first_divergence"] = {"line": f.lineno, "call": f.line,
                                     "recorded": f"{f.expected:#x}", "simulated": f"{f.got:#x}",
                                     "kind": f.kind, "context": f.context, "heap": f.heap,
                                     "heap_when": f.heap_when}
        return d


# --- the heap at a divergence -----------------------------------------------------------------

def _chunk_list(chunks: list[int], sizes: Mapping[int, int] | None = None, limit: int = 8
                ) -> str:
    shown = [f"{p:#x}" if sizes is None else f"{p:#x}({sizes[p]:#x})" for p in chunks[:limit]]
    more = f" ... ({len(chunks) - limit} more)" if len(chunks) > limit else ""
    return " ".join(shown) + more


def heap_dump(alloc: Allocator, limit: int = 8) -> str:
    """The allocator's free lists, as text, for a divergence report.

    Uses the allocator's own ``dump_bins()`` when it has one. For the glibc model it lists the
    tcache bins, fastbins (head first), the unsorted bin (front first), the small and large
    bins, top and the last remainder, then ``malloc_stats()``. Any other allocator gets its
    ``usage()`` figures.
    """
    own = getattr(alloc, "dump_bins", None)
    if callable(own):
        return str(own())
    lines: list[str] = []
    av = getattr(alloc, "av", None)
    if av is not None and hasattr(av, "bin_chunks"):
        lines.append("free lists, head first, as chunk addresses (malloc returns chunk + 0x10):")
        tc = getattr(alloc, "tcache", None)
        if tc is None:
            lines.append("tcache: not initialised")
        else:
            for i, stack in enumerate(tc.entries):
                if stack:
                    lines.append(f"tcache[{i}] size {32 + 16 * i:#x}: {len(stack)}: "
                                 f"{_chunk_list(stack[::-1], None, limit)}")
        for i, fb in enumerate(av.fastbins):
            if fb:
                lines.append(f"fastbin[{i}] size {(i + 2) * 16:#x}: {len(fb)}: "
                             f"{_chunk_list(fb[::-1], None, limit)}")
        for b in range(1, 127):
            chunks = list(av.bin_chunks(b))
            if chunks:
                name = "unsorted" if b == 1 else f"{'small' if b < 64 else 'large'}bin[{b}]"
                lines.append(f"{name}: {len(chunks)}: {_chunk_list(chunks, av.free, limit)}")
        top = av.top
        lines.append(f"top {top:#x} size {av.top_size:#x}; last_remainder "
                     f"{av.last_remainder:#x}; system_mem {av.system_mem:#x}")
        mmapped = getattr(alloc, "mmapped", None)
        if mmapped:
            lines.append(f"mmapped chunks: {len(mmapped)}")
    else:
        u = alloc.usage()
        lines.append(" ".join(f"{k}={v}" for k, v in u.as_dict().items()))
    stats = alloc.malloc_stats().rstrip("\n")
    if stats:
        lines.append(stats)
    return "\n".join(lines)


# --- the replayer -------------------------------------------------------------------------------

class Replayer:
    """A simulated process with an allocator, fed calls from a trace.

    ``brk0``: place the heap there (None: the default layout). ``options``: keyword options of
    the allocator (``{"env": {...}}`` for glibc). ``syscall_out``: a text stream for the
    strace-notation log. ``process``: replay into this process instead of a new one;
    ``machine``: the :class:`memsim.Machine` a new process runs on (default: a fresh one with
    this computer's RAM and no swap).
    """

    def __init__(self, allocator: str = "glibc", *, brk0: int | None = None,
                 options: Mapping[str, Any] | None = None, touch: bool = True,
                 syscall_out: IO[str] | None = None, process: Process | None = None,
                 machine: Machine | None = None, name: str = "<trace>",
                 skip_bad: bool = False) -> None:
        self.name = name
        self.notes: list[str] = []
        if process is None:
            process = _new_process(brk0, self.notes, machine)
        self.process = process
        self.mm = process.mm
        self.sys = SyscallLog(process.mm, syscall_out)
        self.alloc = create(allocator, self.sys, options)
        process.allocator = self.alloc
        self.allocator_name = allocator
        self.touch = touch
        self.skip_bad = skip_bad
        self.brk0 = brk0
        self.start_brk = process.mm.start_brk
        self.rss_anon_start_kb = process.status()["RssAnon"]
        self.live: dict[int, tuple[int, int]] = {}
        self.live_bytes = 0
        self.peak_live_bytes = 0
        self.peak_live_objects = 0
        self.counts: dict[str, int] = dict.fromkeys(OP_NAMES, 0)
        self.failed = 0
        self.skipped = 0
        self.skipped_ops: dict[str, int] = dict.fromkeys(OP_NAMES, 0)
        self.bad_lines: list[str] = []
        self.seconds = 0.0
        self.tids: set[int] = set()

    # -- errors in the trace
    def _bad(self, message: str, call: Call) -> None:
        op, a, b, ret, _tid, lineno = call
        if not self.skip_bad:
            raise TraceError(message, self.name, lineno, format_call_line(op, a, b, ret))
        self.skipped += 1
        if op in self.skipped_ops:                 # it was counted: uncount it
            self.skipped_ops[op] += 1
        if len(self.bad_lines) < 5:
            self.bad_lines.append(f"line {lineno}: {message}")

    def _abort(self, e: Signal, call: Call) -> TraceError:
        """The simulated process died at ``call``: the allocator aborted (misuse it detected),
        or the kernel killed it (the OOM killer, a segmentation fault)."""
        op, a, b, ret, _tid, lineno = call
        if isinstance(e, AllocatorAbort):
            what = f"the simulated {self.allocator_name} aborted: {e}"
        else:
            what = f"the simulated process died ({e.name}): {e}"
        return TraceError(what, self.name, lineno, format_call_line(op, a, b, ret))

    # -- the fast loop
    def feed(self, calls: Iterable[Call],
             progress: Callable[[int], None] | None = None) -> None:
        """Replay ``calls`` (see the module docstring's "Hot loop")."""
        alloc = self.alloc
        malloc = alloc.malloc
        free = alloc.free
        calloc = alloc.calloc
        realloc = alloc.realloc
        memalign = alloc.memalign
        valloc = alloc.valloc
        pvalloc = alloc.pvalloc
        write = self.sys.write
        touch = self.touch
        live = self.live
        pop = live.pop
        setdefault = live.setdefault
        nlive = len(live)
        cur = self.live_bytes
        peak = self.peak_live_bytes
        peak_objects = self.peak_live_objects
        failed = self.failed
        tids = self.tids
        nm = nf = nc = nr = na = nv = np = 0
        it = iter(calls)
        call: Call = ("", 0, 0, 0, 0, 0)
        last_tid = -1
        t0 = time.perf_counter()
        try:
            while True:
                n_before = nm + nf + nc + nr + na + nv + np
                for call in islice(it, PROGRESS_EVERY):
                    op, a, b, ret, tid, _ = call
                    if tid != last_tid:
                        tids.add(tid)
                        last_tid = tid
                    if op == "f":
                        nf += 1
                        if a:
                            e = pop(a, None)
                            if e is None:
                                self._bad(f"free of {a:#x}, which is not live", call)
                                continue
                            free(e[0])
                            cur -= e[1]
                            nlive -= 1
                    elif op == "m":
                        nm += 1
                        p = malloc(a)
                        if ret:
                            e = (p, a)
                            if setdefault(ret, e) is not e:
                                self._bad(f"{ret:#x} returned while still live", call)
                                continue
                            cur += a
                            if cur > peak:
                                peak = cur
                            nlive += 1
                            if nlive > peak_objects:
                                peak_objects = nlive
                            if p:
                                if touch and a:
                                    write(p, a)
                            else:
                                failed += 1
                    elif op == "r":
                        nr += 1
                        if a:
                            e = pop(a, None)
                            if e is None:
                                self._bad(f"realloc of {a:#x}, which is not live", call)
                                continue
                            old, oldn = e
                        else:
                            old = oldn = 0
                        if ret and ret != a and ret in live:
                            if a:
                                live[a] = e
                            self._bad(f"{ret:#x} returned while still live", call)
                            continue
                        if b == 0 and a and ret:
                            live[a] = e
                            self._bad("realloc(PTR, 0) must free and return 0x0", call)
                            continue
                        p = realloc(old, b)
                        if b == 0 and a:
                            cur -= oldn
                        elif ret == 0:
                            if a:                     # failed: the old block stays live
                                live[a] = (p or old, oldn)
                        else:
                            live[ret] = (p or old, b)
                            cur += b - oldn
                            if cur > peak:
                                peak = cur
                            if p:
                                if touch and b:
                                    write(p, b)
                            else:
                                failed += 1
                    elif op == "c" or op == "a" or op == "v" or op == "p":
                        if op == "c":
                            nc += 1
                            p = calloc(a, b)
                            n = a * b
                        elif op == "a":
                            na += 1
                            p = memalign(a, b)
                            n = b
                        elif op == "v":
                            nv += 1
                            p = valloc(a)
                            n = a
                        else:
                            np += 1
                            p = pvalloc(a)
                            n = a
                        if ret:
                            if ret in live:
                                self._bad(f"{ret:#x} returned while still live", call)
                                continue
                            live[ret] = (p, n)
                            cur += n
                            if cur > peak:
                                peak = cur
                            if p:
                                if touch and n:
                                    write(p, n)
                            else:
                                failed += 1
                    else:
                        self._bad(f"unknown operation {op!r}", call)
                        continue
                    if op != "m" and op != "f":        # the rarer calls: recount
                        nlive = len(live)
                        if nlive > peak_objects:
                            peak_objects = nlive
                done = nm + nf + nc + nr + na + nv + np
                if done - n_before < PROGRESS_EVERY:
                    break
                if progress is not None:
                    progress(done)
        except Signal as e:
            raise self._abort(e, call) from None
        finally:
            self.seconds += time.perf_counter() - t0
            self.live_bytes = cur
            self.peak_live_bytes = peak
            self.peak_live_objects = peak_objects
            self.failed = failed
            c = self.counts
            for k, v in (("m", nm), ("f", nf), ("c", nc), ("r", nr), ("a", na), ("v", nv),
                         ("p", np)):
                c[k] += v
        if progress is not None:
            progress(nm + nf + nc + nr + na + nv + np)

    # -- one call at a time
    def step(self, call: Call) -> tuple[int, int] | None:
        """Replay one call; returns ``(simulated first argument, simulated result)`` (the
        argument differs from the recorded one for ``f`` and ``r``), or None for a skipped
        bad line."""
        op, a, b, ret, tid, _ = call
        self.tids.add(tid)
        alloc = self.alloc
        live = self.live
        try:
            if op == "f":
                self.counts["f"] += 1
                if not a:
                    alloc.free(0)
                    return 0, 0
                e = live.pop(a, None)
                if e is None:
                    self._bad(f"free of {a:#x}, which is not live", call)
                    return None
                alloc.free(e[0])
                self.live_bytes -= e[1]
                return e[0], 0
            if op == "r":
                self.counts["r"] += 1
                if a:
                    e = live.pop(a, None)
                    if e is None:
                        self._bad(f"realloc of {a:#x}, which is not live", call)
                        return None
                    old, oldn = e
                else:
                    e = None
                    old = oldn = 0
                if ret and ret != a and ret in live:
                    if e is not None:
                        live[a] = e
                    self._bad(f"{ret:#x} returned while still live", call)
                    return None
                if b == 0 and a and ret:
                    live[a] = e  # type: ignore[assignment]
                    self._bad("realloc(PTR, 0) must free and return 0x0", call)
                    return None
                p = alloc.realloc(old, b)
                if b == 0 and a:
                    self.live_bytes -= oldn
                elif ret == 0:
                    if a:
                        live[a] = (p or old, oldn)
                else:
                    live[ret] = (p or old, b)
                    self._grew(b - oldn)
                    if p:
                        if self.touch and b:
                            self.sys.write(p, b)
                    else:
                        self.failed += 1
                return old, p
            if op == "m":
                p = alloc.malloc(a)
                n = a
            elif op == "c":
                p = alloc.calloc(a, b)
                n = a * b
            elif op == "a":
                p = alloc.memalign(a, b)
                n = b
            elif op == "v":
                p = alloc.valloc(a)
                n = a
            elif op == "p":
                p = alloc.pvalloc(a)
                n = a
            else:
                self._bad(f"unknown operation {op!r}", call)
                return None
            self.counts[op] += 1
            if ret:
                if ret in live:
                    self._bad(f"{ret:#x} returned while still live", call)
                    return None
                live[ret] = (p, n)
                self._grew(n)
                if p:
                    if self.touch and n:
                        self.sys.write(p, n)
                else:
                    self.failed += 1
            return a, p
        except Signal as e:
            raise self._abort(e, call) from None

    def check(self) -> None:
        """Assert the replay's invariants, then those of the layers below it.

        The live bytes are the sizes of the live objects; peaks are not below the current
        figures; no two live objects share a simulated address (object identity); the skips
        counted per op are among all skips; then SyscallLog.check, the allocator's check and
        the process's.
        """
        assert self.live_bytes == sum(n for _, n in self.live.values()), "live bytes"
        assert self.peak_live_bytes >= self.live_bytes, "peak live bytes"
        assert self.peak_live_objects >= len(self.live), "peak live objects"
        sims = [p for p, _ in self.live.values() if p]
        assert len(set(sims)) == len(sims), "two live objects share a simulated address"
        assert self.skipped >= sum(self.skipped_ops.values()), "skip counts"
        self.sys.check()
        self.alloc.check()
        self.process.check()

    def _grew(self, n: int) -> None:
        self.live_bytes += n
        if self.live_bytes > self.peak_live_bytes:
            self.peak_live_bytes = self.live_bytes
        if len(self.live) > self.peak_live_objects:
            self.peak_live_objects = len(self.live)

    # -- the summary
    def result(self, trace: str | None = None) -> ReplayResult:
        """The summary of everything fed so far."""
        mm = self.mm
        sys = self.sys
        ops = {OP_NAMES[k]: v - self.skipped_ops[k] for k, v in self.counts.items()}
        calls = sum(ops.values())
        skip = None
        if self.skipped:
            skip = (f"{self.name}: skipped {self.skipped} bad call"
                    f"{'s' if self.skipped > 1 else ''}: " + "; ".join(self.bad_lines))
        threads = len(self.tids)
        notes = list(self.notes)
        if threads > 1:
            notes.append(f"the trace has {threads} threads; the {self.allocator_name} model "
                         f"replays every call in the main arena (one thread)")
        return ReplayResult(
            trace=trace or self.name, allocator=self.allocator_name, calls=calls,
            ops=ops, threads=threads,
            brk0=self.brk0, start_brk=self.start_brk, touch=self.touch,
            live_objects=len(self.live), peak_live_objects=self.peak_live_objects,
            live_bytes=self.live_bytes, peak_live_bytes=self.peak_live_bytes,
            heap_bytes=mm.brk - mm.start_brk,
            peak_heap_bytes=max(sys.peak_brk, mm.brk) - mm.start_brk,
            mapped_bytes=sys.mapped, peak_mapped_bytes=sys.peak_mapped,
            rss_anon_kb=self.process.status()["RssAnon"],
            rss_anon_start_kb=self.rss_anon_start_kb,
            syscalls={k: sys.counts[k] for k in SYSCALL_NAMES},
            failed_allocations=self.failed, seconds=self.seconds, skipped=self.skipped,
            skip_report=skip, notes=notes)


def _new_process(brk0: int | None, notes: list[str], machine: Machine | None = None
                 ) -> Process:
    """A fresh simulated process whose heap starts at ``brk0`` (when it can)."""
    if brk0 is None:
        notes.append("the trace has no brk0: the heap starts where the simulated layout puts "
                     "it, so addresses differ from the recording")
        return Process(machine)
    start = brk0 & ~(PAGE_SIZE - 1)
    try:
        proc = Process(machine, start_brk=start, layout=_layout_for(start))
    except ConfigError as e:
        notes.append(f"cannot place the heap at brk0 {brk0:#x} ({e}); it starts where the "
                     f"simulated layout puts it")
        return Process(machine)
    if start != brk0:
        # The program moved the break before its first malloc (a foreign sbrk): do the same.
        proc.mm.sys_brk(brk0)
    return proc


def _layout_for(start_brk: int) -> Layout:
    """The default layout with the heap at ``start_brk``.

    A non-PIE program (cc1, loaded at 0x400000) has its break far below where the default
    (PIE) image lies; the kernel puts the break right after the image, so the simulated image
    is moved down to end at ``start_brk``, as the real one does. Only the image moves;
    libraries, mmap_base and the stack stay where they are.
    """
    layout = Layout.default(start_brk=None)
    end = layout.image_end
    if start_brk >= end:
        return Layout.default(start_brk=start_brk)
    delta = start_brk - end
    segs = [s.shifted(delta) if s.region == "exe" else s for s in layout.segments]
    segs.sort(key=lambda s: s.start)
    moved = dataclasses.replace(
        layout, segments=segs, start_code=layout.start_code + delta,
        end_code=layout.end_code + delta, start_data=layout.start_data + delta,
        end_data=layout.end_data + delta, start_brk=start_brk)
    moved.check()
    return moved


def open_for_replay(source: Source, skip_bad: bool = False) -> Any:
    """Open a trace the way the replay reads it: streamed, without the reader's live-address
    check (the replay's object map makes the same checks, in O(live objects) memory)."""
    return open_trace(source, skip_bad=skip_bad, check=False)


_open = open_for_replay       # the name memsim.metrics.compare imports


def _writer_meta(reader: Any, rep: Replayer) -> dict[str, object]:
    meta: dict[str, object] = {"brk0": rep.mm.brk if rep.brk0 is None else rep.brk0}
    for key in ("program", "argv", "pid"):
        if key in reader.meta:
            meta[key] = reader.meta[key]
    meta["replayed"] = f"memsim {rep.allocator_name} model"
    return meta


# --- the public functions -------------------------------------------------------------------

def replay(trace: Source, allocator: str = "glibc", *, options: Mapping[str, Any] | None = None,
           touch: bool = True, emit_trace: str | os.PathLike[str] | BinaryIO | None = None,
           emit_syscalls: IO[str] | None = None, skip_bad: bool = False,
           machine: Machine | None = None,
           progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Replay ``trace`` (a path, ``-``, or a binary stream) through ``allocator``.

    ``emit_trace``: also write the calls with the simulated addresses (memsim-trace v1; a
    name ending in .zst/.gz/.xz compresses). ``emit_syscalls``: a text stream that gets the
    allocator's memory system calls in strace notation. ``skip_bad``: skip (and count)
    malformed or inconsistent lines instead of stopping at the first. ``progress(n)`` is
    called every 65,536 calls. ``machine``: the simulated machine (RAM, swap, overcommit).
    Raises :class:`memsim.errors.TraceError` for a bad trace, and when the simulated process
    dies (the allocator aborts, the OOM killer), naming the call.
    """
    reader = _open(trace, skip_bad)
    with reader:
        rep = Replayer(allocator, brk0=reader.brk0, options=options, touch=touch,
                       syscall_out=emit_syscalls, machine=machine, name=reader.name,
                       skip_bad=skip_bad)
        if emit_trace is None:
            rep.feed(reader, progress)
        else:
            with TraceWriter(emit_trace, _writer_meta(reader, rep)) as out:
                _feed_stepwise(rep, reader, progress, out)
        result = rep.result()
        _add_reader_skips(result, reader)
    return result


def _feed_stepwise(rep: Replayer, calls: Iterable[Call],
                   progress: Callable[[int], None] | None, out: TraceWriter | None) -> None:
    step = rep.step
    n = 0
    t0 = time.perf_counter()
    try:
        for call in calls:
            r = step(call)
            n += 1
            if r is not None and out is not None:
                out.write_call((call[0], r[0], call[2], r[1], call[4]))
            if progress is not None and not n % PROGRESS_EVERY:
                progress(n)
    finally:
        rep.seconds += time.perf_counter() - t0


def _add_reader_skips(result: ReplayResult, reader: Any) -> None:
    text = reader.skip_report()
    if text:
        result.skipped += reader.skipped
        result.skip_report = text if result.skip_report is None else \
            f"{text}; {result.skip_report}"


def _heap_span(rep: Replayer) -> int:
    """Where a recorded pointer stops counting as a brk-heap pointer: halfway between the
    simulated break and the first mapping above it (the real heap grows in the same gap)."""
    brk = rep.mm.brk
    above = rep.mm.tree.find_vma(brk)
    limit = above.vm_start if above is not None else 1 << 47
    return brk + (limit - brk) // 2


def check(trace: Source, allocator: str = "glibc", *, options: Mapping[str, Any] | None = None,
          keep_going: bool = False, skip_bad: bool = False, touch: bool = True,
          context: int = CONTEXT_CALLS,
          progress: Callable[[int], None] | None = None) -> CheckResult:
    """Replay ``trace`` and compare each returned pointer with the recorded one.

    See the module docstring ("Checking"). Stops at the first divergence unless
    ``keep_going``. Raises :class:`memsim.errors.TraceError` for a bad trace, and for a trace
    without ``brk0`` (there is nothing to compare addresses with).
    """
    reader = _open(trace, skip_bad)
    with reader:
        if reader.brk0 is None:
            raise TraceError("the trace has no brk0 (the break before the first malloc), so its "
                             "addresses cannot be compared; 'memsim replay' can replay it",
                             reader.name)
        rep = Replayer(allocator, brk0=reader.brk0, options=options, touch=touch,
                       name=reader.name, skip_bad=skip_bad)
        if rep.start_brk != reader.brk0 & ~(PAGE_SIZE - 1):
            raise TraceError(f"cannot place the simulated heap at brk0 {reader.brk0:#x}: "
                             f"{'; '.join(rep.notes)}", reader.name)
        res = CheckResult(replay=rep.result())
        _check_loop(rep, reader, res, keep_going, max(context, 0), progress)
        res.replay = rep.result()
        _add_reader_skips(res.replay, reader)
    first = res.first
    if first is not None:
        before = _heap_before(trace, allocator, options, touch, skip_bad, res.first_index - 1)
        if before is not None:
            first.heap = before
            first.heap_when = "before the call"
    return res


def _context_line(call: Call, sim_a: int, got: int, kind: str | None) -> str:
    """One line of the context before a divergence."""
    op, a, b, ret, _tid, lineno = call
    text = format_call_line(op, a, b, ret)
    if op == "f":
        return f"{lineno:>9}  {text:<40} sim free({sim_a:#x})"
    return f"{lineno:>9}  {text:<40} sim {got:#x}" + ("  DIFFERS" if kind else "")


def _check_loop(rep: Replayer, calls: Iterable[Call], res: CheckResult, keep_going: bool,
                context: int, progress: Callable[[int], None] | None) -> None:
    # The context keeps raw tuples; text is made only at the first divergence.
    recent: deque[tuple[Call, int, int, str | None]] = deque(maxlen=context or 1)
    push = recent.append
    brk0 = rep.brk0 or 0
    mm = rep.mm
    start_brk = rep.start_brk
    step = rep.step
    compared = matched = heap_matched = null_matched = 0
    n = 0
    t0 = time.perf_counter()
    try:
        for call in calls:
            r = step(call)
            n += 1
            if progress is not None and not n % PROGRESS_EVERY:
                progress(n)
            if r is None:
                continue
            sim_a, got = r
            op = call[0]
            if op == "f":
                push((call, sim_a, 0, None))
                continue
            compared += 1
            ret = call[3]
            if got == ret:
                matched += 1
                if ret:
                    heap_matched += 1
                else:
                    null_matched += 1
                push((call, sim_a, got, None))
                continue
            sim_mmapped = not start_brk <= got < mm.brk
            real_mmapped = not brk0 <= ret < _heap_span(rep)
            kind: str | None
            if got == 0 or ret == 0:
                kind = "null"
            elif sim_mmapped and real_mmapped:
                kind = None
                res.mmap_matched += 1
                matched += 1
            elif sim_mmapped:
                kind = "heap/mmap"
            elif real_mmapped:
                kind = "mmap/heap"
            else:
                kind = "address"
            if kind is not None:
                res.mismatched += 1
                lineno = call[5]
                text = format_call_line(op, call[1], call[2], ret)
                if len(res.divergences) < DIVERGENCE_EXAMPLES:
                    res.divergences.append((lineno, text, kind))
                if res.first is None:
                    before = [_context_line(*c) for c in recent] if context else []
                    res.first = Divergence(lineno, text, ret, got, kind, before,
                                           heap_dump(rep.alloc))
                    res.first_index = n
                    if not keep_going:
                        res.stopped = True
                        break
            push((call, sim_a, got, kind))
    finally:
        rep.seconds += time.perf_counter() - t0
        res.compared += compared
        res.matched += matched
        res.heap_matched += heap_matched
        res.null_matched += null_matched


def _heap_before(trace: Source, allocator: str, options: Mapping[str, Any] | None,
                 touch: bool, skip_bad: bool, count: int) -> str | None:
    """The allocator's bins after the first ``count`` calls of ``trace``, by replaying them
    again from the start (None when the trace cannot be read twice: a stream)."""
    if not isinstance(trace, (str, os.PathLike)) or os.fspath(trace) == "-":
        return None
    with _open(trace, skip_bad) as reader:
        rep = Replayer(allocator, brk0=reader.brk0, options=options, touch=touch,
                       name=reader.name, skip_bad=skip_bad)
        rep.feed(islice(reader, count))
        return heap_dump(rep.alloc)


def iter_calls(trace: Source, skip_bad: bool = False) -> Iterator[Call]:
    """The calls of a trace (a convenience for tests and scripts)."""
    with _open(trace, skip_bad) as reader:
        yield from reader
