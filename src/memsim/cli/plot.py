"""``memsim plot``: one picture of a simulation as PNG or SVG (matplotlib, optional extra).

A thin layer over :mod:`memsim.viz.plots`: ``--kind heapmap`` replays TRACE through the glibc
model to call ``--at`` (default: the end) and draws its heap; ``--kind footprint`` draws the
footprint of one allocator over time; ``--kind compare`` replays every TRACE through every
allocator of ``--allocators`` and draws bars side by side.
"""

from __future__ import annotations

import argparse
import os

from memsim.cli._common import UsageError

NAME = "plot"
HELP = "draw the heap map, the footprint over time or a comparison as PNG/SVG (needs matplotlib)"
DESCRIPTION = """\
Draw one picture of a simulation with matplotlib (install it with: pip install 'memsim[plot]').
The format follows the name given to -o: .png or .svg.

  --kind heapmap    the glibc model's heap after call --at (default: after the last call):
                    chunks coloured by state (in use, free by bin kind, top), mmapped
                    chunks apart
  --kind footprint  the footprint of --allocator over time: live, overhead, free, top,
                    mmapped and untouched bytes stacked, with the RSS line
  --kind compare    peak footprint, peak RSS and utilization of every --allocators, one
                    group of bars per TRACE

examples:
  memsim plot corpus/grep.trace.zst --kind heapmap --at 12000 -o heap.png
  memsim plot corpus/ls.trace.zst --kind footprint --allocator buddy -o ls.svg
  memsim plot corpus/grep.trace.zst corpus/make.trace.zst --kind compare -o cmp.png
"""

KINDS = ("heapmap", "footprint", "compare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace files")
    parser.add_argument("--kind", "-k", choices=KINDS, required=True, help="which picture")
    parser.add_argument("-o", "--output", metavar="FILE", required=True,
                        help="the picture to write: FILE.png or FILE.svg")
    parser.add_argument("--allocator", default="glibc", metavar="NAME",
                        help="the allocator of heapmap/footprint (default: glibc; heapmap "
                             "needs the glibc model)")
    parser.add_argument("--allocators", "-a", default=None, metavar="LIST",
                        help="allocators of --kind compare (default: "
                             "glibc,first-fit,buddy; 'all' for every one)")
    parser.add_argument("--at", type=int, default=None, metavar="CALL",
                        help="heapmap: the heap after this many calls (default: all)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="compare: worker processes (default: the number of CPUs)")


def run(args: argparse.Namespace) -> int:
    from memsim.alloc.base import get
    from memsim.cli.compare import _allocators
    from memsim.viz import plots
    from memsim.viz.report import DEFAULT_ALLOCATORS, run_one

    if not args.output.lower().endswith((".png", ".svg")):
        raise UsageError(f"-o {args.output}: the name must end in .png or .svg")
    for t in args.traces:
        if not os.path.isfile(t):
            reason = "is not a file" if os.path.exists(t) else "no such file"
            raise UsageError(f"{t}: {reason}")
    if args.kind != "compare" and len(args.traces) != 1:
        raise UsageError(f"--kind {args.kind} draws one TRACE, not {len(args.traces)}")
    if args.at is not None and (args.kind != "heapmap" or args.at < 1):
        raise UsageError("--at needs --kind heapmap and a call number of at least 1")
    plots.pyplot()                       # matplotlib missing: one line before any work
    if args.kind == "compare":
        from memsim.metrics.compare import compare

        allocs = _allocators(args.allocators) if args.allocators else list(DEFAULT_ALLOCATORS)
        recs = [r.as_dict() for r in compare(args.traces, allocs, jobs=args.jobs)]
        fig = plots.compare_figure(recs)
    else:
        get(args.allocator)
        trace = args.traces[0]
        if args.kind == "heapmap":
            r = run_one(trace, args.allocator, heapmap=True, points=2, snapshots=0,
                        max_runs=200_000, stop_at=args.at)
            if r["snapshots"] is None:
                raise UsageError(f"--kind heapmap: the {args.allocator} model has no chunk "
                                 "walk (use --allocator glibc)")
            if r["error"] or not r["snapshots"]:
                raise UsageError(f"{trace}: {r['error'] or 'no calls'}")
            snap = r["snapshots"][-1]
            fig = plots.heapmap_figure(snap, title=f"{os.path.basename(trace)} after "
                                       f"{snap['event']:,} calls ({args.allocator})")
        else:
            r = run_one(trace, args.allocator, heapmap=False)
            fig = plots.footprint_figure(r)
    plots.save(fig, args.output)
    print(args.output)
    return 0
