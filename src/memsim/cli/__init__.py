"""The ``memsim`` command: a thin layer of argument parsing and printing over the library.

How to add a subcommand (the convention every command module follows)
---------------------------------------------------------------------

1. Write a module ``memsim/cli/<module>.py``. Its command name is the module name with ``_``
   turned into ``-`` (``verify_kernel.py`` is ``memsim verify-kernel``). It defines::

       NAME = "verify-kernel"            # the command name (must match the module name)
       HELP = "one line for `memsim --help`"
       DESCRIPTION = '''What `memsim verify-kernel --help` prints above the options:
       what the command does, and at least one example:

         memsim verify-kernel --quick
       '''

       def add_arguments(parser: argparse.ArgumentParser) -> None: ...
       def run(args: argparse.Namespace) -> int: ...     # the exit status

   Keep the module's top-level imports light (argparse, typing, ``memsim.cli._common``) and
   import the simulator inside ``run()``: ``memsim --help`` imports every command module.

2. Add the module name to :data:`COMMANDS` below, one line. ``demo`` stays first.

What main() does for every command
----------------------------------

::

    memsim [--version] [--debug] COMMAND [options] [--debug]

    argv ──► pick COMMAND ──► import memsim.cli.<module> (only that one; all for --help)
                 │                      │ import fails ──► "memsim: error: command 'x' is
                 │                      │                  unavailable: ..." (exit 1)
                 ▼                      ▼
         argparse (usage errors:  module.run(args) ──► its return value is the exit status
         usage + one line, exit 2)      │
                                        ▼ exceptions become ONE line on stderr:
            _common.UsageError ............................ memsim: error: ...   exit 2
            memsim.errors.MemsimError, ValueError ......... memsim: error: ...   exit 1
            OSError (a user file) ......................... memsim: error: ...   exit 1
            KeyboardInterrupt ............................. memsim: error: interrupted  130
            anything else (a bug) ......................... memsim: internal error: ... 1

``--debug`` (anywhere) prints the traceback too. Output goes to stdout, errors and
progress bars to stderr. Commands that print results take ``--plain`` and ``--json``
(``_common.add_output_arguments``): rich tables on a terminal, plain text in a pipe.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from memsim.cli._common import PROG, UsageError, describe_os_error, error_line
from memsim.errors import MemsimError

#: Module names under memsim.cli, in the order `memsim --help` lists them. One line per command.
COMMANDS: tuple[str, ...] = (
    "demo",
    "run",
    "record",
    "convert",
    "verify_kernel",
    "replay",
    "check",
    "allocators",
    "compare",
    "malloclab",
    "ostep",
    "explain",
    "view",
    "shell",
    "report",
    "plot",
)

_REQUIRED = ("NAME", "HELP", "DESCRIPTION", "add_arguments", "run")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def command_name(module: str) -> str:
    """``"verify_kernel"`` -> ``"verify-kernel"``."""
    return module.replace("_", "-")


def load_command(module: str) -> ModuleType:
    """Import ``memsim.cli.<module>`` and check that it follows the convention."""
    mod = importlib.import_module(f"memsim.cli.{module}")
    missing = [attr for attr in _REQUIRED if not hasattr(mod, attr)]
    if missing:
        raise ImportError(f"memsim.cli.{module} lacks {', '.join(missing)}")
    if mod.NAME != command_name(module):
        raise ImportError(f"memsim.cli.{module}.NAME is {mod.NAME!r}, "
                          f"expected {command_name(module)!r}")
    return mod


def _describe_exception(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Parser(argparse.ArgumentParser):
    """argparse with errors that end in a hint instead of a bare usage line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _selected_command(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the command the user asked for (or None)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The argument parser with a subparser per command (or just ``only``, when it is known).

    Returns the parser and the commands that could not be imported (name -> reason): those are
    listed in ``--help`` as unavailable and fail with one line when chosen.
    """
    from memsim import __version__

    parser = _Parser(
        prog=PROG,
        description="memsim shows how a Linux x86-64 process gets and uses memory, from "
                    "malloc() down to physical page frames.",
        epilog=f"Start with '{PROG} demo'. '{PROG} COMMAND --help' explains each command.",
    )
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {__version__} (Python {sys.version.split()[0]})")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when something goes wrong")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    broken: dict[str, str] = {}
    modules = [m for m in COMMANDS if command_name(m) == only] if only else list(COMMANDS)
    if not modules:
        modules = list(COMMANDS)          # unknown command: let argparse list the choices
    for module in modules:
        name = command_name(module)
        try:
            mod = load_command(module)
        except Exception as e:  # one broken module must not take the others down
            broken[name] = _describe_exception(e)
            sub.add_parser(name, help=f"(unavailable: {broken[name]})", add_help=False)
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback when something goes wrong")
        p.set_defaults(_run=mod.run)
    return parser, broken


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``memsim`` command line; returns the exit status (never raises, never exits)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = _selected_command(args_list)
    options = args_list[: args_list.index("--")] if "--" in args_list else args_list
    debug = "--debug" in options
    try:
        parser, broken = build_parser(command)
        if command in broken:             # whatever its arguments: say why it cannot run
            print(error_line(f"command '{command}' is unavailable: {broken[command]}"),
                  file=sys.stderr)
            return EXIT_ERROR
        try:
            args = parser.parse_args(args_list)
        except SystemExit as e:           # --help, --version, usage errors
            return e.code if isinstance(e.code, int) else (EXIT_OK if e.code is None else 1)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        status = args._run(args)
        return int(status or 0)
    except KeyboardInterrupt:
        return _fail("interrupted", debug, EXIT_INTERRUPTED)
    except BrokenPipeError:
        # `memsim demo | head`: the reader went away; stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_ERROR
    except UsageError as e:
        return _fail(str(e), debug, EXIT_USAGE)
    except OSError as e:
        return _fail(describe_os_error(e), debug, EXIT_ERROR)
    except (MemsimError, ValueError) as e:  # includes ConfigError, TraceError, Signal
        return _fail(str(e), debug, EXIT_ERROR)
    except Exception as e:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: internal error: {_describe_exception(e)} "
              f"(run 'memsim --debug ...' for the traceback, and please report it)",
              file=sys.stderr)
        return EXIT_ERROR


def _fail(message: str, debug: bool, status: int) -> int:
    if debug:
        traceback.print_exc()
    print(error_line(message), file=sys.stderr)
    return status


__all__ = ["COMMANDS", "build_parser", "command_name", "load_command", "main"]
