"""``memsim report``: one self-contained HTML page about a trace and several allocators.

A thin layer over :func:`memsim.viz.report.write_report`: parse the options, replay the trace
through each allocator (worker processes), write the page. The page needs nothing else to
be read: inline CSS, script and SVG, no network.
"""

from __future__ import annotations

import argparse
import os
import sys

from memsim.cli._common import UsageError

NAME = "report"
HELP = "one self-contained HTML report: summary, charts, comparison, heap map with a slider"
DESCRIPTION = """\
Replay TRACE through every allocator of --allocators and write ONE HTML file that works
offline (no network, no external files): the trace's summary, a comparison table and bar
charts (utilization, J&W fragmentation, peak footprint, RSS), the footprint over time of
each allocator (live, overhead, free, top, mmapped, with the RSS line), and the glibc model's
heap map and bins with a time slider that scrubs through the run. Long traces are sampled:
the page says how many snapshots of how many calls it shows.

examples:
  memsim report corpus/grep.trace.zst -o grep.html
  memsim report corpus/ls.trace.zst --allocators glibc,buddy,segfit -o ls.html
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="a trace file (memsim-trace or mtrace)")
    parser.add_argument("--allocators", "-a", default=None, metavar="LIST",
                        help="comma-separated allocator names, or 'all' (default: "
                             "glibc,first-fit,buddy)")
    parser.add_argument("-o", "--output", metavar="FILE", default="report.html",
                        help="the HTML file to write (default: report.html)")
    parser.add_argument("--snapshots", type=int, default=100, metavar="N",
                        help="heap-map snapshots kept at most (default: 100)")
    parser.add_argument("--points", type=int, default=400, metavar="N",
                        help="footprint samples per allocator at most (default: 400)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--no-touch", dest="touch", action="store_false",
                        help="do not assume the program writes what it allocates")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    from memsim.cli.compare import _allocators
    from memsim.viz.report import DEFAULT_ALLOCATORS, write_report

    if args.trace == "-":
        raise UsageError("report reads the trace once per allocator: give a file, not '-'")
    if not os.path.isfile(args.trace):
        reason = "is not a file" if os.path.exists(args.trace) else "no such file"
        raise UsageError(f"{args.trace}: {reason}")
    if args.snapshots < 2 or args.points < 2:
        raise UsageError("--snapshots and --points must be at least 2")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    allocs = _allocators(args.allocators) if args.allocators else list(DEFAULT_ALLOCATORS)
    data = write_report(args.trace, args.output, allocs, jobs=args.jobs,
                        snapshots=args.snapshots, points=args.points, touch=args.touch)
    if not args.quiet:
        calls = max((r["calls"] for r in data["runs"]), default=0)
        size = os.path.getsize(args.output)
        print(f"{args.output}: {calls:,} calls, {len(data['runs'])} allocators, "
              f"{size / 1e6:.1f} MB", file=sys.stdout)
    failed = [r for r in data["runs"] if r["error"]]
    for r in failed:
        print(f"memsim: warning: {r['allocator']}: {r['error']}", file=sys.stderr)
    return 1 if len(failed) == len(data["runs"]) else 0     # the page shows what happened
