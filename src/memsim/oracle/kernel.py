"""The kernel oracle: run one op program on the simulator and on the real kernel, compare.

Why and how
-----------
memsim promises to be exact where the kernel is deterministic: for any sequence of sbrk, mmap,
munmap, mprotect, mremap, madvise, read and write, the changes of VmSize, VmData, VmStk,
RssAnon and VmPTE between two points are what this machine's kernel reports. This module checks
that promise against a live run, never against numbers typed into a test::

    ops text ─parse─► Program ─┬─ SimRunner ──► memsim.Process ─────► status() at each mark
                               │
                               └─ RealRunner ─► integers on stdin ─► kdriver (C, raw syscalls,
                                                                     under setarch -R)
                                                                     ─► /proc/self/status
    compare: per op    the result (address relative to an anchor, errno, or SIGSEGV code)
             per mark  the deltas of VmSize VmData VmStk RssAnon VmPTE and of the VMA count

The real side is ``src/memsim/native/kdriver.c``, compiled once with the system C compiler
into ``$XDG_CACHE_HOME/memsim`` (default ``~/.cache/memsim``), named by a hash of its source.
Its header comment explains how it keeps its own activity (glibc's heap, lazy binding, its
stack, its buffers) out of the figures.

Both runners begin with the same prologue, so that the address spaces are comparable although
the real process has ld.so and libc where the simulator has its own model of an image:

1. holes between the VMAs of the mmap area (above the big gap that follows the heap) are filled
   with PROT_NONE | MAP_NORESERVE mappings, so a small mmap never drops into a hole ld.so left;
2. a PROT_EXEC-only sentinel covers ``[align_down(lowest - 4 KiB, 1 GiB), lowest)``: its start,
   the **anchor**, is 1 GiB aligned on both sides, nothing the program maps can merge with it,
   and the GiB below it shares no page-table page with anything else; addresses returned by
   mmap/mremap are reported as ``anchor±offset`` (or ``addr``/``old``/``new`` when they equal
   the hint, the old address or the MREMAP_FIXED target);
3. the simulated process gets the real driver's initial break as its ``start_brk`` (the
   driver's text is one page longer than the model program's, so its break is one page
   higher); one byte just below the break is read where it is mapped, so the PTE table that
   will map the first heap pages exists on both sides (a real program's .bss shares it).
   Where the heap crosses a 2 MiB boundary thus matters alike. sbrk/brk results are reported
   as ``brk0±offset``;
4. one-page PROT_NONE mappings at ``PAD_BASE`` (two pages apart) bring both sides to
   ``MAPS_TARGET`` lines of /proc/self/maps, so vm.max_map_count is reached at the same op.

Only deltas between snapshots are compared; absolute figures (the driver's libc, the
simulator's image model) legitimately differ.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memsim.errors import MemsimError, SegmentationFault
from memsim.native.build import NativeBuildError, build_native
from memsim.native.build import find_compiler as native_find_compiler
from memsim.oracle.ops import (
    MAP_ANONYMOUS,
    MAP_FIXED_NOREPLACE,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MREMAP_FIXED,
    RLIMIT,
    Addr,
    Limit,
    Op,
    Program,
    parse,
)

PAGE_SIZE = 4096
GiB = 1 << 30
U64 = (1 << 64) - 1
PROT_EXEC = 0x4
#: prologue step 4: both sides pad /proc/self/maps to this many lines (see kdriver.c)
MAPS_TARGET = 64
PAD_BASE = 0x300000000000

#: The /proc/self/status fields whose deltas must match (kB), then the VMA count.
STATUS_FIELDS: tuple[str, ...] = ("VmSize", "VmData", "VmStk", "RssAnon", "VmPTE")
COMPARED: tuple[str, ...] = (*STATUS_FIELDS, "maps")
#: What the driver prints in each snapshot line, in order.
DRIVER_FIELDS: tuple[str, ...] = ("VmSize", "VmData", "VmStk", "RssAnon", "VmPTE", "VmRSS",
                                  "VmHWM", "VmPeak", "RssFile", "maps")

SEGV_CODES = {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"}
DRIVER_SOURCE = Path(__file__).resolve().parent.parent / "native" / "kdriver.c"
#: -z now: no lazy PLT binding writing the GOT mid-run; no stack protector: a fixed frame.
EXTRA_CFLAGS: tuple[str, ...] = ("-fno-stack-protector", "-Wl,-z,now", "-Wl,-z,relro")
ADDR_NO_RANDOMIZE = 0x0040000
DRIVER_INPUT_MAX = 4 << 20          # kdriver.c INBUF_SZ


class OracleUnavailable(MemsimError):
    """The real-kernel side cannot run here (no C compiler, no /proc, not Linux x86-64)."""


# --- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one op did: ``ok`` with a normalized value (``"0"``, ``"anchor-0x1000"``,
    ``"brk0+0x1"``, ``"addr"``), ``err`` with an errno name, ``segv`` with the SEGV code and
    the faulting address relative to the op's address, or ``error`` (the simulator raised)."""

    status: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.value}".strip()


@dataclass
class Run:
    """One side's run: an outcome per op (marks excluded) and a snapshot at the start and at
    each mark (kB, and ``maps`` = VMA count)."""

    outcomes: list[Outcome] = field(default_factory=list)
    snapshots: list[dict[str, int]] = field(default_factory=list)
    brk0: int = 0
    anchor: int = 0
    stack0: int = 0


@dataclass
class OpRow:
    lineno: int
    text: str
    real: Outcome
    sim: Outcome

    @property
    def ok(self) -> bool:
        return self.real == self.sim


@dataclass
class MarkRow:
    lineno: int
    label: str
    real: dict[str, int]
    sim: dict[str, int]
    fields: tuple[str, ...] = COMPARED

    @property
    def diff(self) -> list[str]:
        return [f for f in self.fields if self.real.get(f) != self.sim.get(f)]

    @property
    def ok(self) -> bool:
        return not self.diff


@dataclass
class KernelReport:
    """The side-by-side comparison. ``ok`` iff every op outcome and every compared delta
    agrees. ``str()`` is a readable table; ``to_dict()`` is JSON-ready."""

    ops: list[OpRow]
    marks: list[MarkRow]
    real: Run
    sim: Run

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.ops) and all(m.ok for m in self.marks)

    def failures(self) -> list[str]:
        out = [f"line {r.lineno}: {r.text}: real {r.real}, simulated {r.sim}"
               for r in self.ops if not r.ok]
        for m in self.marks:
            for f in m.diff:
                out.append(f"mark {m.label!r} (line {m.lineno}): Δ{f} real {m.real.get(f):+d}, "
                           f"simulated {m.sim.get(f):+d}")
        return out

    def format(self) -> str:
        lines = [f"{'line':>4}  {'op':<44} {'real':<22} {'simulated':<22}"]
        for r in self.ops:
            flag = "" if r.ok else "   <-- differs"
            lines.append(f"{r.lineno:>4}  {r.text[:44]:<44} {str(r.real):<22} {str(r.sim):<22}"
                         f"{flag}")
        lines.append("")
        head = "  ".join(f"Δ{f:<8}" for f in COMPARED)
        lines.append(f"{'mark':<24} side  {head}")
        for m in self.marks:
            for side, d in (("real", m.real), ("sim ", m.sim)):
                vals = "  ".join(f"{d.get(f, 0):>+9}" for f in COMPARED)
                lines.append(f"{m.label[:24]:<24} {side}  {vals}")
            if not m.ok:
                lines.append(f"{'':<24}       differs: {', '.join(m.diff)}")
        lines.append("")
        lines.append("AGREE" if self.ok else f"DIFFER ({len(self.failures())} differences)")
        return "\n".join(lines)

    __str__ = format

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "ops": [{"line": r.lineno, "op": r.text, "real": str(r.real), "sim": str(r.sim),
                     "ok": r.ok} for r in self.ops],
            "marks": [{"line": m.lineno, "label": m.label, "real": m.real, "sim": m.sim,
                       "ok": m.ok} for m in self.marks],
            "failures": self.failures(),
        }


# --- normalization shared by both runners -----------------------------------------------------

def _s64(v: int) -> int:
    """The value a C ``long`` holds after the cast: two's complement of the low 64 bits."""
    v &= U64
    return v - (1 << 64) if v >= 1 << 63 else v


class _Regs:
    """Register file of a run: resolves :class:`Addr` values."""

    def __init__(self, brk0: int, anchor: int, stack0: int) -> None:
        self.brk0 = brk0
        self.anchor = anchor
        self.stack0 = stack0
        self.values: dict[str, int] = {}

    def resolve(self, a: Addr | None) -> int:
        if a is None:
            return 0
        if a.base is None:
            base = 0
        elif a.base == "brk0":
            base = self.brk0
        elif a.base == "anchor":
            base = self.anchor
        elif a.base == "stack":
            base = self.stack0
        else:
            base = self.values.get(a.base, 0)
        return (base + a.off) & U64

    def describe(self, op: Op, value: int) -> str:
        """Normalize an op's successful return value (see :class:`Outcome`)."""
        if op.kind in ("sbrk", "brk"):
            d = value - self.brk0
            return f"brk0{'+' if d >= 0 else '-'}{abs(d):#x}"
        if op.kind == "mmap":
            hint = self.resolve(op.addr)
            if hint and value == hint:
                return "addr"
        elif op.kind == "mremap":
            if value == self.resolve(op.addr):
                return "old"
            if op.flags & MREMAP_FIXED and value == self.resolve(op.new_addr):
                return "new"
        else:
            return str(value)
        d = value - self.anchor
        return f"anchor{'+' if d >= 0 else '-'}{abs(d):#x}"

    def segv(self, op: Op, code: str, addr: int) -> Outcome:
        d = addr - self.resolve(op.addr)
        return Outcome("segv", f"{code} at {'+' if d >= 0 else '-'}{abs(d):#x}")


def _errno_name(code: int) -> str:
    import errno
    return errno.errorcode.get(abs(code), f"E{abs(code)}")


def _mmap_area_holes(vmas: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], int]:
    """The holes between the VMAs of the mmap area, and its lowest address (prologue 1-2).

    ``vmas`` are (start, end) below 2^47 in address order, the stack last. The mmap area is the
    VMAs above the largest gap, the stack excepted."""
    if len(vmas) < 3:
        raise OracleUnavailable("address space too small to locate the mmap area")
    lo, gap = 0, -1
    for i in range(1, len(vmas) - 1):
        g = vmas[i][0] - vmas[i - 1][1]
        if g > gap:
            lo, gap = i, g
    holes = [(vmas[i - 1][1], vmas[i][0]) for i in range(lo + 1, len(vmas) - 1)
             if vmas[i][0] > vmas[i - 1][1]]
    return holes, vmas[lo][0]


_MAPS_RE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)\s")


def _parse_maps(text: str) -> list[tuple[int, int]]:
    out = []
    for line in text.splitlines():
        m = _MAPS_RE.match(line)
        if m:
            s, e = int(m.group(1), 16), int(m.group(2), 16)
            if s < 1 << 47:
                out.append((s, e))
    return out


# --- the real kernel --------------------------------------------------------------------------

def find_compiler() -> str | None:
    """The C compiler memsim.native.build would use, or None if there is none."""
    try:
        return native_find_compiler()[0]
    except NativeBuildError:
        return None


def unavailable_reason() -> str | None:
    """Why the real-kernel side cannot run here, or None if it can."""
    if not sys.platform.startswith("linux"):
        return f"the kernel oracle needs Linux (this is {sys.platform})"
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"the kernel oracle needs x86-64 (this is {platform.machine()})"
    if not os.path.exists("/proc/self/status"):
        return "the kernel oracle needs /proc (no /proc/self/status)"
    if find_compiler() is None:
        return "the kernel oracle needs a C compiler (no cc, gcc or clang on PATH, $CC unset)"
    return None


def driver_path() -> Path:
    """Compile kdriver.c once (cached by :func:`memsim.native.build.build_native`, keyed by
    source, flags and compiler) and return the binary. Raises :class:`OracleUnavailable`
    with the reason if that is impossible."""
    reason = unavailable_reason()
    if reason:
        raise OracleUnavailable(reason)
    try:
        return build_native(DRIVER_SOURCE.name, EXTRA_CFLAGS, shared=False)
    except NativeBuildError as e:
        raise OracleUnavailable(str(e)) from None


def _no_aslr() -> None:   # preexec_fn when setarch is missing
    ctypes.CDLL(None, use_errno=True).personality(ADDR_NO_RANDOMIZE)


def _encode_addr(a: Addr | None, program: Program) -> str:
    if a is None or a.base is None:
        return f"-1 {_s64(a.off if a else 0)}"
    base = {"brk0": -2, "anchor": -3, "stack": -4}.get(a.base)
    if base is None:
        base = program.registers.index(a.base)
    return f"{base} {_s64(a.off)}"


def _encode_limit(lim: Limit) -> str:
    return {"abs": f"0 {_s64(lim.value)}", "rel": f"1 {_s64(lim.value)}", "inf": "2 0"}[lim.mode]


def compile_program(program: Program) -> str:
    """The integer program kdriver reads (format in kdriver.c)."""
    lines = []
    for op in program.ops:
        dst = program.registers.index(op.dst) if op.dst else -1
        a = _encode_addr(op.addr, program)
        k = op.kind
        if k == "mark":
            lines.append("10")
        elif k == "mmap":
            lines.append(f"1 {dst} {_s64(op.length)} {_s64(op.prot)} {_s64(op.flags)} {a}")
        elif k == "munmap":
            lines.append(f"2 {a} {_s64(op.length)}")
        elif k == "mprotect":
            lines.append(f"3 {a} {_s64(op.length)} {_s64(op.prot)}")
        elif k == "mremap":
            lines.append(f"4 {dst} {a} {_s64(op.length)} {_s64(op.new_len)} {op.flags} "
                         f"{_encode_addr(op.new_addr, program)}")
        elif k == "madvise":
            lines.append(f"5 {a} {_s64(op.length)} {op.advice}")
        elif k in ("write", "read"):
            lines.append(f"{6 if k == 'write' else 7} {a} {_s64(op.length)} {op.every}")
        elif k == "sbrk":
            lines.append(f"8 {dst} {_s64(op.length)}")
        elif k == "setrlimit":
            lines.append(f"9 {RLIMIT[op.resource]} {_encode_limit(op.soft)} "
                         f"{_encode_limit(op.hard)}")
        elif k == "brk":
            lines.append(f"11 {dst} {a}")
        else:  # pragma: no cover - parse() rejects unknown kinds
            raise AssertionError(k)
    return "\n".join(lines) + "\n"


class RealRunner:
    """Runs a program on the real kernel with kdriver under ``setarch -R``."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout
        self.binary = driver_path()

    def run(self, program: Program) -> Run:
        setarch = shutil.which("setarch")
        argv = [setarch, "-R", str(self.binary)] if setarch else [str(self.binary)]
        text = compile_program(program)
        if len(text) >= DRIVER_INPUT_MAX:
            raise MemsimError(f"op program too large for kdriver: {len(text)} bytes compiled, "
                              f"at most {DRIVER_INPUT_MAX - 1} (split it into several runs)")
        proc = subprocess.run(argv, input=text, capture_output=True,
                              text=True, timeout=self.timeout,
                              preexec_fn=None if setarch else _no_aslr)
        lines = proc.stdout.splitlines()
        if not lines or not lines[0].startswith("I "):
            raise MemsimError(f"kdriver produced no header (exit {proc.returncode}): "
                              f"{proc.stderr.strip()[:200]}")
        _, brk0, anchor, stack0 = lines[0].split()
        run = Run(brk0=int(brk0), anchor=int(anchor), stack0=int(stack0))
        regs = _Regs(run.brk0, run.anchor, run.stack0)
        results = [ln.split() for ln in lines[1:] if ln.startswith("R ")]
        snaps = [ln.split()[1:] for ln in lines[1:] if ln.startswith("S ")]
        run.snapshots = [dict(zip(DRIVER_FIELDS, map(int, s), strict=True)) for s in snaps]
        it = iter(results)
        for op in program.ops:
            if op.kind == "mark":
                continue
            r = next(it, None)
            if r is None:
                how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                       else f"exit status {proc.returncode}")
                why = proc.stderr.strip()[:200] or "no message"
                raise MemsimError(f"the real driver (kdriver) stopped at line {op.lineno} "
                                  f"({op.text}), {how}: {why}. Programs must leave the "
                                  f"memory above the anchor alone: the driver, ld.so and libc "
                                  f"live there")
            if r[1] == "ok":
                value = int(r[2])
                run.outcomes.append(Outcome("ok", regs.describe(op, value)))
                if op.dst:
                    regs.values[op.dst] = value
            elif r[1] == "err":
                run.outcomes.append(Outcome("err", _errno_name(int(r[2]))))
            else:
                code = SEGV_CODES.get(int(r[2]), f"si_code={r[2]}")
                run.outcomes.append(regs.segv(op, code, int(r[3])))
        if len(run.snapshots) != program.nmarks + 1:
            raise MemsimError(f"kdriver printed {len(run.snapshots)} snapshots, expected "
                              f"{program.nmarks + 1} (exit {proc.returncode})")
        return run


# --- the simulator ----------------------------------------------------------------------------

class SimRunner:
    """Runs a program on a fresh :class:`memsim.Process`.

    ``api="syscall"`` (default) issues mmap/munmap/mprotect/mremap/madvise through the raw
    syscall interface under the process (``proc.mm.sys_*``: integers exactly as the C driver
    passes them, -errno results); ``api="process"`` through the Python methods of
    :class:`memsim.Process` (``proc.mmap(...)``: None/-1 and ``proc.errno``, negative lengths
    converted as C would). sbrk, brk, reads, writes and setrlimit always use the Process."""

    APIS = ("syscall", "process")

    def __init__(self, machine_options: dict[str, Any] | None = None,
                 start_brk: int | None = None, api: str = "syscall") -> None:
        if api not in self.APIS:
            raise ValueError(f"api must be one of {self.APIS}, not {api!r}")
        self.machine_options = machine_options
        self.start_brk = start_brk
        self.api = api

    def _machine(self) -> Any:
        import memsim
        opts = dict(self.machine_options) if self.machine_options is not None else \
            host_machine_options()
        return memsim.Machine(**opts)

    def run(self, program: Program) -> Run:
        import memsim
        machine = self._machine()
        proc = memsim.Process(machine=machine, start_brk=self.start_brk)
        sys_ = _syscalls(proc)
        run = Run()
        # prologue (see the module docstring; the same steps as kdriver.c's prologue)
        vmas = _parse_maps(str(proc.maps()))
        holes, lowest = _mmap_area_holes(vmas)
        for start, end in holes:
            sys_.sys_mmap(start, end - start, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
                          | MAP_FIXED_NOREPLACE)
        run.anchor = (lowest - PAGE_SIZE) & ~(GiB - 1)
        sys_.sys_mmap(run.anchor, lowest - run.anchor, PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE)
        run.brk0 = sys_.sys_brk(0)
        try:
            proc.read(run.brk0 - 1, 1)
        except SegmentationFault:
            pass
        count = sum(1 for line in str(proc.maps()).splitlines() if line.strip())
        for i in range(max(0, MAPS_TARGET - count)):
            sys_.sys_mmap(PAD_BASE + 2 * PAGE_SIZE * i, PAGE_SIZE, 0,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE)
        for line in str(proc.maps()).splitlines():
            if line.rstrip().endswith("[stack]"):
                run.stack0 = int(line.split("-", 1)[0], 16)
        regs = _Regs(run.brk0, run.anchor, run.stack0)
        run.snapshots.append(_sim_snapshot(proc))
        for op in program.ops:
            if op.kind == "mark":
                run.snapshots.append(_sim_snapshot(proc))
                continue
            run.outcomes.append(self._step(proc, sys_, regs, op))
        return run

    def _step(self, proc: Any, sys_: Any, regs: _Regs, op: Op) -> Outcome:
        k = op.kind
        a = regs.resolve(op.addr)
        if self.api == "process" and k in ("mmap", "munmap", "mprotect", "mremap", "madvise") \
                and not (k == "mmap" and not _process_can_mmap(op.flags)):
            return self._process_step(proc, regs, op, a)
        try:
            if k in ("write", "read"):
                if op.length <= 0:
                    return Outcome("ok", "0")
                every = op.every if op.every > 0 else None
                touch = proc.write if k == "write" else proc.read
                try:
                    touch(a, op.length, every=every)
                except SegmentationFault as e:
                    return regs.segv(op, e.code, e.addr)
                return Outcome("ok", "0")
            if k == "sbrk":
                old = proc.sbrk(op.length)
                if old is None:
                    return Outcome("err", _errno_name(proc.errno))
                ret = old
            elif k == "brk":   # glibc brk(): the syscall, and the cached break follows it
                ret = proc.brk(a) if hasattr(proc, "brk") else sys_.sys_brk(a)
            elif k == "mmap":
                ret = sys_.sys_mmap(a, op.length & U64, op.prot & U64, op.flags & U64)
            elif k == "munmap":
                ret = sys_.sys_munmap(a, op.length & U64)
            elif k == "mprotect":
                ret = sys_.sys_mprotect(a, op.length & U64, op.prot & U64)
            elif k == "mremap":
                ret = sys_.sys_mremap(a, op.length & U64, op.new_len & U64, op.flags,
                                      regs.resolve(op.new_addr))
            elif k == "madvise":
                ret = sys_.sys_madvise(a, op.length & U64, op.advice)
            elif k == "setrlimit":
                status = proc.status()
                field = {"data": "VmData", "stack": "VmStk"}.get(op.resource, "VmSize")
                base = 1024 * status[field]

                def lim(x: Limit) -> int | str:
                    if x.mode == "inf":
                        return "unlimited"
                    return (x.value + (base if x.mode == "rel" else 0)) & U64

                r = proc.setrlimit(op.resource, lim(op.soft), lim(op.hard))
                if r is not None and r != 0 and r is not True:
                    return Outcome("err", _errno_name(proc.errno))
                return Outcome("ok", "0")
            else:  # pragma: no cover
                raise AssertionError(k)
        except SegmentationFault as e:
            return regs.segv(op, e.code, e.addr)
        except MemsimError as e:
            return Outcome("error", f"{type(e).__name__}: {e}")
        if -4095 <= ret < 0:
            return Outcome("err", _errno_name(-ret))
        if op.dst:
            regs.values[op.dst] = ret
        return Outcome("ok", regs.describe(op, ret))


    @staticmethod
    def _process_step(proc: Any, regs: _Regs, op: Op, a: int) -> Outcome:
        """One op through memsim.Process's C-like methods (api="process")."""
        k = op.kind
        try:
            if k == "mmap":
                r = proc.mmap(op.length, prot=op.prot, flags=op.flags & ~_PROCESS_MMAP_IMPLIED,
                              addr=a)
            elif k == "mremap":
                r = proc.mremap(a, op.length, op.new_len, op.flags, regs.resolve(op.new_addr))
            elif k == "munmap":
                r = proc.munmap(a, op.length)
            elif k == "mprotect":
                r = proc.mprotect(a, op.length, op.prot)
            else:
                r = proc.madvise(a, op.length, op.advice)
        except SegmentationFault as e:
            return regs.segv(op, e.code, e.addr)
        except MemsimError as e:
            return Outcome("error", f"{type(e).__name__}: {e}")
        if r is None or (k in ("munmap", "mprotect", "madvise") and r == -1):
            return Outcome("err", _errno_name(proc.errno))
        if op.dst:
            regs.values[op.dst] = r
        return Outcome("ok", regs.describe(op, r))


#: memsim.Process.mmap always maps MAP_PRIVATE | MAP_ANONYMOUS; an mmap with other sharing
#: flags (MAP_SHARED, or neither) goes through the syscall interface even with api="process".
_PROCESS_MMAP_IMPLIED = MAP_PRIVATE | MAP_ANONYMOUS


def _process_can_mmap(flags: int) -> bool:
    return flags & 0x03 == MAP_PRIVATE and bool(flags & MAP_ANONYMOUS)


def _syscalls(proc: Any) -> Any:
    """The object of ``proc`` that implements :class:`memsim.kernel.abi.Syscalls`."""
    if hasattr(proc, "sys_mmap"):
        return proc
    for name in ("mm", "kernel", "syscalls"):
        obj = getattr(proc, name, None)
        if obj is not None and hasattr(obj, "sys_mmap"):
            return obj
    raise MemsimError("memsim.Process exposes no syscall interface (sys_mmap, ...)")


def _sim_snapshot(proc: Any) -> dict[str, int]:
    status = proc.status()
    snap = {f: int(status[f]) for f in STATUS_FIELDS}
    snap["maps"] = sum(1 for line in str(proc.maps()).splitlines() if line.strip())
    return snap


def host_machine_options() -> dict[str, Any]:
    """Machine() options that describe this host: RAM (None = MemTotal), swap, the vm.*
    sysctls and the THP mode the simulator models (only those the Machine accepts)."""
    import inspect

    import memsim

    opts: dict[str, Any] = {"ram": None}

    def sysctl(name: str) -> int | None:
        try:
            return int(Path(f"/proc/sys/vm/{name}").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    for key, name in (("overcommit", "overcommit_memory"), ("overcommit_ratio",
                      "overcommit_ratio"), ("overcommit_kbytes", "overcommit_kbytes"),
                      ("max_map_count", "max_map_count"),
                      ("admin_reserve_kbytes", "admin_reserve_kbytes"),
                      ("user_reserve_kbytes", "user_reserve_kbytes"),
                      ("min_free_kbytes", "min_free_kbytes")):
        v = sysctl(name)
        if v is not None:
            opts[key] = v
    thp = Path("/sys/kernel/mm/transparent_hugepage")
    try:
        m = re.search(r"\[(\w+)\]", (thp / "enabled").read_text())
        if m:
            opts["thp"] = m.group(1)
        opts["thp_use_zero_page"] = (thp / "use_zero_page").read_text().strip() == "1"
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("SwapTotal:"):
                opts["swap"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        accepted = set(inspect.signature(memsim.Machine).parameters)
    except (AttributeError, TypeError, ValueError):
        return opts
    return {k: v for k, v in opts.items() if k in accepted}


# --- the public entry point -------------------------------------------------------------------

def _deltas(snaps: list[dict[str, int]]) -> list[dict[str, int]]:
    pairs = zip(snaps, snaps[1:], strict=False)
    return [{f: b.get(f, 0) - a.get(f, 0) for f in b} for a, b in pairs]


def compare_kernel(ops_text: str, *, machine_options: dict[str, Any] | None = None,
                   fields: tuple[str, ...] = COMPARED, real: Run | None = None,
                   api: str = "syscall") -> KernelReport:
    """Run ``ops_text`` (see :mod:`memsim.oracle.ops`) on the simulator and on this machine's
    kernel and compare them side by side. Raises :class:`OracleUnavailable` if the real side
    cannot run here. ``real`` may pass a previous real run of the same program (to compare
    several simulator configurations against one measurement). ``api`` chooses how the
    simulator is driven (see :class:`SimRunner`)."""
    program = parse(ops_text)
    if real is None:
        real = RealRunner().run(program)
    sim = SimRunner(machine_options, start_brk=real.brk0, api=api).run(program)
    steps = [op for op in program.ops if op.kind != "mark"]
    rows = [OpRow(op.lineno, op.text, r, s) for op, r, s in zip(steps, real.outcomes,
                                                                 sim.outcomes, strict=True)]
    marks = [op for op in program.ops if op.kind == "mark"]
    mrows = [MarkRow(op.lineno, op.label, rd, sd, fields) for op, rd, sd in
             zip(marks, _deltas(real.snapshots), _deltas(sim.snapshots),
                 strict=True)]
    return KernelReport(rows, mrows, real, sim)


def run_real(ops_text: str) -> Run:
    """Run ``ops_text`` on the real kernel only (for recording and for tests of the harness)."""
    return RealRunner().run(parse(ops_text))
