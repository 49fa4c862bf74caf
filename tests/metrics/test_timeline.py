"""The time series stays bounded and evenly spaced whatever the length of the run."""

from __future__ import annotations

import csv
import io
import json

import pytest

from memsim.metrics.timeline import COLUMNS, SAMPLE_FIELDS, Timeline, to_csv, to_json


def _sample(event: int, value: int = 0) -> dict[str, int | str]:
    return {"event": event, "kind": "every", "live_bytes": value}


def test_adaptive_downsampling_bounds_the_series() -> None:
    tl = Timeline(every=4, max_points=8)
    n_events = 100_000
    for e in range(1, n_events + 1):
        if tl.due(e):
            tl.add(_sample(e))
        if e % 9973 == 0:
            tl.check()
    tl.check()
    events = [s["event"] for s in tl.regular]
    assert 4 <= len(events) < 8
    gaps = {b - a for a, b in zip(events, events[1:], strict=False)}
    assert gaps == {tl.every}, "samples are not evenly spaced"
    assert events[-1] > n_events - 2 * tl.every           # the series reaches the end
    assert tl.every > 4 and tl.every & (tl.every - 1) == 0


def test_peaks_and_end_are_kept_and_merged_in_order() -> None:
    tl = Timeline(every=10, max_points=4)
    for e in range(1, 101):
        if tl.due(e):
            tl.add(_sample(e))
    assert tl.peak_due("peak_live", 500, 37)
    tl.add_peak("peak_live", 500, _sample(37, 500))
    assert not tl.peak_due("peak_live", 501, 38)           # within 1/64 and within `every`
    assert tl.peak_due("peak_live", 501, 37 + tl.every)   # far enough in calls
    assert tl.peak_due("peak_live", 600, 38)               # far enough in value
    assert not tl.peak_due("peak_live", 400, 90)           # not a new maximum
    tl.add_peak("peak_footprint", 4096, _sample(80, 3), 3)    # coincides with a regular sample
    tl.set_end(_sample(100, 1))
    out = tl.samples()
    assert [s["event"] for s in out] == sorted(s["event"] for s in out)
    kinds = {s["event"]: s["kind"] for s in out}
    assert kinds[37] == "peak_live" and kinds[80] == "peak_footprint" and kinds[100] == "end"
    assert all(list(s) == list(SAMPLE_FIELDS) for s in out)
    # equal footprint, more live bytes: the plateau's better point replaces the peak sample
    assert tl.peak_due("peak_footprint", 4096, 80 + tl.every, 10)
    assert not tl.peak_due("peak_footprint", 4096, 81, 3)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Timeline(every=0)
    with pytest.raises(ValueError):
        Timeline(max_points=1)


def test_csv_and_json_export() -> None:
    tl = Timeline(every=1, max_points=16)
    for e in range(1, 4):
        tl.add(_sample(e, e * 10))
    series = [("a.trace", "glibc", tl.samples()), ("b.trace", "buddy", tl.samples()[:1])]
    rows = list(csv.reader(io.StringIO(to_csv(series))))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 1 + 3 + 1
    assert rows[1][:4] == ["a.trace", "glibc", "1", "every"]
    doc = json.loads(to_json(series))
    assert [d["trace"] for d in doc] == ["a.trace", "b.trace"]
    assert doc[0]["samples"][2]["live_bytes"] == 30
    assert set(doc[0]["samples"][0]) == set(SAMPLE_FIELDS)
