"""``memsim ostep``: OSTEP's free-space simulator (malloc.py), same flags, same answers."""

from __future__ import annotations

import argparse
import sys

NAME = "ostep"
HELP = "OSTEP's malloc.py free-list quiz (chapter 17): same flags, seeds and answers"
DESCRIPTION = """\
The free-space management simulator of Operating Systems: Three Easy Pieces
(vm-freespace/malloc.py), modelled in memsim: one region of SIZE bytes at BASE, one free
list, no growth. It prints random (seeded) or given (-A) Alloc/Free operations and, with
-c, the answers: the address each allocation returns, the list elements searched, and the
free list after every operation. The flags, defaults and output are malloc.py's; for the
same flags and seed the problems and answers are the same, except where malloc.py is wrong
(--malloc-py-bugs gives its output there too; docs/textbooks.md lists the differences).

examples:
  memsim ostep -n 10 -H 0 -p BEST -s 0 -c
  memsim ostep -p FIRST -l ADDRSORT -C -n 20 -s 3 -c
  memsim ostep -A +10,+20,-0,+5 -H 4 -a 4 -c
"""


def _int(text: str) -> int:
    from memsim.errors import ConfigError
    from memsim.textbooks.ostep import parse_int

    try:
        return parse_int(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("-s", "--seed", type=_int, default=0, help="the random seed (default 0)")
    a("-S", "--size", type=_int, default=100, help="size of the heap (default 100)")
    a("-b", "--baseAddr", type=_int, default=1000, help="base address of heap (default 1000)")
    a("-H", "--headerSize", type=_int, default=0, help="size of the header (default 0)")
    a("-a", "--alignment", type=_int, default=-1,
      help="align allocated units to size; -1 = no align (default)")
    a("-p", "--policy", default="BEST", help="list search: BEST, WORST, FIRST (default BEST)")
    a("-l", "--listOrder", default="ADDRSORT",
      help="list order: ADDRSORT, SIZESORT+, SIZESORT-, INSERT-FRONT, INSERT-BACK")
    a("-C", "--coalesce", action="store_true", help="coalesce the free list")
    a("-n", "--numOps", type=_int, default=10, help="number of random ops (default 10)")
    a("-r", "--range", type=_int, default=10, help="max alloc size (default 10)")
    a("-P", "--percentAlloc", type=_int, default=50,
      help="percent of ops that are allocs (default 50)")
    a("-A", "--allocList", default="",
      help="instead of random, a list of ops: +SIZE allocates, -INDEX frees ptr[INDEX] "
           "(e.g. +10,-0; write -A=-0,... when the list starts with a free)")
    a("-c", "--compute", action="store_true", help="compute answers for me")
    a("--malloc-py-bugs", action="store_true",
      help="print what malloc.py prints where it is wrong (see docs/textbooks.md)")


def run(args: argparse.Namespace) -> int:
    from memsim.textbooks.ostep import OstepConfig, simulate

    cfg = OstepConfig(seed=args.seed, size=args.size, baseAddr=args.baseAddr,
                      headerSize=args.headerSize, alignment=args.alignment,
                      policy=args.policy, listOrder=args.listOrder, coalesce=args.coalesce,
                      numOps=args.numOps, range=args.range, percentAlloc=args.percentAlloc,
                      allocList=args.allocList, compute=args.compute,
                      malloc_py_bugs=args.malloc_py_bugs)
    lines = simulate(cfg)            # checks the configuration before printing anything
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    return 0
