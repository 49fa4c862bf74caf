"""``memsim verify-kernel``: compare the simulated kernel with this machine's real kernel.

Runs op programs (the language of :mod:`memsim.oracle.ops`) on :class:`memsim.Process` and,
through a small C driver compiled with the system C compiler, on the real kernel under
``setarch -R``, and prints whether results and /proc/self/status deltas agree::

    scenario                      ops  marks  result
    sbrk_grow_touch_shrink          8      7  agree
    ...
    random seed 1                 270    250  agree

Exit status 0 when everything agrees, 1 when anything differs (or the real side cannot run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from memsim.cli._common import UsageError, add_output_arguments, output_mode, print_json

NAME = "verify-kernel"
HELP = "check the simulated kernel against this machine's real kernel, side by side"
DESCRIPTION = """\
Run memory-operation programs (sbrk, mmap, munmap, mprotect, mremap, madvise, reads and
writes) twice: on the simulator and, compiled with this machine's C compiler, on the real
kernel. Every op's result (address, errno, SIGSEGV) and the change of VmSize, VmData, VmStk,
RssAnon, VmPTE and the VMA count between marks must agree. Without arguments, all built-in
scenarios and three random programs are run. Needs Linux x86-64, /proc and cc or gcc.

program format (one op a line; see memsim.oracle.ops):
  m = mmap 1M rw
  mark mapped
  write m 1M every=4096
  mark written

examples:
  memsim verify-kernel
  memsim verify-kernel --list
  memsim verify-kernel zero_page_then_write -v
  memsim verify-kernel --file prog.ops
  memsim verify-kernel --random 42 --ops 500 --json
  memsim verify-kernel --api process
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="built-in scenarios to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios")
    parser.add_argument("--file", metavar="PATH",
                        help="run the op program in PATH ('-' for stdin) instead")
    parser.add_argument("--random", type=int, action="append", metavar="SEED",
                        help="run a seeded random program (repeatable)")
    parser.add_argument("--ops", type=int, default=250, metavar="N",
                        help="ops per random program (default 250)")
    parser.add_argument("--api", choices=("syscall", "process"), default="syscall",
                        help="drive the simulator through its raw syscalls (default) or "
                             "through the memsim.Process methods")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the side-by-side table of every program, not only failures")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memsim.oracle.kernel import compare_kernel
    from memsim.oracle.ops import random_program
    from memsim.oracle.scenarios import SCENARIOS

    if args.list:
        for name in SCENARIOS:
            print(name)
        return 0
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        raise UsageError(f"unknown scenario {unknown[0]!r} (see memsim verify-kernel --list)")
    if args.ops <= 0:
        raise UsageError("--ops must be positive")
    programs: list[tuple[str, str]] = []
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        programs.append((args.file, text))
    programs += [(name, SCENARIOS[name]) for name in args.scenarios]
    for seed in args.random or []:
        programs.append((f"random seed {seed}", random_program(seed, args.ops)))
    if not programs:
        programs = list(SCENARIOS.items())
        programs += [(f"random seed {s}", random_program(s, args.ops)) for s in (1, 2, 3)]

    mode = output_mode(args)
    results: list[dict[str, Any]] = []
    all_ok = True
    if mode != "json":
        print(f"{'program':<32} {'ops':>5} {'marks':>6}  result")
    for name, text in programs:
        report = compare_kernel(text, api=args.api)
        all_ok &= report.ok
        if mode == "json":
            results.append({"program": name, **report.to_dict()})
            continue
        verdict = "agree" if report.ok else f"DIFFER ({len(report.failures())})"
        print(f"{name[:32]:<32} {len(report.ops):>5} {len(report.marks):>6}  {verdict}")
        if args.verbose or not report.ok:
            print()
            print(report.format())
            for line in report.failures():
                print(f"  {line}")
            print()
    if mode == "json":
        print_json({"ok": all_ok, "programs": results})
    elif not all_ok:
        print("the simulator differs from the real kernel (details above)")
    return 0 if all_ok else 1
