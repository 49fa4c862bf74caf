"""The interpreter behind ``memsim shell``: type C-like memory calls, see what changed.

A fresh simulated process (:class:`memsim.Process`) with the glibc 2.36 model attached, and a
small language of one command a line::

    p = malloc 100          q = calloc 4 32         r = realloc p 200      free p
    a = memalign 64 100     sbrk 4096               m = mmap 1M [rw]       munmap m
    write p 10              read p+16 8             trim [PAD]             # a comment
    status   heap   bins   maps   vars   help   quit

Sizes take suffixes (``1M``, ``64k``); an address is a variable, ``var+N``, or a number.
After each call the shell prints the call's story (:mod:`memsim.viz.explain`: the bin, the
syscalls, the faults, RssAnon) and one line of what changed (break, RssAnon, the bins that
changed) with the heap strip. ``heap``, ``bins`` and ``maps`` print the full views.

:class:`Shell` holds the state and turns a line into text (``execute``); it raises
:class:`ShellError` for bad input (unknown command or variable, bad number) and reports
what the simulated program would die of (glibc's abort on a double free, a segmentation
fault) as an error too, leaving the state as the model left it. :func:`run_script` feeds it
lines, naming the line of each error, and stops at the first with ``strict``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from typing import IO, Any

from memsim.errors import MemsimError, Signal
from memsim.kernel.abi import MAP_ANONYMOUS, MAP_PRIVATE
from memsim.process import Process, parse_prot
from memsim.units import parse_size
from memsim.viz import bins as bins_view
from memsim.viz import heapstrip, maps
from memsim.viz.explain import CallStory, Explainer

__all__ = ["HELP", "Shell", "ShellError", "run_script"]

HELP = """\
commands (one a line; sizes like 100, 4k, 1M; an address is a variable, var+N or a number):
  p = malloc N          malloc(N), the pointer kept in p
  q = calloc N SIZE     calloc(N, SIZE)
  r = realloc p N       realloc(p, N) (p is updated too if the block moved)
  a = memalign ALIGN N  memalign(ALIGN, N)
  free p                free(p)
  sbrk N                the program moves the break itself (glibc's sbrk)
  m = mmap LEN [PROT]   an anonymous private mapping (PROT like rw, r, none)
  munmap m [LEN]        unmap it
  write ADDR N          the program writes N bytes at ADDR (page faults, RSS)
  read ADDR N           the program reads N bytes at ADDR
  trim [PAD]            malloc_trim(PAD)
  status                /proc/PID/status figures and malloc's totals
  heap | bins | maps    the heap strip, the bins (as pwndbg), the address space
  vars                  the variables
  help | quit
"""

_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.*)$")
_ADDR = re.compile(r"^([A-Za-z_]\w*)\s*([+-]\s*\S+)?$")


class ShellError(MemsimError):
    """A line the shell cannot run; the message says why."""


class Shell:
    """The state of one session: a process, the glibc model, the explainer, the variables.

    ``width``: wrap paragraphs at this many columns. ``verbose``: print each call's story
    (otherwise only the head line and what changed).
    """

    def __init__(self, width: int = 100, verbose: bool = True) -> None:
        self.proc = Process()
        self.ex = Explainer.stack(self.proc.mm, "glibc")
        self.alloc: Any = self.ex.alloc
        self.proc.allocator = self.alloc
        self.vars: dict[str, int] = {}
        self.lengths: dict[int, int] = {}            # mmap address -> length
        self.width = width
        self.verbose = verbose
        self.done = False
        self.calls = 0
        self._vm0 = 0

    # --- parsing helpers ----------------------------------------------------------------------
    @staticmethod
    def _size(text: str) -> int:
        try:
            return parse_size(text)
        except (ValueError, MemsimError):
            raise ShellError(f"not a size: {text!r} (use 100, 4k, 1M ...)") from None

    def _addr(self, text: str) -> int:
        text = text.strip()
        m = _ADDR.match(text)
        if m and not text[0].isdigit():
            name, off = m.group(1), m.group(2)
            if name not in self.vars:
                raise ShellError(f"unknown variable {name!r} (see 'vars')")
            base = self.vars[name]
            if off:
                sign = -1 if off.strip().startswith("-") else 1
                base += sign * self._size(off.strip()[1:].strip())
            return base
        try:
            return int(text, 0)
        except ValueError:
            raise ShellError(f"not an address: {text!r} (a variable, var+N or a number)"
                             ) from None

    @staticmethod
    def _want(words: list[str], lo: int, hi: int, usage: str) -> None:
        if not lo <= len(words) - 1 <= hi:
            raise ShellError(f"usage: {usage}")

    # --- running a line -------------------------------------------------------------------------
    def execute(self, line: str) -> str:
        """Run one line; returns what to print (may be empty). Raises ShellError."""
        line = line.split("#", 1)[0].strip()
        if not line:
            return ""
        target = None
        m = _ASSIGN.match(line)
        if m:
            target, line = m.group(1), m.group(2).strip()
        words = line.split()
        if not words:
            raise ShellError("nothing to assign (write 'p = malloc 100')")
        cmd = words[0].lower()
        if cmd in ("quit", "exit", "q"):
            self.done = True
            return ""
        if cmd == "help":
            return HELP
        if cmd in ("status", "heap", "bins", "maps", "vars"):
            self._want(words, 0, 0, cmd)
            if target:
                raise ShellError(f"'{cmd}' returns nothing to assign")
            return self.view(cmd)
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            raise ShellError(f"unknown command {words[0]!r} (type 'help')")
        if target is not None and cmd in ("free", "write", "read", "munmap", "trim"):
            raise ShellError(f"'{cmd}' returns nothing to assign")
        return str(handler(words, target))

    # --- calls -----------------------------------------------------------------------------------
    def _explained(self, op: str, args: tuple[int, ...], call: Any, target: str | None,
                   old: int = 0, program: str = "", head: str = "") -> str:
        before_brk = self.proc.mm.brk
        self._vm0 = self.proc.mm.total_vm
        before_bins = bins_view.bins_data(self.alloc) if self.alloc.av.top else None
        self.ex.begin(old)
        try:
            result = call()
        except Signal as e:
            self.ex.obs.recording = False
            raise ShellError(f"the simulated process would die here ({e.name}): {e}") from None
        if op != "f" and not program and result and target is None:
            target = None
        story = self.ex.finish(op, args, result if op != "f" else 0, self.calls + 1, 0,
                               program)
        self.calls += 1
        if target is not None:
            if result:
                self.vars[target] = result
            else:
                self.vars.pop(target, None)
        return self._report(story, target, head, before_brk, before_bins)

    def _report(self, story: CallStory, target: str | None, head: str, before_brk: int,
                before_bins: dict[str, Any] | None) -> str:
        first = head or story.call
        if head and story.op in ("sbrk", "mmap"):
            first += f" = {story.result:#x}"
        if target is not None:
            first = f"{target} = {first}"
        out = [f"{first}  [{story.path}]"]
        if self.verbose:
            out.append(textwrap.fill(story.text, self.width, initial_indent="  ",
                                     subsequent_indent="  ", break_long_words=False,
                                     break_on_hyphens=False))
        changed = []
        brk = self.proc.mm.brk
        if brk != before_brk:
            changed.append(f"brk {before_brk:#x} -> {brk:#x}")
        dvm = (self.proc.mm.total_vm - self._vm0) * 4
        if dvm:
            changed.append(f"VmSize {'+' if dvm > 0 else ''}{dvm} kB")
        d = story.rss_delta_kb
        if d:
            changed.append(f"RssAnon {'+' if d > 0 else ''}{d} kB")
        if self.alloc.av.top:
            after_bins = bins_view.bins_data(self.alloc)
            changed += _bin_changes(before_bins or {}, after_bins)
        out.append("  changed: " + (", ".join(changed) if changed else "nothing visible"))
        if self.alloc.av.top:
            strip = heapstrip.render_plain(self.alloc, limit=0, width=self.width)
            out.append("  heap " + strip.splitlines()[1])
        return "\n".join(out) + "\n"

    def _cmd_malloc(self, w: list[str], target: str | None) -> str:
        self._want(w, 1, 1, "p = malloc N")
        n = self._size(w[1])
        return self._explained("m", (n,), lambda: self.alloc.malloc(n), target)

    def _cmd_calloc(self, w: list[str], target: str | None) -> str:
        self._want(w, 2, 2, "q = calloc N SIZE")
        n, size = self._size(w[1]), self._size(w[2])
        return self._explained("c", (n, size), lambda: self.alloc.calloc(n, size), target)

    def _cmd_realloc(self, w: list[str], target: str | None) -> str:
        self._want(w, 2, 2, "r = realloc p N")
        old = self._addr(w[1])
        n = self._size(w[2])
        text = self._explained("r", (old, n), lambda: self.alloc.realloc(old, n), target,
                               old)
        moved_to = self.vars.get(target) if target else None
        if moved_to is not None and old and moved_to != old:
            for k, v in list(self.vars.items()):
                if v == old:
                    self.vars[k] = moved_to       # the old name follows the block
        if n == 0 and old:
            self._forget(old)
        return text

    def _cmd_memalign(self, w: list[str], target: str | None) -> str:
        self._want(w, 2, 2, "a = memalign ALIGN N")
        align, n = self._size(w[1]), self._size(w[2])
        return self._explained("a", (align, n), lambda: self.alloc.memalign(align, n), target)

    def _cmd_free(self, w: list[str], target: str | None) -> str:
        self._want(w, 1, 1, "free p")
        ptr = self._addr(w[1])
        text = self._explained("f", (ptr,), lambda: self.alloc.free(ptr) or 0, None, ptr)
        self._forget(ptr)
        return text

    def _forget(self, ptr: int) -> None:
        for k, v in list(self.vars.items()):
            if v == ptr:
                del self.vars[k]

    def _cmd_sbrk(self, w: list[str], target: str | None) -> str:
        self._want(w, 1, 1, "sbrk N")
        txt = w[1]
        neg = txt.startswith("-")
        n = -self._size(txt[1:]) if neg else self._size(txt)
        return self._explained("sbrk", (n,), lambda: self.alloc.sbrk(n) & (2**64 - 1),
                               target, program="sbrk", head=f"sbrk({n})")

    def _cmd_mmap(self, w: list[str], target: str | None) -> str:
        self._want(w, 1, 2, "m = mmap LEN [PROT]")
        n = self._size(w[1])
        try:
            prot = parse_prot(w[2] if len(w) > 2 else "rw")
        except MemsimError as e:
            raise ShellError(str(e)) from None
        sysc = self.ex.syscalls

        def call() -> int:
            r = sysc.sys_mmap(0, n, prot, MAP_PRIVATE | MAP_ANONYMOUS)
            if r >= 0:
                self.lengths[r] = n
            return max(r, 0)
        return self._explained("mmap", (n,), call, target, program="mmap",
                               head=f"mmap(NULL, {n})")

    def _cmd_munmap(self, w: list[str], target: str | None) -> str:
        self._want(w, 1, 2, "munmap m [LEN]")
        addr = self._addr(w[1])
        if len(w) > 2:
            n = self._size(w[2])
        elif addr in self.lengths:
            n = self.lengths[addr]
        else:
            raise ShellError(f"munmap {w[1]}: give the length (not a mapping made by mmap)")
        sysc = self.ex.syscalls
        text = self._explained("munmap", (addr, n), lambda: sysc.sys_munmap(addr, n), None,
                               program="munmap", head=f"munmap({addr:#x}, {n})")
        self.lengths.pop(addr, None)
        self._forget(addr)
        return text

    def _access(self, w: list[str], write: bool) -> str:
        name = "write" if write else "read"
        self._want(w, 2, 2, f"{name} ADDR N")
        addr = self._addr(w[1])
        n = self._size(w[2])
        obs = self.ex.obs

        def call() -> int:
            self.ex._touched = True
            obs.by = "program"
            try:
                (obs.write if write else obs.read)(addr, n)
            finally:
                obs.by = "allocator"
            return 0
        return self._explained(name, (addr, n), call, None, program=name,
                               head=f"{name}({addr:#x}, {n})")

    def _cmd_write(self, w: list[str], target: str | None) -> str:
        return self._access(w, True)

    def _cmd_read(self, w: list[str], target: str | None) -> str:
        return self._access(w, False)

    def _cmd_trim(self, w: list[str], target: str | None) -> str:
        self._want(w, 0, 1, "trim [PAD]")
        pad = self._size(w[1]) if len(w) > 1 else 0
        return self._explained("trim", (pad,), lambda: self.alloc.malloc_trim(pad), None,
                               program="malloc_trim", head=f"malloc_trim({pad})")

    # --- views ------------------------------------------------------------------------------------
    def view(self, what: str, rich: bool = False) -> Any:
        """``status``/``heap``/``bins``/``maps``/``vars`` as text (or a rich renderable)."""
        if what == "vars":
            if not self.vars:
                return "no variables\n"
            return "".join(f"{k} = {v:#x}\n" for k, v in self.vars.items())
        if what == "status":
            st = self.proc.status()
            mi = self.alloc.mallinfo2()
            mm = self.proc.mm
            return (f"brk {mm.brk:#x} (start_brk {mm.start_brk:#x}, heap "
                    f"{(mm.brk - mm.start_brk) >> 10} kB)  VmSize {st['VmSize']} kB  "
                    f"VmRSS {st['VmRSS']} kB  RssAnon {st['RssAnon']} kB  "
                    f"VmData {st['VmData']} kB\n"
                    f"malloc: arena {mi.arena} bytes, in use {mi.uordblks}, free "
                    f"{mi.fordblks} (top {mi.keepcost}), mmapped {mi.hblks} chunks "
                    f"{mi.hblkhd} bytes\n")
        if what == "heap":
            return heapstrip.render_rich(self.alloc) if rich else \
                heapstrip.render_plain(self.alloc, width=self.width)
        if what == "bins":
            if self.alloc.av.top == 0:
                return "bins: malloc was never called\n"
            return bins_view.render_rich(self.alloc) if rich else \
                bins_view.render_plain(self.alloc)
        if what == "maps":
            return maps.render_rich(self.proc.mm) if rich else maps.render_plain(self.proc.mm)
        raise ShellError(f"unknown view {what!r}")


def _bin_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``tcache 0x70: 0 -> 1`` for every bin whose count changed."""
    def counts(d: dict[str, Any]) -> dict[str, int]:
        names = {"tcachebins": "tcache", "fastbins": "fastbin", "unsortedbin": "unsorted",
                 "smallbins": "smallbin", "largebins": "largebin"}
        return {f"{names[s]} {label.split(' ')[0]}": count for s, bins in d.items()
                for label, count, _a, _s in bins}
    b, a = counts(before), counts(after)
    return [f"{k}: {b.get(k, 0)} -> {a.get(k, 0)}" for k in sorted(set(a) | set(b))
            if b.get(k, 0) != a.get(k, 0)]


def run_script(shell: Shell, lines: Iterable[str], out: IO[str], err: IO[str],
               name: str = "<script>", strict: bool = False, echo: bool = True) -> int:
    """Run ``lines`` in ``shell``; each error goes to ``err`` as ``NAME:LINE: error: ...``.
    Returns the number of errors (stops at the first with ``strict``)."""
    errors = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if echo and line.split("#", 1)[0].strip():
            out.write(f">>> {line.strip()}\n")
        try:
            text = shell.execute(line)
        except (ShellError, MemsimError, ValueError) as e:
            errors += 1
            err.write(f"{name}:{lineno}: error: {e}\n")
            if strict:
                break
            continue
        if text:
            out.write(text)
        if shell.done:
            break
    return errors
