"""``memsim replay``: replay a recorded trace through a simulated allocator and summarise.

A thin layer over :func:`memsim.trace.replay.replay`: parse the options, draw a progress
indicator on a terminal's stderr, print the summary (rich, plain or JSON).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from memsim.cli._common import (
    UsageError,
    add_output_arguments,
    make_console,
    output_mode,
    print_json,
    size_arg,
    stdout_is_terminal,
)

if TYPE_CHECKING:
    from memsim.trace.replay import ReplayResult

NAME = "replay"
HELP = "replay a malloc trace through the simulated allocator; heap, RSS and syscalls"
DESCRIPTION = """\
Replay TRACE (memsim-trace v1 as written by 'memsim record', or a glibc mtrace log; plain,
.gz, .xz or .zst; '-' for standard input) through a simulated allocator on a simulated
process whose heap starts where the real one did (the trace's brk0). Every free and realloc
acts on the same object as in the recording, even where the model returned another address.

The summary gives the live bytes (now and at the peak), the heap size (brk - start), the
bytes in the allocator's own mappings, RssAnon of the simulated process, the memory system
calls the allocator made, and the replay speed. By default the program is assumed to write
every byte it allocates (as most do), so RssAnon is what the real kernel would report;
--no-touch replays only the allocator's own stores.

--emit-trace writes the same calls with the simulated addresses (memsim-trace v1);
--emit-syscalls writes the allocator's brk/mmap/munmap/mremap calls one a line in strace's
notation, to compare with 'strace -e trace=brk,mmap,munmap,mremap' of the real program.

examples:
  memsim replay ls.trace
  memsim replay corpus/sort.trace.zst --emit-syscalls sort.syscalls
  memsim replay gcc.trace --emit-trace gcc.sim.trace --json
  memsim replay app.trace --env GLIBC_TUNABLES=glibc.malloc.tcache_count=0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="the trace file ('-' for stdin)")
    add_allocator_arguments(parser)
    parser.add_argument("--emit-trace", metavar="OUT", default=None,
                        help="write the calls with the simulated addresses (memsim-trace v1; "
                             ".zst/.gz/.xz compress; '-' for stdout)")
    parser.add_argument("--emit-syscalls", metavar="OUT", default=None,
                        help="write the allocator's memory syscalls in strace notation "
                             "('-' for stdout)")
    parser.add_argument("--no-touch", dest="touch", action="store_false",
                        help="do not assume the program writes what it allocates (RssAnon "
                             "then counts only the allocator's own stores)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip malformed or inconsistent lines (counted and reported) "
                             "instead of stopping at the first")
    parser.add_argument("--ram", type=size_arg, default=None, metavar="SIZE",
                        help="RAM of the simulated machine (default: this machine's)")
    parser.add_argument("--swap", type=size_arg, default=0, metavar="SIZE",
                        help="swap space (default: 0)")
    add_output_arguments(parser)


def add_allocator_arguments(parser: argparse.ArgumentParser) -> None:
    """--allocator and --env, shared with ``memsim check``."""
    parser.add_argument("--allocator", default="glibc", metavar="NAME",
                        help="the allocator model (default: glibc)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable of the replayed program that the "
                             "allocator reads (GLIBC_TUNABLES, MALLOC_TOP_PAD_, ...); repeatable")


def allocator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The allocator options the arguments ask for (``{"env": {...}}`` when --env is given)."""
    env: dict[str, str] = {}
    for item in args.env:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--env wants NAME=VALUE, not {item!r}")
        env[key] = value
    return {"env": env} if env else {}


@contextmanager
def progress_callback(label: str, enabled: bool | None = None
                      ) -> Iterator[Callable[[int], None] | None]:
    """A callback ``f(calls_done)`` drawing a progress line on stderr (a terminal only)."""
    if enabled is None:
        enabled = stdout_is_terminal(sys.stderr)
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.completed:,.0f} calls"), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int) -> None:
            bar.update(task, completed=done)

        yield update


@contextmanager
def _text_output(target: str | None) -> Iterator[IO[str] | None]:
    if target is None:
        yield None
    elif target == "-":
        yield sys.stdout
        sys.stdout.flush()
    else:
        with open(target, "w", encoding="ascii", buffering=1 << 20) as f:
            yield f


def run(args: argparse.Namespace) -> int:
    from memsim.trace.replay import replay

    if args.emit_trace == "-" and args.emit_syscalls == "-":
        raise UsageError("--emit-trace and --emit-syscalls cannot both go to stdout")
    options = allocator_options(args)
    mode = output_mode(args)
    to_stdout = "-" in (args.emit_trace, args.emit_syscalls)
    machine = None
    if args.ram is not None or args.swap:
        from memsim.kernel.machine import Machine

        machine = Machine(ram=args.ram, swap=args.swap)
    with _text_output(args.emit_syscalls) as sysout, \
            progress_callback(f"replaying {args.trace}") as cb:
        emit_trace: Any = args.emit_trace
        if emit_trace == "-":
            emit_trace = sys.stdout.buffer
        result = replay(args.trace, args.allocator, options=options, touch=args.touch,
                        emit_trace=emit_trace, emit_syscalls=sysout, skip_bad=args.skip_bad,
                        machine=machine, progress=cb)
    out = sys.stderr if to_stdout else sys.stdout
    if mode == "json":
        print_json(result.as_dict(), out)
    elif mode == "rich" and not to_stdout:
        render_rich(result)
    else:
        for line in summary_lines(result):
            print(line, file=out)
    if result.skip_report:
        print(f"memsim replay: {result.skip_report}", file=sys.stderr)
    return 0


def _n(v: int) -> str:
    return f"{v:,}"


def summary_rows(r: ReplayResult) -> list[tuple[str, str]]:
    """The summary as (label, text) rows."""
    ops = ", ".join(f"{name} {_n(n)}" for name, n in r.ops.items() if n)
    threads = f"{r.threads} thread{'s' if r.threads != 1 else ''}"
    brk0 = f"brk0 {r.brk0:#x}" if r.brk0 is not None else "no brk0"
    sysc = ", ".join(f"{k} {v}" for k, v in r.syscalls.items() if v) or "none"
    touch = "the program writes what it allocates" if r.touch else \
        "only the allocator's own stores"
    rows = [
        ("trace", f"{r.trace} ({threads}, {brk0})"),
        ("allocator", f"{r.allocator} ({touch})"),
        ("calls", f"{_n(r.calls)}" + (f": {ops}" if ops else "")),
        ("live", f"{_n(r.live_bytes)} bytes in {_n(r.live_objects)} objects at the end; peak "
                 f"{_n(r.peak_live_bytes)} bytes, {_n(r.peak_live_objects)} objects"),
        ("heap", f"{_n(r.heap_bytes)} bytes (brk - start); peak {_n(r.peak_heap_bytes)}"),
        ("mapped", f"{_n(r.mapped_bytes)} bytes in the allocator's mappings; peak "
                   f"{_n(r.peak_mapped_bytes)}"),
        ("RssAnon", f"{_n(r.rss_anon_kb)} kB ({_n(r.rss_anon_start_kb)} kB before the first "
                    f"call: {r.rss_anon_delta_kb:+,} kB)"),
        ("syscalls", sysc),
        ("time", f"{r.seconds:.2f} s, {_n(round(r.events_per_second))} events/s"),
    ]
    if r.failed_allocations:
        rows.append(("failed", f"{_n(r.failed_allocations)} allocations returned NULL in the "
                               f"simulation but not in the recording"))
    for note in r.notes:
        rows.append(("note", note))
    return rows


def summary_lines(r: ReplayResult) -> list[str]:
    return [f"{label:<10} {text}" for label, text in summary_rows(r)]


def render_rich(r: ReplayResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for label, text in summary_rows(r):
        table.add_row(label, escape(text))
    make_console().print(table)
