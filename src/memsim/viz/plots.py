"""Pictures of a simulation with matplotlib (PNG or SVG): heap map, footprint, comparison.

matplotlib is an optional extra (``pip install 'memsim[plot]'``); it is imported when a
picture is drawn, with the Agg backend (no display needed), and its absence is one line:
``matplotlib is not installed ...``. The pictures draw the data of
:mod:`memsim.viz.report` (the same samples as the HTML report), nothing else:

- :func:`heapmap_figure`: one heap snapshot (:func:`memsim.viz.report.heap_snapshot`): the
  heap from its first chunk to the end of top, wrapped in rows of equal bytes, each chunk
  (or cell, for a coarsened snapshot) coloured by state: in use, free by bin kind, top,
  malloc's own, fenceposts; below it, the mmapped chunks apart, one bar each (log scale)::

      row 0  |##|tt|######|u|####|....      colours: HEAP_KINDS
      row 1  |....................|         (one row = span / rows bytes)
      mmapped  ████ 132 KiB  ██████ 1 MiB

- :func:`footprint_figure`: a run's footprint over time as a stacked area of the bands of
  :data:`memsim.viz.report.CHART_BANDS` (live, overhead, free, top, mmapped, untouched),
  with the VmRSS line and the exact peak marked.
- :func:`compare_figure`: bars per allocator (peak footprint, peak RSS, utilization), one
  group per trace, from the records of :func:`memsim.metrics.compare.compare`.

:func:`save` writes a figure as PNG or SVG by the file's suffix (SVG text stays text, so the
legend can be found in the file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from memsim.errors import ConfigError
from memsim.viz.report import (
    CHART_BANDS,
    HEAP_KINDS,
    MMAPPED_COLOUR,
    RSS_COLOUR,
    _byte_step,
    human_bytes,
)

__all__ = ["FORMATS", "compare_figure", "footprint_figure", "heapmap_figure", "pyplot", "save"]

FORMATS = ("png", "svg")
_MISSING = "matplotlib is not installed: pip install 'memsim[plot]'"


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend; ConfigError (one line) when it is absent."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(_MISSING) from None
    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.fonttype"] = "none"        # SVG text as <text>, not paths
    matplotlib.rcParams["svg.hashsalt"] = "memsim"       # reproducible ids
    import matplotlib.pyplot as plt

    return plt


def _bytes_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: human_bytes(v))


def _byte_axis(axis: Any, vmax: float) -> None:
    """Ticks at round binary sizes (512 KiB, 1 MiB ...) up to ``vmax`` bytes."""
    from matplotlib.ticker import MultipleLocator

    axis.set_major_locator(MultipleLocator(_byte_step(max(vmax, 1))))
    axis.set_major_formatter(_bytes_formatter())


def heapmap_figure(snap: Mapping[str, Any], title: str = "heap map", rows: int = 24) -> Any:
    """The heap of one snapshot (see the module docstring)."""
    plt = pyplot()
    from matplotlib.patches import Patch

    fig, (ax, axm) = plt.subplots(2, 1, figsize=(9, 5.2), height_ratios=[4, 1],
                                  layout="constrained")
    span = max(int(snap["span"]), 1)
    per_row = -(-span // rows)
    kinds = list(HEAP_KINDS)
    per_chunk = bool(snap.get("per_chunk"))       # one run per chunk: outline each chunk
    bars: dict[int, list[tuple[float, float]]] = {}
    rows_of: dict[int, list[int]] = {}
    off = 0
    runs = snap["runs"]
    for j in range(0, len(runs), 2):
        code, length = runs[j], runs[j + 1]
        o, left = off, length
        while left > 0:
            row = o // per_row
            x = o - row * per_row
            take = min(left, per_row - x)
            bars.setdefault(code, []).append((x / per_row, take / per_row))
            rows_of.setdefault(code, []).append(row)
            o += take
            left -= take
        off += length
    for code, segs in bars.items():
        colour = HEAP_KINDS[kinds[code]][0]
        by_row: dict[int, list[tuple[float, float]]] = {}
        for seg, row in zip(segs, rows_of[code], strict=True):
            by_row.setdefault(row, []).append(seg)
        for row, ss in by_row.items():
            ax.broken_barh(ss, (rows - 1 - row + 0.08, 0.84), facecolors=colour,
                           edgecolor="white" if per_chunk else "none", linewidth=0.4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, rows)
    ax.set_yticks([])
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xticklabels([human_bytes(per_row * f) for f in (0, 0.25, 0.5, 0.75, 1)])
    q = snap.get("q") or 0
    how = (f"cells of {q} bytes" if q else "every chunk" if per_chunk
           else "adjacent chunks of a kind merged")
    ax.set_title(f"{title}: heap from {snap['start']:#x}, {human_bytes(span)} "
                 f"({human_bytes(per_row)} per row; {how})", fontsize=10)
    present = {kinds[c] for c in bars}
    handles = [Patch(facecolor=c, edgecolor="#666", label=t)
               for k, (c, t) in HEAP_KINDS.items() if k in present]
    mm = list(snap.get("mmapped") or [])
    if mm:
        handles.append(Patch(facecolor=MMAPPED_COLOUR, edgecolor="#666", label="mmapped chunk"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=4,
              fontsize=8, frameon=False)
    n_mm = int(snap.get("n_mmapped") or len(mm))
    if mm:
        axm.barh(range(len(mm)), mm, color=MMAPPED_COLOUR)
        axm.set_xscale("log")
        axm.set_yticks([])
        axm.xaxis.set_major_formatter(_bytes_formatter())
        more = f" (the {len(mm)} biggest)" if n_mm > len(mm) else ""
        axm.set_title(f"{n_mm} mmapped chunks, apart from the heap{more}", fontsize=9)
    else:
        axm.set_axis_off()
        axm.text(0.5, 0.5, "no mmapped chunks", ha="center", va="center", fontsize=9)
    return fig


def footprint_figure(run: Mapping[str, Any]) -> Any:
    """Stacked footprint bands over time with the RSS line (a :func:`run_one` result)."""
    plt = pyplot()
    series = run["series"]
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    if not series:
        raise ConfigError(f"{run['allocator']}: no samples ({run.get('error')})")
    xs = [s["event"] for s in series]
    ys = [[s[b] for s in series] for b in CHART_BANDS]
    ax.stackplot(xs, ys, colors=[c for c, _t in CHART_BANDS.values()],
                 labels=[t for _c, t in CHART_BANDS.values()], linewidth=0)
    ax.plot(xs, [s["rss"] for s in series], color=RSS_COLOUR, linewidth=1.4,
            label="RSS (VmRSS)")
    rec = run.get("record") or {}
    jw = rec.get("jw") or {}
    peak = rec.get("peak_footprint_bytes")
    if peak:
        pe = jw.get("peak_footprint_point") or 0
        ax.plot([pe], [peak], "o", color="black", markersize=3,
                label=f"peak footprint {human_bytes(peak)}")
    top = max(max(s["footprint"] for s in series), max(s["rss"] for s in series), peak or 0)
    _byte_axis(ax.yaxis, top)
    ax.set_xlabel("calls")
    ax.set_xlim(0, max(xs[-1], 1))
    ax.set_ylim(bottom=0)
    ax.set_title(f"{run['allocator']}: footprint over time "
                 f"({len(series)} samples of {run['calls']:,} calls)", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, fontsize=8,
              frameon=False)
    return fig


#: Bars of :func:`compare_figure`: (record key, title, unit multiplier to bytes or None).
COMPARE_BARS: tuple[tuple[str, str, int | None], ...] = (
    ("peak_footprint_bytes", "peak footprint", 1),
    ("rss_peak_kb", "peak RSS (VmHWM)", 1024),
    ("utilization", "utilization", None),
)


def compare_figure(records: Sequence[Mapping[str, Any]]) -> Any:
    """Bars per allocator, grouped by trace, for each metric of :data:`COMPARE_BARS`
    (``records``: :meth:`RunMetrics.as_dict` dicts)."""
    plt = pyplot()
    traces: list[str] = []
    allocs: list[str] = []
    for r in records:
        if r["trace"] not in traces:
            traces.append(r["trace"])
        if r["allocator"] not in allocs:
            allocs.append(r["allocator"])
    if not records:
        raise ConfigError("nothing to compare")
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(COMPARE_BARS), figsize=(4 * len(COMPARE_BARS) + 1, 4.2),
                             layout="constrained")
    width = 0.8 / len(allocs)
    by = {(r["trace"], r["allocator"]): r for r in records}
    for ax, (key, title, mult) in zip(axes, COMPARE_BARS, strict=True):
        for ai, a in enumerate(allocs):
            vals = []
            for t in traces:
                v = (by.get((t, a)) or {}).get(key)
                vals.append(0 if v is None else (v * mult if mult else 100 * v))
            ax.bar([ti + ai * width - 0.4 + width / 2 for ti in range(len(traces))], vals,
                   width, color=cmap(ai % 10), label=a)
        ax.set_xticks(range(len(traces)))
        ax.set_xticklabels([os.path.basename(t).split(".")[0] for t in traces], rotation=30,
                           ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if mult:
            _byte_axis(ax.yaxis, max([(r.get(key) or 0) * mult for r in records] or [1]))
        else:
            ax.set_ylabel("%")
            ax.set_ylim(0, 100)
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], labels=allocs,
               loc="outside lower center", ncol=min(len(allocs), 6), fontsize=8, frameon=False)
    return fig


def save(fig: Any, path: str | os.PathLike[str], dpi: int = 80) -> None:
    """Write ``fig`` as PNG or SVG (by the suffix of ``path``) and close it."""
    plt = pyplot()
    name = os.fspath(path)
    fmt = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if fmt not in FORMATS:
        plt.close(fig)
        raise ConfigError(f"{name}: the name must end in .png or .svg")
    try:
        fig.savefig(name, format=fmt, dpi=dpi,
                    metadata={"Date": None} if fmt == "svg" else None)
    finally:
        plt.close(fig)
