"""ExtentMap against a naive per-unit dict model (hypothesis), plus the basic rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.kernel.ranges import ExtentMap

N = 40  # key space [0, N) for the model


def shift_slicer(value: tuple[str, int], offset: int) -> tuple[str, int]:
    """A value that varies along the extent, like a PFN run: ('f', base) -> ('f', base+off)."""
    kind, base = value
    return (kind, base + offset) if kind == "f" else value


def naive_from(m: ExtentMap) -> dict[int, object]:
    out: dict[int, object] = {}
    for s, e, _ in m:
        for k in range(s, e):
            out[k] = m.get(k)
    return out


def test_set_and_get_with_equal_neighbours_coalesce() -> None:
    m: ExtentMap[str] = ExtentMap()
    m.set(0, 10, "a")
    m.set(10, 20, "a")
    assert list(m) == [(0, 20, "a")]
    m.set(5, 7, "b")
    assert list(m) == [(0, 5, "a"), (5, 7, "b"), (7, 20, "a")]
    m.set(5, 7, "a")
    assert list(m) == [(0, 20, "a")]
    assert m.total == 20
    m.check()


def test_slicer_merges_only_continuing_runs() -> None:
    m: ExtentMap[tuple[str, int]] = ExtentMap(shift_slicer)
    m.set(0, 4, ("f", 100))
    m.set(4, 8, ("f", 104))      # continues the run: merge
    m.set(8, 9, ("f", 200))      # does not
    assert list(m) == [(0, 8, ("f", 100)), (8, 9, ("f", 200))]
    assert m.get(5) == ("f", 105)
    m.delete(2, 3)
    assert list(m) == [(0, 2, ("f", 100)), (3, 8, ("f", 103)), (8, 9, ("f", 200))]
    m.set(2, 3, ("f", 102))      # filling the hole restores one run
    assert list(m)[0] == (0, 8, ("f", 100))
    m.check()


def test_gaps_covered_items() -> None:
    m: ExtentMap[int] = ExtentMap()
    m.set(10, 20, 1)
    m.set(30, 40, 2)
    assert m.gaps(0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert m.gaps(12, 18) == []
    assert m.covered(15, 35) == 10
    assert m.items(15, 35) == [(15, 20, 1), (30, 35, 2)]
    assert m.items(15, 35, clip=False) == [(10, 20, 1), (30, 40, 2)]
    assert m.contains(10, 20) and not m.contains(10, 21)


def test_reversed_range_is_an_error() -> None:
    m: ExtentMap[int] = ExtentMap()
    with pytest.raises(ValueError):
        m.set(5, 3, 1)


def test_check_detects_corruption() -> None:
    m: ExtentMap[int] = ExtentMap()
    m.set(0, 10, 1)
    m.set(20, 30, 2)
    m.ends[0] = 25
    with pytest.raises(AssertionError):
        m.check()


ops = st.lists(
    st.tuples(st.sampled_from(["set", "delete", "update"]),
              st.integers(0, N), st.integers(0, N),
              st.sampled_from([("a", 0), ("b", 0), ("f", 0), ("f", 7)])),
    max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_matches_naive_model(seq: list[tuple[str, int, int, tuple[str, int]]]) -> None:
    m: ExtentMap[tuple[str, int]] = ExtentMap(shift_slicer)
    model: dict[int, tuple[str, int]] = {}
    for op, a, b, v in seq:
        lo, hi = min(a, b), max(a, b)
        if op == "set":
            m.set(lo, hi, v)
            for k in range(lo, hi):
                model[k] = shift_slicer(v, k - lo)
        elif op == "delete":
            removed = m.delete(lo, hi)
            assert sum(e - s for s, e, _ in removed) == sum(1 for k in range(lo, hi)
                                                            if k in model)
            for k in range(lo, hi):
                model.pop(k, None)
        else:
            m.update(lo, hi, lambda s, e, val: ("a", 0) if val[0] == "b" else val)
            for k in range(lo, hi):
                if k in model and model[k][0] == "b":
                    model[k] = ("a", 0)
        m.check()
        assert naive_from(m) == model
        assert m.total == len(model)
        for k in range(N):
            assert m.get(k) == model.get(k)
        gaps = m.gaps(0, N)
        assert sum(e - s for s, e in gaps) == N - len(model)
