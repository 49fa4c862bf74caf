"""``memsim malloclab``: the CS:APP Malloc Lab driver's utilization report, simulated."""

from __future__ import annotations

import argparse
import os
from typing import Any

from memsim.cli._common import UsageError, add_output_arguments, output_mode, print_json, size_arg

NAME = "malloclab"
HELP = "replay CS:APP Malloc Lab traces (.rep) and report mdriver's space utilization"
DESCRIPTION = """\
Replay Malloc Lab traces (.rep, the classic CS:APP handout's or the CMU 64-bit
driver's; memsim traces and mtrace logs work too) on a simulated allocator, each on a
fresh process, and print what mdriver -v prints: per trace whether the allocator's answers
were correct (non-NULL, aligned, inside the heap, not overlapping a live block), the
utilization (peak requested payload / heap size, as a rounded percent), the number of
requests, then the mean over all traces and the utilization part of the perf index.
memsim simulates no time, so there are no secs and Kops columns.

A directory stands for the traces mdriver runs by default (config.h: amptjp-bal,
cccp-bal, cp-decl-bal, expr-bal, coalescing-bal, random-bal, random2-bal, binary-bal,
binary2-bal, realloc-bal, realloc2-bal) that it holds, in that order; --all takes every
.rep file in it instead. The traces are copyrighted by Bryant and O'Hallaron and not
shipped with memsim; they are in the lab's public handouts (see docs/textbooks.md).

The heap is memlib's: it starts at the process's break and mem_sbrk fails past
--max-heap (20 MiB, the lab's MAX_HEAP) for allocators with a max_heap option (csapp-*).

examples:
  memsim malloclab ~/malloclab/traces
  memsim malloclab traces/ --allocator csapp-next-fit
  memsim malloclab short1-bal.rep --allocator best-fit --json
"""

#: config.h DEFAULT_TRACEFILES of the classic handout, in mdriver's order
DEFAULT_TRACEFILES = (
    "amptjp-bal.rep", "cccp-bal.rep", "cp-decl-bal.rep", "expr-bal.rep", "coalescing-bal.rep",
    "random-bal.rep", "random2-bal.rep", "binary-bal.rep", "binary2-bal.rep", "realloc-bal.rep",
    "realloc2-bal.rep",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="DIR_OR_FILE",
                        help="trace files, or directories of .rep traces")
    parser.add_argument("--allocator", default="csapp-first-fit", metavar="NAME",
                        help="the allocator (default csapp-first-fit; see memsim allocators)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an allocator option (repeatable), e.g. --option wsize=8")
    parser.add_argument("--max-heap", type=size_arg, default=20 * (1 << 20), metavar="SIZE",
                        help="memlib's MAX_HEAP for allocators that take max_heap "
                             "(default 20M, as the lab's config.h)")
    parser.add_argument("--alignment", type=int, default=None, metavar="BYTES",
                        help="the payload alignment checked (default: mdriver's, 8 for "
                             "classic traces, 16 for CMU ones)")
    parser.add_argument("--variant", choices=("auto", "classic", "cmu", "short"), default="auto",
                        help="the .rep header layout (default: detected)")
    parser.add_argument("--all", action="store_true",
                        help="for a directory, every .rep file instead of mdriver's default set")
    add_output_arguments(parser)


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text, 0)
    except ValueError:
        return text


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["wsize=8", "fit=next"]`` -> ``{"wsize": 8, "fit": "next"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--option {item!r}: use KEY=VALUE")
        out[key.strip()] = _value(value.strip())
    return out


def trace_files(paths: list[str], every: bool = False) -> list[str]:
    """The trace files that ``paths`` stand for (module DESCRIPTION)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(".rep"))
            if not every:
                chosen = [n for n in DEFAULT_TRACEFILES if n in names]
                names = chosen or names
            if not names:
                raise UsageError(f"{path}: no .rep traces in this directory")
            files.extend(os.path.join(path, n) for n in names)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise OSError(2, "No such file or directory", path)
    return files


def run_one(path: str, index: int, allocator: str, options: dict[str, Any],
            alignment: int | None, variant: str) -> Any:
    """Replay one trace on a fresh process; a :class:`TraceUtil`."""
    from memsim.alloc import create
    from memsim.metrics.utilization import Footprint, replay_util
    from memsim.process import Process
    from memsim.trace import open_trace
    from memsim.trace.rep import RepReader, looks_like_rep

    with open(path, "rb") as fh:
        head = fh.read(64)
    if looks_like_rep(head):
        reader: Any = RepReader(path, variant=variant)
        cmu = reader.header.variant == "cmu"
    else:
        reader = open_trace(path)
        cmu = False
    align = alignment if alignment is not None else (16 if cmu else 8)
    opts = dict(options)
    proc = Process()
    fp = Footprint(proc.mm)
    a = create(allocator, fp, opts)                       # type: ignore[arg-type]
    with reader:
        res = replay_util(reader, a, fp, name=os.path.basename(path), alignment=align,
                          index=index)
    if isinstance(reader, RepReader):
        res.ops = reader.header.num_ops if res.valid else res.ops
        res.weight = reader.header.weight
        res.counts = not cmu or res.weight in (1, 2)     # CMU: 0 ignore, 3 perf only
        if cmu and res.valid and reader.header.data_bytes is not None:
            res.extra["data_bytes"] = reader.header.data_bytes
    if res.valid:
        a.check()
    return res


def run(args: argparse.Namespace) -> int:
    from memsim.alloc import get
    from memsim.metrics.utilization import average_util, format_report, perf_index

    options = parse_options(args.option)
    cls = get(args.allocator)
    defaults = getattr(cls, "defaults", {})
    if "max_heap" in defaults and "max_heap" not in options:
        options["max_heap"] = args.max_heap
    files = trace_files(args.paths, args.all)
    results = [run_one(f, i, args.allocator, options, args.alignment, args.variant)
               for i, f in enumerate(files)]
    mode = output_mode(args)
    if mode == "json":
        avg = average_util(results)
        p1, _, _ = perf_index(avg)
        print_json({"allocator": args.allocator, "options": options,
                    "traces": [r.as_dict() for r in results], "average_util": avg,
                    "perf_index_util_points": p1,
                    "valid": all(r.valid for r in results)})
    else:
        print(format_report(results, title=f"{args.allocator} (memsim)"), end="")
    return 0 if all(r.valid for r in results) else 1
