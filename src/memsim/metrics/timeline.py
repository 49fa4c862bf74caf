"""A bounded time series of a run's metrics: samples every N calls and at the peaks.

A trace may have 10^8 calls; the series must not grow with it. :class:`Timeline` keeps at
most ``max_points`` regular samples and adapts N (the sampling interval, in calls)::

    every = 4, max_points = 4
    calls:    4   8   12  16                 buffer full: keep the samples at multiples of
    kept:     4   8   12  16                 2*every, double every
    then:         8       16  24  32         ... and so on: the samples stay evenly spaced,
    then:                 16      32  48 64  between max_points/2 and max_points of them

A regular sample is due when the call index is a multiple of the current interval
(:meth:`due`). Besides those, two *peak* samples are kept, one slot each, each replaced by a
later one: ``peak_footprint`` (taken when the footprint reaches a new maximum) and
``peak_live`` (live bytes); on a plateau of the footprint, a point with more live bytes
replaces the peak sample (the point J&W #3 uses). To bound their cost, a new maximum less
than 1/64 above the last peak sample and fewer than ``every`` calls after it is not
resampled, so the peak samples lie within 1/64 of the true peaks (the exact peak values
and where they happen are in the run's summary, :mod:`memsim.metrics.fragmentation`).
The ``end`` sample is the state after the last call. :meth:`samples` returns all of them
ordered by call index (a peak sample that coincides with a regular one replaces it).

Export: :func:`to_csv` (one header line, one line per sample, columns :data:`COLUMNS`) and
:func:`to_json` (a list of objects with the same names).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["COLUMNS", "SAMPLE_FIELDS", "Timeline", "to_csv", "to_json"]

#: The fields of a sample, in order (bytes unless the name says kb; counters are totals).
SAMPLE_FIELDS: tuple[str, ...] = (
    "event", "kind", "live_bytes", "live_objects", "footprint_bytes",
    "payload", "padding", "rounding", "mmap_rounding", "headers", "metadata", "free",
    "cached", "top", "untouched", "resident_bytes",
    "vsz_kb", "rss_kb", "rss_anon_kb", "pgfault", "pgmajfault",
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "syscalls",
)

#: CSV columns of an exported series: which run, then the sample.
COLUMNS: tuple[str, ...] = ("trace", "allocator") + SAMPLE_FIELDS

#: A new peak within this fraction of the last peak sample is not resampled (cost bound).
PEAK_STEP = 1 / 64

Sample = dict[str, Any]


class Timeline:
    """Regular samples (at most ``max_points``) plus the peak and end samples."""

    def __init__(self, every: int = 1024, max_points: int = 512) -> None:
        if every < 1:
            raise ValueError(f"sampling interval must be at least 1 call, not {every}")
        if max_points < 2:
            raise ValueError(f"a time series needs at least 2 points, not {max_points}")
        self.every = every
        self.max_points = max_points
        self.regular: list[Sample] = []
        self.peaks: dict[str, Sample] = {}
        self.end: Sample | None = None

    def due(self, event: int) -> bool:
        """Is a regular sample due after call number ``event`` (1-based)?"""
        return event % self.every == 0

    def add(self, sample: Sample) -> None:
        """A regular sample (``sample["event"]`` a multiple of the interval)."""
        self.regular.append(sample)
        if len(self.regular) >= self.max_points:
            self.every *= 2
            e = self.every
            self.regular = [s for s in self.regular if s["event"] % e == 0]

    def peak_due(self, kind: str, value: int, event: int, second: int = 0) -> bool:
        """Should a new maximum ``value`` of ``kind`` at ``event`` be sampled? ``second``
        orders points with an equal ``value`` (higher is better: a footprint peak is best
        sampled where the live bytes under it are highest)."""
        last = self.peaks.get(kind)
        if last is None:
            return True
        old, old2 = last["_value"]
        if value > old:
            return value >= old + old * PEAK_STEP or event - last["event"] >= self.every
        if value == old and second > old2:
            return second >= old2 + abs(old2) * PEAK_STEP or event - last["event"] >= self.every
        return False

    def add_peak(self, kind: str, value: int, sample: Sample, second: int = 0) -> None:
        s = dict(sample)
        s["kind"] = kind
        s["_value"] = (value, second)
        self.peaks[kind] = s

    def set_end(self, sample: Sample) -> None:
        s = dict(sample)
        s["kind"] = "end"
        self.end = s

    def samples(self) -> list[Sample]:
        """Every kept sample, ordered by call index (peaks and end replace a regular sample
        taken at the same call)."""
        by_event: dict[int, Sample] = {s["event"]: s for s in self.regular}
        for kind in ("peak_live", "peak_footprint"):
            s = self.peaks.get(kind)
            if s is not None:
                prev = by_event.get(s["event"])
                if prev is not None and prev["kind"] != "every":
                    s = dict(s)
                    s["kind"] = f"{prev['kind']}+{kind}"
                by_event[s["event"]] = s
        if self.end is not None:
            prev = by_event.get(self.end["event"])
            s = self.end
            if prev is not None and prev["kind"] != "every":
                s = dict(s)
                s["kind"] = f"{prev['kind']}+end"
            by_event[s["event"]] = s
        out = []
        for e in sorted(by_event):
            s = by_event[e]
            out.append({k: s.get(k) for k in SAMPLE_FIELDS})
        return out

    def check(self) -> None:
        assert len(self.regular) < self.max_points
        assert all(s["event"] % self.every == 0 for s in self.regular)
        events = [s["event"] for s in self.regular]
        assert events == sorted(set(events)), "regular samples out of order"


def to_csv(series: Iterable[tuple[str, str, list[Sample]]]) -> str:
    """``[(trace, allocator, samples), ...]`` as CSV text with :data:`COLUMNS`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for trace, allocator, samples in series:
        for s in samples:
            w.writerow([trace, allocator] + [s.get(k) for k in SAMPLE_FIELDS])
    return buf.getvalue()


def to_json(series: Iterable[tuple[str, str, list[Sample]]]) -> str:
    """``[(trace, allocator, samples), ...]`` as a JSON list of
    ``{"trace", "allocator", "samples": [...]}``."""
    doc = [{"trace": t, "allocator": a, "samples": [_plain(s) for s in samples]}
           for t, a, samples in series]
    return json.dumps(doc, indent=1) + "\n"


def _plain(s: Mapping[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in SAMPLE_FIELDS}
