"""Shared by the tests that run an allocator's fast closures beside its plain methods
(test_seqfit_fast, test_csapp_fast, test_segfit_fast): a kernel that records the order in
which pages are first written, one call of a generated operation, and the seeded mix of the
long runs."""

from __future__ import annotations

import random
from typing import Any

from memsim.alloc import Allocator, AllocatorAbort

from .fakesys import PAGE, FakeSyscalls


class FirstTouch(FakeSyscalls):
    """FakeSyscalls that also lists the pages in the order they were first written."""

    def __init__(self) -> None:
        super().__init__()
        self.first: list[int] = []

    def write(self, addr: int, length: int = 1) -> None:
        for page in range(addr // PAGE, (addr + length - 1) // PAGE + 1):
            if page * PAGE not in self.pages:
                self.first.append(page)
        super().write(addr, length)


def call(a: Allocator, live: list[int], op: tuple[Any, ...], misalign: int = 16) -> Any:
    """Do ``op`` on ``a`` (``("malloc", n)``, ``("calloc", n)``, ``("memalign", align, n)``,
    ``("trim", pad)``, ``("free", i)``, ``("badfree", i)``: free ``misalign`` bytes into a
    live block, ``("realloc", i, n)``); ``live`` is the list of pointers held (updated).
    Returns what the call returned ("abort" or "no abort" for a bad free)."""
    kind = op[0]
    if kind == "malloc":
        p = a.malloc(op[1])
    elif kind == "calloc":
        p = a.calloc(1, op[1])
    elif kind == "memalign":
        p = a.memalign(op[1], op[2])
    elif kind == "trim":
        return a.malloc_trim(op[1])
    elif not live:
        return None
    elif kind == "free":
        a.free(live.pop(op[1] % len(live)))
        return None
    elif kind == "badfree":
        try:
            a.free(live[op[1] % len(live)] + misalign)
        except AllocatorAbort:
            return "abort"
        return "no abort"
    else:
        i = op[1] % len(live)
        p = a.realloc(live[i], op[2])
        if p or not op[2]:
            live.pop(i)
    if p:
        live.append(p)
    return p


def seeded_op(rng: random.Random, live: list[int]) -> tuple[Any, ...]:
    """The long runs' mix: 45 % free while blocks are live, 3 % realloc, else malloc of a
    small, medium or page-spanning size."""
    if live and rng.random() < 0.45:
        return ("free", rng.randrange(len(live)))
    if rng.random() < 0.03:
        return ("realloc", rng.randrange(64), rng.randrange(1, 3000))
    return ("malloc", rng.choice([rng.randrange(1, 64), rng.randrange(64, 1024),
                                  rng.randrange(1024, 40_000)]))
