"""Read glibc's ``mtrace`` log (``MALLOC_TRACE=file``) as the same calls memsim-trace gives.

A program that calls ``mtrace()`` (with ``libc_malloc_debug.so`` preloaded since glibc 2.34)
logs each call it makes until ``muntrace()``. What glibc 2.36 writes on this machine::

    = Start
    @ ./prog:[0x11d0] + 0x557355ef94a0 0x64          malloc(100), calloc, memalign: "+ PTR SIZE"
    @ ./prog:[0x11f8] < 0x557355ef94a0               realloc: the old block ...
    @ ./prog:[0x11f8] > 0x557355ef9590 0x3e8         ... and the new one, with the size
    @ ./prog:[0x125b] ! 0x557355ef9510 0xff..9c      a realloc that failed: "! OLD SIZE"
    @ ./prog:[0x121b] - 0x557355ef92a0               free (and realloc(p, 0))
    @ /lib/x86_64-linux-gnu/libc.so.6:(_IO_file_doallocate+8c)[0x758cc] + 0x...af0 0x1000
    = End                                            (often without a final newline)

The ``@ WHERE`` caller prefix is optional. Sizes are hexadecimal, and ``(nil)`` is NULL.

What the log cannot say, and how it is mapped to :data:`memsim.trace.format.Call`:

- calloc and memalign/posix_memalign/aligned_alloc/valloc are logged like malloc with the
  total size (``calloc(3, 40)`` is ``+ PTR 0x78``), so every ``+`` becomes ``('m', SIZE, 0,
  PTR)``: replaying it gives the same sizes but not the same alignment or zeroing;
- ``realloc(NULL, n)`` is logged as ``+`` and ``realloc(p, 0)`` as ``-``: a malloc and a free,
  which is what they do;
- ``< OLD`` followed by ``> NEW SIZE`` is ``('r', OLD, SIZE, NEW)``; ``! OLD SIZE`` is
  ``('r', OLD, SIZE, 0)``;
- there is no break address (``brk0`` is None) and no thread id (``tid`` is 0).

:class:`MtraceReader` has the interface of :class:`memsim.trace.format.TraceReader` (the
same checks, ``skip_bad``, ``skipped``, ``skip_report()``), so callers need not care which
format a file is in; :func:`memsim.trace.open_trace` picks the reader by the first line.
"""

from __future__ import annotations

import lzma
import os
from collections.abc import Iterator
from typing import BinaryIO

from memsim.errors import TraceError
from memsim.trace.format import Call, CallReader, _describe_read_error, _show

_MAX64 = 1 << 64


def _ptr(tok: bytes) -> int:
    if tok == b"(nil)":
        return 0
    if tok[:2].lower() != b"0x":
        raise ValueError(f"not a pointer: {_show(tok)}")
    v = int(tok, 16)
    if v >= _MAX64:
        raise ValueError("pointer does not fit in 64 bits")
    return v


def _size(tok: bytes) -> int:
    if tok[:2].lower() != b"0x":
        raise ValueError(f"size is not a hexadecimal number: {_show(tok)}")
    v = int(tok, 16)
    if v >= _MAX64:
        raise ValueError("size does not fit in 64 bits")
    return v


def looks_like_mtrace(first_line: bytes) -> bool:
    """True for the first line of an mtrace log (``= Start``, or a call line)."""
    s = first_line.strip()
    if s.startswith(b"= Start") or s.startswith(b"@ "):
        return True
    parts = s.split()
    return len(parts) >= 2 and parts[0] in (b"+", b"-", b"<", b">", b"!") and \
        parts[1][:2] in (b"0x", b"(n")


class MtraceReader(CallReader):
    """Stream the calls of a glibc mtrace log (plain or compressed, or ``-``)."""

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, skip_bad: bool = False,
                 check: bool = True, name: str | None = None) -> None:
        super().__init__(source, skip_bad=skip_bad, check=check, name=name)
        self.meta: dict[str, str] = {"format": "mtrace"}
        self.trailer: dict[str, str] = {}
        self.sessions = 0          # "= Start" lines seen

    def _calls(self) -> Iterator[Call]:
        check = self.check
        check_call = self._check_call
        lineno = 0
        pending_old: tuple[int, int, bytes] | None = None   # (old ptr, lineno, line) of a '<'
        try:
            while True:
                try:
                    line = self._stream.readline()
                except (EOFError, OSError, lzma.LZMAError, ValueError) as e:
                    raise TraceError(_describe_read_error(e), self.name, lineno + 1) from None
                if not line:
                    break
                lineno += 1
                self.lineno = lineno
                s = line.strip()
                if not s:
                    continue
                if s[:1] == b"=":
                    if s.startswith(b"= Start"):
                        self.sessions += 1
                    continue
                if b"\0" in s:
                    self._bad("NUL bytes in the text (binary data?)", lineno, line[:120])
                    continue
                parts = s.split()
                try:
                    if len(parts) >= 2 and parts[-2] in (b"-", b"<"):
                        op, args = parts[-2], parts[-1:]
                    elif len(parts) >= 3 and parts[-3] in (b"+", b">", b"!"):
                        op, args = parts[-3], parts[-2:]
                    else:
                        raise ValueError("not an mtrace line (expected '+', '-', '<', '>' "
                                         "or '!' and its operands)")
                    if op != b">" and pending_old is not None:
                        old_line = pending_old
                        pending_old = None
                        self._bad("realloc '<' line without its '>' line", old_line[1],
                                  old_line[2])
                    if op == b"+":
                        call: Call = ("m", _size(args[1]), 0, _ptr(args[0]), 0, lineno)
                    elif op == b"-":
                        call = ("f", _ptr(args[0]), 0, 0, 0, lineno)
                    elif op == b"<":
                        pending_old = (_ptr(args[0]), lineno, line)
                        continue
                    elif op == b">":
                        if pending_old is None:
                            raise ValueError("realloc '>' line without a '<' line before it")
                        call = ("r", pending_old[0], _size(args[1]), _ptr(args[0]), 0,
                                pending_old[1])
                        pending_old = None
                    else:  # b"!"
                        call = ("r", _ptr(args[0]), _size(args[1]), 0, 0, lineno)
                except ValueError as e:
                    self._bad(str(e), lineno, line)
                    continue
                if check and not check_call(call, lineno, line):
                    continue
                self.calls += 1
                yield call
            if pending_old is not None:
                self._bad("realloc '<' line without its '>' line (the log ends)", pending_old[1],
                          pending_old[2])
        finally:
            self.close()


__all__ = ["MtraceReader", "looks_like_mtrace"]
