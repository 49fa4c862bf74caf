"""``memsim demo``: where the heap of a real program went, and (``--kernel``) the story of a
process whose address space and resident memory part ways.

The default story replays a real program's malloc calls, recorded with ``memsim record``
and bundled in the package (``memsim/data/ls-la.trace.gz``: ``ls -la /usr/share/doc``, 2,805
calls), through the glibc 2.36 model on the simulated kernel, and accounts for its heap at
exit, every byte in one bucket::

    [heap] = live payload + alignment padding + size rounding + chunk headers
           + malloc's own (tcache struct) + free chunks by bin (tcache, fastbins, unsorted,
             small, large) + top                                 = brk - start of the heap
    mmapped chunks: requested + header and page rounding         = their mappings
    resident: pages of [heap] with a frame (smaps Rss), of top, of the free chunks; RssAnon

The buckets come from :func:`memsim.metrics.footprint.breakdown` (allocator.usage() and a
ledger of live objects) with the mmapped chunks' share taken out; the resident figures from
the simulated page table. :func:`replay_story` measures (:class:`HeapStory`);
:func:`render_heap_plain`, :func:`render_heap_rich` and :func:`heap_to_json` print. Every
figure in the text is computed from the model; none is typed here.

The kernel story (``memsim demo --kernel``, also chosen by ``--heap``/``--map``/``--touch``
or ``--quiz``) watches one simulated process:

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
terminal, plain text, JSON).
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

#: The kernel story's sizes when not given.
DEFAULT_HEAP = 1 * MiB
DEFAULT_MAP = 1 * GiB
DEFAULT_TOUCH = 64 * MiB

if TYPE_CHECKING:
    from memsim import Machine, Process

NAME = "demo"
HELP = "see where every byte of a real program's heap went, replayed on glibc's model (start here)"
DESCRIPTION = """\
Replay the malloc calls of a real program (ls -la /usr/share/doc, recorded with memsim record
and bundled with memsim) through the exact glibc 2.36 model on a simulated Linux process, and
show where every byte of its heap went at exit: live payload, alignment padding, size
rounding, chunk headers, malloc's own structure, free chunks by bin, top, and the chunks in
their own mapping; then the pages that are resident, and why RSS is not the live bytes.

--kernel tells the kernel's side instead, on one simulated process: the heap grows with sbrk,
a large block is mapped with mmap, part of it is written and part only read, and after each
step /proc/PID/status shows VmSize (the address space) and VmRSS (the memory resident in RAM)
part ways. --heap, --map, --touch and --quiz choose that story too. Nothing here touches your
real memory.

examples:
  memsim demo
  memsim demo --json | python3 -m json.tool
  memsim demo --kernel
  memsim demo --map 16G --touch 1G
  memsim demo --quiz            (then: memsim demo --quiz -c)
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
    parser.add_argument("--kernel", action="store_true",
                        help="the kernel's story instead: sbrk, a large mmap, demand paging, "
                             "/proc/PID/status after each step")
    parser.add_argument("--heap", type=size_arg, default=None, metavar="SIZE",
                        help="kernel story: how much the heap grows with sbrk (default: 1M)")
    parser.add_argument("--map", dest="mapping", type=size_arg, default=None, metavar="SIZE",
                        help="kernel story: size of the large anonymous mapping (default: 1G)")
    parser.add_argument("--touch", type=size_arg, default=None, metavar="SIZE",
                        help="kernel story: how much of the mapping is written, and then read "
                             "after it (default: 64M)")
    parser.add_argument("--ram", type=size_arg, default=24 * GiB, metavar="SIZE",
                        help="RAM of the simulated machine (default: 24G)")
    parser.add_argument("--quiz", action="store_true",
                        help="kernel story: show the steps and ask how each figure will "
                             "change; add -c to see the answers")
    parser.add_argument("-c", "--compute", action="store_true",
                        help="with --quiz: print the answers")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memsim import Machine, Process
    from memsim.cli._common import UsageError

    if args.compute and not args.quiz:
        raise UsageError("-c shows the answers of --quiz; use it with --quiz")
    if args.quiz and args.json:
        raise UsageError("--quiz is for people; --json already has every answer")
    kernel = (args.kernel or args.quiz
              or any(v is not None for v in (args.heap, args.mapping, args.touch)))
    if not kernel:
        return run_heap_story(args)
    args.heap = DEFAULT_HEAP if args.heap is None else args.heap
    args.mapping = DEFAULT_MAP if args.mapping is None else args.mapping
    args.touch = min(DEFAULT_TOUCH, args.mapping) if args.touch is None else args.touch
    for name, value in (("--heap", args.heap), ("--map", args.mapping),
                        ("--touch", args.touch)):
        if value <= 0 or value % PAGE_SIZE:
            raise UsageError(f"{name} must be a positive multiple of 4 KiB, "
                             f"got {value} bytes")
    if args.touch > args.mapping:
        raise UsageError(f"--touch ({format_size(args.touch)}) is larger than --map "
                         f"({format_size(args.mapping)})")
    machine = Machine(ram=args.ram, swap=0, overcommit=0)
    proc = Process(machine=machine)
    result = simulate(proc, workload(proc, heap=args.heap, mapping=args.mapping,
                                     touch=args.touch))
    mode = output_mode(args)
    if args.quiz:
        render_quiz(result, sys.stdout, answers=args.compute)
    elif mode == "json":
        print_json({"story": "kernel", **to_json(result)})
    elif mode == "plain":
        render_plain(result, sys.stdout)
    else:
        render_rich(result)
    return 0


def run_heap_story(args: argparse.Namespace) -> int:
    """The default story: replay the bundled trace and print where the heap went."""
    from memsim import Machine

    machine = Machine(ram=args.ram, swap=0, overcommit=0)
    with trace_source() as path:
        story = replay_story(path, machine=machine)
    mode = output_mode(args)
    if mode == "json":
        print_json({"story": "heap", "machine": describe_machine(machine),
                    **heap_to_json(story)})
    elif mode == "plain":
        render_heap_plain(story, sys.stdout)
    else:
        render_heap_rich(story)
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

# --- the heap story (the default demo) -------------------------------------------------------

#: The bundled recording (src/memsim/data/README.md says how it was made).
TRACE_FILE = "ls-la.trace.gz"


@dataclass
class Bucket:
    """Bytes of the heap (or of the mmapped chunks) that have one role, with why."""

    key: str
    label: str
    bytes: int
    explain: str


@dataclass
class MappedChunk:
    """A chunk glibc gave its own mapping (mmap), at the end of the run."""

    address: int
    requested: int
    usable: int
    mapped: int                     # the mapping's length
    resident: int                   # bytes of it with a frame


@dataclass
class HeapStory:
    """A real program's heap after a replay of its recording (what the renderers print)."""

    trace: str
    program: str
    argv: str
    calls: int
    ops: dict[str, int]
    same_address: int               # heap pointers equal to the recorded ones
    heap_pointers: int
    mmapped_both: int               # pointers mmapped in the recording and in the model
    mmapped_pointers: int
    live_bytes: int
    live_objects: int
    peak_live_bytes: int
    peak_live_objects: int
    heap_start: int
    brk: int
    peak_heap_bytes: int
    heap: list[Bucket]
    free_lists: dict[str, int]
    mmapped: list[MappedChunk]
    heap_resident: int
    top_bytes: int
    top_resident: int               # bytes of top's whole pages that have a frame
    top_pages: int                  # top's whole pages
    free_pages: int                 # whole pages inside free chunks (bins, tcache)
    free_resident_pages: int        # of those, with a frame
    growth: list[int]               # the realloc history of the biggest live object (sizes)
    growth_mmapped: bool            # that object ended in its own mapping
    smaps_heap_kb: dict[str, int]   # the [heap] VMA's Size, Rss, Anonymous
    rss_anon_kb: int
    rss_anon_start_kb: int
    syscalls: dict[str, int]
    mallinfo: dict[str, int]
    trim_threshold: int
    mmap_threshold: int

    @property
    def heap_bytes(self) -> int:
        return self.brk - self.heap_start

    @property
    def mapped_bytes(self) -> int:
        return sum(c.mapped for c in self.mmapped)

    @property
    def heap_untouched(self) -> int:
        return self.heap_bytes - self.heap_resident


def trace_source() -> Any:
    """A context manager giving the path of the bundled trace."""
    from importlib.resources import as_file, files

    return as_file(files("memsim") / "data" / TRACE_FILE)


def replay_story(path: Any, name: str = TRACE_FILE, machine: Machine | None = None
                 ) -> HeapStory:
    """Replay the trace at ``path`` through the glibc model on a simulated process and
    measure its heap at the end (every byte in one bucket, from the model)."""
    from memsim.metrics.compare import Meter
    from memsim.metrics.footprint import breakdown, free_lists
    from memsim.trace.replay import Replayer, open_for_replay

    with open_for_replay(path) as reader:
        rep = Replayer("glibc", brk0=reader.brk0, touch=True, name=name, machine=machine)
        seen = {"heap": 0, "same": 0, "mmapped": 0, "both": 0}
        sizes: dict[int, list[int]] = {}  # recorded pointer -> its sizes, realloc by realloc
        inner = rep.step
        proc = rep.process
        start = proc.mm.start_brk

        def step(call: Any) -> Any:       # count the pointers equal to the recording's
            r = inner(call)
            op, a, b, ret = call[0], call[1], call[2], call[3]
            if r is None:
                return r
            if op == "f":
                sizes.pop(a, None)
                return r
            if ret:
                got = r[1]
                if 0 <= ret - start < 1 << 32:
                    seen["heap"] += 1
                    seen["same"] += got == ret
                else:
                    seen["mmapped"] += 1
                    seen["both"] += got != 0 and not 0 <= got - start < 1 << 32
            if op == "r":
                history = sizes.pop(a, []) if a else []
                if ret:
                    sizes[ret] = [*history, b]
            elif ret:
                sizes[ret] = [a * b if op == "c" else b if op == "a" else a]
            return r

        rep.step = step                   # type: ignore[method-assign]
        meter = Meter(rep)
        meter.feed(reader)
        meta = dict(reader.meta)
    res = rep.result(name)
    alloc: Any = rep.alloc
    ledger = meter.ledger
    ledger.check()
    alloc.check()
    bd = breakdown(alloc, ledger)         # resident=None: no byte moved to "untouched"
    bd.check()
    # the mmapped chunks' share of each bucket, to leave the heap's alone
    mm_parts = dict.fromkeys(("payload", "padding", "rounding", "mmap_rounding", "headers",
                              "metadata"), 0)
    mmapped: list[MappedChunk] = []
    pt = proc.mm.pt
    for p, (lead, size) in sorted(alloc.mmapped.items()):
        obj = ledger.objects.get(p + 16)
        base = p - lead
        anon, _file, swap = pt.counts(base, base + lead + size)
        if obj is None:                   # malloc's own (the tcache struct, if mmapped)
            mm_parts["metadata"] += lead + size
            continue
        n, u, pad, rnd = obj
        mm_parts["payload"] += n
        mm_parts["padding"] += pad
        mm_parts["mmap_rounding"] += rnd
        mm_parts["headers"] += size - u
        mm_parts["metadata"] += lead
        mmapped.append(MappedChunk(p + 16, n, u, lead + size, (anon + swap) * PAGE_SIZE))
    heap_start, brk = proc.mm.start_brk, proc.mm.brk
    lists = free_lists(alloc)
    av = alloc.av
    heap = [
        Bucket("payload", "live payload", bd.payload - mm_parts["payload"],
               "the bytes the program asked for and still holds"),
        Bucket("padding", "alignment padding", bd.padding - mm_parts["padding"],
               "each request rounded up to 16 bytes"),
        Bucket("rounding", "size rounding", bd.rounding,
               "chunks grow in 16-byte steps, 32 bytes at least"),
        Bucket("headers", "chunk headers", bd.headers - mm_parts["headers"],
               "the 8-byte size field before every chunk in use"),
        Bucket("metadata", "malloc's own", bd.metadata - mm_parts["metadata"],
               "the tcache_perthread_struct, the heap's first chunk"),
    ]
    names = {"tcache": "free: tcache", "fastbins": "free: fastbins",
             "unsorted": "free: unsorted bin", "smallbins": "free: small bins",
             "largebins": "free: large bins"}
    why = {"tcache": "up to 7 freed chunks per size, kept for the next malloc",
           "fastbins": "small freed chunks not yet coalesced",
           "unsorted": "freed chunks waiting to be sorted into bins",
           "smallbins": "free chunks under 1 KiB, one list per size",
           "largebins": "free chunks of 1 KiB and more, sorted by size"}
    for key, value in lists.items():
        heap.append(Bucket(key, names.get(key, f"free: {key}"), value,
                           why.get(key, "free chunks")))
    heap.append(Bucket("top", "top (wilderness)", bd.top,
                       "the free end of the heap, split for new chunks"))
    top_start = av.top
    top_end = top_start + av.top_size
    whole = ((top_start + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), top_end & ~(PAGE_SIZE - 1))
    anon, _file, swap = pt.counts(whole[0], whole[1]) if whole[1] > whole[0] else (0, 0, 0)
    h_anon, _f, h_swap = pt.counts(heap_start, brk)
    free_pages = free_res = 0
    for p, size in [*av.free.items(), *alloc.cached_chunks().items()]:
        lo, hi = (p + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), (p + size) & ~(PAGE_SIZE - 1)
        if hi > lo:
            fa, _ff, fs = pt.counts(lo, hi)
            free_pages += (hi - lo) // PAGE_SIZE
            free_res += fa + fs
    grown = max(sizes.values(), key=lambda h: (len(h) > 1, h[-1]), default=[])
    grown_ptr = next((p for p, h in sizes.items() if h is grown), 0)
    smaps = {}
    for e in proc.smaps():
        if e.name == "[heap]":
            smaps = {"Size": e.size >> 10, "Rss": (e.rss_anon + e.rss_file) * 4,
                     "Anonymous": e.rss_anon * 4}
    mi = alloc.mallinfo2().as_dict()
    return HeapStory(
        trace=name, program=meta.get("program", "?"), argv=meta.get("argv", "?"),
        calls=res.calls, ops={k: v for k, v in res.ops.items() if v},
        same_address=seen["same"], heap_pointers=seen["heap"],
        mmapped_both=seen["both"], mmapped_pointers=seen["mmapped"],
        live_bytes=res.live_bytes, live_objects=res.live_objects,
        peak_live_bytes=res.peak_live_bytes, peak_live_objects=res.peak_live_objects,
        heap_start=heap_start, brk=brk, peak_heap_bytes=res.peak_heap_bytes, heap=heap,
        free_lists=lists, mmapped=mmapped, heap_resident=(h_anon + h_swap) * PAGE_SIZE,
        top_bytes=av.top_size, top_resident=(anon + swap) * PAGE_SIZE,
        top_pages=max(0, whole[1] - whole[0]) // PAGE_SIZE, free_pages=free_pages,
        free_resident_pages=free_res, growth=grown if len(grown) > 1 else [],
        growth_mmapped=len(grown) > 1 and not 0 <= grown_ptr - start < 1 << 32,
        smaps_heap_kb=smaps,
        rss_anon_kb=res.rss_anon_kb, rss_anon_start_kb=res.rss_anon_start_kb,
        syscalls=dict(res.syscalls), mallinfo=mi, trim_threshold=alloc.mp.trim_threshold,
        mmap_threshold=alloc.mp.mmap_threshold)


# --- the heap story: output -----------------------------------------------------------------

def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def _story_sentences(s: HeapStory) -> dict[str, str]:
    """The paragraphs of the heap story, every figure taken from ``s``."""
    ops = ", ".join(f"{k} {v:,}" for k, v in s.ops.items())
    mm_word = "chunk" if s.mmapped_pointers == 1 else "chunks"
    heap_payload = next(b.bytes for b in s.heap if b.key == "payload")
    overhead = sum(b.bytes for b in s.heap if b.key in ("padding", "rounding", "headers",
                                                        "metadata"))
    free = sum(s.free_lists.values())
    mapped_kb = sum(c.resident for c in s.mmapped) // KiB
    top_untouched = s.top_pages - s.top_resident // PAGE_SIZE
    heap_kb = s.heap_resident // KiB
    delta = s.rss_anon_kb - s.rss_anon_start_kb
    other = delta - heap_kb - mapped_kb
    grew = f"{s.syscalls.get('brk', 0)} brk calls"
    out = {
        "program": (f"The program: {s.argv} ({s.program}), recorded on a real Linux system "
                    f"with 'memsim record' and bundled with memsim ({s.trace}): {s.calls:,} "
                    f"calls ({ops}), from its first malloc to its exit."),
        "replay": (f"Replayed through the glibc 2.36 model on the simulated kernel: the model "
                   f"returned the recorded address for {s.same_address:,} of "
                   f"{s.heap_pointers:,} heap pointers, and gave {s.mmapped_both} of "
                   f"{s.mmapped_pointers} {mm_word} its own mapping as the real glibc did. "
                   f"The replay assumes that the program writes every byte it allocates."),
        "live": (f"Live memory at exit: {s.live_bytes:,} bytes in {s.live_objects:,} objects "
                 f"(peak {s.peak_live_bytes:,} bytes, {s.peak_live_objects:,} objects), "
                 f"which the program does not free before it exits."),
        "heap": (f"The heap at exit: [heap] {s.heap_start:#x}-{s.brk:#x}, "
                 f"{s.heap_bytes:,} bytes ({format_size(s.heap_bytes)}; peak "
                 f"{format_size(s.peak_heap_bytes)}), obtained with {grew}. Every byte of it "
                 f"is in one bucket:"),
        "why": (f"Why RSS is not the live bytes: the heap holds {heap_payload:,} bytes of "
                f"live payload, yet {s.heap_resident:,} bytes of it are resident. RSS counts "
                f"whole 4 KiB pages, and a page stays resident once written: free() puts a "
                f"chunk in a bin but gives no page back ({free:,} bytes of free chunks here; "
                f"{s.free_resident_pages} of the {s.free_pages} whole pages inside them are "
                f"resident), and glibc shrinks the heap only when top exceeds "
                f"M_TRIM_THRESHOLD ({format_size(s.trim_threshold)}) or on malloc_trim(). "
                f"Headers, padding, rounding and malloc's own struct add {overhead:,} bytes. "
                f"Only the {s.heap_untouched // PAGE_SIZE} pages never written "
                f"({s.heap_untouched:,} bytes, {top_untouched} of them in top) cost no RAM. "
                f"The other {s.live_bytes - heap_payload:,} live bytes are not in the heap: "
                f"a request of M_MMAP_THRESHOLD ({format_size(s.mmap_threshold)}) or more "
                f"that no free chunk or top can hold gets its own mapping, resident as far "
                f"as it is written."),
        "rss": (f"RssAnon of the process: {s.rss_anon_kb:,} kB, {s.rss_anon_start_kb:,} kB "
                f"before the first call: +{delta:,} kB = {heap_kb:,} kB of heap + "
                f"{mapped_kb:,} kB of mmapped chunks"
                + (f" + {other:,} kB elsewhere." if other else ".")),
    }
    if s.growth:
        steps = " -> ".join(f"{n:,}" for n in s.growth)
        where = ("the last realloc moved it into its own mapping (glibc mmaps a chunk of "
                 "M_MMAP_THRESHOLD or more when the heap has no room for it)" if s.growth_mmapped
                 else "it stayed in the heap")
        out["growth"] = (f"The biggest object grew by realloc: {steps} bytes; {where}. A "
                         f"realloc that cannot grow a chunk in place copies it and frees the "
                         f"old chunk, which stays in the heap's bins.")
    return out


def heap_to_json(s: HeapStory) -> dict[str, Any]:
    """The heap story as plain data (what ``memsim demo --json`` prints)."""
    d: dict[str, Any] = {
        "trace": s.trace, "program": s.program, "argv": s.argv, "calls": s.calls,
        "ops": s.ops,
        "exact": {"heap_pointers": s.heap_pointers, "same_address": s.same_address,
                  "mmapped_pointers": s.mmapped_pointers, "mmapped_in_both": s.mmapped_both},
        "live": {"bytes": s.live_bytes, "objects": s.live_objects,
                 "peak_bytes": s.peak_live_bytes, "peak_objects": s.peak_live_objects},
        "heap": {"start": f"{s.heap_start:#x}", "brk": f"{s.brk:#x}", "bytes": s.heap_bytes,
                 "peak_bytes": s.peak_heap_bytes,
                 "buckets": [{"key": b.key, "label": b.label, "bytes": b.bytes,
                              "explain": b.explain} for b in s.heap],
                 "resident_bytes": s.heap_resident, "untouched_bytes": s.heap_untouched,
                 "top_bytes": s.top_bytes, "top_whole_pages": s.top_pages,
                 "top_resident_bytes": s.top_resident, "smaps_kB": s.smaps_heap_kb,
                 "free_whole_pages": s.free_pages,
                 "free_resident_pages": s.free_resident_pages},
        "growth": {"sizes": s.growth, "mmapped": s.growth_mmapped},
        "mmapped": [{"address": f"{c.address:#x}", "requested": c.requested,
                     "usable": c.usable, "mapped": c.mapped, "resident": c.resident}
                    for c in s.mmapped],
        "rss_anon_kB": s.rss_anon_kb, "rss_anon_start_kB": s.rss_anon_start_kb,
        "syscalls": {k: v for k, v in s.syscalls.items() if v},
        "mallinfo2": s.mallinfo,
        "thresholds": {"trim": s.trim_threshold, "mmap": s.mmap_threshold},
        "text": _story_sentences(s),
    }
    return d


def _bucket_rows(s: HeapStory) -> list[tuple[str, str, str, str]]:
    rows = [(b.label, f"{b.bytes:,}", _pct(b.bytes, s.heap_bytes), b.explain) for b in s.heap]
    total = sum(b.bytes for b in s.heap)
    rows.append(("total", f"{total:,}", _pct(total, s.heap_bytes), "= brk - start of the heap"))
    return rows


def _mapped_lines(s: HeapStory) -> list[str]:
    if not s.mmapped:
        return [f"No chunk lives in its own mapping (none reached the mmap threshold, "
                f"{format_size(s.mmap_threshold)})."]
    n = len(s.mmapped)
    lines = [f"{n} chunk{'s' if n != 1 else ''} in {'its' if n == 1 else 'their'} own "
             f"mapping (mmap), outside the heap: {s.mapped_bytes:,} bytes."]
    for c in s.mmapped:
        lines.append(f"  {c.address:#x}: asked {c.requested:,}, usable {c.usable:,}, mapping "
                     f"{c.mapped:,} (header and page rounding {c.mapped - c.requested:,}); "
                     f"resident {c.resident:,}")
    return lines


def _resident_lines(s: HeapStory) -> list[str]:
    pages = s.heap_bytes // PAGE_SIZE
    res = s.heap_resident // PAGE_SIZE
    sm = s.smaps_heap_kb
    return [
        f"[heap] in /proc/PID/smaps: Size {sm.get('Size', 0):,} kB, Rss {sm.get('Rss', 0):,} "
        f"kB: {res} of its {pages} pages have a frame, {pages - res} were never touched.",
        f"top: {s.top_bytes:,} bytes; {s.top_pages} whole pages of it, "
        f"{s.top_resident // PAGE_SIZE} resident (handed out before, merged back into top "
        f"when freed).",
        f"free chunks: {sum(s.free_lists.values()):,} bytes; {s.free_pages} whole pages "
        f"inside them, {s.free_resident_pages} resident.",
    ]


def render_heap_plain(s: HeapStory, out: Any) -> None:
    """The heap story as plain text."""
    def line(text: str = "") -> None:
        out.write(text + "\n")

    para = _story_sentences(s)
    line("Where the heap of a real program went")
    line()
    for key in ("program", "replay", "live"):
        for text in _wrap(para[key], 92):
            line(text)
        line()
    for text in _wrap(para["heap"], 92):
        line(text)
    line()
    rows = _bucket_rows(s)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    line(f"  {'bucket'.ljust(w0)}  {'bytes'.rjust(w1)}  {'share':>6}  what it is")
    for i, (label, nbytes, share, explain) in enumerate(rows):
        if i == len(rows) - 1:
            line(f"  {'-' * w0}  {'-' * w1}  {'-' * 6}")
        line(f"  {label.ljust(w0)}  {nbytes.rjust(w1)}  {share:>6}  {explain}")
    line()
    if "growth" in para:
        for text in _wrap(para["growth"], 92):
            line(text)
        line()
    for text in _mapped_lines(s):
        for i, t in enumerate(_wrap(text, 92)):
            line(("" if i == 0 or not text.startswith("  ") else "    ") + t)
    line()
    line("Resident pages (the simulated page table):")
    for text in _resident_lines(s):
        for i, t in enumerate(_wrap(text, 90)):
            line(("  " if i == 0 else "    ") + t)
    for i, t in enumerate(_wrap(para["rss"], 90)):
        line(("  " if i == 0 else "    ") + t)
    line()
    for text in _wrap(para["why"], 92):
        line(text)
    line()
    line("More: memsim demo --kernel (the kernel's side: VmSize, RSS, page tables), "
         "memsim replay, memsim explain.")


def render_heap_rich(s: HeapStory) -> None:
    """The heap story on a terminal: paragraphs and a table of the buckets."""
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    para = _story_sentences(s)

    def indented(text: str, left: int = 2) -> None:
        console.print(Padding(Text(text), (0, 0, 0, left)))

    console.print("[bold]Where the heap of a real program went[/bold]")
    for key in ("program", "replay", "live", "heap"):
        console.print()
        console.print(escape(para[key]))
    table = Table(header_style="bold")
    table.add_column("bucket")
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("what it is", style="dim")
    rows = _bucket_rows(s)
    for i, (label, nbytes, share, explain) in enumerate(rows):
        last = i == len(rows) - 1
        style = "bold" if last else ""
        table.add_row(escape(label), nbytes, share, escape(explain), style=style,
                      end_section=i == len(rows) - 2)
    console.print(table)
    console.print()
    if "growth" in para:
        console.print(escape(para["growth"]))
        console.print()
    for text in _mapped_lines(s):
        if text.startswith("  "):
            indented(text.strip())
        else:
            console.print(escape(text))
    console.print()
    console.print("[bold]Resident pages[/bold] (the simulated page table)")
    for text in [*_resident_lines(s), para["rss"]]:
        indented(text)
    console.print()
    console.print(escape(para["why"]))
    console.print()
    console.print("[dim]More: memsim demo --kernel (the kernel's side: VmSize, RSS, page "
                  "tables), memsim replay, memsim explain.[/dim]")
