"""memsim-trace v1: read and write allocation traces, streamed, plain or compressed.

A trace is one malloc-family call a line (the normative description is
``docs/traces.md``)::

    # memsim-trace v1                  <- exactly this first line
    # brk0 0x555555559000               <- metadata: "# KEY VALUE" lines before the first call
    # program /usr/bin/sort
    m 100 0x5555555592a0 t=4242         <- malloc(100) returned 0x5555555592a0, thread 4242
    c 3 40 0x555555559310               <- calloc(3, 40)
    r 0x555555559310 1000 0x555555559350  <- realloc(old, 1000)
    a 64 100 0x555555559740             <- memalign / aligned_alloc / posix_memalign
    v 10 0x55555555a000                 <- valloc;  p SIZE PTR: pvalloc
    f 0x5555555592a0                    <- free

The record type
---------------

Replays consume millions of calls a second, so a call is a plain tuple, not an object::

    (op, a, b, ret, tid, lineno)        the six fields of every :data:`Call`

    op   line                      a        b      ret
    'm'  m SIZE PTR                SIZE     0      PTR
    'c'  c NMEMB SIZE PTR          NMEMB    SIZE   PTR
    'r'  r OLD SIZE PTR            OLD      SIZE   PTR
    'f'  f PTR                     PTR      0      0
    'a'  a ALIGN SIZE PTR          ALIGN    SIZE   PTR
    'v'  v SIZE PTR                SIZE     0      PTR
    'p'  p SIZE PTR                SIZE     0      PTR

``tid`` is the ``t=`` field (0 when absent) and ``lineno`` the 1-based line number, for
messages. The ``OP_*`` and ``F_*`` constants name the values and positions.

Reading
-------

:class:`TraceReader` opens a path (or ``-`` for stdin, or a binary file object), detects the
compression from the magic bytes (gzip ``1f 8b``, xz ``fd 37 7a 58 5a``, zstd ``28 b5 2f fd``,
bzip2 ``BZh``; anything else is plain text), reads the header at once (``reader.meta``,
``reader.brk0``) and yields calls lazily: memory holds one buffer of text and the set of
live addresses, never the trace.

While reading it checks the trace against itself (``check=True``): a free of an address that
is not live (``double free`` when it was freed before, ``free of unknown address``
otherwise), a realloc of such an address, and an allocation returning an address that is
still live. A bad line raises :class:`memsim.errors.TraceError` naming the file, the line
number and the line; with ``skip_bad=True`` it is skipped instead, counted in
``reader.skipped`` (first examples in ``reader.bad_lines``) and summed up by
:meth:`TraceReader.skip_report`, which callers print at the end. A compressed stream that
ends early is always an error (the rest of the trace is unknown).

Writing
-------

:class:`TraceWriter` writes the header and one line per call, compressing by the file name
(``.gz``, ``.xz``, ``.zst``, ``.bz2``) or ``compression=``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, BinaryIO, TypeVar

from memsim.errors import TraceError

#: One call: (op, a, b, ret, tid, lineno); see the module docstring for the fields per op.
Call = tuple[str, int, int, int, int, int]

OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_FREE = "m", "c", "r", "f"
OP_MEMALIGN, OP_VALLOC, OP_PVALLOC = "a", "v", "p"
#: Every operation letter, in the order the format lists them.
OPS: tuple[str, ...] = ("m", "c", "r", "f", "a", "v", "p")

#: Positions in a :data:`Call`.
F_OP, F_A, F_B, F_RET, F_TID, F_LINENO = range(6)

MAGIC = "# memsim-trace v1"

#: How many bad lines a reader keeps as examples (all of them are counted).
BAD_LINE_EXAMPLES = 20

_CHUNK_BYTES = 1 << 20
_MAX64 = 1 << 64

_R = TypeVar("_R", bound="CallReader")


# --- compression ----------------------------------------------------------------------------

def detect_compression(head: bytes) -> str | None:
    """``"gzip"``, ``"xz"``, ``"zstd"``, ``"bzip2"`` or None (plain) from a file's first bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"BZh") and len(head) >= 4 and head[3:4].isdigit():
        return "bzip2"
    return None


def compression_for_name(name: str) -> str | None:
    """The compression a file name asks for, by its suffix."""
    lower = name.lower()
    for suffix, kind in ((".gz", "gzip"), (".xz", "xz"), (".zst", "zstd"), (".zstd", "zstd"),
                         (".bz2", "bzip2")):
        if lower.endswith(suffix):
            return kind
    return None


class _ZstdRaw(io.RawIOBase):
    """zstd decompression that notices a stream cut short (zstandard's reader does not)."""

    def __init__(self, fh: BinaryIO) -> None:
        import zstandard

        self._zstd = zstandard
        self._fh = fh
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._in_frame = False
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            data = self._fh.read(_CHUNK_BYTES)
            if not data:
                if self._in_frame:
                    raise EOFError("zstd stream ends in the middle of a frame (truncated?)")
                self._done = True
                break
            self._feed(data)
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, data: bytes) -> None:
        out = []
        while data:
            try:
                out.append(self._dobj.decompress(data))
            except self._zstd.ZstdError as e:
                raise ValueError(f"corrupt zstd data: {e}") from None
            self._in_frame = not self._dobj.eof
            if self._dobj.eof:
                data = self._dobj.unused_data
                self._dobj = self._zstd.ZstdDecompressor().decompressobj()
                self._in_frame = bool(data)
            else:
                data = b""
        self._pending += b"".join(out)


def _open_binary(source: str | os.PathLike[str] | BinaryIO) -> tuple[BinaryIO, str, bool]:
    """(decompressed binary stream, display name, whether we own the underlying file)."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if name == "-":
            raw: BinaryIO = sys.stdin.buffer
            owned = False
            name = "<stdin>"
        else:
            raw = open(name, "rb")  # noqa: SIM115 (closed by the reader)
            owned = True
    else:
        raw = source
        name = getattr(source, "name", None) or "<stream>"
        if not isinstance(name, str):
            name = "<stream>"
        owned = False
    buffered: BinaryIO = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    head = buffered.peek(8)[:8]  # type: ignore[attr-defined]
    kind = detect_compression(head)
    stream: BinaryIO
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
    elif kind == "xz":
        stream = lzma.LZMAFile(buffered, mode="rb")  # type: ignore[assignment]
    elif kind == "bzip2":
        stream = bz2.BZ2File(buffered, mode="rb")  # type: ignore[assignment]
    elif kind == "zstd":
        stream = io.BufferedReader(_ZstdRaw(buffered), buffer_size=_CHUNK_BYTES)  # type: ignore[assignment]
    else:
        stream = buffered
    return stream, name, owned


def _describe_read_error(e: BaseException) -> str:
    if isinstance(e, EOFError):
        text = str(e) or "the compressed stream ends early"
        return f"truncated compressed data ({text})"
    if isinstance(e, ValueError) and str(e).startswith("corrupt"):
        return f"cannot decompress ({e})"
    return f"cannot decompress ({type(e).__name__}: {e})"


# --- the live-address check -----------------------------------------------------------------

class LiveSet:
    """Which addresses a trace holds live, to catch frees that cannot be right.

    ``state[addr]`` is True while ``addr`` is live and False once it has been freed (so a
    second free can be called a double free). It grows with the distinct addresses the
    program used, never with the length of the trace.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: dict[int, bool] = {}

    def live_count(self) -> int:
        return sum(1 for v in self.state.values() if v)

    def check(self) -> None:
        """Assert the invariants: addresses are non-NULL 64-bit ints, states are booleans."""
        for addr, live in self.state.items():
            assert isinstance(addr, int) and 0 < addr < _MAX64, addr
            assert live is True or live is False, (addr, live)

    def apply(self, op: str, a: int, b: int, ret: int) -> str | None:
        """Apply one call; returns why it is inconsistent (and applies nothing), or None."""
        state = self.state
        if op == "f":
            if a == 0:
                return None
            s = state.get(a)
            if s is not True:
                return ("double free of %#x" if s is False else "free of unknown address %#x") % a
            state[a] = False
            return None
        if op == "r":
            if a != 0:
                s = state.get(a)
                if s is not True:
                    return ("realloc of freed address %#x" if s is False
                            else "realloc of unknown address %#x") % a
                if b == 0:
                    if ret != 0:
                        return f"realloc({a:#x}, 0) must free and return 0x0"
                    state[a] = False
                    return None
                if ret == 0:
                    return None                    # failed: the old block stays live
                if ret != a and state.get(ret) is True:
                    return f"realloc returned {ret:#x}, which is still live"
                state[a] = False
                state[ret] = True
                return None
        if ret != 0:
            if state.get(ret) is True:
                return f"{ret:#x} returned while still live (a free is missing?)"
            state[ret] = True
        return None


# --- reading --------------------------------------------------------------------------------

_OPS_BYTES = {b"m": "m", b"c": "c", b"r": "r", b"f": "f", b"a": "a", b"v": "v", b"p": "p"}
#: number of positional fields per op (after the letter)
_NFIELDS = {"m": 2, "c": 3, "r": 3, "f": 1, "a": 3, "v": 2, "p": 2}
#: which positional fields are pointers (hex)
_PTR_FIELDS = {"m": (False, True), "c": (False, False, True), "r": (True, False, True),
               "f": (True,), "a": (False, False, True), "v": (False, True), "p": (False, True)}


def _tid(tok: bytes, cache: dict[bytes, int]) -> int:
    """The thread id of a ``t=TID`` token (cached), or -1 when the token is something else."""
    if tok[:2] != b"t=" or not tok[2:].isdigit():
        return -1
    tid = cache[tok] = int(tok[2:])
    return tid


def _show(tok: bytes) -> str:
    """A token for an error message."""
    return repr(tok.decode("ascii", "replace"))


def _parse_number(tok: bytes, is_ptr: bool) -> int:
    if is_ptr:
        if not tok[:2].lower() == b"0x":
            raise ValueError(f"a pointer must be hexadecimal with 0x: {_show(tok)}")
        v = int(tok, 16)
    else:
        if not tok.isdigit():
            raise ValueError(f"not a decimal number: {_show(tok)}")
        v = int(tok)
    if v >= 1 << 64:
        raise ValueError(f"number does not fit in 64 bits: {_show(tok)}")
    return v


def _key_value(s: bytes, *, dashes: bool) -> tuple[str, str] | None:
    """``(KEY, VALUE)`` of a stripped ``# KEY VALUE`` line, or None when it is a comment.

    A key is letters, digits and ``_`` (and ``-`` in the header, ``dashes=True``)."""
    key, _, value = s[1:].strip().decode("utf-8", "replace").partition(" ")
    bare = key.replace("_", "")
    if dashes:
        bare = bare.replace("-", "")
    return (key, value.strip()) if key and bare.isalnum() else None


def parse_call_line(line: bytes, lineno: int) -> Call:
    """Parse one call line (bytes, no comment) into a :data:`Call`; ValueError if malformed."""
    parts = line.split()
    op = _OPS_BYTES.get(parts[0])
    if op is None:
        raise ValueError(f"unknown operation {_show(parts[0])}")
    n = _NFIELDS[op]
    if len(parts) < n + 1:
        raise ValueError(f"'{op}' needs {n} field{'s' if n > 1 else ''}, got {len(parts) - 1}")
    kinds = _PTR_FIELDS[op]
    vals = [_parse_number(parts[i + 1], kinds[i]) for i in range(n)]
    tid = 0
    for extra in parts[n + 1:]:
        key, eq, value = extra.partition(b"=")
        if not eq:
            raise ValueError(f"extra field {_show(extra)} is not key=value")
        if key == b"t":
            if not value.isdigit():
                raise ValueError("t= must be a decimal thread id")
            tid = int(value)
    if op == "f":
        return (op, vals[0], 0, 0, tid, lineno)
    if n == 2:
        return (op, vals[0], 0, vals[1], tid, lineno)
    return (op, vals[0], vals[1], vals[2], tid, lineno)


class CallReader:
    """What every trace reader shares: the source, the checks and the bad-line bookkeeping.

    :class:`TraceReader`, :class:`memsim.trace.mtrace.MtraceReader`,
    :class:`memsim.trace.rep.RepReader` and :class:`memsim.trace.ostep_ops.OstepOpsReader`
    are all one of these, so callers need not care which format a file is in:

    - opening (``_open_binary``: a path, ``-`` or a binary stream, decompressed by its magic
      bytes), closing, the context manager;
    - ``live`` (the :class:`LiveSet` the ``check=True`` consistency test runs on) and
      :meth:`_check_call`, which turns an inconsistent call into a bad line;
    - :meth:`_bad`: raise :class:`memsim.errors.TraceError` naming file, line and text, or with
      ``skip_bad=True`` count it in ``skipped`` (the first :data:`BAD_LINE_EXAMPLES` kept in
      ``bad_lines`` as ``(lineno, text, why)``) for :meth:`skip_report`;
    - iterating once (a trace is a stream); a subclass writes ``_calls()``.
    """

    #: What :meth:`skip_report` calls one bad unit of input.
    _BAD_UNIT = "line"
    #: Whether :meth:`skip_report` quotes the bad text after the reason.
    _REPORT_TEXT = True

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, skip_bad: bool = False,
                 check: bool = True, name: str | None = None) -> None:
        self.skip_bad = skip_bad
        self.check = check
        self.brk0: int | None = None
        self.calls = 0
        self.skipped = 0
        self.bad_lines: list[tuple[int, str, str]] = []
        self.live = LiveSet()
        self.lineno = 0
        self._started = False
        try:
            self._stream, self.name, self._owned = _open_binary(source)
        except OSError as e:
            raise TraceError(f"cannot open: {e.strerror or e}", os.fspath(source)
                             if isinstance(source, (str, os.PathLike)) else None) from None
        if name is not None:
            self.name = name

    # -- context manager
    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._stream.close()
            self._owned = False

    def _error(self, message: str, lineno: int | None = None, line: bytes | None = None) -> None:
        """Raise the TraceError for ``message`` at ``lineno`` (quoting ``line``)."""
        text = None if line is None else line.decode("utf-8", "replace").rstrip("\r\n")
        raise TraceError(message, self.name, lineno, text)

    def _bad(self, message: str, lineno: int, line: bytes | str) -> None:
        """A bad line: raise, or count it when skipping."""
        text = line if isinstance(line, str) else \
            line.decode("utf-8", "replace").rstrip("\r\n")
        if not self.skip_bad:
            raise TraceError(message, self.name, lineno, text)
        self.skipped += 1
        if len(self.bad_lines) < BAD_LINE_EXAMPLES:
            self.bad_lines.append((lineno, text, message))

    def _check_call(self, call: Call, lineno: int, line: bytes | str) -> bool:
        """Apply ``call`` to ``live`` when checking; False (after :meth:`_bad` for ``lineno``,
        ``line``) when it cannot be right."""
        if not self.check:
            return True
        why = self.live.apply(call[0], call[1], call[2], call[3])
        if why is None:
            return True
        self._bad(why, lineno, line)
        return False

    def __iter__(self) -> Iterator[Call]:
        if self._started:
            raise TraceError("a trace is a stream and can be read once", self.name)
        self._started = True
        return self._calls()

    def _calls(self) -> Iterator[Call]:
        raise NotImplementedError

    def skip_report(self) -> str | None:
        """One paragraph about skipped lines (None when nothing was skipped)."""
        if not self.skipped:
            return None
        n = self.skipped
        head = f"{self.name}: skipped {n} bad {self._BAD_UNIT}{'s' if n > 1 else ''}"
        if self._REPORT_TEXT:
            examples = "; ".join(f"line {k}: {why}: {text!r}"
                                 for k, text, why in self.bad_lines[:5])
        else:
            examples = "; ".join(f"line {k}: {why}" for k, _text, why in self.bad_lines[:5])
        more = "" if n <= 5 else f" (and {n - 5} more)"
        return f"{head}: {examples}{more}"


class TraceReader(CallReader):
    """Stream the calls of one memsim-trace v1 file (plain or compressed, or ``-``).

    >>> with TraceReader("corpus/sort.trace.zst") as tr:      # doctest: +SKIP
    ...     print(tr.meta["program"], hex(tr.brk0))
    ...     for op, a, b, ret, tid, lineno in tr:
    ...         ...

    Attributes: ``meta`` (header ``KEY -> VALUE``), ``brk0`` (int or None), ``trailer``
    (``# KEY VALUE`` lines after the first call), ``calls`` (calls yielded so far),
    ``skipped`` and ``bad_lines`` (with ``skip_bad=True``), ``live`` (the :class:`LiveSet`).
    Iterating a second time is an error: the trace is a stream.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, skip_bad: bool = False,
                 check: bool = True, name: str | None = None) -> None:
        super().__init__(source, skip_bad=skip_bad, check=check, name=name)
        self.meta: dict[str, str] = {}
        self.trailer: dict[str, str] = {}
        self._first: bytes | None = None
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def _readline(self) -> bytes:
        try:
            return self._stream.readline()
        except (EOFError, OSError, lzma.LZMAError, ValueError) as e:
            self._error(_describe_read_error(e), self.lineno + 1)
            raise AssertionError("unreachable") from None

    def _read_header(self) -> None:
        first = self._readline()
        self.lineno = 1
        if not first:
            self._error("empty file: not a memsim-trace v1 trace")
        if first.rstrip(b"\r\n \t") != MAGIC.encode():
            if b"\0" in first or not first.isascii():
                self._error("not a memsim-trace v1 trace (binary data; an unsupported "
                            "compression or a corrupt file?)", 1)
            self._error(f"not a memsim-trace v1 trace (the first line must be '{MAGIC}')", 1,
                        first[:200])
        while True:
            line = self._readline()
            if not line:
                return
            self.lineno += 1
            s = line.strip()
            if not s:
                continue
            if s[:1] == b"#":
                kv = _key_value(s, dashes=True)
                if kv is not None:
                    key, value = kv
                    self.meta[key] = value
                    if key == "brk0":
                        try:
                            self.brk0 = int(value, 16)
                        except ValueError:
                            self._error("brk0 must be a hexadecimal address", self.lineno, line)
                continue
            self._first = line
            return

    def _calls(self) -> Iterator[Call]:
        stream = self._stream
        check = self.check
        apply = self.live.apply
        state = self.live.state
        calls = self.calls
        tids: dict[bytes, int] = {}        # b"t=4242" -> 4242, for the few threads there are
        max64 = _MAX64
        lineno = self.lineno
        pending = self._first
        self._first = None
        try:
            while True:
                if pending is not None:
                    lines: list[bytes] = [pending]
                    pending = None
                    lineno -= 1
                else:
                    try:
                        lines = stream.readlines(_CHUNK_BYTES)
                    except (EOFError, OSError, lzma.LZMAError, ValueError) as e:
                        self.lineno = lineno
                        self._error(_describe_read_error(e), lineno + 1)
                    if not lines:
                        break
                for line in lines:
                    lineno += 1
                    parts = line.split()
                    # Fast path: the common well-formed lines.
                    try:
                        n = len(parts)
                        p0 = parts[0]
                        if p0 == b"m" and parts[1].isdigit() and parts[2][:2] == b"0x":
                            op = "m"
                            a = int(parts[1])
                            ret = int(parts[2], 16)
                            b = 0
                            tid = 0 if n == 3 else (tids.get(parts[3]) or _tid(parts[3], tids)
                                                    ) if n == 4 else -1
                        elif p0 == b"f" and parts[1][:2] == b"0x":
                            op = "f"
                            a = int(parts[1], 16)
                            b = ret = 0
                            tid = 0 if n == 2 else (tids.get(parts[2]) or _tid(parts[2], tids)
                                                    ) if n == 3 else -1
                        elif p0 == b"c" and parts[1].isdigit() and parts[2].isdigit() \
                                and parts[3][:2] == b"0x":
                            op = "c"
                            a = int(parts[1])
                            b = int(parts[2])
                            ret = int(parts[3], 16)
                            tid = 0 if n == 4 else (tids.get(parts[4]) or _tid(parts[4], tids)
                                                    ) if n == 5 else -1
                            if b >= max64:
                                tid = -1
                        elif p0 == b"r" and parts[1][:2] == b"0x" and parts[2].isdigit() \
                                and parts[3][:2] == b"0x":
                            op = "r"
                            a = int(parts[1], 16)
                            b = int(parts[2])
                            ret = int(parts[3], 16)
                            tid = 0 if n == 4 else (tids.get(parts[4]) or _tid(parts[4], tids)
                                                    ) if n == 5 else -1
                            if b >= max64:
                                tid = -1
                        else:
                            tid = -1
                        if tid < 0 or a >= max64 or ret >= max64:
                            tid = -1
                    except (ValueError, IndexError):
                        tid = -1
                    if tid < 0:
                        # Slow path: comments, blank lines, everything else, with full checks.
                        s = line.strip()
                        if not s:
                            continue
                        if s[:1] == b"#":
                            kv = _key_value(s, dashes=False)
                            if kv is not None:
                                self.trailer[kv[0]] = kv[1]
                            continue
                        if b"\0" in s:
                            self.lineno = lineno
                            self._bad("NUL bytes in the text (an unfinished recording?)",
                                      lineno, line[:120])
                            continue
                        try:
                            op, a, b, ret, tid, _ = parse_call_line(s, lineno)
                        except ValueError as e:
                            self.lineno = lineno
                            self._bad(str(e), lineno, line)
                            continue
                    if check:
                        # Inlined LiveSet.apply for the two commonest calls.
                        if op == "m" and ret and state.get(ret) is not True:
                            state[ret] = True
                        elif op == "f" and a and state.get(a) is True:
                            state[a] = False
                        else:
                            why = apply(op, a, b, ret)  # type: ignore[arg-type]
                            if why is not None:
                                self.lineno = lineno
                                self._bad(why, lineno, line)
                                continue
                    calls += 1
                    yield (op, a, b, ret, tid, lineno)  # type: ignore[misc]
        finally:
            self.lineno = lineno
            self.calls = calls
            self.close()

def read_trace(source: str | os.PathLike[str] | BinaryIO, **kwargs: bool) -> TraceReader:
    """Open a memsim-trace v1 file; same as ``TraceReader(source, **kwargs)``."""
    return TraceReader(source, **kwargs)


# --- writing --------------------------------------------------------------------------------

def _open_output(target: str | os.PathLike[str] | BinaryIO, compression: str | None,
                 level: int | None) -> tuple[BinaryIO, list[IO[bytes]]]:
    """(stream to write text bytes to, objects to close in order)."""
    if isinstance(target, (str, os.PathLike)):
        name = os.fspath(target)
        if name == "-":
            base: BinaryIO = sys.stdout.buffer
            owned: list[IO[bytes]] = []
        else:
            base = open(name, "wb")  # noqa: SIM115
            owned = [base]
        if compression is None:
            compression = compression_for_name(name)
    else:
        base = target
        owned = []
    if compression in (None, "none", "plain"):
        return base, owned
    if compression == "gzip":
        gz = gzip.GzipFile(fileobj=base, mode="wb", compresslevel=level or 6, mtime=0)
        return gz, [gz, *owned]  # type: ignore[list-item]
    if compression == "xz":
        xz = lzma.LZMAFile(base, mode="wb", preset=level if level is not None else 6)
        return xz, [xz, *owned]  # type: ignore[list-item, return-value]
    if compression == "bzip2":
        bz = bz2.BZ2File(base, mode="wb", compresslevel=level or 9)
        return bz, [bz, *owned]  # type: ignore[list-item, return-value]
    if compression == "zstd":
        import zstandard

        zw = zstandard.ZstdCompressor(level=level if level is not None else 10).stream_writer(
            base, closefd=False)
        buf = io.BufferedWriter(zw, _CHUNK_BYTES)  # type: ignore[arg-type]
        return buf, [buf, *owned]  # type: ignore[list-item]
    raise ValueError(f"unknown compression {compression!r} (use gzip, xz, zstd, bzip2 or none)")


class TraceWriter:
    """Write a memsim-trace v1 file, one call at a time.

    >>> with TraceWriter("out.trace.zst", {"brk0": "0x555555559000"}) as w:  # doctest: +SKIP
    ...     w.malloc(100, 0x5555555592a0)
    ...     w.free(0x5555555592a0)

    ``meta`` becomes the header (``brk0`` given as an int is written in hex). Compression
    follows the file name unless ``compression`` says otherwise.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO,
                 meta: Mapping[str, object] | None = None, *, compression: str | None = None,
                 level: int | None = None) -> None:
        self._out, self._closers = _open_output(target, compression, level)
        self._parts: list[str] = [MAGIC + "\n"]
        self.calls = 0
        for key, value in (meta or {}).items():
            if not key or any(c.isspace() for c in key):
                raise ValueError(f"metadata key {key!r} must be one word")
            text = hex(value) if key == "brk0" and isinstance(value, int) else str(value)
            if "\n" in text:
                raise ValueError(f"metadata {key!r} must be one line")
            self._parts.append(f"# {key} {text}\n")

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, text: str, tid: int) -> None:
        self._parts.append(f"{text} t={tid}\n" if tid else text + "\n")
        self.calls += 1
        if len(self._parts) >= 4096:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._out.write("".join(self._parts).encode())
            self._parts = []

    def malloc(self, size: int, ptr: int, tid: int = 0) -> None:
        self._line(f"m {size} {ptr:#x}", tid)

    def calloc(self, nmemb: int, size: int, ptr: int, tid: int = 0) -> None:
        self._line(f"c {nmemb} {size} {ptr:#x}", tid)

    def realloc(self, old: int, size: int, ptr: int, tid: int = 0) -> None:
        self._line(f"r {old:#x} {size} {ptr:#x}", tid)

    def free(self, ptr: int, tid: int = 0) -> None:
        self._line(f"f {ptr:#x}", tid)

    def memalign(self, align: int, size: int, ptr: int, tid: int = 0) -> None:
        self._line(f"a {align} {size} {ptr:#x}", tid)

    def valloc(self, size: int, ptr: int, tid: int = 0) -> None:
        self._line(f"v {size} {ptr:#x}", tid)

    def pvalloc(self, size: int, ptr: int, tid: int = 0) -> None:
        self._line(f"p {size} {ptr:#x}", tid)

    def comment(self, text: str) -> None:
        """A ``# text`` line (after the header it is a comment, or trailer metadata)."""
        self._parts.append(f"# {text}\n")

    def write_call(self, call: Call | tuple[str, int, int, int] | tuple[str, int, int, int, int]
                   ) -> None:
        """Write a :data:`Call` (or its first four or five fields)."""
        op, a, b, ret = call[0], call[1], call[2], call[3]
        tid = call[4] if len(call) > 4 else 0  # type: ignore[misc]
        if op == "m":
            self.malloc(a, ret, tid)
        elif op == "f":
            self.free(a, tid)
        elif op == "c":
            self.calloc(a, b, ret, tid)
        elif op == "r":
            self.realloc(a, b, ret, tid)
        elif op == "a":
            self.memalign(a, b, ret, tid)
        elif op == "v":
            self.valloc(a, ret, tid)
        elif op == "p":
            self.pvalloc(a, ret, tid)
        else:
            raise ValueError(f"unknown operation {op!r}")

    def write_calls(self, calls: Iterable[Call]) -> None:
        for call in calls:
            self.write_call(call)

    def close(self) -> None:
        if self._closers is None:  # type: ignore[comparison-overlap]
            return
        self.flush()
        self._out.flush()
        for obj in self._closers:
            obj.close()
        self._closers = None  # type: ignore[assignment]


def write_trace(target: str | os.PathLike[str] | BinaryIO, calls: Iterable[Call],
                meta: Mapping[str, object] | None = None, *, compression: str | None = None,
                level: int | None = None) -> int:
    """Write ``calls`` as a trace; returns the number of calls written."""
    with TraceWriter(target, meta, compression=compression, level=level) as w:
        w.write_calls(calls)
        return w.calls


def is_memsim_trace(path: str | os.PathLike[str]) -> bool:
    """True when the (possibly compressed) file starts with the memsim-trace v1 line."""
    try:
        stream, _, owned = _open_binary(Path(path))
        try:
            return stream.readline(64).rstrip(b"\r\n \t") == MAGIC.encode()
        finally:
            if owned:
                stream.close()
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return False


__all__ = [
    "BAD_LINE_EXAMPLES", "Call", "CallReader", "F_A", "F_B", "F_LINENO", "F_OP", "F_RET",
    "F_TID", "LiveSet", "MAGIC", "OPS", "OP_CALLOC", "OP_FREE", "OP_MALLOC", "OP_MEMALIGN",
    "OP_PVALLOC", "OP_REALLOC", "OP_VALLOC", "TraceReader", "TraceWriter",
    "compression_for_name", "detect_compression", "is_memsim_trace", "parse_call_line",
    "read_trace", "write_trace",
]
