"""How long `memsim report` takes on the largest corpus trace, and how big the page is.

The target (issue 5): a trace of a million calls gives a report in under a minute, in a
file under 20 MB. Timed here: :func:`memsim.viz.report.write_report` with the default
allocators (glibc with its heap snapshots, and one allocator of each other family), worker
processes on every CPU, exactly as ``memsim report TRACE -o FILE`` runs it. Recorded: wall
time, CPU time (this process and its workers: steadier when other work shares the CPUs),
the machine's load average before and after, the page's size, the number of heap snapshots
and footprint samples it embeds, and each allocator's own run time.

The trace: --trace, else the corpus trace with the most lines (corpus/*.trace.zst).

Run:  /work/venv/bin/python benchmarks/bench_report.py [--trace T] [--allocators LIST]
Writes benchmarks/results/bench_report.json and prints a Markdown table (docs/gallery.md
quotes it). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memsim.viz.report import DEFAULT_ALLOCATORS, count_lines, write_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_SECONDS = 60.0
TARGET_BYTES = 20_000_000


def largest_trace() -> Path:
    traces = sorted((ROOT / "corpus").glob("*.trace.zst"))
    if not traces:
        sys.exit("bench_report: no corpus/*.trace.zst (give --trace)")
    return max(traces, key=count_lines)


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", type=Path, default=None)
    ap.add_argument("--allocators", default=",".join(DEFAULT_ALLOCATORS))
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the page here")
    args = ap.parse_args(argv)
    trace = args.trace or largest_trace()
    allocs = [a for a in args.allocators.split(",") if a]
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "report.html"
        c0, t0 = _cpu(), time.perf_counter()
        data = write_report(trace, out, allocs, jobs=args.jobs)
        wall = time.perf_counter() - t0
        cpu = _cpu() - c0
        size = out.stat().st_size
    calls = max(r["calls"] for r in data["runs"])
    glibc = next((r for r in data["runs"] if r["snapshots"]), None)
    res: dict[str, Any] = {
        "trace": os.path.relpath(trace, ROOT), "calls": calls, "allocators": allocs,
        "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "bytes": size,
        "snapshots": len(glibc["snapshots"]) if glibc else 0,
        "samples_per_allocator": len(data["runs"][0]["series"]),
        "runs": {r["allocator"]: {"seconds": round(r["seconds"], 1), "error": r["error"]}
                 for r in data["runs"]},
        "python": platform.python_version(),
        "ok_time": wall < TARGET_SECONDS, "ok_size": size < TARGET_BYTES,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_report.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"| trace | calls | allocators | wall | CPU (all processes) | page | snapshots |\n"
          f"| --- | ---: | --- | ---: | ---: | ---: | ---: |\n"
          f"| `{res['trace']}` | {calls:,} | {', '.join(allocs)} | {wall:.1f} s | {cpu:.1f} s "
          f"| {size / 1e6:.2f} MB | {res['snapshots']} |")
    print(f"\n{res['cpus']} CPUs, load average {load0[0]:.1f} before, "
          f"{res['load_after'][0]:.1f} after; per allocator (wall, in its worker): "
          + ", ".join(f"{a} {v['seconds']} s" for a, v in res["runs"].items()))
    ok = res["ok_time"] and res["ok_size"]
    print("targets (< 60 s, < 20 MB):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
