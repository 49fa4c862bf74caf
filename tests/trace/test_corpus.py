"""The committed corpus: real, single-threaded, consistent traces of at least 12 programs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memsim.trace.format import TraceReader

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FILES = sorted(CORPUS.glob("*.trace.zst"))


def test_corpus_has_at_least_12_programs() -> None:
    assert len(FILES) >= 12, f"only {len(FILES)} traces in {CORPUS}"


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[int, set[int], int | None, str]]:
    """name -> (calls, thread ids, brk0, program), each file read once with every check on."""
    out = {}
    for f in FILES:
        with TraceReader(f) as tr:
            tids: set[int] = set()
            n = 0
            for call in tr:
                tids.add(call[4])
                n += 1
        assert tr.skipped == 0
        out[f.name] = (n, tids, tr.brk0, tr.meta.get("program", ""))
    return out


def test_every_trace_parses_and_is_single_threaded(parsed: dict) -> None:  # type: ignore[type-arg]
    for name, (calls, tids, brk0, program) in parsed.items():
        assert calls > 0, name
        assert len(tids) == 1 and 0 not in tids, f"{name}: threads {sorted(tids)}"
        assert brk0 is not None and brk0 % 4096 == 0, name
        assert program.startswith("/"), name


def test_corpus_totals_at_least_3_million_calls(parsed: dict) -> None:  # type: ignore[type-arg]
    assert sum(v[0] for v in parsed.values()) >= 3_000_000


def test_corpus_is_small_enough_to_commit() -> None:
    assert sum(f.stat().st_size for f in FILES) < 40 * 2**20


def test_readme_lists_every_trace_with_its_call_count(parsed: dict) -> None:  # type: ignore[type-arg]
    readme = (CORPUS / "README.md").read_text()
    for name, (calls, *_rest) in parsed.items():
        row = next((ln for ln in readme.splitlines() if f"`{name}`" in ln), None)
        assert row is not None, f"{name} is not in corpus/README.md"
        assert re.search(rf"\| {calls:,} \|", row), f"{name}: README call count is stale"
