"""``memsim convert``: turn an mtrace log (or a memsim trace) into a memsim-trace v1 file."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

NAME = "convert"
HELP = "convert mtrace logs, Malloc Lab .rep traces, OSTEP op lists to memsim-trace v1 (or .rep)"
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

Malloc Lab .rep traces (classic or CMU header) and OSTEP malloc.py op lists
(+10,-0,+20; --from ostep) name blocks by id: each id becomes a synthetic pointer
2**44 + 16*id (docs/textbooks.md). --to rep writes a .rep trace from any input: each
returned block gets the next id, calloc/memalign become 'a' with the total size.

examples:
  memsim convert mtrace.log prog.trace.zst
  memsim convert amptjp-bal.rep amptjp.trace
  memsim convert --from ostep ops.txt ops.trace
  memsim convert prog.trace.zst prog.rep --to rep
  zcat big.trace.gz | memsim convert - big.trace.zst
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an mtrace log or a memsim trace (- for stdin)")
    parser.add_argument("output", help="the memsim-trace v1 file to write (- for stdout)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad lines (counted and reported) instead of stopping")
    parser.add_argument("--level", type=int, default=None, metavar="N",
                        help="compression level of the output")
    parser.add_argument("--from", dest="from_format", default=None,
                        choices=("memsim", "mtrace", "rep", "ostep"),
                        help="the input format (default: detected; .rep files by their name "
                             "or their numeric header; ostep op lists need --from ostep)")
    parser.add_argument("--to", dest="to_format", default="memsim", choices=("memsim", "rep"),
                        help="the output format: memsim-trace v1 (default) or a Malloc Lab "
                             ".rep trace")
    parser.add_argument("--rep-variant", default=None, choices=("classic", "cmu"),
                        help=".rep header layout: of the input (default: detected) and of "
                             "the output (default classic)")


def _open_input(args: argparse.Namespace) -> Any:
    """The reader for ``args.input`` by ``--from`` (or detected): memsim-trace v1 and
    mtrace through open_trace (as before), .rep and OSTEP op lists by their readers."""
    from memsim.errors import TraceError
    from memsim.trace import open_trace
    from memsim.trace.ostep_ops import OstepOpsReader
    from memsim.trace.rep import RepReader, looks_like_rep

    fmt = args.from_format
    if fmt is None and args.input != "-":
        head = b""
        if os.path.isfile(args.input):
            with open(args.input, "rb") as fh:
                head = fh.read(256)
        if args.input.endswith(".rep") or looks_like_rep(head):
            fmt = "rep"
    if fmt == "rep":
        return RepReader(args.input, variant=args.rep_variant or "auto", skip_bad=args.skip_bad)
    if fmt == "ostep":
        return OstepOpsReader(args.input, skip_bad=args.skip_bad)
    reader = open_trace(args.input, skip_bad=args.skip_bad)
    kind = "mtrace" if reader.meta.get("format") == "mtrace" else "memsim"
    if fmt is not None and fmt != kind:
        reader.close()
        raise TraceError(f"this is a {kind} trace, not {fmt} (drop --from to detect it)",
                         args.input)
    return reader


def run(args: argparse.Namespace) -> int:
    from memsim.trace.format import TraceWriter

    if args.to_format == "rep":
        from memsim.trace.rep import write_rep

        with _open_input(args) as reader:
            n = write_rep(args.output, reader, variant=args.rep_variant or "classic")
        where = "stdout" if args.output == "-" else args.output
        print(f"memsim convert: {n:,} request{'s' if n != 1 else ''} written to {where}",
              file=sys.stderr)
        report = reader.skip_report()
        if report:
            print(f"memsim convert: {report}", file=sys.stderr)
        return 0
    with _open_input(args) as reader:
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
