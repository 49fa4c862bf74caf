"""``memsim view``: the heap, the bins and the address space after N calls of a trace.

A thin layer over :mod:`memsim.viz.heapstrip`, :mod:`memsim.viz.bins` and
:mod:`memsim.viz.maps` on the state :func:`memsim.viz.explain.replay_to` replays to.
"""

from __future__ import annotations

import argparse
import sys

from memsim.cli._common import add_output_arguments, make_console, output_mode

NAME = "view"
HELP = "draw the heap strip, the bins (as pwndbg) and the address space after N calls"
DESCRIPTION = """\
Replay the first N calls of TRACE through the glibc 2.36 model (all of them without --at) and
draw the state: --heap the heap as a strip of chunks (in use, tcache, fastbin, unsorted,
small, large, top) with a table of chunks; --bins the bins as pwndbg's 'bins' prints them
(tcachebins, fastbins, unsortedbin, smallbins, largebins with counts and chunk addresses);
--maps the address space as /proc/PID/maps with each VMA's size and RSS, coloured by kind.
Without any of the three, all are drawn. Colours on a terminal; --plain for text.

examples:
  memsim view ls.trace --at 100 --bins
  memsim view app.trace --heap --limit 200 --plain
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="the trace file ('-' for stdin)")
    parser.add_argument("--at", type=int, default=None, metavar="N",
                        help="replay the first N calls (default: the whole trace)")
    parser.add_argument("--heap", action="store_true", help="the heap strip and its chunks")
    parser.add_argument("--bins", action="store_true", help="the bins, as pwndbg prints them")
    parser.add_argument("--maps", action="store_true", help="the VMAs with size and RSS")
    parser.add_argument("--limit", type=int, default=40, metavar="ROWS",
                        help="chunks listed under the heap strip (default 40)")
    parser.add_argument("--no-touch", action="store_true",
                        help="do not assume the program writes the bytes it allocates")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable the allocator reads; repeatable")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memsim.cli._common import UsageError, print_json
    from memsim.cli.replay import allocator_options
    from memsim.viz import bins, heapstrip, maps
    from memsim.viz.explain import replay_to

    if args.at is not None and args.at < 0:
        raise UsageError(f"--at must be 0 or more, not {args.at}")
    if args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {args.limit}")
    rep = replay_to(args.trace, args.at, touch=not args.no_touch,
                    options=allocator_options(args))
    want = [k for k in ("heap", "bins", "maps") if getattr(args, k)] or ["heap", "bins", "maps"]
    alloc = rep.alloc
    mm = rep.process.mm
    calls = sum(rep.counts.values())
    mode = output_mode(args)
    if mode == "json":
        doc: dict[str, object] = {"trace": args.trace, "calls": calls}
        if "heap" in want:
            doc["heap"] = [{"addr": c.addr, "size": c.size, "kind": c.kind, "where": c.where}
                           for c in heapstrip.heap_chunks(alloc)]
        if "bins" in want:
            doc["bins"] = {sec: [{"bin": label, "count": n, "chunks": addrs, "sizes": sizes}
                                 for label, n, addrs, sizes in bs]
                           for sec, bs in bins.bins_data(alloc).items()}
        if "maps" in want:
            from memsim.kernel import procfs

            doc["maps"] = [{"start": e.start, "end": e.end, "perms": e.perms, "name": e.name,
                            "size": e.size, "rss_kb": (e.rss_anon + e.rss_file) * 4}
                           for e in procfs.smaps(mm)]
        print_json(doc)
        return 0
    title = f"{args.trace} after {calls} call{'s' if calls != 1 else ''}"
    if mode == "plain":
        out = sys.stdout
        out.write(title + "\n\n")
        for k in want:
            if k == "heap":
                out.write(heapstrip.render_plain(alloc, args.limit) + "\n")
            elif k == "bins":
                out.write(bins.render_plain(alloc) + "\n")
            else:
                out.write(maps.render_plain(mm) + "\n")
        return 0
    console = make_console()
    console.rule(title)
    for k in want:
        if k == "heap":
            console.print(heapstrip.render_rich(alloc, args.limit))
        elif k == "bins":
            console.print(bins.render_rich(alloc))
        else:
            console.print(maps.render_rich(mm))
        console.print()
    return 0
