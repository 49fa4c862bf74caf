"""``memsim shell``: an interactive prompt (or a script) of malloc, free, sbrk, mmap, writes.

A thin layer over :class:`memsim.viz.shell.Shell`: a prompt on a terminal, a script from
--script or from standard input otherwise.
"""

from __future__ import annotations

import argparse
import sys

NAME = "shell"
HELP = "type malloc/free/sbrk/mmap/write and watch the heap, bins and RSS change"
DESCRIPTION = """\
A simulated process with glibc 2.36's malloc, driven one command a line:

  p = malloc 100      q = calloc 4 32     r = realloc p 200     free p
  sbrk 4096           m = mmap 1M         write p 10            read m 4096
  status  heap  bins  maps  vars  help  quit

After each call it tells what happened (the bin, the syscalls, the page faults, RssAnon)
and what changed (break, VmSize, RssAnon, the bins), with the heap as a strip of chunks.
On a terminal it prompts; with --script FILE (or standard input that is not a terminal)
it runs the lines of a lesson in order. An error names its line and the script goes on;
--strict stops at the first (exit status 1 when any line failed).

examples:
  memsim shell
  memsim shell --script lesson.txt
  printf 'p = malloc 100\\nfree p\\nbins\\n' | memsim shell
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--script", metavar="FILE", default=None,
                        help="run the commands of FILE ('-' for standard input)")
    parser.add_argument("--strict", action="store_true",
                        help="stop a script at its first error")
    parser.add_argument("--quiet", action="store_true",
                        help="only the call and what changed, not the whole story")
    parser.add_argument("--no-echo", action="store_true",
                        help="do not repeat each script line before its output")
    parser.add_argument("--plain", action="store_true",
                        help="plain text views (the default when not a terminal)")


def run(args: argparse.Namespace) -> int:
    from memsim.cli._common import stdout_is_terminal
    from memsim.viz.shell import Shell, ShellError, run_script

    shell = Shell(verbose=not args.quiet)
    if args.script is not None or not sys.stdin.isatty():
        if args.script in (None, "-"):
            lines = sys.stdin.readlines()
            name = "<stdin>"
        else:
            with open(args.script, encoding="utf-8") as f:
                lines = f.readlines()
            name = args.script
        errors = run_script(shell, lines, sys.stdout, sys.stderr, name, args.strict,
                            echo=not args.no_echo)
        return 1 if errors else 0
    rich = stdout_is_terminal() and not args.plain
    console = None
    if rich:
        from memsim.cli._common import make_console

        console = make_console()
    print("memsim shell: a simulated process with glibc 2.36 malloc. Type 'help'.")
    while not shell.done:
        try:
            line = input("memsim> ")
        except EOFError:
            print()
            break
        try:
            word = line.split("#", 1)[0].strip()
            if console is not None and word in ("heap", "bins", "maps"):
                console.print(shell.view(word, rich=True))
                continue
            sys.stdout.write(shell.execute(line))
        except ShellError as e:
            print(f"error: {e}", file=sys.stderr)
    return 0
