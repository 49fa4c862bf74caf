"""``memsim convert``: turn an mtrace log (or a memsim trace) into a memsim-trace v1 file."""

from __future__ import annotations

import argparse
import sys

NAME = "convert"
HELP = "convert a glibc mtrace log (or recompress a trace) to memsim-trace v1"
DESCRIPTION = """\
Read a glibc mtrace log (MALLOC_TRACE=file with a program that calls mtrace()) or a
memsim-trace v1 file, plain or compressed (gzip, xz, zstd, bzip2: detected from the
content; - is stdin), check it (no free of an address that is not live, no double free)
and write it as memsim-trace v1, compressed when OUT ends in .zst, .gz, .xz or .bz2
(- is stdout).

mtrace logs the calloc and memalign family as plain mallocs of the total size, and has no
thread ids and no brk0: those become 'm' lines without t=. Bad lines stop the conversion
with the file, line number and line, unless --skip-bad is given: then each is counted and
reported at the end.

examples:
  memsim convert mtrace.log prog.trace.zst
  zcat big.trace.gz | memsim convert - big.trace.zst
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an mtrace log or a memsim trace (- for stdin)")
    parser.add_argument("output", help="the memsim-trace v1 file to write (- for stdout)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad lines (counted and reported) instead of stopping")
    parser.add_argument("--level", type=int, default=None, metavar="N",
                        help="compression level of the output")


def run(args: argparse.Namespace) -> int:
    from memsim.trace import open_trace
    from memsim.trace.format import TraceWriter

    with open_trace(args.input, skip_bad=args.skip_bad) as reader:
        meta: dict[str, object] = dict(reader.meta)
        if reader.brk0 is not None:
            meta["brk0"] = reader.brk0
        meta.setdefault("source", args.input)
        with TraceWriter(args.output, meta, level=args.level) as writer:
            writer.write_calls(reader)
            n = writer.calls
    where = "stdout" if args.output == "-" else args.output
    print(f"memsim convert: {n:,} call{'s' if n != 1 else ''} written to {where}",
          file=sys.stderr)
    report = reader.skip_report()
    if report:
        print(f"memsim convert: {report}", file=sys.stderr)
    return 0
