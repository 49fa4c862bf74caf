"""``memsim compare``: several traces through several allocators, one table of metrics.

A thin layer over :func:`memsim.metrics.compare.compare`: parse the options, run the pairs
(on every CPU by default), print a table (traces as rows, allocators side by side), and write
the records (CSV or JSON) and the time series on request. The schema is in docs/metrics.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from memsim.cli._common import (
    UsageError,
    add_output_arguments,
    make_console,
    output_mode,
    stdout_is_terminal,
)

if TYPE_CHECKING:
    from memsim.metrics.compare import RunMetrics

NAME = "compare"
HELP = "replay traces through several allocators; fragmentation, footprint, RSS side by side"
DESCRIPTION = """\
Replay every TRACE through every allocator of --allocators and measure each run:
Johnstone & Wilson's fragmentation #1-#4, CS:APP mdriver's utilization (peak live / peak
footprint), the footprint cut into payload, headers, padding, rounding, free, top ... at the
peak and at the end, RSS and VSZ of the simulated process, page faults and system calls.

The table has one row per trace and one column per allocator, showing --metric
(default: utilization). --format csv|json writes every metric of every run (to -o FILE, or
to stdout instead of the table); --time-series FILE.csv|FILE.json writes the sampled series.
Runs go to worker processes, one per CPU (--jobs); the output is the same whatever --jobs.

examples:
  memsim compare corpus/ls.trace.zst corpus/grep.trace.zst --allocators glibc,first-fit,buddy
  memsim compare corpus/*.trace.zst --allocators all --metric f4
  memsim compare t1.trace t2.trace --format json -o results.json --time-series series.csv
"""

#: One of each family: glibc, sequential fits, segregated fits, buddy, size classes.
DEFAULT_ALLOCATORS = "glibc,first-fit,best-fit,next-fit,segfit,buddy,simple-seg,sizeclass"

_PERCENT = {"utilization", "f1", "f2", "f3", "f4"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("traces", nargs="*", metavar="TRACE", help="trace files")
    parser.add_argument("--allocators", "-a", default=DEFAULT_ALLOCATORS, metavar="LIST",
                        help="comma-separated allocator names, or 'all' (default: "
                             f"{DEFAULT_ALLOCATORS}; see 'memsim allocators')")
    parser.add_argument("--metric", "-m", default="utilization", metavar="NAME",
                        help="the metric the table shows (default: utilization; "
                             "'--metric list' lists them)")
    parser.add_argument("--format", choices=("csv", "json"), default=None,
                        help="write every metric of every run as CSV or JSON")
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="where --format writes (default: stdout, instead of the table)")
    parser.add_argument("--time-series", metavar="FILE", default=None,
                        help="write the sampled time series (.csv or .json by the name)")
    parser.add_argument("--every", type=int, default=1024, metavar="N",
                        help="sample every N calls at first (default: 1024; the interval "
                             "doubles to keep at most --max-points samples)")
    parser.add_argument("--max-points", type=int, default=256, metavar="N",
                        help="regular samples kept per run (default: 256)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--no-touch", dest="touch", action="store_false",
                        help="do not assume the program writes what it allocates")
    parser.add_argument("--timing", action="store_true",
                        help="add each run's wall time (seconds) to the outputs")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_output_arguments(parser)


def _allocators(text: str) -> list[str]:
    from memsim.alloc.base import available, get

    if text.strip() == "all":
        return [n for n, _ in available()]
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise UsageError("--allocators: no allocator named")
    seen: list[str] = []
    for a in names:
        get(a)                                  # ConfigError: unknown allocator (one line)
        if a not in seen:
            seen.append(a)
    return seen


def _check_args(args: argparse.Namespace) -> None:
    from memsim.metrics.compare import METRICS

    if not args.traces:
        raise UsageError("no TRACE given (memsim compare TRACE... --allocators LIST)")
    if args.metric not in METRICS:
        raise UsageError(f"unknown metric {args.metric!r} (known: {', '.join(METRICS)})")
    if args.output is not None and args.format is None:
        raise UsageError("-o/--output needs --format csv or --format json")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    if args.every < 1 or args.max_points < 2:
        raise UsageError("--every must be at least 1 and --max-points at least 2")
    if args.time_series is not None and not args.time_series.endswith((".csv", ".json")):
        raise UsageError(f"--time-series {args.time_series}: the name must end in .csv or "
                         ".json")
    for t in args.traces:
        if t == "-":
            raise UsageError("compare reads each trace several times: give files, not '-'")
        if not os.path.isfile(t):
            reason = "is not a file" if os.path.exists(t) else "no such file"
            raise UsageError(f"{t}: {reason}")


def _cell(metric: str, v: Any) -> str:
    if v is None:
        return "-"
    if metric in _PERCENT:
        return f"{v * 100:.1f}%"
    if isinstance(v, float):
        return f"{v:.3f}"
    return f"{v:,}"


def _table_rows(records: list[RunMetrics], traces: list[str], allocators: list[str],
                metric: str) -> list[list[str]]:
    by = {(r.trace, r.allocator): r for r in records}
    rows = []
    for t in traces:
        row = [os.path.basename(t)]
        for a in allocators:
            r = by[(os.fspath(t), a)]
            row.append("error" if r.error is not None else _cell(metric, r.metric(metric)))
        rows.append(row)
    return rows


def _print_table(rows: list[list[str]], allocators: list[str], metric: str,
                 mode: str) -> None:
    from memsim.metrics.compare import METRICS

    title = f"{metric}: {METRICS[metric]}"
    header = ["trace"] + allocators
    if mode == "rich":
        from rich.table import Table

        table = Table(title=title)
        table.add_column("trace")
        for a in allocators:
            table.add_column(a, justify="right")
        for row in rows:
            table.add_row(*row)
        make_console().print(table)
        return
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    out = sys.stdout
    out.write(title + "\n")
    for row in [header, *rows]:
        cells = [c.ljust(w) if i == 0 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.write("  ".join(cells).rstrip() + "\n")


def _write(path: str | None, text: str) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def run(args: argparse.Namespace) -> int:
    if args.metric == "list":
        from memsim.metrics.compare import METRICS

        for name, text in METRICS.items():
            print(f"{name:24s} {text}")
        return 0
    _check_args(args)
    allocators = _allocators(args.allocators)
    from memsim.metrics import compare as cmp
    from memsim.metrics import timeline

    traces = list(args.traces)
    total = len(traces) * len(allocators)
    show = not args.quiet and stdout_is_terminal(sys.stderr)
    kw: dict[str, Any] = {"touch": args.touch, "every": args.every,
                          "max_points": args.max_points}
    if show:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(file=sys.stderr), transient=True) as bar:
            task = bar.add_task(f"{total} runs", total=total)
            records = cmp.compare(traces, allocators, args.jobs,
                                  on_done=lambda r: bar.advance(task), **kw)
    else:
        records = cmp.compare(traces, allocators, args.jobs, **kw)

    if args.format is not None:
        text = (cmp.to_json(records, args.timing) if args.format == "json"
                else cmp.to_csv(records, args.timing))
        _write(args.output, text)
    if args.time_series is not None:
        series = [(r.trace, r.allocator, r.series) for r in records]
        _write(args.time_series, timeline.to_json(series) if args.time_series.endswith(".json")
               else timeline.to_csv(series))
    if args.format is None or args.output not in (None, "-"):
        mode = output_mode(args)
        if mode == "json":
            _write(None, cmp.to_json(records, args.timing))
        else:
            _print_table(_table_rows(records, traces, allocators, args.metric), allocators,
                         args.metric, mode)
            if args.timing:
                secs = sum(r.seconds or 0.0 for r in records)
                print(f"{total} runs, {secs:.1f} s of replay")
    failed = [r for r in records if r.error is not None]
    for r in failed:
        print(f"memsim: error: {r.trace} with {r.allocator}: {r.error}", file=sys.stderr)
    return 1 if failed else 0
