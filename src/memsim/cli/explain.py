"""``memsim explain``: the story of each call of a trace, across allocator, kernel and pages.

A thin layer over :func:`memsim.viz.explain.explain`: parse the window, print one paragraph
a call (rich on a terminal, plain text in a pipe) or one JSON document.
"""

from __future__ import annotations

import argparse
import sys

from memsim.cli._common import add_output_arguments, make_console, output_mode

NAME = "explain"
HELP = "tell, call by call, what malloc, the kernel and the page tables did"
DESCRIPTION = """\
Replay TRACE through the glibc 2.36 model (as 'memsim replay' does) and tell, for each call
in the window, in one paragraph: which bin was searched and whether the fit was exact or the
chunk split (and where the remainder went); why top was extended and the brk or mmap call
that did it; how the kernel placed the break and mapped the pages lazily; which page faults
the stores took and how RssAnon changed. Calls before --from are replayed without being
explained. Everything is read from the simulation: the allocator's state before and after
the call, the system calls it made, the page-table counters around every store.

--json prints one record per call: op, args, result, the allocator path ('tcache hit',
'fastbin', 'smallbin exact', 'unsorted exact', 'split from <bin>', 'top', 'sysmalloc brk',
'mmap', 'tcache put', 'merged into top', 'munmap', ...), the syscalls (strace notation,
break and VMA before and after), the faults, the RssAnon change, and the paragraph.

examples:
  memsim explain ls.trace --to 20
  memsim explain app.trace --from 1000 --to 1010 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="the trace file ('-' for stdin)")
    parser.add_argument("--from", dest="start", type=int, default=1, metavar="N",
                        help="first call to explain (1-based; default 1)")
    parser.add_argument("--to", dest="end", type=int, default=None, metavar="M",
                        help="last call to explain (default: the end of the trace)")
    parser.add_argument("--no-touch", action="store_true",
                        help="do not assume the program writes the bytes it allocates")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable the allocator reads (GLIBC_TUNABLES, "
                             "MALLOC_TOP_PAD_, ...); repeatable")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip malformed or inconsistent trace lines instead of stopping")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memsim.cli._common import UsageError, print_json
    from memsim.cli.replay import allocator_options
    from memsim.viz.explain import explain, write_stories

    if args.start < 1:
        raise UsageError(f"--from must be at least 1, not {args.start}")
    if args.end is not None and args.end < args.start:
        raise UsageError(f"--to ({args.end}) is before --from ({args.start})")
    stories = explain(args.trace, args.start, args.end, touch=not args.no_touch,
                      options=allocator_options(args), skip_bad=args.skip_bad)
    mode = output_mode(args)
    if mode == "json":
        records = [s.as_dict() for s in stories]
        print_json({"trace": args.trace, "from": args.start, "to": args.end,
                    "calls": records})
        return 0
    if mode == "plain":
        n = write_stories(stories, sys.stdout)
    else:
        from rich.text import Text

        from memsim.viz.explain import LAYER_STYLES, paragraph_parts

        console = make_console()
        legend = Text("legend: ", style="dim")
        for layer, style in LAYER_STYLES.items():
            legend.append(layer, style=style)
            legend.append("  ")
        console.print(legend)
        n = 0
        for s in stories:
            head = Text(f"#{s.index} ", style="dim")
            head.append(s.call, style="bold")
            head.append(f"  [{s.path}]", style="cyan")
            console.print(head)
            body = Text()
            for layer, sentence in paragraph_parts(s):
                if body:
                    body.append(" ")
                body.append(sentence, style=LAYER_STYLES[layer])
            console.print(body)
            console.print()
            n += 1
    if n == 0:
        print(f"{args.trace}: no call in the window {args.start}..{args.end or 'end'}",
              file=sys.stderr)
    return 0
