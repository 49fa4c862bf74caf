"""The story of each malloc-family call, across the layers: allocator, syscalls, pages, RSS.

For every call the explainer tells, in one paragraph, what the glibc 2.36 model did (which
bin served it, an exact fit or a split and where the remainder went, why top was extended),
which memory system calls that caused and what the kernel did with them (the break, the VMA,
lazy mapping), which page faults followed the stores, and how RssAnon changed. Every word is
derived from the simulation itself; nothing is guessed::

    allocator model ──sys_brk/sys_mmap/...──► SyscallLog (strace lines) ──► Observer ──► MM
          │          ──write (every store)─────────────────────────────────►   │
          │                                                 before/after each syscall:
          │                                                 break, VMA, RssAnon;
          │                                                 before/after each write:
          │                                                 pgfault, frames, page tables
          └── state diff: a :class:`GlibcSnapshot` before and after the call
              (tcache, fastbins, unsorted/small/large bins, top, last_remainder, mmapped)

The glibc model has no event hooks (and is not changed for this): the allocator side is
reconstructed by comparing the arena before and after the call. A snapshot copies the free
lists, so it costs O(free chunks); that is why a window (``start``..``end``) is replayed
without snapshots up to its start (the kernel proxy then forwards at the cost of one
attribute test per store).

The replay follows :mod:`memsim.trace.replay`: the same :class:`~memsim.trace.replay.Replayer`
(so ``live`` pointers map recorded to simulated addresses), and the same assumption that the
program writes every byte it asked for right after the call (``touch``), told separately
from the allocator's own stores.

Path labels (``CallStory.path``): allocations ``tcache hit``, ``fastbin``, ``smallbin
exact``, ``unsorted exact``, ``largebin exact``, ``<bin> whole chunk``, ``split from <bin>``,
``split from last remainder``, ``split from consolidated free chunk``, ``top``, ``sysmalloc
brk``, ``sysmalloc mmap fallback``, ``mmap``, ``failed``; frees ``tcache put``, ``fastbin``,
``unsorted``, ``merged into top``, ``munmap``, ``free(NULL)``; realloc adds ``in place`` and
``mremap``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any, BinaryIO

from memsim.alloc.base import Allocator, create
from memsim.alloc.glibc.chunk import MIN_LARGE_SIZE, MINSIZE, bin_index, request2size
from memsim.kernel.abi import MADV_DONTNEED, Syscalls
from memsim.kernel.mm import MM
from memsim.trace.syscall_log import SyscallLog
from memsim.units import PAGE_SIZE

__all__ = [
    "CallStory",
    "Explainer",
    "GlibcSnapshot",
    "KernelEvent",
    "Observer",
    "WriteEvent",
    "bin_name",
    "explain",
    "format_story",
    "paragraph_parts",
]

OP_NAMES = {"m": "malloc", "c": "calloc", "r": "realloc", "f": "free", "a": "memalign",
            "v": "valloc", "p": "pvalloc"}


def _kib(nbytes: int) -> str:
    """Bytes as the shortest exact unit: ``4096`` -> ``"4 KiB"``, ``100`` -> ``"100 bytes"``."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if nbytes and nbytes % unit == 0:
            return f"{nbytes // unit} {name}"
    return f"{nbytes} bytes" if nbytes != 1 else "1 byte"


def _pages(n: int) -> str:
    return f"{n} page{'s' if n != 1 else ''}"


def _page_up(addr: int) -> int:
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


# --- the kernel side ---------------------------------------------------------------------------

@dataclass
class KernelEvent:
    """One memory system call and what the kernel did: the strace line, the break and the
    VMA around the address before and after, and the resident pages before and after."""

    name: str
    args: tuple[int, ...]
    result: int
    brk_before: int
    brk_after: int
    vma_before: tuple[int, int] | None
    vma_after: tuple[int, int] | None
    anon_before: int
    anon_after: int
    strace: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args), "result": self.result,
                "strace": self.strace, "brk_before": self.brk_before,
                "brk_after": self.brk_after,
                "vma_before": list(self.vma_before) if self.vma_before else None,
                "vma_after": list(self.vma_after) if self.vma_after else None,
                "rss_anon_pages_delta": self.anon_after - self.anon_before}


@dataclass
class WriteEvent:
    """A store (or load) that changed the page table: its range, who made it, the page
    faults it took, the fresh frames, zero-page mappings and page-table bytes it cost."""

    addr: int
    length: int
    write: bool
    by: str                     # "allocator" or "program"
    faults: int
    new_frames: int
    zero_pages: int
    table_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"addr": self.addr, "length": self.length, "write": self.write, "by": self.by,
                "faults": self.faults, "new_frames": self.new_frames,
                "zero_pages": self.zero_pages, "page_table_bytes": self.table_bytes}


class Observer:
    """A :class:`~memsim.kernel.abi.Syscalls` proxy over an :class:`MM` that, while
    ``recording`` is on, notes every memory syscall (:class:`KernelEvent`) and every access
    that changed the page table (:class:`WriteEvent`); otherwise it only forwards."""

    def __init__(self, mm: MM) -> None:
        self.mm = mm
        self.recording = False
        self.by = "allocator"
        self.syscalls: list[KernelEvent] = []
        self.writes: list[WriteEvent] = []

    # -- helpers
    def _vma(self, addr: int) -> tuple[int, int] | None:
        v = self.mm.tree.find_vma(addr)
        if v is None or v.vm_start > addr:
            return None
        return (v.vm_start, v.vm_end)

    def _heap_vma(self) -> tuple[int, int] | None:
        mm = self.mm
        v = mm.tree.find_vma(mm.start_brk)
        if v is None or v.vm_start >= _page_up(max(mm.brk, mm.start_brk + 1)):
            return None
        return (v.vm_start, v.vm_end)

    def _call(self, name: str, args: tuple[int, ...], at: int | None,
              fn: Callable[[], int]) -> int:
        if not self.recording:
            return fn()
        mm = self.mm
        brk0 = mm.brk
        before = self._heap_vma() if at is None else self._vma(at)
        anon0 = mm.pt.anon_pages
        r = fn()
        where = at if at is not None else None
        if name in ("mmap", "mremap") and r >= 0:
            where = r
        after = self._heap_vma() if where is None else self._vma(where)
        self.syscalls.append(KernelEvent(name, args, r, brk0, mm.brk, before, after, anon0,
                                         mm.pt.anon_pages))
        return r

    # -- the Syscalls contract
    def sys_brk(self, addr: int) -> int:
        return self._call("brk", (addr,), None, lambda: self.mm.sys_brk(addr))

    def sys_mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        return self._call("mmap", (addr, length, prot, flags), addr or None,
                          lambda: self.mm.sys_mmap(addr, length, prot, flags))

    def sys_munmap(self, addr: int, length: int) -> int:
        return self._call("munmap", (addr, length), addr,
                          lambda: self.mm.sys_munmap(addr, length))

    def sys_mremap(self, old_addr: int, old_len: int, new_len: int, flags: int,
                   new_addr: int = 0) -> int:
        return self._call("mremap", (old_addr, old_len, new_len, flags, new_addr), old_addr,
                          lambda: self.mm.sys_mremap(old_addr, old_len, new_len, flags,
                                                     new_addr))

    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        return self._call("mprotect", (addr, length, prot), addr,
                          lambda: self.mm.sys_mprotect(addr, length, prot))

    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        return self._call("madvise", (addr, length, advice), addr,
                          lambda: self.mm.sys_madvise(addr, length, advice))

    def _access(self, addr: int, length: int, every: int | None, write: bool) -> None:
        mm = self.mm
        fn = mm.write if write else mm.read
        if not self.recording:
            fn(addr, length, every)
            return
        pt = mm.pt
        f0, a0, t0 = pt.pgfault, pt.anon_pages, pt.pgtables_bytes
        fn(addr, length, every)
        faults = pt.pgfault - f0
        if faults or pt.pgtables_bytes != t0 or pt.anon_pages != a0:
            frames = pt.anon_pages - a0
            zero = 0 if write else max(faults - max(frames, 0), 0)
            self.writes.append(WriteEvent(addr, length, write, self.by, faults, frames, zero,
                                          pt.pgtables_bytes - t0))

    def write(self, addr: int, length: int = 1, every: int | None = None) -> None:
        self._access(addr, length, every, True)

    def read(self, addr: int, length: int = 1, every: int | None = None) -> None:
        self._access(addr, length, every, False)


# --- the allocator side ------------------------------------------------------------------------

def bin_name(b: int) -> str:
    """Bin index -> ``"unsorted bin"``, ``"small bin 0x90"``, ``"large bin 70"``."""
    if b == 1:
        return "unsorted bin"
    if b < 64:
        return f"small bin {b * 16:#x}"
    return f"large bin {b}"


@dataclass
class GlibcSnapshot:
    """What the glibc model's main arena holds at one moment (copies, not references)."""

    has_tcache: bool
    tcache: dict[int, tuple[int, int]]     # chunk -> (tidx, position from the head)
    tcache_counts: list[int]
    fast: dict[int, int]                   # chunk -> fastbin index
    fast_counts: list[int]
    free: dict[int, int]                   # chunk -> size (unsorted/small/large)
    bin_of: dict[int, int]
    top: int
    top_size: int
    last_remainder: int
    system_mem: int
    contiguous: bool
    mmapped: dict[int, int]                # chunk -> size
    mmap_threshold: int
    trim_threshold: int

    @classmethod
    def take(cls, alloc: Any) -> GlibcSnapshot:
        av = alloc.av
        tc = alloc.tcache
        tcache: dict[int, tuple[int, int]] = {}
        counts = [0] * 64
        if tc is not None:
            for i, stack in enumerate(tc.entries):
                counts[i] = len(stack)
                for pos, p in enumerate(reversed(stack)):
                    tcache[p] = (i, pos)
        fast = {p: i for i, fb in enumerate(av.fastbins) for p in fb}
        return cls(tc is not None, tcache, counts, fast, [len(fb) for fb in av.fastbins],
                   dict(av.free), dict(av.bin_of), av.top, av.top_size, av.last_remainder,
                   av.system_mem, av.contiguous,
                   {p: s for p, (_o, s) in alloc.mmapped.items()},
                   alloc.mp.mmap_threshold, alloc.mp.trim_threshold)

    def where(self, p: int) -> str | None:
        """Where chunk ``p`` sits: ``tcache 0x20``, ``fastbin 0x20``, a bin name, ``top``,
        ``mmapped``, or None (in use or not a chunk start)."""
        if p in self.tcache:
            return f"tcache {32 + 16 * self.tcache[p][0]:#x}"
        if p in self.fast:
            return f"fastbin {(self.fast[p] + 2) * 16:#x}"
        if p in self.bin_of:
            return bin_name(self.bin_of[p])
        if self.top and p == self.top:
            return "top"
        if p in self.mmapped:
            return "mmapped"
        return None


@dataclass
class CallStory:
    """One call, explained. ``path`` is the short label, ``text`` the paragraph."""

    index: int
    lineno: int
    op: str
    args: tuple[int, ...]
    result: int
    path: str
    allocator: list[str] = field(default_factory=list)
    syscalls: list[KernelEvent] = field(default_factory=list)
    writes: list[WriteEvent] = field(default_factory=list)
    rss_anon_kb_before: int = 0
    rss_anon_kb_after: int = 0
    touched: bool = False       # the program wrote its bytes after the call
    text: str = ""

    @property
    def call(self) -> str:
        """``malloc(100) = 0x5555555592a0``."""
        args = ", ".join(_arg(self.op, i, a) for i, a in enumerate(self.args))
        ret = "" if self.op == "f" else f" = {self.result:#x}"
        return f"{OP_NAMES.get(self.op, self.op)}({args}){ret}"

    @property
    def rss_delta_kb(self) -> int:
        return self.rss_anon_kb_after - self.rss_anon_kb_before

    def as_dict(self) -> dict[str, Any]:
        faults = sum(w.faults for w in self.writes)
        return {
            "index": self.index, "line": self.lineno, "op": OP_NAMES.get(self.op, self.op),
            "args": list(self.args), "result": self.result, "call": self.call,
            "path": self.path, "allocator": list(self.allocator),
            "syscalls": [e.as_dict() for e in self.syscalls],
            "faults": {"page_faults": faults,
                       "new_frames": sum(w.new_frames for w in self.writes),
                       "zero_pages": sum(w.zero_pages for w in self.writes),
                       "page_table_bytes": sum(w.table_bytes for w in self.writes),
                       "writes": [w.as_dict() for w in self.writes]},
            "rss_anon_kb_before": self.rss_anon_kb_before,
            "rss_anon_kb_after": self.rss_anon_kb_after,
            "rss_delta_kb": self.rss_delta_kb,
            "text": self.text,
        }


def _arg(op: str, i: int, a: int) -> str:
    pointer = (op in ("f", "r") and i == 0) or (op in ("sbrk-ret",))
    return f"{a:#x}" if pointer and a else str(a)


# --- the explainer -----------------------------------------------------------------------------

class Explainer:
    """Explain calls made on ``alloc`` (a glibc model over ``log`` -> ``observer`` -> MM).

    Use :meth:`for_process` to build the stack over a process; :meth:`begin` before a call and
    :meth:`finish` after it (with :meth:`touch` in between for the program's own writes).
    """

    def __init__(self, alloc: Allocator, observer: Observer, log: SyscallLog,
                 log_buffer: io.StringIO) -> None:
        self.alloc = alloc
        self.obs = observer
        self.log = log
        self.buf = log_buffer
        self.is_glibc = hasattr(alloc, "av") and hasattr(alloc, "tcache")
        self._before: GlibcSnapshot | None = None
        self._anon0 = 0
        self._old_size = 0
        self._touched = False

    @classmethod
    def stack(cls, mm: MM, allocator: str = "glibc",
              options: Mapping[str, Any] | None = None) -> Explainer:
        """Observer over ``mm``, SyscallLog over it, and a new allocator on the log."""
        obs = Observer(mm)
        buf = io.StringIO()
        log = SyscallLog(obs, buf)  # type: ignore[arg-type]
        alloc = create(allocator, log, options)
        return cls(alloc, obs, log, buf)

    @property
    def syscalls(self) -> Syscalls:
        """What the program's own calls (sbrk, mmap) should go through to be explained."""
        return self.log  # type: ignore[return-value]

    # -- one call
    def begin(self, old_ptr: int = 0) -> None:
        """Start recording; ``old_ptr`` is the pointer a free/realloc is about to get."""
        obs = self.obs
        obs.recording = True
        obs.by = "allocator"
        obs.syscalls.clear()
        obs.writes.clear()
        self.buf.seek(0)
        self.buf.truncate()
        self._anon0 = obs.mm.pt.anon_pages
        self._touched = False
        if self.is_glibc:
            self._before = GlibcSnapshot.take(self.alloc)
            a: Any = self.alloc
            p = old_ptr - 16
            self._old_size = a.av.inuse.get(p) or (a.mmapped[p][1] if p in a.mmapped else 0)

    def touch(self, addr: int, length: int) -> None:
        """The program writes ``[addr, addr+length)`` (told apart from malloc's stores)."""
        if addr and length > 0:
            self._touched = True
            self.obs.by = "program"
            self.obs.write(addr, length)
            self.obs.by = "allocator"

    def finish(self, op: str, args: tuple[int, ...], result: int, index: int = 0,
               lineno: int = 0, program: str = "") -> CallStory:
        """Stop recording and build the story of the call just made."""
        obs = self.obs
        obs.recording = False
        lines = [ln for ln in self.buf.getvalue().splitlines() if ln]
        for ev, ln in zip(obs.syscalls, lines, strict=False):
            ev.strace = re.sub(r"\s{2,}", " ", ln)
        story = CallStory(index, lineno, op, args, result, "", syscalls=list(obs.syscalls),
                          writes=list(obs.writes),
                          rss_anon_kb_before=self._anon0 * (PAGE_SIZE // 1024),
                          rss_anon_kb_after=obs.mm.pt.anon_pages * (PAGE_SIZE // 1024),
                          touched=self._touched)
        if self.is_glibc and self._before is not None and not program:
            after = GlibcSnapshot.take(self.alloc)
            story.path, story.allocator = _allocator_story(self.alloc, self._before, after, op,
                                                           args, result, self._old_size)
        else:
            story.path = program or OP_NAMES.get(op, op)
        story.text = _paragraph(story, self.alloc, program)
        return story


# --- the allocator story: before/after diff ---------------------------------------------------

def _origin(alloc: Any, b: GlibcSnapshot, a: GlibcSnapshot, c: int, nb: int
            ) -> tuple[str, list[str]]:
    """Where the chunk ``c`` now in use came from, for a request of chunk size ``nb``."""
    out: list[str] = []
    size = alloc.av.inuse.get(c)
    if c in a.mmapped and c not in b.mmapped:
        return "mmap", [f"the request ({nb:#x} bytes with header) is at least "
                        f"mmap_threshold ({b.mmap_threshold:#x}), so sysmalloc gave it a "
                        f"mapping of its own ({_kib(a.mmapped[c])}, chunk at {c:#x})"]
    where = b.where(c)
    if where is not None and where.startswith("tcache"):
        tidx, pos = b.tcache[c]
        return "tcache hit", [f"the {where} bin had {b.tcache_counts[tidx]} chunk"
                              f"{'s' if b.tcache_counts[tidx] != 1 else ''}; tcache_get "
                              f"took its head {c:#x}, {a.tcache_counts[tidx]} left"]
    if where is not None and where.startswith("fastbin"):
        i = b.fast[c]
        if size == (i + 2) * 16:
            out.append(f"the {where} had {b.fast_counts[i]}; _int_malloc took its head {c:#x}")
            moved = b.fast_counts[i] - a.fast_counts[i] - 1
            if moved > 0:
                out.append(f"{moved} more moved from that fastbin into the tcache")
            return "fastbin", out
        where = None                        # consolidated first: its chunk grew
    if where is not None and where.startswith(("unsorted", "small", "large")):
        fsize = b.free[c]
        bidx = b.bin_of[c]
        if fsize == nb:
            label = {1: "unsorted exact"}.get(bidx, "smallbin exact" if bidx < 64
                                              else "largebin exact")
            out.append(f"the {where} held a free chunk of exactly {nb:#x} bytes at {c:#x}")
            return label, out
        rem = c + (size or nb)
        rest = fsize - (size or nb)
        if rest < MINSIZE:
            out.append(f"the {where} chunk at {c:#x} ({fsize:#x} bytes) was used whole: "
                       f"splitting off {rest} bytes would leave less than MINSIZE")
            return f"{where} whole chunk", out
        if bidx == 1 and c == b.last_remainder and nb < MIN_LARGE_SIZE:
            label = "split from last remainder"
            out.append(f"the last remainder {c:#x} ({fsize:#x} bytes), alone in the unsorted "
                       f"bin, was split: {nb:#x} bytes for this request")
        else:
            label = f"split from {where}"
            src = where
            if bidx == 1:
                src = f"unsorted bin (sorted into {bin_name(bin_index(fsize))} first)"
            out.append(f"no exact fit; the smallest fitting free chunk was {c:#x} "
                       f"({fsize:#x} bytes) from the {src}: it was split")
        out.append(_remainder(a, rem, rest))
        return label, out
    if b.top and c == b.top:
        if a.system_mem > b.system_mem:
            return _sysmalloc(alloc, b, a, c, nb)
        out.append(f"no free chunk fitted; the chunk was cut from the start of top "
                   f"({b.top_size:#x} -> {a.top_size:#x} bytes left, top now at {a.top:#x})")
        return "top", out
    if a.system_mem > b.system_mem:
        return _sysmalloc(alloc, b, a, c, nb)
    if sum(b.fast_counts) > sum(a.fast_counts):
        out.append(f"the fastbins were consolidated first (malloc_consolidate: "
                   f"{sum(b.fast_counts) - sum(a.fast_counts)} chunks merged with their "
                   f"free neighbours); the chunk at {c:#x} came out of that free space")
        if c + (size or nb) in a.free:
            out.append(_remainder(a, c + (size or nb), a.free[c + (size or nb)]))
        return "split from consolidated free chunk", out
    out.append(f"the chunk at {c:#x} came from free space that merged during the call")
    return "split from consolidated free chunk", out


def _aligned_origin(alloc: Any, b: GlibcSnapshot, a: GlibcSnapshot, c: int
                    ) -> tuple[str, list[str]]:
    """memalign & co: _int_memalign took a larger chunk (request + alignment + MINSIZE)
    and gave back the misaligned lead before ``c`` and the spare tail after it."""
    if b.top and b.top <= c < b.top + b.top_size and a.system_mem == b.system_mem:
        src = "top"
    else:
        src = next((b.where(q) for q, s in b.free.items() if q <= c < q + s), None) or \
            ("new memory from sysmalloc" if a.system_mem > b.system_mem else "free space")
    out = [f"_int_memalign over-allocated from the {src} and kept the aligned chunk at "
           f"{c:#x}"]
    size = alloc.av.inuse.get(c, 0)
    for q in list(a.free) + list(a.tcache) + list(a.fast):
        qs = a.free.get(q) or (32 + 16 * a.tcache[q][0] if q in a.tcache else
                               (a.fast[q] + 2) * 16 if q in a.fast else 0)
        if q + qs == c and b.where(q) != a.where(q):
            out.append(f"the misaligned lead ({qs:#x} bytes at {q:#x}) went to the "
                       f"{a.where(q)}")
        if q == c + size and b.where(q) != a.where(q):
            out.append(f"the spare tail ({qs:#x} bytes) went to the {a.where(q)}")
    return f"aligned from {src.split(' (')[0]}", out


def _remainder(a: GlibcSnapshot, rem: int, rest: int) -> str:
    where = a.where(rem)
    text = f"the remainder ({rest:#x} bytes at {rem:#x}) went to the {where or 'heap'}"
    if a.last_remainder == rem:
        text += " and became the last remainder (it serves the next small requests first)"
    return text


def _sysmalloc(alloc: Any, b: GlibcSnapshot, a: GlibcSnapshot, c: int, nb: int
               ) -> tuple[str, list[str]]:
    out: list[str] = []
    grown = a.system_mem - b.system_mem
    pad = alloc.mp.top_pad
    if not b.top:
        out.append(f"the arena had no heap yet, so sysmalloc asked the system for "
                   f"{_kib(grown)}: the request, top_pad ({_kib(pad)}) and MINSIZE, rounded "
                   f"up to whole pages")
    else:
        out.append(f"top ({b.top_size:#x} bytes) was smaller than {nb:#x} + MINSIZE, so "
                   f"sysmalloc extended the heap by {_kib(grown)} (what was missing plus "
                   f"top_pad {_kib(pad)}, rounded up to whole pages)")
    label = "sysmalloc brk"
    if b.contiguous and not a.contiguous:
        label = "sysmalloc mmap fallback"
        out.append("brk failed, so sysmalloc mapped the memory with mmap instead (the arena "
                   "is no longer contiguous)")
    elif b.top and a.top != b.top + nb and b.top + b.top_size != a.top + a.top_size - grown:
        out.append("the new memory did not continue the old top (another sbrk moved the "
                   "break): the old top was fenced off and freed")
    out.append(f"the chunk was cut from the start of the new top; top is now {a.top:#x} "
               f"({a.top_size:#x} bytes)")
    return label, out


def _fate(alloc: Any, b: GlibcSnapshot, a: GlibcSnapshot, p: int, size: int
          ) -> tuple[str, list[str]]:
    """What free did with chunk ``p`` of ``size`` bytes."""
    out: list[str] = []
    if p in b.mmapped:
        out.append(f"the chunk was mmapped ({_kib(b.mmapped[p])}), so free unmapped it "
                   f"(munmap_chunk)")
        if a.mmap_threshold != b.mmap_threshold:
            out.append(f"freeing an mmapped chunk larger than the threshold raised "
                       f"mmap_threshold to {a.mmap_threshold:#x} and trim_threshold to "
                       f"{a.trim_threshold:#x} (the dynamic threshold)")
        return "munmap", out
    where = a.where(p)
    if where is not None and where.startswith("tcache"):
        tidx = a.tcache[p][0]
        return "tcache put", [f"tcache_put pushed it on the {where} bin "
                              f"({a.tcache_counts[tidx]} of {alloc.mp.tcache_count})"]
    if where is not None and where.startswith("fastbin"):
        if b.has_tcache and size <= 0x410:
            out.append(f"its tcache bin was full ({alloc.mp.tcache_count})")
        out.append(f"it went on the {where} (not coalesced; fastbin chunks stay 'in use')")
        return "fastbin", out
    if size <= 0x410 and b.has_tcache:
        out.append(f"its tcache bin was full ({alloc.mp.tcache_count})")
    merged = []
    for q, s in b.free.items():                 # the footer of a free chunk ending at p
        if q + s == p:
            merged.append(f"the free chunk before it ({q:#x}, {s:#x} bytes)")
            break
    nxt = p + size
    if nxt in b.free:
        merged.append(f"the free chunk after it ({nxt:#x}, {b.free[nxt]:#x} bytes)")
    if b.top and nxt == b.top:
        merged.append("top")
    if merged:
        out.append("it was coalesced with " + " and ".join(merged))
    label = "unsorted"
    if b.top and (a.top != b.top or a.top_size != b.top_size) and (
            nxt == b.top or a.top <= p):
        label = "merged into top"
        out.append(f"top is now {a.top:#x} ({a.top_size:#x} bytes)")
        if a.system_mem < b.system_mem:
            out.append(f"top reached trim_threshold ({b.trim_threshold:#x}), so systrim gave "
                       f"{_kib(b.system_mem - a.system_mem)} back with sbrk(-"
                       f"{b.system_mem - a.system_mem})")
    else:
        chunk = next((q for q, s in a.free.items() if q <= p < q + s), None)
        if chunk is not None:
            out.append(f"the free chunk {chunk:#x} ({a.free[chunk]:#x} bytes) went to the "
                       f"{a.where(chunk)}")
    if sum(b.fast_counts) > sum(a.fast_counts):
        out.append(f"the merged size reached 64 KiB, so malloc_consolidate emptied the "
                   f"fastbins ({sum(b.fast_counts) - sum(a.fast_counts)} chunks)")
    return label, out


def _allocator_story(alloc: Any, b: GlibcSnapshot, a: GlibcSnapshot, op: str,
                     args: tuple[int, ...], result: int, old_size: int
                     ) -> tuple[str, list[str]]:
    out: list[str] = []
    if not b.has_tcache and a.has_tcache:
        tc = alloc.tcache.chunk
        out.append(f"first use of malloc: tcache_init carved the tcache_perthread_struct "
                   f"(chunk {tc:#x}, 0x290 bytes) before anything else")
    if op == "f":
        ptr = args[0]
        if not ptr:
            return "free(NULL)", ["free(NULL) does nothing"]
        label, more = _fate(alloc, b, a, ptr - 16, old_size)
        return label, out + [f"chunk {ptr - 16:#x} ({old_size:#x} bytes)"] + more
    if op == "r" and args[0]:
        old = args[0]
        size = args[1]
        if size == 0:
            label, more = _fate(alloc, b, a, old - 16, old_size)
            return label, out + ["realloc(p, 0) frees p"] + more
        if not result:
            return "failed", out + ["realloc failed; the old block is untouched"]
        p = old - 16
        if result == old:
            new_size = alloc.av.inuse.get(p) or (a.mmapped.get(p) or 0)
            if p in b.mmapped:
                return "in place", out + [f"the mmapped chunk already had room "
                                          f"({old_size:#x} bytes)"]
            if new_size > old_size:
                nxt = p + old_size
                src = "top" if nxt == b.top else (b.where(nxt) or "the next chunk")
                out.append(f"grown in place from {old_size:#x} to {new_size:#x} bytes by "
                           f"taking the start of the free neighbour ({src})")
            elif new_size < old_size:
                out.append(f"shrunk in place from {old_size:#x} to {new_size:#x} bytes; the "
                           f"tail was freed")
            else:
                out.append(f"the chunk ({old_size:#x} bytes) already fits {size} bytes")
            return "in place", out
        if p in b.mmapped and result - 16 in a.mmapped:
            return "mremap", out + [f"the mmapped chunk was resized with mremap "
                                    f"({_kib(b.mmapped[p])} -> "
                                    f"{_kib(a.mmapped[result - 16])}); it "
                                    f"{'moved' if result != old else 'stayed'}"]
        nb = request2size(size)
        label, more = _origin(alloc, b, a, result - 16, nb)
        out.append(f"no room to grow in place: a new chunk was allocated ({label}), the "
                   f"{old_size - 8 if p not in b.mmapped else old_size - 16} old bytes "
                   f"copied, and the old chunk freed")
        out += more
        flabel, fmore = _fate(alloc, b, a, p, old_size)
        out += [f"old chunk: {flabel}"] + fmore
        return f"moved ({label})", out
    # allocations: malloc, calloc, realloc(NULL, n), memalign, valloc, pvalloc
    if not result:
        return "failed", out + [f"the allocation failed (errno {alloc.errno})"]
    if op == "m" or op == "r":
        n = args[0] if op == "m" else args[1]
    elif op == "c":
        n = args[0] * args[1]
    elif op == "a":
        n = args[1]
    else:
        n = args[0]
    nb = request2size(n)
    c = result - 16
    if op in ("a", "v", "p") and b.where(c) is None and c not in a.mmapped:
        label, more = _aligned_origin(alloc, b, a, c)
    else:
        label, more = _origin(alloc, b, a, c, nb)
    if op == "c":
        more.append("calloc never uses the tcache; it clears the chunk unless it is fresh "
                    "mmapped memory or fresh top from sbrk (already zero)")
    tidx = (nb - 17) >> 4
    if op != "c" and label != "tcache hit" and 0 <= tidx < 64 and \
            a.tcache_counts[tidx] > b.tcache_counts[tidx]:
        more.append(f"{a.tcache_counts[tidx] - b.tcache_counts[tidx]} more chunk(s) of the "
                    f"same size were stashed in the tcache on the way")
    sorted_out = [q for q, bi in b.bin_of.items() if bi == 1 and a.bin_of.get(q, 1) != 1
                  and q != c]
    if sorted_out:
        out.append(f"first the unsorted scan sorted {len(sorted_out)} chunk"
                   f"{'s' if len(sorted_out) != 1 else ''} into the small/large bins")
    return label, out + more


# --- the paragraph -----------------------------------------------------------------------------

def _kernel_sentences(story: CallStory) -> list[str]:
    out: list[str] = []
    for ev in story.syscalls:
        line = ev.strace or f"{ev.name}{ev.args}"
        if ev.name == "brk":
            want = ev.args[0]
            if want == 0:
                out.append(f"{line}: asks for the current break, {ev.result:#x}")
                continue
            if ev.result != want:
                out.append(f"{line}: the kernel refused (the break stays at {ev.result:#x})")
                continue
            grew = ev.brk_after - ev.brk_before
            va, vb = ev.vma_after, ev.vma_before
            if grew > 0:
                end = _page_up(ev.brk_after)
                s = (f"{line}: the kernel moves the break up by {_kib(grew)}, keeps it "
                     f"where asked ({ev.brk_after:#x}) and maps whole pages up to the "
                     f"page-aligned {end:#x}")
                if va is not None:
                    if vb is None:
                        s += f": a new [heap] VMA {va[0]:#x}-{va[1]:#x}"
                    else:
                        s += (f": the [heap] VMA grows from {_kib(vb[1] - vb[0])} to "
                              f"{_kib(va[1] - va[0])}")
                s += (f"; no page is resident yet ({_pages(ev.anon_after - ev.anon_before)}"
                      f" faulted): the pages are mapped lazily and fault in on first touch")
                out.append(s)
            else:
                freed = ev.anon_before - ev.anon_after
                out.append(f"{line}: the break moves down by {_kib(-grew)}; the kernel "
                           f"unmaps the heap pages above {_page_up(ev.brk_after):#x} and "
                           f"frees {_pages(freed)} of resident memory")
        elif ev.name == "mmap":
            if ev.result < 0:
                out.append(f"{line}: the kernel refused")
                continue
            v = ev.vma_after
            s = (f"{line}: the kernel picks the address (top-down below the mmap base) and "
                 f"records an anonymous VMA of {_kib(_page_up(ev.args[1]))}")
            if v is not None and (v[1] - v[0]) != _page_up(ev.args[1]):
                s += f", merged with its neighbour into {v[0]:#x}-{v[1]:#x}"
            s += "; nothing is resident until the pages are touched"
            out.append(s)
        elif ev.name == "munmap":
            out.append(f"{line}: the kernel removes the mapping and frees "
                       f"{_pages(ev.anon_before - ev.anon_after)} of resident memory")
        elif ev.name == "mremap":
            moved = ev.result >= 0 and ev.result != ev.args[0]
            how = " and moves its page tables to the new address" if moved else " in place"
            out.append(f"{line}: the kernel resizes the mapping{how}; resident pages are "
                       f"kept, not copied")
        elif ev.name == "madvise" and ev.args[2] == MADV_DONTNEED:
            out.append(f"{line}: the kernel drops {_pages(ev.anon_before - ev.anon_after)} "
                       f"(they read back as zeros)")
        else:
            out.append(line)
    return out


def _fault_sentences(story: CallStory, program: str) -> list[str]:
    out: list[str] = []
    for who in ("allocator", "program"):
        ws = [w for w in story.writes if w.by == who]
        faults = sum(w.faults for w in ws)
        frames = sum(w.new_frames for w in ws)
        zero = sum(w.zero_pages for w in ws)
        tables = sum(w.table_bytes for w in ws)
        if who == "allocator":
            name = "malloc's own stores (headers, links, tcache)" if not program else \
                f"{program}'s stores"
            if not ws:
                continue
        else:
            name = ("the program's writes to its bytes" if not program
                    else "the program's accesses")
            if not ws:
                if story.touched:
                    out.append(f"{name} took no page fault: those pages were already "
                               f"resident")
                continue
        first = ws[0].addr & ~(PAGE_SIZE - 1)
        s = f"{name} faulted {_pages(faults)} in (from {first:#x})"
        bits = []
        if frames > 0:
            bits.append(f"{frames} fresh zeroed frame{'s' if frames != 1 else ''}")
        if zero:
            bits.append(f"{zero} mapped to the shared zero page (reads)")
        if tables:
            bits.append(f"{_kib(tables)} of new page tables")
        if bits:
            s += ": " + ", ".join(bits)
        out.append(s)
    return out


#: the layer of each part of a paragraph -> rich style (the legend of ``memsim explain``)
LAYER_STYLES = {"allocator": "default", "kernel": "yellow", "pages": "magenta", "rss": "green"}


def paragraph_parts(story: CallStory, program: str = "") -> list[tuple[str, str]]:
    """The paragraph as ``(layer, sentence)`` pairs: allocator, kernel, pages, rss."""
    parts: list[tuple[str, str]] = []
    if story.allocator:
        a = "; ".join(story.allocator)
        parts.append(("allocator", a[0].upper() + a[1:] + "."))
    if story.syscalls:
        parts.append(("kernel", "Kernel: " + "; ".join(_kernel_sentences(story)) + "."))
    elif story.op != "f" and story.allocator:
        parts.append(("kernel", "No system call."))
    faults = _fault_sentences(story, program)
    if faults:
        f = "; ".join(faults)
        parts.append(("pages", f[0].upper() + f[1:] + "."))
    elif story.op not in ("f",) and not program:
        parts.append(("pages", "No page fault."))
    d = story.rss_delta_kb
    parts.append(("rss", f"RssAnon {story.rss_anon_kb_before} kB -> "
                         f"{story.rss_anon_kb_after} kB ({'+' if d >= 0 else ''}{d} kB)."))
    return parts


def _paragraph(story: CallStory, alloc: Any, program: str) -> str:
    return " ".join(text for _layer, text in paragraph_parts(story, program))


def format_story(story: CallStory) -> str:
    """``#N malloc(100) = 0x... [path]`` then the paragraph (unwrapped)."""
    return f"#{story.index} {story.call}  [{story.path}]\n{story.text}"


# --- explaining a trace ------------------------------------------------------------------------

def _touch_size(op: str, a: int, b: int) -> int:
    return {"m": a, "c": a * b, "r": b, "a": b, "v": a, "p": a}.get(op, 0)


def explain(trace: str | os.PathLike[str] | BinaryIO, start: int = 1, end: int | None = None,
            *, touch: bool = True, options: Mapping[str, Any] | None = None,
            skip_bad: bool = False) -> Iterator[CallStory]:
    """Stories of calls ``start``..``end`` (1-based, inclusive) of ``trace``, replayed through
    the glibc model as :func:`memsim.trace.replay.replay` does. Calls before ``start`` are
    replayed without explaining. Streams: one :class:`CallStory` per call."""
    from memsim.trace import open_trace
    from memsim.trace.replay import Replayer

    if start < 1:
        raise ValueError(f"--from must be at least 1, not {start}")
    if end is not None and end < start:
        raise ValueError(f"--to ({end}) is before --from ({start})")
    reader = open_trace(trace, skip_bad=skip_bad, check=False)
    with reader:
        rep = Replayer("glibc", brk0=reader.brk0, options=options, touch=touch,
                       name=reader.name, skip_bad=skip_bad)
        ex = Explainer.stack(rep.process.mm, "glibc", options)
        # the Replayer's own allocator has made no call yet: replace it with the observed one
        rep.sys = ex.log
        rep.alloc = ex.alloc
        rep.process.allocator = ex.alloc
        calls = iter(reader)
        if start > 1:
            rep.feed(islice(calls, start - 1))
        rep.touch = False
        n = start - 1
        for call in calls:
            n += 1
            if end is not None and n > end:
                break
            op, a, b, ret, _tid, lineno = call
            old_sim = 0
            if op in ("f", "r") and a:
                e = rep.live.get(a)
                old_sim = e[0] if e is not None else 0
            ex.begin(old_sim)
            r = rep.step(call)
            if r is None:
                ex.obs.recording = False
                continue
            sim_a, p = r
            size = _touch_size(op, a, b)
            if touch and ret and p and size and op != "f":
                ex.touch(p, size)
            args: tuple[int, ...]
            if op in ("f",):
                args = (sim_a,)
            elif op == "r":
                args = (sim_a, b)
            elif op in ("c", "a"):
                args = (a, b)
            else:
                args = (a,)
            yield ex.finish(op, args, p if op != "f" else 0, n, lineno)


def write_stories(stories: Iterator[CallStory], out: IO[str], width: int = 100) -> int:
    """Plain text: each story as its head line and the paragraph wrapped at ``width``."""
    import textwrap

    n = 0
    for s in stories:
        out.write(f"#{s.index} {s.call}  [{s.path}]\n")
        out.write(textwrap.fill(s.text, width, initial_indent="  ", subsequent_indent="  ",
                                break_long_words=False, break_on_hyphens=False) + "\n\n")
        n += 1
    return n


def replay_to(trace: str | os.PathLike[str] | BinaryIO, calls: int | None = None, *,
              touch: bool = True, options: Mapping[str, Any] | None = None,
              skip_bad: bool = False) -> Any:
    """A :class:`~memsim.trace.replay.Replayer` that has replayed the first ``calls`` calls of
    ``trace`` (all when None) through the glibc model: its ``alloc`` and ``process`` are the
    state the views draw."""
    from memsim.trace import open_trace
    from memsim.trace.replay import Replayer

    if calls is not None and calls < 0:
        raise ValueError(f"--at must be 0 or more, not {calls}")
    reader = open_trace(trace, skip_bad=skip_bad, check=False)
    with reader:
        rep = Replayer("glibc", brk0=reader.brk0, options=options, touch=touch,
                       name=reader.name, skip_bad=skip_bad)
        rep.feed(reader if calls is None else islice(reader, calls))
    return rep
