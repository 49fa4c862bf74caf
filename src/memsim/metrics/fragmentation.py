"""Johnstone & Wilson's four measures of fragmentation, computed over every point of a run.

Reference: M. S. Johnstone, P. R. Wilson, "The Memory Fragmentation Problem: Solved?",
ISMM '98, pp. 26-36 (SIGPLAN Notices 34(3), 1999); definitions as recorded in
/work/shared/reference/fragmentation.md section 1.2. With

    U(t) = memory used by the allocator: the bytes it obtained from the kernel at time t
           (break above where the heap started, plus its own mappings: its footprint);
    L(t) = live memory: the bytes the program has requested and not yet freed at time t;

the four measures are::

    #1  U relative to L, averaged over all points in time    mean_t (U(t)/L(t)) - 1
    #2  U relative to L at the point of maximum live memory  U(argmax L) / max L - 1
    #3  max U relative to L at the point where U is maximal  max U / L(argmax U) - 1
    #4  max U relative to max L                              max U / max L - 1

A "point in time" is the state after one call of the trace (malloc, free, realloc ...), so a
trace of n calls has n points. Decisions the definitions leave open, taken here:

- #1 averages over the points where L > 0 (U/L is undefined without live memory); it is None
  when there is no such point. The ratio is averaged, not the two sides separately.
- Ties: when the maximum of L (for #2) or of U (for #3) is reached at several points, the point
  most favourable to the allocator is taken: for #2 the smallest U among the points where L is
  maximal, for #3 the largest L among the points where U is maximal (U is a step function that
  stays on a plateau for many calls, while the program's live memory moves under it).
- A measure whose denominator is 0 (no live memory ever) is None.

#4 is the inverse of the CS:APP Malloc Lab utilization, util = max L / max U = 1 / (1 + #4)
(see :mod:`memsim.metrics.utilization`, which computes util as mdriver does).

Cost: :meth:`Fragmentation.observe` is O(1) per point and keeps O(1) state (a few integers
and a float sum), so a trace of any length costs the same memory::

    point:   1    2    3    4    5    6         observe(L, U) after every call
    L:      10   30   20   40   25   40        max L = 40 at points 4 and 6
    U:      64   64  128  128  128   96        max U = 128 at points 3..5
            #2 = min(U(4), U(6)) / 40 - 1 = 96/40 - 1       (ties: smallest U)
            #3 = 128 / max(L(3), L(4), L(5)) - 1 = 128/40 - 1 (ties: largest L)
            #4 = 128 / 40 - 1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Fragmentation", "FragmentationResult", "jw_fragmentation"]


@dataclass(frozen=True)
class FragmentationResult:
    """The four measures (fractions: 0.25 means 25 %) and the figures they come from."""

    f1: float | None            # mean over points with L > 0 of U/L - 1
    f2: float | None            # U(argmax L) / max L - 1
    f3: float | None            # max U / L(argmax U) - 1
    f4: float | None            # max U / max L - 1
    points: int                 # points observed
    points_with_live: int       # points with L > 0 (the ones #1 averages over)
    peak_live: int              # max L (bytes)
    footprint_at_peak_live: int  # U at the point of #2 (bytes)
    peak_live_point: int        # 1-based index of that point (0: none)
    peak_footprint: int         # max U (bytes)
    live_at_peak_footprint: int  # L at the point of #3 (bytes)
    peak_footprint_point: int   # 1-based index of that point (0: none)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _rel(num: int, den: int) -> float | None:
    return num / den - 1.0 if den > 0 else None


class Fragmentation:
    """Accumulates the four measures point by point: call :meth:`observe` after each call."""

    __slots__ = ("ratio_sum", "n", "n_live", "max_l", "u_at_max_l", "i_max_l",
                 "max_u", "l_at_max_u", "i_max_u")

    def __init__(self) -> None:
        self.ratio_sum = 0.0      # sum of U/L over points with L > 0
        self.n = 0
        self.n_live = 0
        self.max_l = 0
        self.u_at_max_l = 0
        self.i_max_l = 0
        self.max_u = 0
        self.l_at_max_u = 0
        self.i_max_u = 0

    def observe(self, live: int, used: int) -> None:
        """One point: ``live`` = L(t), ``used`` = U(t), in bytes."""
        self.n += 1
        if live > 0:
            self.ratio_sum += used / live
            self.n_live += 1
            if live > self.max_l:
                self.max_l = live
                self.u_at_max_l = used
                self.i_max_l = self.n
            elif live == self.max_l and used < self.u_at_max_l:
                self.u_at_max_l = used
                self.i_max_l = self.n
        if used > self.max_u:
            self.max_u = used
            self.l_at_max_u = live
            self.i_max_u = self.n
        elif used == self.max_u and live > self.l_at_max_u:
            self.l_at_max_u = live
            self.i_max_u = self.n

    def result(self) -> FragmentationResult:
        f1 = self.ratio_sum / self.n_live - 1.0 if self.n_live else None
        return FragmentationResult(
            f1=f1, f2=_rel(self.u_at_max_l, self.max_l), f3=_rel(self.max_u, self.l_at_max_u),
            f4=_rel(self.max_u, self.max_l), points=self.n, points_with_live=self.n_live,
            peak_live=self.max_l, footprint_at_peak_live=self.u_at_max_l,
            peak_live_point=self.i_max_l, peak_footprint=self.max_u,
            live_at_peak_footprint=self.l_at_max_u, peak_footprint_point=self.i_max_u)

    def check(self) -> None:
        assert 0 <= self.n_live <= self.n
        assert self.u_at_max_l <= self.max_u
        assert self.l_at_max_u <= self.max_l
        assert (self.i_max_l == 0) == (self.max_l == 0)


def jw_fragmentation(points: Iterable[tuple[int, int]]) -> FragmentationResult:
    """The four measures of a sequence of ``(L, U)`` points (live bytes, footprint bytes)."""
    acc = Fragmentation()
    for live, used in points:
        acc.observe(live, used)
    return acc.result()
