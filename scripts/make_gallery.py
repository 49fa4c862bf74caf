"""Draw the pictures of docs/gallery.md from a corpus trace and write the page.

Pictures (matplotlib, Agg; `pip install 'memsim[plot]'`), all from the same simulation
state as the numbers (:mod:`memsim.viz.report` samples, :mod:`memsim.viz.plots` draws):

    docs/img/heapmap.png        the glibc model's heap of TRACE halfway through the run
    docs/img/heapmap-end.png    ... and after the last call
    docs/img/footprint-glibc.png / footprint-buddy.svg
                                footprint over time: live, overhead, free, top, mmapped,
                                untouched, with the RSS line
    docs/img/compare.png        peak footprint, peak RSS, utilization across allocators for
                                the traces of --compare

and docs/gallery.md, with the commands that draw each picture and the figures of
benchmarks/results/bench_report.json (run benchmarks/bench_report.py first to refresh them).

Run:  /work/venv/bin/python scripts/make_gallery.py [--trace corpus/grep.trace.zst]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from memsim.metrics.compare import compare
from memsim.viz import plots
from memsim.viz.report import DEFAULT_ALLOCATORS, count_lines, run_one

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", default="corpus/grep.trace.zst")
    ap.add_argument("--compare", default="corpus/grep.trace.zst,corpus/make.trace.zst,"
                                         "corpus/git.trace.zst")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    IMG.mkdir(parents=True, exist_ok=True)
    trace = args.trace
    name = Path(trace).name
    calls = count_lines(trace)
    half = max(calls // 2, 1)
    mid = run_one(trace, "glibc", heapmap=True, points=2, snapshots=0, max_runs=200_000,
                  stop_at=half)["snapshots"][-1]
    glibc = run_one(trace, "glibc", heapmap=True, snapshots=0, max_runs=200_000,
                    expected_calls=calls)
    end = glibc["snapshots"][-1]
    buddy = run_one(trace, "buddy", heapmap=False, expected_calls=calls)
    plots.save(plots.heapmap_figure(mid, title=f"{name} after {mid['event']:,} calls (glibc)"),
               IMG / "heapmap.png")
    plots.save(plots.heapmap_figure(end, title=f"{name} after {end['event']:,} calls (glibc)"),
               IMG / "heapmap-end.png")
    plots.save(plots.footprint_figure(glibc), IMG / "footprint-glibc.png")
    plots.save(plots.footprint_figure(buddy), IMG / "footprint-buddy.svg")
    traces = [t for t in args.compare.split(",") if t]
    recs = [r.as_dict() for r in compare(traces, list(DEFAULT_ALLOCATORS))]
    plots.save(plots.compare_figure(recs), IMG / "compare.png")
    screenshot(trace)
    sizes = {p.name: p.stat().st_size for p in sorted(IMG.glob("*")) if p.is_file()}
    bench = ROOT / "benchmarks" / "results" / "bench_report.json"
    (ROOT / "docs" / "gallery.md").write_text(page(trace, mid, end, traces, sizes, bench))
    for n, s in sizes.items():
        print(f"docs/img/{n}: {s / 1024:.0f} KiB")
    return 0


def screenshot(trace: str) -> bool:
    """docs/img/report.png: the heap-map part of `memsim report TRACE`, halfway through,
    as headless Chromium shows it (skipped, with a note, without playwright/chromium)."""
    import shutil
    import tempfile

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("no playwright: docs/img/report.png not redrawn", file=sys.stderr)
        return False
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium: docs/img/report.png not redrawn", file=sys.stderr)
        return False
    from memsim.viz.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        write_report(trace, out, list(DEFAULT_ALLOCATORS))
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = b.new_page(viewport={"width": 1040, "height": 800})
            page.goto(out.as_uri())
            page.evaluate("() => { const s = document.getElementById('slider'); "
                          "s.value = Math.floor(s.max / 2); "
                          "s.dispatchEvent(new Event('input')); }")
            box = page.locator("#heap").bounding_box()
            page.screenshot(path=str(IMG / "report.png"), full_page=True,
                            clip={"x": box["x"], "y": box["y"], "width": box["width"],
                                  "height": 720})
            b.close()
    return True


def page(trace: str, mid: dict, end: dict, traces: list[str], sizes: dict[str, int],
         bench: Path) -> str:
    allocs = ",".join(DEFAULT_ALLOCATORS)
    lines = [
        "# Gallery",
        "",
        "Pictures memsim draws of a simulation. Each one is computed from the same simulated "
        "state as the numbers (`memsim compare`, `memsim report`): nothing is drawn that the "
        "model did not do. They are regenerated by `scripts/make_gallery.py` (matplotlib: "
        "`pip install 'memsim[plot]'`); the commands below draw each one alone.",
        "",
        "## The heap map",
        "",
        f"`memsim plot {trace} --kind heapmap --at {mid['event']} -o heapmap.png`",
        "",
        "![heap map halfway](img/heapmap.png)",
        "",
        "The glibc model's main arena from its first chunk (malloc's own "
        "`tcache_perthread_struct`) to the end of top, wrapped in rows of equal bytes; each "
        "chunk in the colour of its state: in use, free in the tcache, a fastbin, the unsorted, "
        "a small or a large bin, top. Chunks in their own mappings (mmapped chunks) are drawn "
        "apart, below. The walk is `memsim.viz.heapstrip.heap_chunks` (the order of glibc's "
        "`do_check_malloc_state`).",
        "",
        f"After the last call (`memsim plot {trace} --kind heapmap -o heapmap-end.png`):",
        "",
        "![heap map at the end](img/heapmap-end.png)",
        "",
        "## The footprint over time",
        "",
        f"`memsim plot {trace} --kind footprint -o footprint-glibc.png`",
        "",
        "![footprint, glibc](img/footprint-glibc.png)",
        "",
        "The bytes the allocator holds (its footprint: the break above the heap's start plus "
        "its own mappings), stacked: live payload, overhead (headers, padding, rounding, "
        "metadata), free chunks (bins and caches), top, objects in their own mapping, and "
        "mapped bytes never touched; the line is the process's VmRSS (which also counts the "
        "program and its libraries), the dot the exact peak footprint (J&W #3/#4's "
        "point). The bands come from `memsim.metrics.footprint.breakdown` and add up to the "
        "footprint exactly.",
        "",
        f"The same trace through the binary buddy allocator, as SVG "
        f"(`memsim plot {trace} --kind footprint --allocator buddy -o footprint-buddy.svg`):",
        "",
        "![footprint, buddy](img/footprint-buddy.svg)",
        "",
        "## Comparing allocators",
        "",
        f"`memsim plot {' '.join(traces)} --kind compare -a {allocs} -o compare.png`",
        "",
        "![comparison](img/compare.png)",
        "",
        "Peak footprint, peak RSS (VmHWM) and utilization (peak live bytes / peak footprint, "
        "CS:APP's mdriver measure) of each allocator, one group of bars per trace.",
        "",
        "## The HTML report",
        "",
        f"`memsim report {trace} -o report.html` writes one self-contained page (inline CSS, "
        "script and SVG; no network): the summary, the comparison table and bars, the "
        "footprint of every allocator over time, and the heap map and bins of the glibc model "
        "with a time slider. Long traces are sampled (at most 100 heap snapshots and 400 "
        "footprint samples per allocator by default); the page says how many of how many "
        "calls it shows. Strings from the trace are escaped; a Content-Security-Policy admits "
        "only the page's own script.",
        "",
    ]
    if (IMG / "report.png").exists():
        lines += ["The heap-map part of the page, the slider halfway (headless Chromium):", "",
                  "![the report's heap map and bins](img/report.png)", ""]
    if bench.exists():
        b = json.loads(bench.read_text())
        lines += [
            "### Size and time (benchmarks/bench_report.py)",
            "",
            "| trace | calls | allocators | wall | CPU (all processes) | page | snapshots |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
            f"| `{b['trace']}` | {b['calls']:,} | {', '.join(b['allocators'])} | "
            f"{b['wall_seconds']} s | {b['cpu_seconds']} s | {b['bytes'] / 1e6:.2f} MB | "
            f"{b['snapshots']} |",
            "",
            f"On {b['cpus']} CPUs (load average {b['load_before'][0]} before the run, "
            f"{b['load_after'][0]} after; other work shared the machine), Python "
            f"{b['python']}. Targets: under 60 s and under 20 MB for a million calls. Per "
            "allocator (wall, in its worker): "
            + ", ".join(f"{a} {v['seconds']} s" for a, v in b["runs"].items()) + ".",
            "",
        ]
    lines += ["Image sizes: " + ", ".join(f"`{n}` {s / 1024:.0f} KiB" for n, s in sizes.items())
              + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
