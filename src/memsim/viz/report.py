"""One self-contained HTML report of a trace replayed through several allocators.

``memsim report TRACE --allocators glibc,buddy -o report.html`` replays the trace through each
allocator (worker processes), samples each run, and writes ONE file that works offline: inline
CSS, inline JavaScript, charts as inline SVG drawn here from the samples, no fonts or scripts
from anywhere else. Every number and every picture comes from the same simulation state::

    trace ──► run_one(trace, allocator)  (one per allocator, in worker processes)
                │ Meter (memsim.metrics.compare): J&W fragmentation, utilization, RSS, faults
                │ every `every` calls ........ a footprint sample  (chart_sample)
                │ every `snap_every` calls ... a heap snapshot     (heap_snapshot, glibc model)
                ▼
              RunData dicts ──► render_html() ──► summary, comparison table and bars (SVG),
                                                  footprint over time per allocator (SVG),
                                                  heap map + bins with a time slider (JS)

Sampling is bounded whatever the length of the trace: both schedules are
:class:`memsim.metrics.timeline.Timeline` s (keep at most N samples at multiples of an
interval that doubles when full), plus the state after the last call. The page says how many
snapshots of how many calls it shows: nothing is dropped silently.

The heap map of a snapshot is the chunk walk of :func:`memsim.viz.heapstrip.heap_chunks`
(redone here over the same tables in the same order, without a record per chunk: a heap of
200,000 chunks is walked in ~50 ms; the tests check the two walks agree) as runs
``[kind, bytes, kind, bytes, ...]`` from the first chunk (adjacent chunks of one kind merged;
a ``gap`` between heap segments). When a heap has more than ``max_runs`` runs, the
snapshot is coarsened to cells of ``q`` bytes (a power of two), each cell drawn in the kind
that holds most of its bytes; the page says so for that snapshot. Chunks in their own
mappings (mmapped chunks) are listed apart, with their sizes.

The footprint chart stacks, bottom to top (bytes, summing to the footprint exactly)::

    live      payload of objects in the heap (not in their own mapping)
    overhead  padding, rounding, headers, allocator metadata
    free      free and cached chunks (bins, tcache, fastbins, free lists)
    top       the wilderness
    mmapped   usable bytes of objects in their own mapping
    untouched mapped but never touched (no page behind it)

with the process's VmRSS as a line. The buckets come from
:func:`memsim.metrics.footprint.breakdown`.

Safety: every trace-provided string (file name, ``# program``, ``# argv`` ...) is escaped
with :func:`html.escape`; the data for the script is JSON inside ``<script
type="application/json">`` with ``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\uXXXX``;
a Content-Security-Policy admits only the page's own script (by its SHA-256).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from itertools import islice
from typing import Any

from memsim.errors import MemsimError
from memsim.metrics.timeline import Timeline

__all__ = ["CHART_BANDS", "HEAP_KINDS", "DEFAULT_ALLOCATORS", "chart_sample", "collect",
           "count_lines", "embed_json", "heap_snapshot", "render_html", "run_one", "write_report"]

#: Allocators of a report when none are named: glibc, a sequential fit and the buddy system
#: (three runs of a million calls fit in a minute on two CPUs; add more with --allocators).
DEFAULT_ALLOCATORS = ("glibc", "first-fit", "buddy")

#: Heap-map kinds in drawing order: name -> (colour, legend text). Index = code in the runs.
HEAP_KINDS: dict[str, tuple[str, str]] = {
    "inuse": ("#2e9d3a", "in use"),
    "internal": ("#a23bbf", "malloc's own (tcache struct)"),
    "tcache": ("#1fb4c9", "free: tcache"),
    "fastbin": ("#3466d6", "free: fastbin"),
    "unsorted": ("#e8b500", "free: unsorted bin"),
    "small": ("#f08c2a", "free: small bin"),
    "large": ("#d43b2f", "free: large bin"),
    "fence": ("#555555", "fencepost"),
    "top": ("#d9d9d9", "top"),
    "gap": ("#ffffff", "not the heap (between segments)"),
}
MMAPPED_COLOUR = "#c03fa0"
_KIND_CODE = {k: i for i, k in enumerate(HEAP_KINDS)}

#: Footprint chart bands, bottom to top: name -> (colour, legend text).
CHART_BANDS: dict[str, tuple[str, str]] = {
    "live": ("#2e9d3a", "live (payload)"),
    "overhead": ("#8c6bb1", "overhead (headers, padding, metadata)"),
    "free": ("#f0a030", "free (bins, caches)"),
    "top": ("#bdbdbd", "top"),
    "mmapped": ("#c03fa0", "mmapped objects"),
    "untouched": ("#eeeeee", "untouched (no page)"),
}
RSS_COLOUR = "#1f3b8c"

Sample = dict[str, Any]


# --- what a run is sampled into --------------------------------------------------------------

def _mapped_objects(meter: Any) -> tuple[int, int]:
    """(payload, usable bytes) of the live objects that live in their own mapping."""
    objs = meter.ledger.objects
    n = u = 0
    for p in meter.ledger.mapped:
        e = objs.get(p)
        if e is not None:
            n += e[0]
            u += e[1]
    return n, u


def chart_sample(meter: Any) -> Sample:
    """One point of the footprint chart now: the bands of :data:`CHART_BANDS` (bytes, summing
    to ``footprint``), ``rss`` (VmRSS, bytes), ``live_bytes`` and ``event`` (calls done)."""
    bd = meter.breakdown()
    rss_kb = meter.rep.process.status()["VmRSS"]
    mapped_n, mapped_u = _mapped_objects(meter)
    total = bd.footprint
    free = bd.free + bd.cached
    top = bd.top
    unt = bd.untouched
    rest = max(total - free - top - unt, 0)
    mm = min(mapped_u, rest)
    live = min(max(bd.payload - mapped_n, 0), rest - mm)
    over = rest - mm - live
    s: Sample = {"event": meter.n, "live": live, "overhead": over, "free": free, "top": top,
                 "mmapped": mm, "untouched": unt, "footprint": total, "rss": rss_kb * 1024,
                 "live_bytes": meter.rep.live_bytes}
    assert sum(s[b] for b in CHART_BANDS) == total or rest == 0
    return s


def _bins_compact(alloc: Any, chain: int = 4) -> dict[str, list[list[Any]]]:
    """The bins (memsim.viz.bins.bins_data) as ``section -> [[label, count, bytes,
    [first addresses]], ...]``."""
    from memsim.viz.bins import bins_data

    out: dict[str, list[list[Any]]] = {}
    for section, bins in bins_data(alloc).items():
        rows = []
        for label, count, addrs, sizes in bins:
            total = sum(sizes) if sizes else int(label, 16) * count
            rows.append([label, count, total, [f"{a:#x}" for a in addrs[:chain]]])
        out[section] = rows
    return out


def _coarsen(runs: list[tuple[int, int]], span: int, max_runs: int) -> tuple[list[int], int]:
    """Cells of q bytes (a power of two, at most ``max_runs`` of them over ``span``), each the
    kind holding most of its bytes, as flat runs; returns (runs, q)."""
    q = 16
    while span // q > max_runs:
        q *= 2
    cells: list[int] = []
    tally: dict[int, int] = {}
    pos = 0
    cell_end = q
    for kind, length in runs:
        while length > 0:
            take = min(length, cell_end - pos)
            tally[kind] = tally.get(kind, 0) + take
            pos += take
            length -= take
            if pos == cell_end:
                cells.append(max(tally, key=lambda k: (tally[k], -k)))
                tally = {}
                cell_end += q
                if length >= q:
                    k = length // q
                    cells.extend([kind] * k)
                    pos += k * q
                    length -= k * q
                    cell_end += k * q
    flat: list[int] = []
    for kind in cells:
        if flat and flat[-2] == kind:
            flat[-1] += q
        else:
            flat += [kind, q]
    if tally:
        kind = max(tally, key=lambda k: (tally[k], -k))
        part = sum(tally.values())
        if flat and flat[-2] == kind:
            flat[-1] += part
        else:
            flat += [kind, part]
    return flat, q


def _walk_runs(alloc: Any, merge: bool = True
               ) -> tuple[int, int, list[tuple[int, int]], dict[str, list[int]]]:
    """The chunk walk of :func:`memsim.viz.heapstrip.heap_chunks` (the same tables, in the
    same order of precedence), without building a record per chunk: (first chunk, end of
    the heap, runs of (kind code, bytes), kind -> [chunks, bytes]). ``merge``: adjacent
    chunks of one kind make one run (else one run per chunk)."""
    av = alloc.av
    codes = _KIND_CODE
    size_of: dict[int, int] = {}
    code_of: dict[int, int] = {}

    def table(entries: Any, code: int) -> None:
        for p, size in entries:
            if p not in size_of:
                size_of[p] = size
                code_of[p] = code

    inuse = av.inuse
    if alloc.tcache is not None:
        table(((p, 32 + 16 * i) for i, st in enumerate(alloc.tcache.entries) for p in st),
              codes["tcache"])
    table(((p, (i + 2) * 16) for i, fb in enumerate(av.fastbins) for p in fb), codes["fastbin"])
    bin_of = av.bin_of
    table(((p, n) for p, n in av.free.items() if bin_of[p] == 1), codes["unsorted"])
    table(((p, n) for p, n in av.free.items() if 1 < bin_of[p] < 64), codes["small"])
    table(((p, n) for p, n in av.free.items() if bin_of[p] >= 64), codes["large"])
    table(av.internal.items(), codes["internal"])
    table(av.fences.items(), codes["fence"])
    inuse_code, top_code, gap_code = codes["inuse"], codes["top"], codes["gap"]
    runs: list[tuple[int, int]] = []
    tally = [[0, 0] for _ in codes]
    first = end = 0
    if av.top:
        segs = list(av.segments) + [(av.seg_start, av.top + av.top_size)]
        cur_code = -1
        cur_len = 0
        for seg_start, seg_end in segs:
            p = seg_start
            if runs or cur_len:
                if p > end:
                    if cur_len:
                        runs.append((cur_code, cur_len))
                    cur_code, cur_len = gap_code, p - end
            else:
                first = p
            while p < seg_end:
                if p == av.top:
                    size, code = av.top_size, top_code
                else:
                    size = inuse.get(p)
                    if size is not None:
                        code = inuse_code
                    else:
                        size = size_of.get(p)
                        if size is None:
                            raise ValueError(f"no chunk at {p:#x} in heap segment "
                                             f"{seg_start:#x}-{seg_end:#x}")
                        code = code_of[p]
                t = tally[code]
                t[0] += 1
                t[1] += size
                if code == cur_code and merge:
                    cur_len += size
                else:
                    if cur_len:
                        runs.append((cur_code, cur_len))
                    cur_code, cur_len = code, size
                p += size
                if code == top_code:
                    break
            end = p
        if cur_len:
            runs.append((cur_code, cur_len))
    names = list(codes)
    counts = {names[c]: t for c, t in enumerate(tally) if t[0]}
    return first, end, runs, counts


def heap_snapshot(alloc: Any, max_runs: int = 4000, chain: int = 4) -> dict[str, Any]:
    """The heap of a glibc model now (see the module docstring): ``start`` (address of the
    first chunk), ``runs`` (flat ``[kind code, bytes, ...]``), ``per_chunk`` (one run per
    chunk: a heap of at most ``max_runs / 2`` chunks; else adjacent chunks of a kind are
    merged), ``q`` (0: exact chunk runs, else the cell size), ``counts`` (kind -> [chunks,
    bytes], exact), ``mmapped`` (sizes of the mmapped chunks, biggest first, at most 64)
    and ``bins``."""
    av = alloc.av
    tc = alloc.tcache
    chunks = (len(av.inuse) + len(av.free) + len(av.internal) + len(av.fences) + 1
              + sum(len(fb) for fb in av.fastbins)
              + (sum(len(st) for st in tc.entries) if tc is not None else 0))
    per_chunk = chunks <= max_runs // 2
    start, end, runs, counts = _walk_runs(alloc, merge=not per_chunk)
    mmapped = sorted((v[1] for v in alloc.mmapped.values()), reverse=True)
    if mmapped:
        counts["mmapped"] = [len(mmapped), sum(mmapped)]
    q = 0
    if len(runs) > max_runs:
        flat, q = _coarsen(runs, end - start, max_runs)
    else:
        flat = [x for r in runs for x in r]
    return {"start": start, "span": end - start, "runs": flat, "q": q, "counts": counts,
            "per_chunk": per_chunk and not q, "mmapped": mmapped[:64], "n_mmapped": len(mmapped),
            "bins": _bins_compact(alloc, chain)}


def has_heap_walk(alloc: Any) -> bool:
    """Can :func:`heap_snapshot` walk this allocator (the glibc model's arena)?"""
    return hasattr(alloc, "av") and hasattr(alloc, "mmapped")


def run_one(trace: str, allocator: str, *, heapmap: bool = True, points: int = 400,
            snapshots: int = 100, max_runs: int = 4000, options: Mapping[str, Any] | None = None,
            touch: bool = True, stop_at: int | None = None,
            expected_calls: int | None = None) -> dict[str, Any]:
    """Replay ``trace`` through ``allocator`` and sample it (see the module docstring).

    Returns a plain dict (picklable): ``allocator``, ``record`` (the metrics record of
    :meth:`memsim.metrics.compare.RunMetrics.as_dict`), ``series`` (chart samples),
    ``snapshots`` (heap snapshots, or None when not asked or the allocator has no chunk walk),
    ``calls``, ``error``, ``seconds``. ``stop_at``: stop after that many calls.
    ``snapshots`` 0: only the heap after the last call. ``expected_calls`` (an estimate of
    the trace's length, :func:`count_lines`): sample at a fixed interval sized for it (the
    interval still doubles if the trace turns out longer).
    """
    from memsim.metrics.compare import Meter, RunMetrics
    from memsim.trace.replay import Replayer, _open

    t0 = time.perf_counter()
    out = RunMetrics(trace=os.fspath(trace), allocator=allocator)
    if expected_calls:          # a fixed interval: no sample taken and dropped later
        series = Timeline(every=max(1, -(-expected_calls // points)), max_points=points + 1)
        snaps = Timeline(every=max(1, -(-expected_calls // max(snapshots, 1))),
                         max_points=max(snapshots, 1) + 1)
    else:
        series = Timeline(every=16, max_points=points)
        snaps = Timeline(every=1, max_points=max(snapshots, 2))
    regular = snapshots > 0
    end_sample: Sample | None = None
    end_snap: dict[str, Any] | None = None
    walk = False
    meter: Any = None
    try:
        with _open(trace, False) as reader:
            rep = Replayer(allocator, brk0=reader.brk0, options=options, touch=touch,
                           name=reader.name)
            meter = Meter(rep, every=1 << 62, max_points=4)
            walk = heapmap and has_heap_walk(rep.alloc)
            it = iter(reader)
            while True:
                n = meter.n
                nxt = min(n - n % series.every + series.every,
                          n - n % snaps.every + snaps.every if walk and regular else 1 << 62)
                if stop_at is not None:
                    nxt = min(nxt, stop_at)
                meter.feed(islice(it, nxt - n))
                n = meter.n
                if n < nxt or n == 0:
                    break
                if n % series.every == 0:
                    series.add(chart_sample(meter))
                if walk and regular and n % snaps.every == 0:
                    snaps.add(_snap(meter, max_runs))
                if stop_at is not None and n >= stop_at:
                    break
            end_sample = chart_sample(meter)
            if walk:
                end_snap = _snap(meter, max_runs)
            meter.finish(out)
    except MemsimError as e:
        out.error = " ".join(str(e).split())
        out.calls = meter.n if meter is not None else 0
        out.frag = None
    samples = [s for s in series.regular if end_sample is None or s["event"] < end_sample["event"]]
    if end_sample is not None:
        samples.append(end_sample)
    shots: list[dict[str, Any]] | None = None
    if walk:
        shots = [s for s in snaps.regular if end_snap is None or s["event"] < end_snap["event"]]
        if end_snap is not None:
            shots.append(end_snap)
    rec = out.as_dict()
    return {"allocator": allocator, "record": rec, "series": samples, "snapshots": shots,
            "calls": out.calls, "error": out.error, "seconds": time.perf_counter() - t0,
            "series_every": series.every, "snap_every": snaps.every if walk else None}


def _snap(meter: Any, max_runs: int) -> dict[str, Any]:
    s = heap_snapshot(meter.alloc, max_runs)
    s["event"] = meter.n
    s["live_bytes"] = meter.rep.live_bytes
    s["footprint"] = meter.footprint()
    s["rss_kb"] = meter.rep.process.status()["VmRSS"]
    return s


def count_lines(trace: str | os.PathLike[str]) -> int:
    """Lines of a (possibly compressed) trace file: an upper bound of its calls, read at the
    speed of decompression."""
    from memsim.trace.format import _open_binary

    stream, _name, owned = _open_binary(trace)
    n = 0
    try:
        while True:
            block = stream.read(1 << 20)
            if not block:
                break
            n += block.count(b"\n")
    finally:
        if owned:
            stream.close()
    return n


def _run_job(job: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    trace, allocator, kw = job
    return run_one(trace, allocator, **kw)


def collect(trace: str | os.PathLike[str], allocators: Sequence[str], *, jobs: int | None = None,
            points: int = 400, snapshots: int = 100, max_runs: int = 4000,
            touch: bool = True, on_done: Callable[[dict[str, Any]], None] | None = None
            ) -> dict[str, Any]:
    """Everything a report shows: ``trace`` (name), ``meta`` (the trace's header), ``runs``
    (one :func:`run_one` dict per allocator, in the order given). The heap map is taken from
    the first allocator with a chunk walk (glibc). ``jobs``: worker processes (None: CPUs)."""
    from memsim.alloc.base import get
    from memsim.trace import open_trace

    name = os.fspath(trace)
    if not allocators:
        raise MemsimError("no allocator named")
    for a in allocators:
        get(a)
    with open_trace(name, check=False) as reader:
        meta = dict(reader.meta)
    heap_alloc = "glibc" if "glibc" in allocators else allocators[0]
    try:
        expected: int | None = count_lines(name)
    except (OSError, EOFError, ValueError, MemsimError):
        expected = None                  # the runs report what is wrong with the file
    jobs_list = [(name, a, {"heapmap": a == heap_alloc, "points": points,
                            "snapshots": snapshots, "max_runs": max_runs, "touch": touch,
                            "expected_calls": expected})
                 for a in allocators]
    if jobs is None:
        jobs = os.cpu_count() or 1
    runs: dict[str, dict[str, Any]] = {}
    if jobs <= 1 or len(jobs_list) == 1:
        for job in jobs_list:
            runs[job[1]] = r = _run_job(job)
            if on_done is not None:
                on_done(r)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(jobs_list))) as pool:
            futs = {pool.submit(_run_job, job): job[1] for job in jobs_list}
            for fut in futs:
                runs[futs[fut]] = r = fut.result()
                if on_done is not None:
                    on_done(r)
    return {"trace": name, "meta": meta, "runs": [runs[a] for a in allocators],
            "heap_allocator": heap_alloc}


# --- formatting --------------------------------------------------------------------------------

def human_bytes(n: float) -> str:
    """1536 -> ``"1.5 KiB"``."""
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            text = f"{v:.0f}" if unit == "B" else f"{v:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        v /= 1024
    return f"{v:.1f} TiB"


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def embed_json(obj: Any) -> str:
    """JSON safe to put inside ``<script type="application/json">``: no ``<``, ``>``, ``&``,
    U+2028 or U+2029 appears literally (so no ``</script>`` or ``<!--`` can end or change
    the element)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _nice_step(top: float, ticks: int = 5) -> float:
    raw = top / ticks if top > 0 else 1
    mag = 1.0
    while mag * 10 <= raw:
        mag *= 10
    while mag > raw:
        mag /= 10
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _byte_step(top: float) -> float:
    """A tick step in bytes that is a power of two times 1, 2 or 5 of KiB/MiB units."""
    unit = 1.0
    while unit * 1024 <= top / 2 and unit < 1 << 40:
        unit *= 1024
    return _nice_step(top / unit) * unit


# --- SVG charts --------------------------------------------------------------------------------

def svg_legend(items: Sequence[tuple[str, str]], x: float, y: float, cols: int = 3,
               col_w: float = 240) -> list[str]:
    """Legend swatches and ``<text class="legend">`` labels."""
    out = ['<g class="legend">']
    for i, (colour, text) in enumerate(items):
        cx = x + (i % cols) * col_w
        cy = y + (i // cols) * 16
        out.append(f'<rect x="{cx:.1f}" y="{cy - 9:.1f}" width="12" height="10" fill="{colour}" '
                   'stroke="#666" stroke-width="0.5"/>')
        out.append(f'<text class="legend" x="{cx + 16:.1f}" y="{cy:.1f}">{_e(text)}</text>')
    out.append("</g>")
    return out


def svg_footprint(run: Mapping[str, Any], width: int = 900, height: int = 300,
                  cursor: bool = False) -> str:
    """The footprint of one run over time: stacked bands of :data:`CHART_BANDS` and VmRSS."""
    series = run["series"]
    title = f"{run['allocator']}: footprint over time"
    left, right, top_m, legend_h = 70, 10, 28, 54
    bottom = 34
    pw = width - left - right
    ph = height - top_m - bottom - legend_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_e(title)}">',
             f'<text x="{left}" y="16" class="title">{_e(title)}</text>']
    if not series:
        parts.append(f'<text x="{left}" y="{top_m + 30}">no samples: {_e(run.get("error"))}</text>')
        parts.append("</svg>")
        return "\n".join(parts)
    xmax = max(series[-1]["event"], 1)
    rec = run.get("record") or {}
    peak = rec.get("peak_footprint_bytes") or 0
    ymax = max(max(s["footprint"] for s in series), max(s["rss"] for s in series), peak, 1)
    step = _byte_step(ymax)
    ymax = (int(ymax / step) + 1) * step

    def X(e: float) -> float:
        return left + pw * e / xmax

    def Y(v: float) -> float:
        return top_m + ph - ph * v / ymax

    # axes and grid
    v = 0.0
    while v <= ymax + 1e-9:
        y = Y(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                     'stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="tick">{_e(human_bytes(v))}</text>')
        v += step
    xs = _nice_step(xmax)
    e = 0.0
    while e <= xmax + 1e-9:
        x = X(e)
        parts.append(f'<text x="{x:.1f}" y="{top_m + ph + 14}" text-anchor="middle" '
                     f'class="tick">{int(e):,}</text>')
        e += xs
    parts.append(f'<text x="{left + pw / 2:.0f}" y="{top_m + ph + 28}" text-anchor="middle" '
                 'class="tick">calls</text>')
    # stacked bands
    below = [0] * len(series)
    for band, (colour, _text) in CHART_BANDS.items():
        above = [b + s[band] for b, s in zip(below, series, strict=True)]
        if any(s[band] for s in series):
            pts = [f"{X(s['event']):.1f},{Y(a):.1f}" for s, a in zip(series, above, strict=True)]
            pts += [f"{X(s['event']):.1f},{Y(b):.1f}"
                    for s, b in zip(reversed(series), reversed(below), strict=True)]
            parts.append(f'<polygon class="band band-{band}" points="{" ".join(pts)}" '
                         f'fill="{colour}" stroke="none"/>')
        below = above
    rss = " ".join(f"{X(s['event']):.1f},{Y(s['rss']):.1f}" for s in series)
    parts.append(f'<polyline class="rss" points="{rss}" fill="none" stroke="{RSS_COLOUR}" '
                 'stroke-width="1.5"/>')
    if peak:
        at = rec.get("jw", {}) or {}
        pe = at.get("peak_footprint_point") or 0
        parts.append(f'<circle cx="{X(pe):.1f}" cy="{Y(peak):.1f}" r="3" fill="#000"/>')
        parts.append(f'<text x="{min(X(pe) + 5, left + pw - 150):.1f}" y="{Y(peak) - 4:.1f}" '
                     f'class="tick">peak {_e(human_bytes(peak))} at call {pe:,}</text>')
    parts.append(f'<rect x="{left}" y="{top_m}" width="{pw}" height="{ph}" fill="none" '
                 'stroke="#888"/>')
    if cursor:
        parts.append(f'<line id="cursor" x1="{left + pw}" y1="{top_m}" x2="{left + pw}" '
                     f'y2="{top_m + ph}" stroke="#d00" stroke-width="1.5" '
                     f'data-left="{left}" data-width="{pw}" data-xmax="{xmax}"/>')
    items = [(c, t) for c, t in CHART_BANDS.values()] + [(RSS_COLOUR, "RSS (VmRSS)")]
    parts += svg_legend(items, left, height - legend_h + 16, cols=3, col_w=pw / 3)
    parts.append("</svg>")
    return "\n".join(parts)


#: Comparison bars: (title, record key, formatter, colour).
BAR_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("peak footprint", "peak_footprint_bytes", "bytes", "#8c6bb1"),
    ("peak RSS (VmHWM)", "rss_peak_kb", "kb", RSS_COLOUR),
    ("utilization (peak live / peak footprint)", "utilization", "percent", "#2e9d3a"),
)


def _fmt(kind: str, v: Any) -> str:
    if v is None:
        return "n/a"
    if kind == "bytes":
        return human_bytes(v)
    if kind == "kb":
        return human_bytes(v * 1024)
    if kind == "percent":
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def svg_bars(runs: Sequence[Mapping[str, Any]], width: int = 900) -> str:
    """One horizontal bar chart per metric of :data:`BAR_METRICS`, a bar per allocator."""
    bar_h, gap, label_w = 16, 4, 150
    block = 24 + len(runs) * (bar_h + gap) + 10
    height = block * len(BAR_METRICS) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="comparison across allocators">']
    y0 = 0
    for title, key, kind, colour in BAR_METRICS:
        vals = [(r["allocator"], (r.get("record") or {}).get(key)) for r in runs]
        vmax = max([v for _, v in vals if v] or [1])
        parts.append(f'<text x="0" y="{y0 + 16}" class="title">{_e(title)}</text>')
        for i, (name, v) in enumerate(vals):
            y = y0 + 24 + i * (bar_h + gap)
            w = 0 if not v else (width - label_w - 120) * v / vmax
            parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" '
                         f'class="tick">{_e(name)}</text>')
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{colour}"/>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" class="tick">'
                         f'{_e(_fmt(kind, v))}</text>')
        y0 += block
    parts += svg_legend([(c, t) for t, _k, _f, c in BAR_METRICS], 0, height - 8, cols=3,
                        col_w=width / 3)
    parts.append("</svg>")
    return "\n".join(parts)


# --- the page ----------------------------------------------------------------------------------

#: Columns of the comparison table: (header, record key, format).
TABLE: tuple[tuple[str, str, str], ...] = (
    ("utilization", "utilization", "percent"),
    ("J&W #1", "f1", "percent"), ("J&W #2", "f2", "percent"), ("J&W #3", "f3", "percent"),
    ("J&W #4", "f4", "percent"),
    ("peak live", "peak_live_bytes", "bytes"), ("peak footprint", "peak_footprint_bytes", "bytes"),
    ("final footprint", "final_footprint_bytes", "bytes"), ("peak RSS", "rss_peak_kb", "kb"),
    ("RSS at end", "rss_kb", "kb"), ("page faults", "pgfault", "int"),
    ("syscalls", "syscalls_total", "int"),
)


def _asset(name: str) -> str:
    return resources.files("memsim.viz").joinpath("report_assets", name).read_text("utf-8")


def _heap_data(data: Mapping[str, Any]) -> dict[str, Any] | None:
    run = next((r for r in data["runs"] if r["allocator"] == data["heap_allocator"]), None)
    if run is None or not run.get("snapshots"):
        return None
    shots = run["snapshots"]
    base = min(s["start"] for s in shots if s["span"]) if any(s["span"] for s in shots) else 0
    span = max((s["start"] - base + s["span"] for s in shots if s["span"]), default=0)
    compact = []
    for s in shots:
        compact.append({"e": s["event"], "o": s["start"] - base if s["span"] else 0,
                        "r": s["runs"], "q": s["q"], "k": s["per_chunk"], "c": s["counts"],
                        "m": s["mmapped"],
                        "nm": s["n_mmapped"], "b": s["bins"], "l": s["live_bytes"],
                        "f": s["footprint"], "rss": s["rss_kb"]})
    return {"allocator": run["allocator"], "base": f"{base:#x}", "span": span,
            "kinds": [[k, c, t] for k, (c, t) in HEAP_KINDS.items()],
            "mmapped_colour": MMAPPED_COLOUR, "calls": run["calls"],
            "every": run["snap_every"], "snapshots": compact}


def render_html(data: Mapping[str, Any]) -> str:
    """The report page of :func:`collect`'s result (a str of HTML)."""
    css = _asset("report.css")
    js = _asset("report.js")
    runs = data["runs"]
    trace = os.path.basename(data["trace"])
    meta = data["meta"]
    calls = max((r["calls"] for r in runs), default=0)
    heap = _heap_data(data)
    js_hash = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{js_hash}'")
    p: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>memsim report: {_e(trace)}</title>", f"<style>{css}</style></head><body>",
        f"<h1>memsim report: <code>{_e(trace)}</code></h1>",
        '<section id="summary"><h2>Summary</h2><table class="meta">',
        f"<tr><th>trace</th><td><code>{_e(data['trace'])}</code></td></tr>",
        f"<tr><th>calls</th><td>{calls:,}</td></tr>"]
    for k, v in meta.items():
        p.append(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>")
    p.append(f"<tr><th>allocators</th><td>{_e(', '.join(r['allocator'] for r in runs))}"
             "</td></tr></table>")
    best = [r for r in runs if r["error"] is None and r["record"].get("utilization") is not None]
    if best:
        b = max(best, key=lambda r: r["record"]["utilization"])
        s = min(best, key=lambda r: r["record"]["peak_footprint_bytes"])
        p.append(f"<p>Best utilization: <b>{_e(b['allocator'])}</b> "
                 f"({_fmt('percent', b['record']['utilization'])}); smallest peak footprint: "
                 f"<b>{_e(s['allocator'])}</b> "
                 f"({_fmt('bytes', s['record']['peak_footprint_bytes'])}).</p>")
    for r in runs:
        if r["error"]:
            p.append(f'<p class="error">{_e(r["allocator"])}: the run stopped after '
                     f'{r["calls"]:,} calls: {_e(r["error"])}</p>')
    p.append("</section>")
    # comparison
    p.append('<section id="compare"><h2>Comparison across allocators</h2>'
             '<table class="cmp"><thead><tr><th>allocator</th>')
    p += [f"<th>{_e(h)}</th>" for h, _k, _f in TABLE]
    p.append("<th>seconds</th></tr></thead><tbody>")
    for r in runs:
        rec = r["record"]
        p.append(f"<tr><th>{_e(r['allocator'])}</th>")
        p += [f"<td>{_e(_fmt(f, rec.get(k)))}</td>" for _h, k, f in TABLE]
        p.append(f"<td>{r['seconds']:.1f}</td></tr>")
    p.append("</tbody></table>")
    from memsim.metrics.compare import METRICS

    p.append('<ul class="note">')
    for key, what in (("utilization", "utilization"), ("f1", "J&W #1"), ("f2", "J&W #2"),
                      ("f3", "J&W #3"), ("f4", "J&W #4")):
        p.append(f"<li><b>{_e(what)}</b>: {_e(METRICS[key])}</li>")
    p.append("<li><b>seconds</b>: the wall time of the run in its worker process</li></ul>")
    p.append(svg_bars(runs))
    p.append("</section>")
    # footprint over time
    p.append('<section id="footprint"><h2>Footprint over time</h2>')
    for r in runs:
        p.append(f'<p class="note">{len(r["series"]):,} samples of {r["calls"]:,} calls '
                 f'(every {r["series_every"]:,} calls and the last).</p>')
        p.append(svg_footprint(r, cursor=heap is not None
                               and r["allocator"] == data["heap_allocator"]))
    p.append("</section>")
    # heap map
    p.append('<section id="heap"><h2>Heap map and bins</h2>')
    if heap is None:
        p.append('<p class="note">No heap map: only the glibc model has a chunk walk '
                 '(add glibc to --allocators).</p>')
    else:
        n = len(heap["snapshots"])
        p.append(f'<p class="note" id="downsample">{n:,} snapshots of {heap["calls"]:,} calls '
                 f'are shown (the {_e(heap["allocator"])} model after every '
                 f'{heap["every"]:,} calls and after the last).</p>')
        p.append(f'<div class="slider"><label for="slider">call</label> '
                 f'<input type="range" id="slider" min="0" max="{n - 1}" value="{n - 1}" '
                 f'step="1"> <span id="at"></span></div>')
        p.append('<div id="heapinfo" class="note"></div>')
        p.append('<canvas id="heapmap" width="960" height="400"></canvas>')
        p.append('<div id="heaplegend" class="legend"></div>')
        p.append('<h3>Mmapped chunks</h3><div id="mmapped"></div>')
        p.append('<h3>Bins</h3><div id="bins"></div>')
    p.append("</section>")
    p.append('<footer>Written by memsim from a simulation: every figure and picture above '
             'comes from the simulated state.</footer>')
    p.append('<script type="application/json" id="memsim-data">'
             f'{embed_json({"trace": data["trace"], "meta": meta, "heap": heap})}</script>')
    p.append(f"<script>{js}</script></body></html>")
    return "\n".join(p) + "\n"


def write_report(trace: str | os.PathLike[str], out: str | os.PathLike[str],
                 allocators: Sequence[str] = DEFAULT_ALLOCATORS, **kw: Any) -> dict[str, Any]:
    """Collect and write the report; returns the collected data."""
    data = collect(trace, allocators, **kw)
    text = render_html(data)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return data
