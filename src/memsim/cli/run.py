"""``memsim run``: execute a small program of memory operations on a simulated process.

The program is written in the op language of :mod:`memsim.oracle.ops` (the same programs run
under ``memsim verify-kernel``, which checks them against the real kernel)::

    h = sbrk 64k                  # glibc sbrk(): h = the old break
    write h 64k                   # user code stores to every byte
    m = mmap 1G rw                # m = the address mmap returned
    write m 64M every=4k          # one store per page
    mark touched                  # print VmSize, VmData, VmStk, VmRSS, RssAnon, VmPTE here
    munmap m 1G

Each op is printed with its result, the way strace shows a call: the address or value it
returned, ``failed: ENOMEM`` when the simulated kernel refused it (a refusal is data, as in
C, not an error of memsim), or the signal that killed the process. Each ``mark`` prints the
status fields and how they moved since the previous mark. At the end the simulated
``/proc/PID/status`` (memory lines) and ``/proc/PID/maps`` are printed.

Exit status: 0 when the program ran to its end, 128 + the signal number when the simulated
process was killed (139 for SIGSEGV, 137 for the OOM killer's SIGKILL), as a shell reports it;
1 and one line on stderr for a program that does not parse.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memsim.cli._common import (
    UsageError,
    add_output_arguments,
    make_console,
    output_mode,
    print_json,
    size_arg,
)
from memsim.units import PAGE_SIZE

if TYPE_CHECKING:
    from memsim import Process
    from memsim.oracle.ops import Addr, Op

NAME = "run"
HELP = "run a small program of sbrk/mmap/munmap/read/write ops and show status and maps"
DESCRIPTION = """\
Execute a program of memory operations, one a line, on a simulated process, print what each
op returned, the status at each 'mark', and the final /proc/PID/status and /proc/PID/maps.

ops (ADDR is a name, a number, or name+SIZE; SIZE is 4096, 0x1000, 64k, 2M, 1G, 1T):
  [NAME =] sbrk INCREMENT            [NAME =] brk ADDR
  [NAME =] mmap LENGTH PROT [addr=ADDR] [fixed] [noreplace] [noreserve] [shared] [populate]
                                     [growsdown] [stack]
  munmap ADDR LENGTH                 mprotect ADDR LENGTH PROT     (PROT: none, r, rw, rwx)
  [NAME =] mremap ADDR OLD NEW [maymove] [fixed=ADDR]
  madvise ADDR LENGTH dontneed|free  write|read ADDR [LENGTH] [every=STEP]
  setrlimit data|as|stack SOFT HARD  (inf, SIZE, or +SIZE = VmData/VmSize/VmStk + SIZE)
  mark [LABEL]                       print the status fields here
'brk0' is the initial break and 'stack' the start of the [stack] VMA. '#' starts a comment;
with -e, ';' separates ops too. Exit status 139 if the process dies of SIGSEGV.

examples:
  memsim run -e 'm = mmap 1G rw; write m 64M every=4k; mark'
  memsim run prog.ops
  echo 'h = sbrk 5000; write h 5000' | memsim run -
"""

#: Status fields printed at each mark (kB); VmSwap too when the machine has swap.
MARK_FIELDS: tuple[str, ...] = ("VmSize", "VmData", "VmStk", "VmRSS", "RssAnon", "VmPTE")
#: Memory lines of the final /proc/PID/status.
STATUS_PREFIXES: tuple[str, ...] = ("Vm", "Rss", "Huge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("program", nargs="?", metavar="FILE",
                        help="the op program ('-' for standard input)")
    parser.add_argument("-e", "--execute", metavar="OPS", action="append",
                        help="ops given on the command line, ';' or newline separated "
                             "(repeatable; runs after FILE)")
    parser.add_argument("--ram", type=size_arg, default=None, metavar="SIZE",
                        help="RAM of the simulated machine (default: this machine's)")
    parser.add_argument("--swap", type=size_arg, default=0, metavar="SIZE",
                        help="swap space (default: 0)")
    parser.add_argument("--overcommit", type=int, choices=(0, 1, 2), default=0,
                        help="vm.overcommit_memory: 0 heuristic, 1 always, 2 never (default 0)")
    parser.add_argument("--no-final", dest="final", action="store_false",
                        help="do not print the final status and maps")
    add_output_arguments(parser)


@dataclass
class Step:
    """One executed op: its line, text and what happened."""

    lineno: int
    text: str
    result: str                     # "ok", "failed", "killed", "mark"
    value: str = ""                 # "0x7ffff7e00000", "ENOMEM", "SIGSEGV ...", ""
    status: dict[str, int] = field(default_factory=dict)    # marks: fields (kB)
    delta: dict[str, int] = field(default_factory=dict)     # marks: change since last mark


@dataclass
class Result:
    steps: list[Step]
    status_text: str
    maps_text: str
    pid: int
    signal: int = 0                  # signal number that killed the process, or 0
    machine: dict[str, int] = field(default_factory=dict)

    def headline(self) -> str:
        """The configuration, echoed first so that a run can be repeated."""
        from memsim.units import format_size

        m = self.machine
        swap = format_size(m["swap_bytes"]) if m.get("swap_bytes") else "no"
        return (f"pid {self.pid} on a machine with {format_size(m.get('ram_bytes', 0))} of "
                f"RAM, {swap} swap, vm.overcommit_memory={m.get('overcommit_memory', 0)}")


def read_program(args: argparse.Namespace) -> str:
    """The program text from FILE and/or -e options."""
    parts: list[str] = []
    if args.program == "-":
        parts.append(sys.stdin.read())
    elif args.program is not None:
        with open(args.program, encoding="utf-8") as f:
            parts.append(f.read())
    for chunk in args.execute or []:
        parts.append("\n".join(piece.strip() for piece in chunk.split(";")))
    if not parts:
        raise UsageError("give a program FILE, '-' for standard input, or -e 'OPS'")
    return "\n".join(parts) + "\n"


def run(args: argparse.Namespace) -> int:
    from memsim import Machine, Process
    from memsim.errors import TraceError
    from memsim.oracle.ops import parse

    text = read_program(args)
    where = {None: "-e", "-": "<stdin>"}.get(args.program, args.program)
    try:
        program = parse(text)
        machine = Machine(ram=args.ram, swap=args.swap, overcommit=args.overcommit)
        proc = Process(machine=machine)
        result = execute(proc, program.ops)
    except TraceError as e:     # the op language names its source "<ops>": name the file
        raise TraceError(str(e).replace("<ops>", where, 1)) from None
    mode = output_mode(args)
    if mode == "json":
        print_json(to_json(result, args.final))
    elif mode == "plain":
        render_plain(result, args.final)
    else:
        render_rich(result, args.final)
    return 128 + result.signal if result.signal else 0


# --- execution ------------------------------------------------------------------------------

class _Names:
    """The registers of a run: brk0, stack, and every ``NAME = ...``."""

    def __init__(self, proc: Process) -> None:
        self.values: dict[str, int] = {"brk0": _syscalls(proc).sys_brk(0)}
        for line in str(proc.maps()).splitlines():
            if line.rstrip().endswith("[stack]"):
                self.values["stack"] = int(line.split("-", 1)[0], 16)

    def resolve(self, a: Addr | None, op: Op) -> int:
        from memsim.errors import TraceError

        if a is None:
            return 0
        if a.base is None:
            return a.off
        if a.base not in self.values:
            if a.base == "anchor":
                raise TraceError("'anchor' exists only under memsim verify-kernel",
                                 "<ops>", op.lineno, op.text)
            raise TraceError(f"{a.base!r} has no value (the op that set it failed)",
                             "<ops>", op.lineno, op.text)
        return self.values[a.base] + a.off


def _syscalls(proc: Process) -> Any:
    """The object that implements memsim.kernel.abi.Syscalls for ``proc``."""
    if hasattr(proc, "sys_mmap"):
        return proc
    for name in ("mm", "syscalls", "kernel"):
        obj = getattr(proc, name, None)
        if obj is not None and hasattr(obj, "sys_mmap"):
            return obj
    raise RuntimeError("memsim.Process exposes no syscall interface")


def _marks(proc: Process) -> dict[str, int]:
    status = proc.status()
    fields = MARK_FIELDS + (("VmSwap",) if proc.machine.swap_pages else ())
    return {f: int(status[f]) for f in fields}


def execute(proc: Process, ops: list[Op]) -> Result:
    """Run ``ops`` on ``proc`` until the end or a fatal signal."""
    from memsim.errors import Signal
    from memsim.kernel.abi import errno_name

    sys_ = _syscalls(proc)
    names = _Names(proc)
    steps: list[Step] = []
    last = _marks(proc)
    signal = 0
    for op in ops:
        if op.kind == "mark":
            now = _marks(proc)
            steps.append(Step(op.lineno, op.text, "mark", op.label,
                              now, {k: now[k] - last[k] for k in now}))
            last = now
            continue
        try:
            ret = _step(proc, sys_, names, op)
        except Signal as e:
            steps.append(Step(op.lineno, op.text, "killed", f"{e.name}: {e}"))
            signal = e.signo
            break
        if ret is None:
            steps.append(Step(op.lineno, op.text, "ok"))
        elif -4095 <= ret < 0:
            steps.append(Step(op.lineno, op.text, "failed", errno_name(-ret)))
            if op.dst:
                names.values.pop(op.dst, None)
        else:
            if op.dst:
                names.values[op.dst] = ret
            shown = f"{ret:#x}" if op.kind in ("sbrk", "brk", "mmap", "mremap") else str(ret)
            steps.append(Step(op.lineno, op.text, "ok", shown))
    status_text = ""
    maps_text = ""
    if not signal:
        status_text = "\n".join(line for line in str(proc.status()).splitlines()
                                if line.startswith(STATUS_PREFIXES))
        maps_text = str(proc.maps()).rstrip("\n")
    machine = {"ram_bytes": proc.machine.nr_frames * PAGE_SIZE,
               "swap_bytes": proc.machine.swap_pages * PAGE_SIZE,
               "overcommit_memory": proc.machine.overcommit}
    return Result(steps, status_text, maps_text, int(getattr(proc, "pid", 0)), signal, machine)


def _step(proc: Process, sys_: Any, names: _Names, op: Op) -> int | None:
    """One op. Returns the syscall's value (``-errno`` on failure), or None for accesses."""
    k = op.kind
    a = names.resolve(op.addr, op)
    if k in ("write", "read"):
        if op.length > 0:
            touch = proc.write if k == "write" else proc.read
            touch(a, op.length, every=op.every or None)
        return None
    if k == "sbrk":
        old = proc.sbrk(op.length)
        return -int(proc.errno) if old is None else int(old)
    if k == "brk":
        return int(sys_.sys_brk(a))
    if k == "mmap":
        return int(sys_.sys_mmap(a, op.length, op.prot, op.flags))
    if k == "munmap":
        return int(sys_.sys_munmap(a, op.length))
    if k == "mprotect":
        return int(sys_.sys_mprotect(a, op.length, op.prot))
    if k == "mremap":
        return int(sys_.sys_mremap(a, op.length, op.new_len, op.flags,
                                   names.resolve(op.new_addr, op)))
    if k == "madvise":
        return int(sys_.sys_madvise(a, op.length, op.advice))
    if k == "setrlimit":
        status = proc.status()
        field = {"data": "VmData", "stack": "VmStk"}.get(op.resource, "VmSize")
        base = 1024 * int(status[field])            # "+SIZE" is relative to current use

        def limit(lim: Any) -> int | None:
            if lim.mode == "inf":
                return None
            return int(lim.value + (base if lim.mode == "rel" else 0))

        r = proc.setrlimit(op.resource, limit(op.soft), limit(op.hard))
        if r is False or (isinstance(r, int) and not isinstance(r, bool) and r < 0):
            return -int(proc.errno)
        return 0
    raise AssertionError(f"unhandled op {k!r}")


# --- output ---------------------------------------------------------------------------------

def _fmt_kb(v: int) -> str:
    return f"{v:,} kB"


def _fmt_delta(v: int) -> str:
    return f"{v:+,}" if v else "="


def _result_text(step: Step) -> str:
    if step.result == "ok":
        return f"= {step.value}" if step.value else "ok"
    if step.result == "failed":
        return f"failed: {step.value}"
    if step.result == "killed":
        return f"killed by {step.value}"
    return ""


def to_json(result: Result, final: bool = True) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for s in result.steps:
        item: dict[str, Any] = {"line": s.lineno, "op": s.text, "result": s.result}
        if s.result == "mark":
            item.update(label=s.value, status_kB=s.status, delta_kB=s.delta)
        elif s.value:
            item["value"] = s.value
        steps.append(item)
    out: dict[str, Any] = {"pid": result.pid, "machine": result.machine, "steps": steps,
                           "killed_by_signal": result.signal or None}
    if final and not result.signal:
        out["status"] = result.status_text
        out["maps"] = result.maps_text
    return out


def render_plain(result: Result, final: bool = True) -> None:
    print(result.headline())
    width = max([len(s.text) for s in result.steps if s.result != "mark"] + [20])
    width = min(width, 60)
    for s in result.steps:
        if s.result == "mark":
            fields = "  ".join(f"{k} {_fmt_kb(v)} ({_fmt_delta(s.delta[k])})"
                               for k, v in s.status.items())
            print(f"{s.lineno:>4}  mark {s.value}: {fields}")
        else:
            print(f"{s.lineno:>4}  {s.text:<{width}}  {_result_text(s)}")
    if result.signal:
        print(f"the process was killed (exit status {128 + result.signal})")
        return
    if final:
        print()
        print(f"/proc/{result.pid}/status (memory lines):")
        print(result.status_text)
        print()
        print(f"/proc/{result.pid}/maps:")
        print(result.maps_text)


def render_rich(result: Result, final: bool = True) -> None:
    from rich.markup import escape
    from rich.rule import Rule
    from rich.table import Table

    console = make_console()
    console.print(f"[bold]{escape(result.headline())}[/bold]")
    table = Table(header_style="bold", expand=False)
    table.add_column("line", justify="right", style="dim")
    table.add_column("op")
    table.add_column("result")
    for s in result.steps:
        if s.result == "mark":
            fields = "\n".join(f"{k:<8}{_fmt_kb(v):>14} [dim]{_fmt_delta(s.delta[k]):>12}[/dim]"
                               for k, v in s.status.items())
            table.add_row(str(s.lineno), f"[bold]mark {escape(s.value)}[/bold]", fields,
                          end_section=True)
            continue
        colour = {"ok": "green", "failed": "yellow", "killed": "bold red"}[s.result]
        table.add_row(str(s.lineno), escape(s.text),
                      f"[{colour}]{escape(_result_text(s))}[/{colour}]")
    console.print(table)
    if result.signal:
        console.print(f"[bold red]the process was killed (exit status "
                      f"{128 + result.signal})[/bold red]")
        return
    if not final:
        return
    status = Table(title=f"/proc/{result.pid}/status", title_justify="left", box=None,
                   show_header=False, padding=(0, 1))
    status.add_column("field")
    status.add_column("value", justify="right")
    for line in result.status_text.splitlines():
        name, _, value = line.partition(":")
        status.add_row(escape(name + ":"), escape(value.strip()))
    console.print(status)
    console.print(Rule(f"/proc/{result.pid}/maps", align="left"))
    for line in result.maps_text.splitlines():
        console.print(escape(line), soft_wrap=True)
