"""CS:APP Malloc Lab traces (``.rep``): read them as memsim calls, and write them.

The Malloc Lab driver (``mdriver``) replays ``.rep`` traces: a header of four numbers, then
one request a line, naming blocks by *id* rather than by address::

    20000        classic (CS:APP 2e/3e handout):   sugg_heapsize   (unused)
    3                                               num_ids         (ids are 0 .. num_ids-1)
    8                                               num_ops         (request lines that follow)
    1                                               weight          (unused)
    a 0 512      ptr_0 = malloc(512)
    r 0 640      ptr_0 = realloc(ptr_0, 640)
    f 0          free(ptr_0)

    1            CMU 15-213 (64-bit, 2016+):       weight   (0 ignore, 1 util+perf, 2 util,
    3                                                        3 perf)
    8                                               num_ids
    1408                                            num_ops
                                                    data_bytes (peak payload; checked here)

``variant="auto"`` takes a trace as CMU when its first number is 0..3 and its fourth is
above 3 (a weight, then a peak payload), else as classic (a heap size, then a weight of 0 or
1); a header of two numbers (``num_ids``, ``num_ops``, as some course copies cut it) is
variant ``short``, read as classic with weight 1. mdriver's own checks are kept: exactly
``num_ops`` requests, the largest id used is ``num_ids - 1``; a bad line, a count that
disagrees or an unknown request is a :class:`memsim.errors.TraceError` naming the file and
line.

Ids and addresses are kept apart. A memsim call needs pointers, so each id is given a
*synthetic pointer*, far from any real mapping, from which the id can be read back::

    pointer(id, gen) = SYNTHETIC_BASE + 16 * (gen * 2**32 + id)       SYNTHETIC_BASE = 2**44

``gen`` is 0 unless the trace allocates an id again while it is still live (a leak in the
trace): each such allocation takes the next generation (up to 255), so two live blocks never
share a pointer; all synthetic pointers lie in [2**44, 2**45). ``realloc`` keeps the id's
pointer (``('r', P, size, P)``); the allocator under replay gives its own addresses anyway.
Requests that mdriver cannot express as C calls are
mapped as the CMU driver (which zeroes its block table) would run them: ``r`` of an id that is
not live is ``realloc(NULL, size)``; ``f -1`` (CMU) is ``free(NULL)``; ``r id 0`` (CMU) is
``realloc(p, 0)``, a free. A free of an id that is not live is an error (the classic driver
would free a stale or garbage pointer).

Writing (:func:`write_rep`): calls become requests, each block that a call returns getting
the next id (so ids follow allocation order, as in the lab's traces). calloc, memalign,
valloc and pvalloc become ``a`` with the total size (alignment and zeroing are lost), a
failed call is dropped (mdriver requires success), ``realloc(NULL, n)`` is ``a``,
``realloc(p, 0)`` is ``f``; ``free(NULL)`` is dropped (classic) or ``f -1`` (CMU). The header
is computed: the classic one gets the peak payload as its (unused) suggested heap size.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from memsim.errors import TraceError
from memsim.trace.format import Call, CallReader

__all__ = ["SYNTHETIC_BASE", "RepHeader", "RepReader", "looks_like_rep", "pointer_id",
           "synthetic_pointer", "write_rep"]

SYNTHETIC_BASE = 1 << 44
_GEN_SHIFT = 32
_ID_LIMIT = 1 << _GEN_SHIFT
_GEN_LIMIT = 1 << 8             # pointers stay below 2**45, away from real mappings
VARIANTS = ("auto", "classic", "cmu", "short")


def synthetic_pointer(ident: int, gen: int = 0) -> int:
    """The pointer that stands for block ``ident`` (generation ``gen``) in memsim calls."""
    if not 0 <= gen < _GEN_LIMIT:
        raise ValueError(f"block id {ident} allocated again while live more than "
                         f"{_GEN_LIMIT - 1} times")
    return SYNTHETIC_BASE + 16 * ((gen << _GEN_SHIFT) | ident)


def pointer_id(ptr: int) -> tuple[int, int] | None:
    """``(id, gen)`` of a synthetic pointer, or None for any other address."""
    off = ptr - SYNTHETIC_BASE
    if off < 0 or off % 16:
        return None
    n = off // 16
    if n >> _GEN_SHIFT >= _GEN_LIMIT:
        return None
    return n & (_ID_LIMIT - 1), n >> _GEN_SHIFT


def looks_like_rep(head: bytes) -> bool:
    """True when the first line of a file is a bare decimal number (a .rep header)."""
    first = head.split(b"\n", 1)[0].strip()
    return first.isdigit()


@dataclass(frozen=True)
class RepHeader:
    """The four header numbers, by variant (None where the variant has no such field)."""

    variant: str              # "classic" or "cmu"
    num_ids: int
    num_ops: int
    weight: int
    sugg_heapsize: int | None = None    # classic only (unused by mdriver)
    data_bytes: int | None = None       # cmu only: the trace's peak payload


class RepReader(CallReader):
    """Stream the requests of a ``.rep`` trace as memsim :data:`Call` records.

    Has the interface of :class:`memsim.trace.format.TraceReader` (``meta``, ``brk0`` (None),
    ``calls``, ``skipped``, ``skip_report()``, ``live``), so callers need not care about the
    format. ``header`` holds the four numbers; ``peak_payload`` is known after iterating.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, variant: str = "auto",
                 skip_bad: bool = False, check: bool = True, name: str | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown .rep variant {variant!r} (use {', '.join(VARIANTS)})")
        self.peak_payload = 0
        self._pending: bytes | None = None
        super().__init__(source, skip_bad=skip_bad, check=check, name=name)
        try:
            self.header = self._read_header(variant)
        except BaseException:
            self.close()
            raise
        h = self.header
        self.meta: dict[str, str] = {"format": f"malloclab-rep ({h.variant})",
                                     "rep_num_ids": str(h.num_ids),
                                     "rep_num_ops": str(h.num_ops),
                                     "rep_weight": str(h.weight)}
        if h.data_bytes is not None:
            self.meta["rep_data_bytes"] = str(h.data_bytes)
        if h.sugg_heapsize is not None:
            self.meta["rep_sugg_heapsize"] = str(h.sugg_heapsize)

    def _next_line(self) -> bytes | None:
        """The next non-blank line (stripped), counting line numbers; None at the end."""
        if self._pending is not None:
            line, self._pending = self._pending, None
            return line
        while True:
            try:
                line = self._stream.readline()
            except (EOFError, OSError, ValueError) as e:
                self._error(f"cannot read: {e}", self.lineno + 1)
                raise AssertionError("unreachable") from None
            if not line:
                return None
            self.lineno += 1
            s = line.strip()
            if s:
                if b"\0" in s:
                    self._error("binary data: not a .rep trace", self.lineno)
                return s

    def _read_header(self, variant: str) -> RepHeader:
        nums: list[int] = []
        what = ("first header number", "number of ids", "number of requests",
                "fourth header number")
        for i in range(4):
            s = self._next_line()
            if s is None:
                self._error(f"the .rep header ends early: {what[i]} is missing "
                           f"(a .rep trace starts with 4 numbers)", self.lineno + 1)
                raise AssertionError("unreachable")
            if i == 2 and s[:1] in (b"a", b"r", b"f") and variant in ("auto", "short"):
                # some course copies keep only num_ids and num_ops
                self._pending = s
                return RepHeader("short", nums[0], nums[1], 1)
            if not s.isdigit():
                self._error(f"the .rep header needs a number here ({what[i]})", self.lineno, s)
            nums.append(int(s))
        if variant == "short":
            self._error("a two-number .rep header (num_ids, num_ops) was asked for, this one "
                       "has four numbers", self.lineno)
        h0, num_ids, num_ops, h3 = nums
        if variant == "auto":
            variant = "cmu" if h0 <= 3 and h3 > 3 else "classic"
        if variant == "cmu":
            if h0 > 3:
                self._error(f"CMU .rep weight must be 0..3, not {h0}", self.lineno - 3)
            return RepHeader("cmu", num_ids, num_ops, h0, data_bytes=h3)
        return RepHeader("classic", num_ids, num_ops, h3, sugg_heapsize=h0)

    def _calls(self) -> Iterator[Call]:
        check = self.check
        check_call = self._check_call
        cmu = self.header.variant == "cmu"
        size_max = (1 << 64) - 1 if cmu else (1 << 32) - 1
        gen: dict[int, int] = {}            # id -> generation of its current pointer
        live: dict[int, int] = {}           # id -> requested size, while live
        payload = peak = 0
        nops = 0
        max_id = -1
        try:
            while True:
                s = self._next_line()
                if s is None:
                    break
                lineno = self.lineno
                nops += 1
                parts = s.split()
                kind = parts[0]
                try:
                    if kind not in (b"a", b"r", b"f"):
                        raise ValueError(f"unknown request {kind.decode('ascii', 'replace')!r} "
                                         f"(use a ID SIZE, r ID SIZE or f ID)")
                    want = 2 if kind == b"f" else 3
                    if len(parts) != want:
                        raise ValueError(f"'{kind.decode()}' needs {want - 1} number"
                                         f"{'s' if want > 2 else ''}, got {len(parts) - 1}")
                    tok = parts[1]
                    if cmu and kind == b"f" and tok == b"-1":
                        ident = -1
                    elif tok.isdigit():
                        ident = int(tok)
                    else:
                        raise ValueError(f"not a block id: {tok.decode('ascii', 'replace')!r}")
                    if ident >= _ID_LIMIT:
                        raise ValueError(f"block id {ident} is too large (at most 2**32-1)")
                    size = 0
                    if want == 3:
                        if not parts[2].isdigit():
                            raise ValueError("not a size: "
                                             f"{parts[2].decode('ascii', 'replace')!r}")
                        size = int(parts[2])
                        if size > size_max:
                            raise ValueError(f"size {size} does not fit the driver's "
                                             f"{'size_t' if cmu else 'unsigned int'}")
                    if ident > max_id:
                        max_id = ident
                    if kind == b"a":
                        g = gen.get(ident, 0)
                        if ident in live:
                            g += 1                    # allocated again while live: a leak
                        gen[ident] = g
                        ptr = synthetic_pointer(ident, g)
                        call: Call = ("m", size, 0, ptr, 0, lineno)
                        payload += size
                        live[ident] = size
                    elif kind == b"r":
                        if ident in live:
                            ptr = synthetic_pointer(ident, gen[ident])
                            if size == 0:
                                call = ("r", ptr, 0, 0, 0, lineno)
                                payload -= live.pop(ident)
                            else:
                                call = ("r", ptr, size, ptr, 0, lineno)
                                payload += size - live[ident]
                                live[ident] = size
                        else:                          # realloc(NULL, size) = malloc
                            gen.setdefault(ident, 0)
                            ptr = synthetic_pointer(ident, gen[ident])
                            call = ("r", 0, size, ptr if size else 0, 0, lineno)
                            if size:
                                live[ident] = size
                                payload += size
                    else:
                        if ident == -1:
                            call = ("f", 0, 0, 0, 0, lineno)
                        elif ident in live:
                            call = ("f", synthetic_pointer(ident, gen[ident]), 0, 0, 0, lineno)
                            payload -= live.pop(ident)
                        else:
                            raise ValueError(f"free of block id {ident}, which is not "
                                             f"allocated here")
                except ValueError as e:
                    self._bad(str(e), lineno, s)
                    continue
                if payload > peak:
                    peak = payload
                if check and not check_call(call, lineno, s):
                    continue
                self.calls += 1
                yield call
            self.peak_payload = peak
            h = self.header
            if nops != h.num_ops:
                self._error(f"the header says {h.num_ops} requests, the trace has {nops}",
                           self.lineno)
            if nops and max_id != h.num_ids - 1 and not (max_id == -1 and h.num_ids == 0):
                self._error(f"the header says {h.num_ids} block ids, the largest id used is "
                           f"{max_id} (mdriver requires num_ids - 1)", self.lineno)
            if h.data_bytes is not None and h.data_bytes != peak and not self.skipped:
                self._error(f"the header's peak payload is {h.data_bytes} bytes, the requests "
                           f"reach {peak}", self.lineno)
        finally:
            self.close()


def write_rep(target: str | os.PathLike[str] | BinaryIO, calls: Iterable[Call], *,
              variant: str = "classic", weight: int = 1) -> int:
    """Write ``calls`` as a ``.rep`` trace (module docstring); returns the number of requests.

    The header needs the counts, so the requests go to a temporary file first."""
    if variant not in ("classic", "cmu"):
        raise ValueError(f"unknown .rep variant {variant!r} (use classic or cmu)")
    ids: dict[int, int] = {}              # live address -> id
    sizes: dict[int, int] = {}            # id -> size
    next_id = 0
    payload = peak = 0
    nops = 0
    with tempfile.TemporaryFile("w+b") as body:
        out: list[str] = []

        def emit(text: str) -> None:
            nonlocal nops
            out.append(text)
            nops += 1
            if len(out) >= 4096:
                body.write("".join(out).encode())
                out.clear()

        for op, a, b, ret, _tid, lineno in calls:
            if op == "f" or (op == "r" and a and b == 0):
                if a == 0:
                    if variant == "cmu":
                        emit("f -1\n")
                    continue
                ident = ids.pop(a, None)
                if ident is None:
                    raise TraceError(f"free of {a:#x}, which is not live", None, lineno)
                payload -= sizes.pop(ident)
                emit(f"f {ident}\n")
                continue
            if ret == 0:
                continue                            # a failed call: mdriver needs success
            if op == "r" and a:
                ident = ids.pop(a, None)
                if ident is None:
                    raise TraceError(f"realloc of {a:#x}, which is not live", None, lineno)
                payload += b - sizes[ident]
                sizes[ident] = b
                ids[ret] = ident
                emit(f"r {ident} {b}\n")
            else:
                size = a * b if op == "c" else b if op in ("a", "r") else a
                ident = next_id
                next_id += 1
                ids[ret] = ident
                sizes[ident] = size
                payload += size
                emit(f"a {ident} {size}\n")
            if payload > peak:
                peak = payload
        body.write("".join(out).encode())
        if variant == "classic":
            head = f"{max(peak, 1)}\n{next_id}\n{nops}\n{weight}\n"
        else:
            head = f"{weight}\n{next_id}\n{nops}\n{peak}\n"
        body.seek(0)
        if isinstance(target, (str, os.PathLike)):
            name = os.fspath(target)
            fh: BinaryIO = open(name, "wb") if name != "-" else _stdout()  # noqa: SIM115
            owned = name != "-"
        else:
            fh, owned = target, False
        try:
            fh.write(head.encode())
            while True:
                chunk = body.read(1 << 20)
                if not chunk:
                    break
                fh.write(chunk)
            fh.flush()
        finally:
            if owned:
                fh.close()
    return nops


def _stdout() -> BinaryIO:
    import sys

    return sys.stdout.buffer
