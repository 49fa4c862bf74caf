"""``memsim check``: replay a trace and compare every returned pointer with the recording.

A thin layer over :func:`memsim.trace.replay.check`. Exit status 0 only when every call
matched (100%), 1 otherwise (and for a trace that cannot be read).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from memsim.cli._common import add_output_arguments, make_console, output_mode, print_json
from memsim.cli.replay import add_allocator_arguments, allocator_options, progress_callback

if TYPE_CHECKING:
    from memsim.trace.replay import CheckResult

NAME = "check"
HELP = "replay a trace and check the simulated allocator returns the recorded addresses"
DESCRIPTION = """\
Replay TRACE (recorded by 'memsim record') through the simulated allocator, with the heap at
the recorded brk0, and compare each pointer the model returns with the one the real glibc
returned: a heap chunk must have the same address; a chunk the real glibc mmapped (outside
its brk heap) must be mmapped by the model too (mmap addresses depend on the libraries the
real program mapped, so they are not compared); NULL must be NULL. Frees return nothing and
are not counted. Freed and reallocated objects are followed by identity, so after a
divergence the replay goes on acting on the right objects.

At the first divergence the command shows the calls before it and the allocator's bins at
that point, and stops; --keep-going replays to the end and counts every divergence.

Exit status: 0 when every compared call matched, 1 otherwise.

examples:
  memsim check ls.trace
  memsim check corpus/sort.trace.zst --keep-going
  memsim check app.trace --json | jq .share
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="the trace file ('-' for stdin)")
    add_allocator_arguments(parser)
    parser.add_argument("-k", "--keep-going", action="store_true",
                        help="go on past divergences and count them all")
    parser.add_argument("--context", type=int, default=10, metavar="N",
                        help="calls to show before the first divergence (default: 10)")
    parser.add_argument("--touch", action="store_true",
                        help="also simulate the program writing what it allocates (slower; "
                             "addresses do not depend on it)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip malformed or inconsistent lines (counted; the check then "
                             "fails)")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memsim.trace.replay import check

    if args.context < 0:
        from memsim.cli._common import UsageError

        raise UsageError("--context must be 0 or more")
    options = allocator_options(args)
    mode = output_mode(args)
    with progress_callback(f"checking {args.trace}") as cb:
        result = check(args.trace, args.allocator, options=options, keep_going=args.keep_going,
                       skip_bad=args.skip_bad, touch=args.touch, context=args.context,
                       progress=cb)
    if mode == "json":
        print_json(result.as_dict())
    elif mode == "rich":
        render_rich(result)
    else:
        print("\n".join(report_lines(result)))
    if result.replay.skip_report:
        print(f"memsim check: {result.replay.skip_report}", file=sys.stderr)
    return 0 if result.ok else 1


def _n(v: int) -> str:
    return f"{v:,}"


def headline(r: CheckResult) -> str:
    rep = r.replay
    scope = "before the first divergence" if r.stopped else "in the whole trace"
    return (f"{rep.trace}: the {rep.allocator} model returned what was recorded for "
            f"{_n(r.matched)} of {_n(r.compared)} calls that return a pointer "
            f"({100 * r.share:.2f}%) {scope}: "
            f"{_n(r.heap_matched)} heap addresses, {_n(r.mmap_matched)} mmapped chunks, "
            f"{_n(r.null_matched)} NULL; {_n(rep.calls)} calls replayed")


def report_lines(r: CheckResult) -> list[str]:
    """The plain-text report."""
    lines = [headline(r)]
    f = r.first
    if f is not None:
        lines.append("")
        lines.append(f"first divergence at {f.describe()}")
        if f.context:
            lines.append(f"the {len(f.context)} calls before it (line, recorded call, "
                         f"simulated result):")
            lines.extend(f"  {c}" for c in f.context)
        lines.append(f"  {f.lineno:>9}  {f.line:<40} sim {f.got:#x}  <-- differs")
        lines.append(f"the allocator {f.heap_when}:")
        lines.extend(f"  {h}" for h in f.heap.splitlines())
        if r.stopped:
            lines.append("")
            lines.append("stopped at the first divergence (--keep-going counts them all)")
        elif r.mismatched > 1:
            lines.append("")
            lines.append(f"{_n(r.mismatched)} divergences; the first "
                         f"{len(r.divergences)}:")
            lines.extend(f"  line {n}: {t} ({k})" for n, t, k in r.divergences)
    for note in r.replay.notes:
        lines.append(f"note: {note}")
    return lines


def render_rich(r: CheckResult) -> None:
    from rich.markup import escape

    console = make_console()
    style = "bold green" if r.ok else "bold red"
    console.print(f"[{style}]{escape(headline(r))}[/]")
    rest = report_lines(r)[1:]
    for line in rest:
        console.print(escape(line), highlight=False)
