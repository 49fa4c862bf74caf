"""TraceReader's fast paths (m, f, c, r lines) agree with parse_call_line on every line,
well-formed or not: the same call, or the same rejection (TraceError naming file:line)."""

from __future__ import annotations

import io
import random

import pytest

from memsim.errors import TraceError
from memsim.trace.format import MAGIC, TraceReader, parse_call_line

HEADER = f"{MAGIC}\n# brk0 0x5555555559000\n"

GOOD = [
    "m 24 0x5555555592a0", "m 0 0x0 t=3", "f 0x5555555592a0", "f 0x0 t=12",
    "c 3 40 0x5555555592c0", "c 0 0 0x5555555592c0 t=7", "c 1 18446744073709551615 0x0",
    "r 0x5555555592c0 1000 0x555555559310", "r 0x0 8 0x5555555592a0 t=2",
    "r 0x5555555592a0 0 0x0", "r 0xABCDEF 16 0xabcdef t=0",
]


def _mutate(rng: random.Random, line: str) -> str:
    parts = line.split()
    k = rng.randrange(9)
    i = rng.randrange(len(parts))
    if k == 0:
        parts[i] = parts[i].replace("0x", "")              # pointer without 0x
    elif k == 1:
        parts[i] = parts[i] + rng.choice(["g", "_1", "x", "-", "0" * 20])
    elif k == 2:
        del parts[i]                                        # a field missing
    elif k == 3:
        parts.append(rng.choice(["t=5", "t=x", "q", "x=1", "t=", "t=5 t=6"]))
    elif k == 4:
        parts[i] = "0x" + "f" * rng.choice([15, 16, 17])    # 64-bit limits
    elif k == 5:
        parts[i] = str(rng.choice([0, 1, 2**64 - 1, 2**64, 10**30]))
    elif k == 6:
        parts[i] = parts[i].upper()
    elif k == 7:
        parts.insert(i, rng.choice(["0x10", "7", "+3"]))
    else:
        parts[0] = rng.choice(["m", "f", "c", "r", "a", "z", "mm"])
    return " ".join(parts)


def _expected(line: str, lineno: int) -> tuple | str:
    try:
        return parse_call_line(line.encode(), lineno)
    except (ValueError, IndexError) as e:
        return f"error: {e}"


@pytest.mark.parametrize("seed", range(4))
def test_fast_paths_agree_with_parse_call_line(seed: int) -> None:
    rng = random.Random(seed)
    lines = [rng.choice(GOOD) for _ in range(400)]
    lines = [_mutate(rng, s) if rng.random() < 0.6 else s for s in lines]
    for i, line in enumerate(lines):
        lineno = i + 3
        want = _expected(line, lineno)
        src = io.BytesIO((HEADER + line + "\n").encode())
        with TraceReader(src, check=False, name="t.trace") as tr:
            try:
                got: tuple | str = next(iter(tr))
            except TraceError as e:
                assert isinstance(want, str), (line, want, e)
                assert "t.trace" in str(e) and ":3" in str(e), str(e)
                continue
        assert got == want[:5] + (3,) if isinstance(want, tuple) else got == want, line


def test_skip_bad_counts_the_same_lines_as_the_slow_parser() -> None:
    rng = random.Random(9)
    lines = [_mutate(rng, rng.choice(GOOD)) for _ in range(300)]
    want = [c for i, s in enumerate(lines)
            if isinstance(c := _expected(s, i + 3), tuple)]
    src = io.BytesIO((HEADER + "\n".join(lines) + "\n").encode())
    with TraceReader(src, check=False, skip_bad=True) as tr:
        got = list(tr)
        assert tr.skipped == len(lines) - len(want)
    assert got == want
