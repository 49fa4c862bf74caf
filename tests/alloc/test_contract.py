"""Every registered allocator, through the same property-based cases on the simulated kernel:
results never overlap, are aligned, ``check()`` holds after every call, and every byte is in
exactly one bucket."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.alloc import Allocator, available, create
from memsim.process import Process

SIZES = st.one_of(st.integers(0, 128), st.integers(0, 1100), st.integers(1100, 70000),
                  st.integers(100000, 600000))
OPS = st.lists(st.one_of(
    st.tuples(st.just("malloc"), SIZES),
    st.tuples(st.just("free"), st.integers(0, 1000)),
    st.tuples(st.just("realloc"), st.integers(0, 1000), SIZES),
    st.tuples(st.just("calloc"), st.integers(1, 8), st.integers(0, 5000)),
    st.tuples(st.just("memalign"), st.sampled_from([16, 32, 64, 4096, 65536]), SIZES),
    st.tuples(st.just("trim"), st.sampled_from([0, 65536])),
), max_size=60)


def _overlaps(live: dict[int, int]) -> str:
    spans = sorted((p, p + n) for p, n in live.items())
    for (a0, a1), (b0, _) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            return f"{a0:#x}+{a1 - a0} overlaps {b0:#x}"
    return ""


def _accounted(a: Allocator) -> None:
    u = a.usage()
    parts = u.in_use + u.cached + u.free + u.top + u.overhead
    assert parts == u.total, f"buckets {u.as_dict()} do not add up"
    assert min(u.as_dict().values()) >= 0


@pytest.mark.parametrize("name", [n for n, _ in available()])
@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_every_allocator_keeps_the_contract(name: str, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    if True:
        a = create(name, Process().mm)
        live: dict[int, int] = {}
        for op in ops:
            if op[0] == "malloc":
                p = a.malloc(op[1])
                align = 16
            elif op[0] == "calloc":
                p = a.calloc(op[1], op[2])
                align = 16
            elif op[0] == "memalign":
                p = a.memalign(op[1], op[2])
                align = op[1]
            elif op[0] == "trim":
                a.malloc_trim(op[1])
                p = 0
                align = 16
            else:
                if not live:
                    continue
                victim = sorted(live)[op[1] % len(live)]
                del live[victim]
                if op[0] == "free":
                    a.free(victim)
                    p = 0
                else:
                    p = a.realloc(victim, op[2])
                    if not p and op[2]:
                        live[victim] = a.malloc_usable_size(victim)
                align = 16
            if p:
                assert p % align == 0, f"{name}: {op} gave {p:#x}, not {align}-aligned"
                assert p not in live
                n = a.malloc_usable_size(p)
                assert n >= (op[-1] if op[0] != "calloc" else op[1] * op[2])
                live[p] = n
                assert not _overlaps(live), _overlaps(live)
            a.check()
            _accounted(a)
