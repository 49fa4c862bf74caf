"""``memsim demo``: the story of a process whose address space and resident memory part ways.

A newcomer runs this right after installing memsim, offline, and watches one simulated process:

::

    step                     what the kernel does                         VmSize  VmRSS
    0 a fresh process        text, data, stack, libraries mapped          small   small
    1 sbrk(HEAP)             [heap] VMA grows; no frame yet               +HEAP   +0
    2 write the heap         each page faults in: a zeroed frame          .       +HEAP
    3 mmap(MAP)              a new anonymous VMA; no frame yet            +MAP    +0
    4 write TOUCH of it      demand paging: only touched pages get frames .       +TOUCH
    5 read the next TOUCH    the shared zero page: page tables, no RSS    .       +0

After each step it reads the simulated ``/proc/PID/status`` (VmSize, VmData, VmRSS, RssAnon,
VmPTE) and, at the end, prints ``/proc/PID/maps``. The numbers come from the kernel model; the
explanations are written here, and every "changed by" line is computed, not typed.

The workload is a generator, :func:`workload`, separate from the printing: it acts on a
:class:`memsim.Process` and yields one :class:`Action` per step; :func:`simulate` snapshots
the process after each and returns a :class:`DemoRun` that three renderers print (rich
terminal, plain text, JSON). A later version replays a real program's recorded trace by
passing a different workload to :func:`simulate`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memsim.cli._common import add_output_arguments, make_console, output_mode, print_json, size_arg
from memsim.errors import ConfigError
from memsim.units import PAGE_SIZE, GiB, KiB, MiB, format_size

if TYPE_CHECKING:
    from memsim import Machine, Process

NAME = "demo"
HELP = "watch a simulated process grow its heap, map 1 GiB, touch part of it (start here)"
DESCRIPTION = """\
Run a small story on one simulated Linux process and show, after each step, what its
/proc/PID/status says: the heap grows with sbrk, a large block is mapped with mmap, part of
it is written and part only read. VmSize (the address space) and VmRSS (the memory actually
resident in RAM) part ways, and the page tables (VmPTE) grow with what was touched. The run
ends with the process's /proc/PID/maps. Nothing here touches your real memory.

examples:
  memsim demo
  memsim demo --map 16G --touch 1G
  memsim demo --quiz            (then: memsim demo --quiz -c)
  memsim demo --json | python3 -m json.tool
"""

#: The /proc/PID/status fields the demo follows, in table order (all in kB).
FIELDS: tuple[str, ...] = ("VmSize", "VmData", "VmRSS", "RssAnon", "VmPTE")


@dataclass(frozen=True)
class Action:
    """One step of a workload: what was done (``call``), and why it matters (``explain``)."""

    title: str
    call: str
    explain: str


@dataclass
class Snapshot:
    """A step and the process's status fields (kB) right after it."""

    action: Action
    status: dict[str, int]

    def delta(self, before: Snapshot | None) -> dict[str, int]:
        """Change of each field since ``before`` (all zero for the first snapshot)."""
        if before is None:
            return dict.fromkeys(self.status, 0)
        return {k: v - before.status.get(k, 0) for k, v in self.status.items()}


@dataclass
class DemoRun:
    """Everything the renderers print."""

    machine: dict[str, Any]
    pid: int
    snapshots: list[Snapshot] = field(default_factory=list)
    maps: str = ""
    peak: dict[str, int] = field(default_factory=dict)


# --- the workload ---------------------------------------------------------------------------

def workload(proc: Process, heap: int = 1 * MiB, mapping: int = 1 * GiB,
             touch: int = 64 * MiB) -> Iterator[Action]:
    """Grow the heap, map a large block, write part of it and read another part.

    Yields after each step; the caller reads the process's status between steps.
    """
    yield Action("a fresh process", "execve()",
                 "Right after exec: the program's text and data, the C library and a small "
                 "stack are mapped. Nothing has been allocated yet.")

    old_brk = proc.sbrk(heap)
    if old_brk is None:
        raise _refused(proc, f"sbrk({format_size(heap)})")
    yield Action(f"grow the heap by {format_size(heap)}",
                 f"sbrk({format_size(heap)}) = {old_brk:#x}",
                 "The kernel moves the program break and stretches the [heap] VMA. The "
                 "address space grows (VmSize, VmData); RAM does not: no page was touched.")

    proc.write(old_brk, heap)
    yield Action("write the whole heap",
                 f"write {format_size(heap)} at {old_brk:#x}",
                 "Each first write to a page is a page fault; the kernel gives the page a "
                 "fresh zeroed frame. RssAnon grows by exactly what was written, and page "
                 "tables appear to map it (VmPTE).")

    addr = proc.mmap(mapping, prot="rw")
    if addr is None:
        raise _refused(proc, f"mmap({format_size(mapping)})")
    yield Action(f"map {format_size(mapping)}",
                 f"mmap(NULL, {format_size(mapping)}, PROT_READ|PROT_WRITE, "
                 f"MAP_PRIVATE|MAP_ANONYMOUS) = {addr:#x}",
                 "A new anonymous VMA, placed top-down below the libraries. mmap only "
                 "reserves address space: VmSize jumps, VmRSS does not move.")

    touch = min(touch, mapping)
    proc.write(addr, touch, every=PAGE_SIZE)
    yield Action(f"write to the first {format_size(touch)} of it",
                 f"write 1 byte in each of {touch // PAGE_SIZE:,} pages at {addr:#x}",
                 "Demand paging: only the pages written get frames, one 4 KiB frame per page, "
                 "and page tables to map them: a 4 KiB PTE table per 2 MiB, a PMD table per "
                 f"GiB. The other {format_size(mapping - touch)} stay virtual.")

    rest = min(touch, mapping - touch)
    if rest > 0:
        proc.read(addr + touch, rest, every=PAGE_SIZE)
        yield Action(f"read the next {format_size(rest)}",
                     f"read 1 byte in each of {rest // PAGE_SIZE:,} pages at "
                     f"{addr + touch:#x}",
                     "Reading a page that was never written maps the shared zero page: the "
                     "page tables grow, RSS does not (the zero page belongs to no one).")


def _refused(proc: Process, call: str) -> ConfigError:
    """A step the default machine should always allow was refused: say which and why."""
    from memsim.kernel.abi import errno_name

    code = getattr(proc, "errno", 0) or 0
    reason = errno_name(code) if code else "refused"
    return ConfigError(f"{call} failed with {reason}: the demo needs a machine that allows it "
                        "(try a smaller --map, or a larger --ram)")


# --- driving it -----------------------------------------------------------------------------

Workload = Callable[["Process"], Iterator[Action]]


def simulate(proc: Process, steps: Iterator[Action]) -> DemoRun:
    """Run ``steps`` (a workload bound to ``proc``) and record the status after each one."""
    run = DemoRun(machine=describe_machine(proc.machine), pid=int(getattr(proc, "pid", 0)))
    for action in steps:
        status = proc.status()
        run.snapshots.append(Snapshot(action, {k: int(status[k]) for k in FIELDS}))
    status = proc.status()
    run.peak = {k: int(status[k]) for k in ("VmPeak", "VmHWM") if k in status}
    run.maps = str(proc.maps())
    return run


def describe_machine(machine: Machine) -> dict[str, Any]:
    """The simulated machine's configuration, echoed at the top of the output."""
    return {
        "ram_bytes": machine.nr_frames * PAGE_SIZE,
        "swap_bytes": machine.swap_pages * PAGE_SIZE,
        "overcommit_memory": machine.overcommit,
    }


# --- command line ---------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heap", type=size_arg, default=1 * MiB, metavar="SIZE",
                        help="how much the heap grows with sbrk (default: 1M)")
    parser.add_argument("--map", dest="mapping", type=size_arg, default=1 * GiB, metavar="SIZE",
                        help="size of the large anonymous mapping (default: 1G)")
    parser.add_argument("--touch", type=size_arg, default=64 * MiB, metavar="SIZE",
                        help="how much of the mapping is written, and then read after it "
                             "(default: 64M)")
    parser.add_argument("--ram", type=size_arg, default=24 * GiB, metavar="SIZE",
                        help="RAM of the simulated machine (default: 24G)")
    parser.add_argument("--quiz", action="store_true",
                        help="show the steps and ask how each figure will change; "
                             "add -c to see the answers")
    parser.add_argument("-c", "--compute", action="store_true",
                        help="with --quiz: print the answers")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memsim import Machine, Process
    from memsim.cli._common import UsageError

    for name, value in (("--heap", args.heap), ("--map", args.mapping),
                        ("--touch", args.touch)):
        if value <= 0 or value % PAGE_SIZE:
            raise UsageError(f"{name} must be a positive multiple of 4 KiB, "
                             f"got {value} bytes")
    if args.touch > args.mapping:
        raise UsageError(f"--touch ({format_size(args.touch)}) is larger than --map "
                         f"({format_size(args.mapping)})")
    if args.compute and not args.quiz:
        raise UsageError("-c shows the answers of --quiz; use it with --quiz")
    if args.quiz and args.json:
        raise UsageError("--quiz is for people; --json already has every answer")
    machine = Machine(ram=args.ram, swap=0, overcommit=0)
    proc = Process(machine=machine)
    result = simulate(proc, workload(proc, heap=args.heap, mapping=args.mapping,
                                     touch=args.touch))
    mode = output_mode(args)
    if args.quiz:
        render_quiz(result, sys.stdout, answers=args.compute)
    elif mode == "json":
        print_json(to_json(result))
    elif mode == "plain":
        render_plain(result, sys.stdout)
    else:
        render_rich(result)
    return 0


# --- output ---------------------------------------------------------------------------------

def _kb(value: int) -> str:
    return f"{value:,} kB"


def _signed_size(kib: int) -> str:
    text = format_size(abs(kib) * KiB)
    return ("+" if kib >= 0 else "-") + text


def _changes(snap: Snapshot, before: Snapshot | None) -> str:
    """``"VmSize +1 GiB, VmData +1 GiB"``: the fields that moved (or "nothing changed")."""
    if before is None:
        return ""
    moved = [f"{k} {_signed_size(v)}" for k, v in snap.delta(before).items() if v]
    return ", ".join(moved) if moved else "no field changed"


def _headline(result: DemoRun) -> str:
    m = result.machine
    swap = format_size(m["swap_bytes"]) if m["swap_bytes"] else "no"
    return (f"A simulated process (pid {result.pid}) on a machine with "
            f"{format_size(m['ram_bytes'])} of RAM, {swap} swap, "
            f"vm.overcommit_memory={m['overcommit_memory']}.")


def _moral(result: DemoRun) -> str:
    last = result.snapshots[-1].status
    return (f"In the end the process has {format_size(last['VmSize'] * KiB)} of address space "
            f"(VmSize) but only {format_size(last['VmRSS'] * KiB)} in RAM (VmRSS): address "
            "space costs nothing until a page is touched, and a page only read maps the "
            "zero page.")


def to_json(result: DemoRun) -> dict[str, Any]:
    """The run as plain data (what ``--json`` prints)."""
    steps = []
    before: Snapshot | None = None
    for snap in result.snapshots:
        steps.append({
            "title": snap.action.title,
            "call": snap.action.call,
            "explain": snap.action.explain,
            "status_kB": snap.status,
            "delta_kB": snap.delta(before),
        })
        before = snap
    return {"machine": result.machine, "pid": result.pid, "steps": steps,
            "peak_kB": result.peak, "maps": result.maps}


def render_plain(result: DemoRun, out: Any) -> None:
    """Plain text: fixed-width columns, no colour; what a pipe or a log file gets."""
    def line(text: str = "") -> None:
        out.write(text + "\n")

    line(_headline(result))
    line()
    widths = [max(len(f), 13) for f in FIELDS]
    line("     " + " ".join(f.rjust(w) for f, w in zip(FIELDS, widths, strict=True)))
    before: Snapshot | None = None
    for i, snap in enumerate(result.snapshots):
        line(f"{i}. {snap.action.title}")
        line(f"   $ {snap.action.call}")
        cells = (_kb(snap.status[f]).rjust(w) for f, w in zip(FIELDS, widths, strict=True))
        line("     " + " ".join(cells))
        changes = _changes(snap, before)
        if changes:
            line(f"   changed: {changes}")
        for text in _wrap(snap.action.explain, 92):
            line(f"   {text}")
        line()
        before = snap
    line(_wrap_join(_moral(result)))
    line()
    line(f"/proc/{result.pid}/maps:")
    out.write(result.maps if result.maps.endswith("\n") else result.maps + "\n")


#: The figures a quiz asks about.
QUIZ_FIELDS: tuple[str, ...] = ("VmSize", "VmData", "RssAnon", "VmPTE")


def render_quiz(result: DemoRun, out: Any, answers: bool = False) -> None:
    """OSTEP-style: the steps and a question each; with ``answers``, the computed changes."""
    def line(text: str = "") -> None:
        out.write(text + "\n")

    line(_headline(result))
    first = result.snapshots[0].status
    line("At the start: " + ", ".join(f"{f} {_kb(first[f])}" for f in QUIZ_FIELDS) + ".")
    line("For each step, how do " + ", ".join(QUIZ_FIELDS) + " change?")
    line()
    before = result.snapshots[0]
    for i, snap in enumerate(result.snapshots[1:], start=1):
        line(f"{i}. {snap.action.title}")
        line(f"   $ {snap.action.call}")
        if answers:
            delta = snap.delta(before)
            line("   answer: " + ", ".join(
                f"{f} {_signed_size(delta[f]) if delta[f] else 'unchanged'}"
                for f in QUIZ_FIELDS))
            for text in _wrap(snap.action.explain, 92):
                line(f"   {text}")
        else:
            line("   " + "   ".join(f"{f} ?" for f in QUIZ_FIELDS))
        line()
        before = snap
    if not answers:
        line("Run the same command with -c to see the answers.")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width) or [""]


def _wrap_join(text: str) -> str:
    return "\n".join(_wrap(text, 95))


#: Fields of the summary table on a terminal (it must fit 80 columns); plain and JSON have all.
RICH_FIELDS: tuple[str, ...] = ("VmSize", "VmData", "RssAnon", "VmPTE")


def _human(kib: int) -> str:
    return format_size(kib * KiB)


def render_rich(result: DemoRun) -> None:
    """The story step by step (call, explanation, what changed), a summary table, the maps.

    Laid out for an 80-column terminal: explanations are paragraphs, not table cells, and
    the maps are printed as the kernel writes them (the terminal wraps long lines).
    """
    from rich.markup import escape
    from rich.padding import Padding
    from rich.rule import Rule
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    console.print(f"[bold]{escape(_headline(result))}[/bold]")
    before: Snapshot | None = None
    for i, snap in enumerate(result.snapshots):
        console.print()
        console.print(f"[bold]{i}. {escape(snap.action.title)}[/bold]")
        console.print(f"   [cyan]{escape(snap.action.call)}[/cyan]", soft_wrap=True)
        console.print(Padding(Text(snap.action.explain, style="dim"), (0, 0, 0, 3)))
        if before is not None:
            moved = []
            for k, v in snap.delta(before).items():
                if v:
                    colour = "green" if v > 0 else "red"
                    moved.append(f"{k} [{colour}]{escape(_signed_size(v))}[/{colour}]")
            console.print("   " + (", ".join(moved) if moved else "[dim]no field changed[/dim]"))
        before = snap
    console.print()
    table = Table(header_style="bold", title="/proc/PID/status after each step",
                  title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("step", overflow="fold")
    for f in RICH_FIELDS:
        table.add_column(f, justify="right", no_wrap=True)
    before = None
    for i, snap in enumerate(result.snapshots):
        delta = snap.delta(before)
        cells = []
        for f in RICH_FIELDS:
            style = "bold" if before is not None and delta[f] else ""
            text = escape(_human(snap.status[f]))
            cells.append(f"[{style}]{text}[/{style}]" if style else text)
        table.add_row(str(i), escape(snap.action.title), *cells)
        before = snap
    console.print(table)
    console.print(escape(_moral(result)))
    console.print()
    console.print(Rule(f"/proc/{result.pid}/maps", align="left"))
    for line in result.maps.rstrip("\n").splitlines():
        console.print(escape(line), soft_wrap=True)
