"""Replay traces through allocators and measure each run: fragmentation, footprint, RSS, faults.

:func:`measure` replays one trace through one allocator (the replay engine's
:class:`memsim.trace.replay.Replayer`, one call at a time) and, after every call, notes the
program's live bytes L and the allocator's footprint U (break above its start plus the bytes
of its own mappings, from the syscall proxy: two additions per call). From those it computes
Johnstone & Wilson's measures exactly (:mod:`memsim.metrics.fragmentation`) and mdriver's
utilization (:mod:`memsim.metrics.utilization`). Every ``every`` calls, and at the peaks, it
takes a full sample (:mod:`memsim.metrics.timeline`): the footprint cut into buckets
(:mod:`memsim.metrics.footprint`), /proc/PID/status VmSize/VmRSS/RssAnon, the page table's
fault counters and the system calls so far::

    trace ──► Replayer.step(call) ──► allocator ──► SyscallLog ──► MM / page table
                 │                                      │
                 │ live bytes L                          │ brk, mapped bytes -> U
                 ▼                                      ▼
            ObjectLedger (p -> n, usable)      Fragmentation.observe(L, U)   every call
                 └──────────► Timeline sample (breakdown, status, faults) every N / at peaks

:func:`compare` runs every (trace, allocator) pair, in worker processes when ``jobs`` > 1
(:class:`concurrent.futures.ProcessPoolExecutor`), and returns the records ordered by trace,
then allocator, as given: the output does not depend on ``jobs`` or on timing. A record's
``as_dict()`` is the JSON schema documented in docs/metrics.md; :data:`CSV_COLUMNS` the CSV's.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from memsim.errors import MemsimError
from memsim.metrics.footprint import (
    BUCKETS,
    Breakdown,
    ObjectLedger,
    breakdown,
    free_lists,
    resident_bytes,
)
from memsim.metrics.fragmentation import Fragmentation, FragmentationResult
from memsim.metrics.timeline import Sample, Timeline
from memsim.metrics.utilization import TraceUtil
from memsim.trace.format import Call

__all__ = ["CSV_COLUMNS", "METRICS", "Meter", "RunMetrics", "compare", "measure", "to_csv",
           "to_json"]

#: Scalar metrics of a record, in the order tables and CSV list them (name -> description).
METRICS: dict[str, str] = {
    "utilization": "peak live bytes / peak footprint (CS:APP mdriver util = 1/(1+f4))",
    "f1": "J&W #1: footprint/live averaged over all calls, minus 1",
    "f2": "J&W #2: footprint at the peak of live bytes / peak live, minus 1",
    "f3": "J&W #3: peak footprint / live bytes at that point, minus 1",
    "f4": "J&W #4: peak footprint / peak live bytes, minus 1",
    "peak_live_bytes": "maximum of the bytes the program held",
    "peak_footprint_bytes": "maximum of the bytes the allocator got from the kernel",
    "live_at_peak_footprint": "live bytes at the point of f3",
    "footprint_at_peak_live": "footprint at the point of f2",
    "final_live_bytes": "live bytes after the last call",
    "final_footprint_bytes": "footprint after the last call",
    "rss_peak_kb": "VmHWM of the simulated process (kB)",
    "rss_kb": "VmRSS after the last call (kB)",
    "rss_anon_kb": "RssAnon after the last call (kB)",
    "vsz_peak_kb": "VmPeak of the simulated process (kB)",
    "vsz_kb": "VmSize after the last call (kB)",
    "pgfault": "page faults (minor and major) of the simulated process",
    "pgmajfault": "major page faults (swap-ins)",
    "syscalls_total": "memory system calls made by the allocator",
    "failed_allocations": "calls where the model returned NULL and the program got memory",
}

#: CSV columns: identity, the scalar metrics, syscalls by name, the two breakdowns.
_SYSCALLS = ("brk", "mmap", "munmap", "mremap", "mprotect", "madvise")
_BD_KEYS = BUCKETS + ("footprint", "resident", "event")
CSV_COLUMNS: tuple[str, ...] = (
    ("trace", "allocator", "calls", "error") + tuple(METRICS)
    + tuple(f"syscalls.{s}" for s in _SYSCALLS)
    + tuple(f"footprint_at_peak.{b}" for b in _BD_KEYS)
    + tuple(f"footprint_at_end.{b}" for b in _BD_KEYS))


@dataclass
class RunMetrics:
    """Everything measured for one (trace, allocator) pair (``error`` set if the run died)."""

    trace: str
    allocator: str
    calls: int = 0
    error: str | None = None
    frag: FragmentationResult | None = None
    utilization: float | None = None
    final_live_bytes: int = 0
    final_footprint_bytes: int = 0
    footprint_at_peak: dict[str, int] = field(default_factory=dict)
    footprint_at_end: dict[str, int] = field(default_factory=dict)
    free_lists_at_end: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)     # /proc status (kB) at the end
    pgfault: int = 0
    pgmajfault: int = 0
    syscalls: dict[str, int] = field(default_factory=dict)
    failed_allocations: int = 0
    series: list[Sample] = field(default_factory=list)
    seconds: float | None = None

    def metric(self, name: str) -> Any:
        """One scalar metric of :data:`METRICS` by name (None when the run failed)."""
        if self.error is not None:
            return None
        f = self.frag
        st = self.status
        values: dict[str, Any] = {
            "utilization": self.utilization,
            "f1": f.f1 if f else None, "f2": f.f2 if f else None,
            "f3": f.f3 if f else None, "f4": f.f4 if f else None,
            "peak_live_bytes": f.peak_live if f else 0,
            "peak_footprint_bytes": f.peak_footprint if f else 0,
            "live_at_peak_footprint": f.live_at_peak_footprint if f else 0,
            "footprint_at_peak_live": f.footprint_at_peak_live if f else 0,
            "final_live_bytes": self.final_live_bytes,
            "final_footprint_bytes": self.final_footprint_bytes,
            "rss_peak_kb": st.get("VmHWM"), "rss_kb": st.get("VmRSS"),
            "rss_anon_kb": st.get("RssAnon"), "vsz_peak_kb": st.get("VmPeak"),
            "vsz_kb": st.get("VmSize"), "pgfault": self.pgfault, "pgmajfault": self.pgmajfault,
            "syscalls_total": sum(self.syscalls.values()),
            "failed_allocations": self.failed_allocations,
        }
        return values[name]

    def as_dict(self, timing: bool = False) -> dict[str, Any]:
        """The JSON record (docs/metrics.md); ``timing`` adds ``seconds``."""
        d: dict[str, Any] = {"trace": self.trace, "allocator": self.allocator,
                             "calls": self.calls, "error": self.error}
        for name in METRICS:
            d[name] = self.metric(name)
        d["syscalls"] = {s: self.syscalls.get(s, 0) for s in _SYSCALLS}
        d["footprint_at_peak"] = dict(self.footprint_at_peak)
        d["footprint_at_end"] = dict(self.footprint_at_end)
        d["free_lists_at_end"] = dict(self.free_lists_at_end)
        d["jw"] = self.frag.as_dict() if self.frag is not None else None
        d["time_series_points"] = len(self.series)
        if timing:
            d["seconds"] = round(self.seconds or 0.0, 3)
        return d

    def csv_row(self, timing: bool = False) -> list[Any]:
        d = self.as_dict()
        row: list[Any] = [d["trace"], d["allocator"], d["calls"], d["error"] or ""]
        row += [_csv_value(d[m]) for m in METRICS]
        row += [d["syscalls"].get(s, 0) for s in _SYSCALLS]
        for key in ("footprint_at_peak", "footprint_at_end"):
            row += [d[key].get(b, "") for b in _BD_KEYS]
        if timing:
            row.append(round(self.seconds or 0.0, 3))
        return row


def _csv_value(v: Any) -> Any:
    return "" if v is None else v


# --- one run --------------------------------------------------------------------------------

def _sizes(op: str, a: int, b: int) -> int:
    if op == "c":
        return a * b
    if op == "a":
        return b
    return a                                 # m, v, p


def measure(trace: str | os.PathLike[str], allocator: str, *,
            options: Mapping[str, Any] | None = None, touch: bool = True,
            every: int = 1024, max_points: int = 256,
            progress: Callable[[int], None] | None = None) -> RunMetrics:
    """Replay ``trace`` through ``allocator`` and measure it (see the module docstring).

    ``every``/``max_points``: the time series' initial interval (calls) and size bound.
    A run that dies (the allocator aborts, the OOM killer, a bad trace line, behaviour the
    model does not simulate) gives a record with ``error`` set, not an exception.
    """
    from memsim.trace.replay import Replayer, open_for_replay

    name = os.fspath(trace)
    out = RunMetrics(trace=name, allocator=allocator)
    t0 = time.perf_counter()
    meter: Meter | None = None
    try:
        with open_for_replay(trace) as reader:
            rep = Replayer(allocator, brk0=reader.brk0, options=options, touch=touch,
                           name=reader.name)
            meter = Meter(rep, every, max_points)
            meter.feed(reader, progress)
            meter.finish(out)
    except MemsimError as e:
        out.error = " ".join(str(e).split())
        out.calls = meter.n if meter is not None else 0     # the calls done before it died
        out.frag = None
        out.series = []
    out.seconds = time.perf_counter() - t0
    return out


class Meter:
    """Measures a :class:`~memsim.trace.replay.Replayer` call by call.

    :meth:`feed` replays calls and observes every point; :meth:`snapshot` is a full sample
    now; :meth:`finish` fills a :class:`RunMetrics`. Tests drive it with made-up calls.
    """

    def __init__(self, rep: Any, every: int = 1024, max_points: int = 256) -> None:
        self.rep = rep
        self.alloc = rep.alloc
        self.mm = rep.mm
        self.sysl = rep.sys
        self.pt = rep.mm.pt
        self.base = rep.mm.brk                 # the allocator's heap starts at the break now
        self.ledger = ObjectLedger(rep.alloc)
        self.frag = Fragmentation()
        self.timeline = Timeline(every, max_points)
        self.n = 0
        self.peak_bd: Breakdown | None = None
        self.peak_event = 0

    def footprint(self) -> int:
        """U now: the break above its start plus the allocator's mapped bytes."""
        return self.mm.brk - self.base + self.sysl.mapped

    def ranges(self) -> list[tuple[int, int]]:
        """The address ranges of the footprint: the heap and each mapping."""
        return [(self.base, self.mm.brk)] + [(s, s + n) for s, n in self.sysl.maps.items()]

    def breakdown(self) -> Breakdown:
        return breakdown(self.alloc, self.ledger, resident_bytes(self.pt, self.ranges()))

    def snapshot(self, kind: str = "now") -> tuple[Sample, Breakdown]:
        """A full sample after the calls fed so far, and its breakdown."""
        rep = self.rep
        bd = self.breakdown()
        st = rep.process.status()
        counts = self.sysl.counts
        s: Sample = {"event": self.n, "kind": kind, "live_bytes": rep.live_bytes,
                     "live_objects": len(rep.live), "footprint_bytes": bd.footprint}
        for b in BUCKETS:
            s[b] = getattr(bd, b)
        s["resident_bytes"] = bd.resident
        s["vsz_kb"] = st["VmSize"]
        s["rss_kb"] = st["VmRSS"]
        s["rss_anon_kb"] = st["RssAnon"]
        s["pgfault"] = self.pt.pgfault
        s["pgmajfault"] = self.pt.pgmajfault
        for k in _SYSCALLS:
            s[k] = counts.get(k, 0)
        s["syscalls"] = sum(counts.values())
        return s, bd

    def feed(self, calls: Iterable[Call], progress: Callable[[int], None] | None = None
             ) -> None:
        """Replay ``calls``, observing L and U after each (the hot loop)."""
        rep = self.rep
        mm = self.mm
        sysl = self.sysl
        base = self.base
        add = self.ledger.add
        remove = self.ledger.remove
        frag = self.frag
        observe = frag.observe
        tl = self.timeline
        snap = self.snapshot
        step = rep.step
        n = self.n
        try:
            for call in calls:
                op = call[0]
                if op == "f":
                    r = step(call)
                    if r is not None and r[0]:
                        remove(r[0])
                elif op == "r":
                    r = step(call)
                    if r is not None:
                        old, p = r
                        if p:
                            oldn = remove(old) if old else 0
                            add(p, call[2] if call[3] else oldn)
                        elif call[2] == 0 and old:
                            remove(old)
                else:
                    r = step(call)
                    if r is not None and r[1] and call[3]:
                        add(r[1], _sizes(op, call[1], call[2]))
                n += 1
                self.n = n
                live = rep.live_bytes
                used = mm.brk - base + sysl.mapped
                observe(live, used)
                if frag.i_max_u == n and tl.peak_due("peak_footprint", used, n, live):
                    s, self.peak_bd = snap("peak_footprint")
                    self.peak_event = n
                    tl.add_peak("peak_footprint", used, s, live)
                if frag.i_max_l == n and tl.peak_due("peak_live", live, n, -used):
                    s, _ = snap("peak_live")
                    tl.add_peak("peak_live", live, s, -used)
                if not n % tl.every:
                    tl.add(snap("every")[0])
                    if progress is not None:
                        progress(n)
        finally:
            self.n = n

    def finish(self, out: RunMetrics) -> RunMetrics:
        """The summary of everything fed so far, into ``out``."""
        rep = self.rep
        alloc = self.alloc
        end, end_bd = self.snapshot("end")
        self.timeline.set_end(end)
        res = rep.result()
        fr = self.frag.result()
        out.calls = self.n
        out.frag = fr
        heapsize = getattr(alloc, "mem_heapsize", None)
        util = TraceUtil(name=out.trace, ops=self.n, peak_payload=fr.peak_live,
                         heap_size=heapsize() if heapsize is not None else fr.peak_footprint)
        out.utilization = util.util if util.heap_size else None
        out.final_live_bytes = rep.live_bytes
        out.final_footprint_bytes = self.footprint()
        out.footprint_at_peak = (self.peak_bd or end_bd).as_dict()
        out.footprint_at_peak["event"] = self.peak_event if self.peak_bd else self.n
        out.footprint_at_end = end_bd.as_dict()
        out.footprint_at_end["event"] = self.n
        out.free_lists_at_end = free_lists(alloc)
        st = rep.process.status()
        out.status = {k: st[k] for k in ("VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon")}
        out.pgfault = self.pt.pgfault
        out.pgmajfault = self.pt.pgmajfault
        out.syscalls = dict(res.syscalls)
        out.failed_allocations = res.failed_allocations
        out.series = self.timeline.samples()
        return out


# --- many runs ------------------------------------------------------------------------------

def _run_pair(job: tuple[int, int, str, str, dict[str, Any]]) -> tuple[int, int, RunMetrics]:
    ti, ai, trace, allocator, kw = job
    return ti, ai, measure(trace, allocator, **kw)


def _size_of(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def compare(traces: Sequence[str | os.PathLike[str]], allocators: Sequence[str],
            jobs: int | None = None, *, options: Mapping[str, Mapping[str, Any]] | None = None,
            touch: bool = True, every: int = 1024, max_points: int = 256,
            on_done: Callable[[RunMetrics], None] | None = None) -> list[RunMetrics]:
    """Measure every (trace, allocator) pair; records ordered by trace, then allocator.

    ``jobs``: worker processes (None: ``os.cpu_count()``; 1: in this process).
    ``options``: allocator name -> its keyword options. ``on_done(record)`` is called as each
    run finishes (in completion order: for progress only).
    """
    from memsim.alloc.base import get

    for a in allocators:
        get(a)                                   # unknown name: ConfigError before any work
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    pairs = [(ti, ai, os.fspath(t), a,
              {"options": (options or {}).get(a), "touch": touch, "every": every,
               "max_points": max_points})
             for ti, t in enumerate(traces) for ai, a in enumerate(allocators)]
    results: dict[tuple[int, int], RunMetrics] = {}
    if jobs == 1 or len(pairs) <= 1:
        for job in pairs:
            ti, ai, rec = _run_pair(job)
            results[(ti, ai)] = rec
            if on_done is not None:
                on_done(rec)
    else:
        # The biggest traces first, so that no long run starts last (the order of the
        # results does not depend on it).
        order = sorted(pairs, key=lambda job: -_size_of(job[2]))
        with ProcessPoolExecutor(max_workers=min(jobs, len(pairs))) as pool:
            futures = [pool.submit(_run_pair, job) for job in order]
            for fut in as_completed(futures):
                ti, ai, rec = fut.result()
                results[(ti, ai)] = rec
                if on_done is not None:
                    on_done(rec)
    return [results[k] for k in sorted(results)]


# --- output ---------------------------------------------------------------------------------

def to_json(records: Sequence[RunMetrics], timing: bool = False) -> str:
    """One JSON document: ``{"schema": "memsim-compare/1", "records": [...]}``."""
    doc = {"schema": "memsim-compare/1", "metrics": list(METRICS),
           "records": [r.as_dict(timing) for r in records]}
    return json.dumps(doc, indent=2) + "\n"


def to_csv(records: Sequence[RunMetrics], timing: bool = False) -> str:
    """CSV text: :data:`CSV_COLUMNS` (plus ``seconds`` with ``timing``), one row per record."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(CSV_COLUMNS) + (["seconds"] if timing else []))
    for r in records:
        w.writerow(r.csv_row(timing))
    return buf.getvalue()
