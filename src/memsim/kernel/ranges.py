"""Extent maps: sorted, non-overlapping ``[start, end) -> value`` ranges.

This is the data structure every page-level structure in memsim is built on: the state of
touched pages (:mod:`memsim.kernel.pagetable`), the page-table pages present at each level, the
free physical frames and the free swap slots (:mod:`memsim.kernel.machine`). Its cost grows with
the number of *ranges*, never with their length: mapping a TiB costs what mapping a page costs.

Layout: three parallel Python lists, sorted by start, searched with :mod:`bisect`::

    starts  [ 0x1000 ,  0x5000 ,  0x9000 ]
    ends    [ 0x3000 ,  0x8000 ,  0xa000 ]      ends[i] <= starts[i+1]   (gaps allowed)
    values  [   A    ,    B    ,    C    ]

        0x1000     0x3000  0x5000          0x8000  0x9000  0xa000
          |---- A ----|       |------ B ------|      |- C -|

Lookup is one ``bisect_right`` on ``starts`` (O(log n)); insertion and deletion are list
``insert``/``del`` (a memmove, O(n) but with a tiny constant, the same trade as
sortedcontainers). ``total`` keeps the covered length so counts are O(1).

*Values that vary along the extent.* A resident extent maps a contiguous run of frames: its
value holds the PFN of its *first* page, and the page at offset ``k`` pages has PFN ``pfn + k``.
The optional ``slicer(value, offset)`` says what the value of a sub-extent that begins
``offset`` units after the extent's start is; splitting uses it for the right-hand piece, and
coalescing uses it to decide whether two touching extents continue each other: ``left`` and
``right`` merge exactly when ``slicer(left.value, left.length) == right.value``. With the
default slicer (the identity) this is plain "equal neighbours merge".

Invariants (:meth:`ExtentMap.check`): every extent is non-empty; extents are sorted and do not
overlap; when ``coalesce`` is on, no two touching extents continue each other (they would have
been merged); ``total`` equals the sum of the lengths.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")

__all__ = ["ExtentMap"]


def _identity(value: V, offset: int) -> V:
    return value


class ExtentMap(Generic[V]):
    """Sorted, non-overlapping ``[start, end) -> value`` extents with split and coalesce.

    ``slicer(value, offset)`` gives the value of the part of an extent that begins ``offset``
    units after its start (default: the value itself). With ``coalesce=True`` (default),
    touching extents whose values continue each other are merged after every change.

    Complexity: :meth:`find`/:meth:`get` O(log n); :meth:`set`/:meth:`delete` O(log n + k)
    plus a list memmove, where k is the number of extents overlapped.
    """

    __slots__ = ("starts", "ends", "values", "total", "_slice", "_coalesce")

    def __init__(self, slicer: Callable[[V, int], V] | None = None,
                 coalesce: bool = True) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.values: list[V] = []
        self.total = 0                      # covered length (units of the keys, e.g. bytes)
        self._slice: Callable[[V, int], V] = slicer or _identity
        self._coalesce = coalesce

    # --- queries ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.starts)

    def __bool__(self) -> bool:
        return bool(self.starts)

    def __iter__(self) -> Iterator[tuple[int, int, V]]:
        return iter(list(zip(self.starts, self.ends, self.values, strict=True)))

    def __repr__(self) -> str:
        body = ", ".join(f"[{s:#x}, {e:#x}): {v!r}" for s, e, v in self)
        return f"ExtentMap({body})"

    def find(self, addr: int) -> int:
        """Index of the extent containing ``addr``, or -1."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.ends[i]:
            return i
        return -1

    def get(self, addr: int, default: V | None = None) -> V | None:
        """The value *at* ``addr`` (sliced to that offset), or ``default``."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.ends[i]:
            s = self.starts[i]
            v = self.values[i]
            return v if addr == s else self._slice(v, addr - s)
        return default

    def extent_at(self, addr: int) -> tuple[int, int, V] | None:
        """The whole extent ``(start, end, value)`` containing ``addr``, or None."""
        i = self.find(addr)
        return None if i < 0 else (self.starts[i], self.ends[i], self.values[i])

    def first_index(self, addr: int) -> int:
        """Index of the first extent that ends after ``addr`` (len(self) if none)."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.ends[i] > addr:
            return i
        return i + 1

    def items(self, start: int, end: int, clip: bool = True) -> list[tuple[int, int, V]]:
        """The extents overlapping ``[start, end)``; with ``clip`` cut to that range (and the
        value sliced accordingly)."""
        out: list[tuple[int, int, V]] = []
        starts, ends, values = self.starts, self.ends, self.values
        i = self.first_index(start)
        n = len(starts)
        while i < n and starts[i] < end:
            s, e, v = starts[i], ends[i], values[i]
            if clip:
                if s < start:
                    v = self._slice(v, start - s)
                    s = start
                if e > end:
                    e = end
            out.append((s, e, v))
            i += 1
        return out

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` that no extent covers, in order."""
        out: list[tuple[int, int]] = []
        pos = start
        starts, ends = self.starts, self.ends
        i = self.first_index(start)
        n = len(starts)
        while pos < end and i < n and starts[i] < end:
            if starts[i] > pos:
                out.append((pos, starts[i]))
            pos = max(pos, ends[i])
            i += 1
        if pos < end:
            out.append((pos, end))
        return out

    def covered(self, start: int, end: int) -> int:
        """How much of ``[start, end)`` is covered by extents."""
        if not self.starts:
            return 0
        if start <= self.starts[0] and end >= self.ends[-1]:
            return self.total
        n = 0
        for s, e, _ in self.items(start, end):
            n += e - s
        return n

    def contains(self, start: int, end: int) -> bool:
        """True if ``[start, end)`` is entirely covered (by one or several extents)."""
        return self.covered(start, end) == end - start

    # --- changes -----------------------------------------------------------------------
    def split(self, addr: int) -> int:
        """Make ``addr`` an extent boundary; return the index of the first extent starting at
        or after ``addr``."""
        starts = self.starts
        i = bisect_right(starts, addr) - 1
        if i >= 0:
            s = starts[i]
            e = self.ends[i]
            if s < addr < e:
                v = self.values[i]
                self.ends[i] = addr
                starts.insert(i + 1, addr)
                self.ends.insert(i + 1, e)
                self.values.insert(i + 1, self._slice(v, addr - s))
                return i + 1
            if s == addr:
                return i
        return i + 1

    def set(self, start: int, end: int, value: V) -> None:
        """Map ``[start, end)`` to ``value``, replacing whatever was there, then coalesce."""
        if end <= start:
            if end < start:
                raise ValueError(f"empty or reversed range [{start:#x}, {end:#x})")
            return
        i = self.split(start)
        j = self.split(end)
        removed = 0
        for k in range(i, j):
            removed += self.ends[k] - self.starts[k]
        self.starts[i:j] = [start]
        self.ends[i:j] = [end]
        self.values[i:j] = [value]
        self.total += (end - start) - removed
        if self._coalesce:
            self._merge_around(i, i)

    def delete(self, start: int, end: int) -> list[tuple[int, int, V]]:
        """Remove everything in ``[start, end)``; return the removed pieces (clipped)."""
        if end <= start:
            return []
        i = self.split(start)
        j = self.split(end)
        out = list(zip(self.starts[i:j], self.ends[i:j], self.values[i:j], strict=True))
        if out:
            del self.starts[i:j]
            del self.ends[i:j]
            del self.values[i:j]
            for s, e, _ in out:
                self.total -= e - s
        return out

    def update(self, start: int, end: int,
               fn: Callable[[int, int, V], V]) -> None:
        """Replace the value of every piece inside ``[start, end)`` by ``fn(s, e, value)``
        (gaps stay gaps), then coalesce the neighbourhood."""
        if end <= start:
            return
        i = self.split(start)
        j = self.split(end)
        starts, ends, values = self.starts, self.ends, self.values
        for k in range(i, j):
            values[k] = fn(starts[k], ends[k], values[k])
        if self._coalesce:
            self._merge_around(max(i - 1, 0), j)

    def insert_extents(self, pieces: list[tuple[int, int, V]]) -> None:
        """Insert pieces that must fall in gaps (a bulk :meth:`set` without replacement)."""
        for s, e, v in pieces:
            self.set(s, e, v)

    def clear(self) -> None:
        self.starts.clear()
        self.ends.clear()
        self.values.clear()
        self.total = 0

    def _merge_around(self, lo: int, hi: int) -> None:
        """Merge continuing neighbours among the extents with index in [lo - 1, hi + 1]."""
        starts, ends, values, sl = self.starts, self.ends, self.values, self._slice
        k = max(lo, 1)
        stop = min(hi + 1, len(starts) - 1)
        while k <= stop and k < len(starts):
            a = k - 1
            if ends[a] == starts[k] and sl(values[a], ends[a] - starts[a]) == values[k]:
                ends[a] = ends[k]
                del starts[k]
                del ends[k]
                del values[k]
                stop -= 1
            else:
                k += 1

    # --- verification --------------------------------------------------------------------
    def check(self) -> None:
        """Assert every invariant listed in the module docstring."""
        starts, ends, values = self.starts, self.ends, self.values
        if not (len(starts) == len(ends) == len(values)):
            raise AssertionError("ExtentMap: parallel lists differ in length")
        total = 0
        for i in range(len(starts)):
            if not starts[i] < ends[i]:
                raise AssertionError(f"ExtentMap: empty extent [{starts[i]:#x}, {ends[i]:#x})")
            if i and ends[i - 1] > starts[i]:
                raise AssertionError(f"ExtentMap: overlap at {starts[i]:#x}")
            if (self._coalesce and i and ends[i - 1] == starts[i]
                    and self._slice(values[i - 1], ends[i - 1] - starts[i - 1]) == values[i]):
                raise AssertionError(f"ExtentMap: uncoalesced neighbours at {starts[i]:#x}")
            total += ends[i] - starts[i]
        if total != self.total:
            raise AssertionError(f"ExtentMap: total {self.total} != sum of lengths {total}")

