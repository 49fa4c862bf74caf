"""OSTEP's free-space simulator (``vm-freespace/malloc.py``), modelled: same problems, same answers.

*Operating Systems: Three Easy Pieces* (Arpaci-Dusseau), chapter 17 "Free-Space
Management", comes with a quiz generator: one region of ``size`` bytes at ``base``, managed
by one free list, never grown (there is no sbrk: the heap is an abstract address range). It
prints a sequence of ``Alloc(n)`` and ``Free(ptr[i])`` operations, random (seeded) or given
(``-A +10,-0,+20``), and with ``-c`` the answers: the address each allocation returns, how
many list elements the search looked at, and the free list after every operation::

    ptr[0] = Alloc(3) returned 1000 (searched 1 elements)
    Free List [ Size 1 ]: [ addr:1003 sz:97 ]

The model (:class:`FreeList`), in the simulator's own terms:

request
    ``n`` rounded up to a multiple of ``align`` (when given), *then* plus ``header`` bytes
    (so the header itself is not aligned);
search (``policy``)
    BEST: the smallest element that fits, the first one of that size in list order; WORST:
    the largest, first of that size; FIRST: the first that fits. BEST and WORST look at the
    whole list, FIRST stops at the fit; "searched" counts the elements looked at;
split
    a larger element keeps its place in the list and gives its first bytes away; an exact
    fit leaves the list;
free (``order``)
    the block goes back to the list: ADDRSORT (then sorted by address), SIZESORT+ /
    SIZESORT- (sorted by size, ascending / descending; a stable sort, so equal sizes keep
    their order with the new block last), INSERT-FRONT, INSERT-BACK;
coalesce (``-C``)
    after each free, one pass merges each element with the *next element of the list* when
    that element starts where it ends: complete with ADDRSORT, partial with other orders
    (the simulator calls it "a ridiculous full-list coalesce"; memsim keeps it exactly).

Random operations (no ``-A``): Python's Mersenne Twister seeded with ``seed`` (an int seeds
the same generator in Python 2 and 3); each step draws ``random() < percent/100``; an
allocation draws its size ``int(random() * range) + 1``; a free (only when something is
live, else the step is redrawn) draws ``int(random() * live)`` to pick among the live
pointers in allocation order. ``numOps`` counts the operations printed.

Where malloc.py is wrong, memsim answers correctly, and ``malloc_py_bugs=True`` (``memsim
ostep --malloc-py-bugs``) gives malloc.py's output instead (each difference is in
docs/textbooks.md):

1. a failed allocation in random mode prints ``returned -1 + header`` (``returned 3`` with
   ``-H 4``): memsim prints ``returned -1``;
2. ``-A`` mode prints the block's start, random mode the pointer after the header (start +
   header): memsim prints the pointer after the header in both modes (the chapter's
   convention: ``malloc`` returns the address just past the header);
3. ``-A`` mode numbers every allocation, failed ones too, but decides whether ``-i`` names a
   valid pointer with ``i >= (number of successful allocations)``: it skips the free of a
   valid pointer (``-S 20 -A +30,+5,-1``) or stops with a KeyError (``+5,+30,+5,-1``).
   memsim skips exactly the frees of pointers that were never returned (a failed or
   never-made allocation) and frees the others.

Bad input is refused before anything is printed, with one line (malloc.py stops with a
traceback, sometimes after printing part of the run): an unknown policy or order, alignment
0 or below -1, a non-positive percentAlloc in random mode, a negative range in random mode, an
``-A`` element that is not ``+SIZE`` or ``-INDEX`` with SIZE >= 0, INDEX >= 0. Double frees
are not refused: free answers -1, as in malloc.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from memsim.errors import ConfigError

__all__ = ["ORDERS", "POLICIES", "FreeList", "OstepConfig", "parse_int", "parse_op_list",
           "simulate"]

POLICIES = ("BEST", "WORST", "FIRST")
ORDERS = ("ADDRSORT", "SIZESORT+", "SIZESORT-", "INSERT-FRONT", "INSERT-BACK")


def parse_int(text: str) -> int:
    """An integer option as optparse reads ``type='int'``: ``0x``/``0b`` prefixes, a leading
    ``0`` for octal, else decimal (``"010"`` is 8)."""
    t = text.strip()
    low = t[:2].lower()
    try:
        if low == "0x":
            return int(t, 16)
        if low == "0b":
            return int(t[2:] or "0", 2)
        if t[:1] == "0":
            return int(t, 8)
        return int(t, 10)
    except ValueError:
        raise ConfigError(f"invalid integer value: {text!r}") from None


def parse_op_list(text: str) -> list[tuple[str, int]]:
    """``"+10,-0,+20"`` -> ``[("+", 10), ("-", 0), ("+", 20)]``; ConfigError names the bad
    element (1-based) otherwise."""
    ops: list[tuple[str, int]] = []
    for n, item in enumerate(text.split(","), 1):
        tok = item.strip()
        if not tok or tok[0] not in "+-":
            raise ConfigError(f"-A element {n} {item!r}: use +SIZE (allocate) or -INDEX "
                              f"(free ptr[INDEX]), e.g. +10,-0")
        body = tok[1:].strip()
        if not body.isdigit():
            what = "a size >= 0" if tok[0] == "+" else "a pointer index >= 0"
            raise ConfigError(f"-A element {n} {item!r}: {body!r} is not {what}")
        ops.append((tok[0], int(body)))
    return ops


class FreeList:
    """The free list of malloc.py over ``[base, base + size)`` (module docstring)."""

    def __init__(self, size: int, base: int, header: int, policy: str, order: str,
                 coalesce: bool, align: int) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"unknown policy {policy!r} (use {', '.join(POLICIES)}; "
                              f"malloc.py has no next fit)")
        if order not in ORDERS:
            raise ConfigError(f"unknown list order {order!r} (use {', '.join(ORDERS)})")
        if align != -1 and align <= 0:
            raise ConfigError(f"alignment {align}: use -1 (none) or a number > 0")
        self.size = size
        self.header = header
        self.policy = policy
        self.order = order
        self.coalesce = coalesce
        self.align = align
        self.elements: list[tuple[int, int]] = [(base, size)]   # (addr, size), list order
        self.sizes: dict[int, int] = {}                         # allocated addr -> size

    def request(self, n: int) -> int:
        """The bytes a request of ``n`` takes: aligned first, then the header added."""
        if self.align != -1:
            left = n % self.align
            if left:
                n += self.align - left
        return n + self.header

    def alloc(self, n: int) -> tuple[int, int]:
        """``(address of the block, elements searched)``; address -1 when nothing fits."""
        need = self.request(n)
        best_i = -1
        best_size = self.size + 1 if self.policy == "BEST" else -1
        best_addr = 0
        searched = 0
        for i, (addr, size) in enumerate(self.elements):
            searched += 1
            if size >= need and (self.policy == "FIRST" or
                                 (self.policy == "BEST" and size < best_size) or
                                 (self.policy == "WORST" and size > best_size)):
                best_i, best_addr, best_size = i, addr, size
                if self.policy == "FIRST":
                    break
        if best_i == -1:
            return -1, searched
        if best_addr in self.sizes:
            raise ConfigError(f"Alloc({n}) makes a block of 0 bytes at {best_addr}, which is "
                              f"already handed out (malloc.py stops here too)")
        if best_size > need:
            self.elements[best_i] = (best_addr + need, best_size - need)
        else:
            self.elements.pop(best_i)
        self.sizes[best_addr] = need
        return best_addr, searched

    def free(self, addr: int) -> int:
        """0, or -1 for an address that is not an allocated block (a double free)."""
        size = self.sizes.pop(addr, None)
        if size is None:
            return -1
        el = self.elements
        if self.order == "INSERT-FRONT":
            el.insert(0, (addr, size))
        else:
            el.append((addr, size))
            if self.order == "ADDRSORT":
                el.sort(key=lambda e: e[0])
            elif self.order == "SIZESORT+":
                el.sort(key=lambda e: e[1])
            elif self.order == "SIZESORT-":
                el.sort(key=lambda e: e[1], reverse=True)
        if self.coalesce:
            merged = [el[0]]
            for addr2, size2 in el[1:]:
                a0, s0 = merged[-1]
                if addr2 == a0 + s0:
                    merged[-1] = (a0, s0 + size2)
                else:
                    merged.append((addr2, size2))
            self.elements = merged
        return 0

    def dump(self) -> str:
        """``Free List [ Size 2 ]: [ addr:1000 sz:8 ][ addr:1008 sz:92 ]``."""
        items = "".join(f"[ addr:{a} sz:{s} ]" for a, s in self.elements)
        return f"Free List [ Size {len(self.elements)} ]: {items}"

    def check(self) -> None:
        """Free elements and allocated blocks never overlap; sizes are positive (or the
        zero-size blocks of 0-byte requests)."""
        spans = sorted([(a, s) for a, s in self.elements if s] +
                       [(a, s) for a, s in self.sizes.items() if s])
        for (a, s), (b, _) in zip(spans, spans[1:], strict=False):
            assert a + s <= b, f"{a}+{s} overlaps {b}"


@dataclass
class OstepConfig:
    """The options of malloc.py, with its defaults and its option names."""

    seed: int = 0
    size: int = 100
    baseAddr: int = 1000            # noqa: N815 (malloc.py's name, echoed in the output)
    headerSize: int = 0             # noqa: N815
    alignment: int = -1
    policy: str = "BEST"
    listOrder: str = "ADDRSORT"     # noqa: N815
    coalesce: bool = False
    numOps: int = 10                # noqa: N815
    range: int = 10
    percentAlloc: int = 50          # noqa: N815
    allocList: str = ""             # noqa: N815
    compute: bool = False
    malloc_py_bugs: bool = False

    def header_lines(self) -> list[str]:
        """The configuration echo that opens every run."""
        return [f"seed {self.seed}", f"size {self.size}", f"baseAddr {self.baseAddr}",
                f"headerSize {self.headerSize}", f"alignment {self.alignment}",
                f"policy {self.policy}", f"listOrder {self.listOrder}",
                f"coalesce {self.coalesce}", f"numOps {self.numOps}", f"range {self.range}",
                f"percentAlloc {self.percentAlloc}", f"allocList {self.allocList}",
                f"compute {self.compute}", ""]


def simulate(cfg: OstepConfig) -> Iterator[str]:
    """The lines malloc.py prints for ``cfg`` (without newlines). Every check of the input
    happens before the first line; a 0-byte block at a taken address raises ConfigError
    where malloc.py stops."""
    m = FreeList(cfg.size, cfg.baseAddr, cfg.headerSize, cfg.policy, cfg.listOrder,
                 cfg.coalesce, cfg.alignment)
    ops = parse_op_list(cfg.allocList) if cfg.allocList else None
    if ops is None:
        if cfg.percentAlloc <= 0:
            raise ConfigError(f"percentAlloc {cfg.percentAlloc}: random operations need a "
                              f"percentage > 0 of allocations")
        if cfg.range < 0:
            raise ConfigError(f"range {cfg.range}: the largest random size must be >= 0")
    return _run(cfg, m, ops)


def _run(cfg: OstepConfig, m: FreeList, ops: list[tuple[str, int]] | None) -> Iterator[str]:
    yield from cfg.header_lines()
    solve = cfg.compute
    hdr = cfg.headerSize
    bugs = cfg.malloc_py_bugs
    if ops is None:
        rng = random.Random(cfg.seed)
        percent = cfg.percentAlloc / 100.0
        ptrs: dict[int, int] = {}
        order: list[int] = []
        c = j = 0
        while j < cfg.numOps:
            printed = False
            if rng.random() < percent:
                size = int(rng.random() * cfg.range) + 1
                ptr, cnt = m.alloc(size)
                if ptr != -1:
                    ptrs[c] = ptr
                    order.append(c)
                if solve:
                    shown = ptr + hdr if ptr != -1 or bugs else -1
                    yield f"ptr[{c}] = Alloc({size}) returned {shown} (searched {cnt} elements)"
                else:
                    yield f"ptr[{c}] = Alloc({size}) returned ?"
                c += 1
                j += 1
                printed = True
            elif ptrs:
                d = int(rng.random() * len(order))
                victim = order[d]
                rc = m.free(ptrs[victim])
                yield f"Free(ptr[{victim}])"
                yield f"returned {rc}" if solve else "returned ?"
                del ptrs[victim]
                del order[d]
                printed = True
                j += 1
            if printed:
                yield m.dump() if solve else "List? "
                yield ""
        return
    given: dict[int, int] = {}          # index -> block address, for every successful alloc
    c = 0
    for kind, value in ops:
        if kind == "+":
            ptr, cnt = m.alloc(value)
            if ptr != -1:
                given[c] = ptr
            if solve:
                shown = ptr if bugs or ptr == -1 else ptr + hdr
                yield f"ptr[{c}] = Alloc({value}) returned {shown} (searched {cnt} elements)"
            else:
                yield f"ptr[{c}] = Alloc({value}) returned ?"
            c += 1
        else:
            index = value
            if bugs:
                if index >= len(given):
                    yield "Invalid Free: Skipping"
                    continue
                if index not in given:
                    raise ConfigError(f"Free(ptr[{index}]): ptr[{index}] was never returned "
                                      f"(malloc.py stops here with a KeyError)")
            elif index not in given:
                yield "Invalid Free: Skipping"
                continue
            yield f"Free(ptr[{index}])"
            rc = m.free(given[index])
            yield f"returned {rc}" if solve else "returned ?"
        yield m.dump() if solve else "List?"
        yield ""
