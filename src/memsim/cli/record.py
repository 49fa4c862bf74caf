"""``memsim record``: run a real program and record its malloc-family calls as a trace."""

from __future__ import annotations

import argparse
import sys

from memsim.cli._common import UsageError

NAME = "record"
HELP = "run a real program under the recorder and write its malloc calls as a trace"
DESCRIPTION = """\
Run COMMAND with an LD_PRELOAD library (compiled with your C compiler on first use and
cached in ~/.cache/memsim) that writes every malloc, calloc, realloc, free, memalign,
aligned_alloc, posix_memalign, valloc and pvalloc call, with the address glibc returned,
as memsim-trace v1. Calls made by glibc and by every library are included.

One file per process image: OUT for the command itself, OUT.<pid> for each child it forks
or program it execs (OUT.<pid>.<n> for a later image of the same pid). A forked child's
trace starts with its parent's calls up to the fork. An OUT ending in .zst, .gz or .xz is
compressed. Addresses are made reproducible by turning off address-space randomisation for
the command (like `setarch -R`), unless --aslr is given.

The report (where the traces went, how many calls) goes to stderr, so the command's own
output is untouched. The exit status is the command's.

examples:
  memsim record -- ls -la /usr/lib
  memsim record -o sort.trace.zst --fixed-env -- sort /etc/services
  memsim record -o gcc.trace -- gcc -c hello.c      # gcc.trace, gcc.trace.<pid> (cc1, as)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="OUT", default="memsim.trace",
                        help="where to write the trace (default: memsim.trace; .zst/.gz/.xz "
                             "compress)")
    parser.add_argument("--aslr", action="store_true",
                        help="keep address-space randomisation (addresses differ per run)")
    parser.add_argument("--fixed-env", action="store_true",
                        help="run with a small fixed environment (LC_ALL=C, TZ=UTC, PATH=/usr/"
                             "local/bin:/usr/bin:/bin, HOME, USER, TERM=dumb)")
    parser.add_argument("--level", type=int, default=None, metavar="N",
                        help="compression level for a compressed OUT (zstd default 10)")
    parser.add_argument("cmdline", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]",
                        help="the program to run, after --")


def run(args: argparse.Namespace) -> int:
    from memsim.trace.record import fixed_environment, format_report, record

    command = list(args.cmdline)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to record (use: memsim record [-o OUT] -- COMMAND "
                         "[ARGS...])")
    if args.output == "-":
        raise UsageError("-o - is not supported: a recording may write several files "
                         "(one per process); give a file name")
    env = fixed_environment() if args.fixed_env else None
    result = record(command, args.output, aslr=args.aslr, env=env, level=args.level)
    for line in format_report(result):
        print(f"memsim record: {line}", file=sys.stderr)
    return result.returncode
