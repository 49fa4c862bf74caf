"""Allocation traces: the memsim-trace v1 format, glibc's mtrace log, and the recorder.

- :mod:`memsim.trace.format`: read and write memsim-trace v1 (plain, gzip, xz, zstd, bzip2),
  streamed; the record type :data:`~memsim.trace.format.Call`.
- :mod:`memsim.trace.mtrace`: read glibc ``mtrace`` logs as the same calls.
- :mod:`memsim.trace.record`: run a real program under the LD_PRELOAD recorder.

:func:`open_trace` opens either format, chosen by the first line::

    from memsim.trace import open_trace
    with open_trace("corpus/sort.trace.zst") as tr:
        for op, a, b, ret, tid, lineno in tr:
            ...
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from memsim.errors import TraceError
from memsim.trace.format import (
    OPS,
    Call,
    TraceReader,
    TraceWriter,
    _describe_read_error,
    _open_binary,
    read_trace,
    write_trace,
)
from memsim.trace.mtrace import MtraceReader, looks_like_mtrace


class _Prefixed(io.RawIOBase):
    """A stream that gives ``head`` first, then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO, owned: bool) -> None:
        self._head = head
        self._rest = rest
        self._owned_rest = owned

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._owned_rest:
            self._rest.close()
            self._owned_rest = False
        super().close()


def open_trace(source: str | os.PathLike[str] | BinaryIO, *, skip_bad: bool = False,
               check: bool = True) -> TraceReader | MtraceReader:
    """Open a memsim-trace v1 file or an mtrace log (by its first line), compressed or not."""
    try:
        stream, name, owned = _open_binary(source)
    except OSError as e:
        raise TraceError(f"cannot open: {e.strerror or e}",
                         os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
                         ) from None
    try:
        first = stream.readline(4096)
    except (EOFError, OSError, ValueError) as e:
        if owned:
            stream.close()
        raise TraceError(_describe_read_error(e), name, 1) from None
    joined = io.BufferedReader(_Prefixed(first, stream, owned), buffer_size=1 << 20)
    reader: TraceReader | MtraceReader
    if looks_like_mtrace(first):
        reader = MtraceReader(joined, skip_bad=skip_bad, check=check, name=name)  # type: ignore[arg-type]
    else:
        reader = TraceReader(joined, skip_bad=skip_bad, check=check, name=name)  # type: ignore[arg-type]
    reader._owned = True
    reader._stream = joined  # type: ignore[assignment]
    return reader


__all__ = ["OPS", "Call", "MtraceReader", "TraceReader", "TraceWriter", "open_trace",
           "read_trace", "write_trace"]
