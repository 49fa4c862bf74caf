"""OSTEP ``malloc.py -A`` op lists (``+10,-0,+20``) read as memsim calls.

OSTEP's free-space simulator (:mod:`memsim.textbooks.ostep`) takes its operations as one
comma-separated list: ``+N`` allocates N bytes (the k-th ``+`` is ``ptr[k]``), ``-i`` frees
``ptr[i]``. A file may hold such a list over several lines (commas or white space separate
the elements; ``#`` starts a comment)::

    +10,+20,-0      ->  ('m', 10, 0, P0, 0, 1)  ('m', 20, 0, P1, 0, 1)  ('f', P0, 0, 0, 0, 1)
    +5              ->  ('m', 5, 0, P2, 0, 2)

Ids are kept apart from addresses as in the ``.rep`` reader: ``ptr[k]`` is the synthetic
pointer :func:`memsim.trace.rep.synthetic_pointer` ``(k)`` (``2**44 + 16*k``), never a
simulated address. A free of an index that was never allocated, or is not live (a double
free), is an error naming the file, line and element (malloc.py answers -1 to a double free
or skips it; as a trace it cannot be replayed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import BinaryIO

from memsim.trace.format import Call, CallReader
from memsim.trace.rep import synthetic_pointer

__all__ = ["OstepOpsReader", "looks_like_ostep_ops", "parse_ops_text"]

_ELEMENT = re.compile(rb"^([+-])(\d+)$")


def looks_like_ostep_ops(head: bytes) -> bool:
    """True when the first element of a file is ``+N`` or ``-N``."""
    first = head.lstrip().split(b"\n", 1)[0].split(b",", 1)[0].split(None, 1)
    return bool(first) and _ELEMENT.match(first[0]) is not None


def parse_ops_text(text: str, name: str = "<-A>") -> list[Call]:
    """The calls of an op list given as a string (``memsim ostep -A`` style)."""
    import io

    reader = OstepOpsReader(io.BytesIO(text.encode()), name=name)
    return list(reader)


class OstepOpsReader(CallReader):
    """Stream an op list as :data:`Call` records (the TraceReader interface: ``meta``,
    ``brk0`` (None), ``calls``, ``skipped``, ``skip_report()``)."""

    _BAD_UNIT = "element"
    _REPORT_TEXT = False

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, skip_bad: bool = False,
                 check: bool = True, name: str | None = None) -> None:
        super().__init__(source, skip_bad=skip_bad, check=check, name=name)
        self.meta: dict[str, str] = {"format": "ostep-ops"}

    def _calls(self) -> Iterator[Call]:
        nallocs = 0
        live: set[int] = set()
        lineno = 0
        try:
            for raw in self._stream:
                lineno += 1
                line = raw.split(b"#", 1)[0]
                for n, tok in enumerate(line.replace(b",", b" ").split(), 1):
                    text = tok.decode("utf-8", "replace")
                    m = _ELEMENT.match(tok)
                    if m is None:
                        self._bad(f"element {n} {text!r}: use +SIZE (allocate) or -INDEX "
                                  f"(free ptr[INDEX])", lineno, text)
                        continue
                    value = int(m.group(2))
                    if m.group(1) == b"+":
                        call: Call = ("m", value, 0, synthetic_pointer(nallocs), 0, lineno)
                        live.add(nallocs)
                        nallocs += 1
                    else:
                        if value not in live:
                            why = ("was never allocated" if value >= nallocs
                                   else "is not live (a double free)")
                            self._bad(f"element {n} {text!r}: ptr[{value}] {why}", lineno, text)
                            continue
                        live.discard(value)
                        call = ("f", synthetic_pointer(value), 0, 0, 0, lineno)
                    if self.check:
                        self.live.apply(call[0], call[1], call[2], call[3])
                    self.calls += 1
                    yield call
        finally:
            self.close()
