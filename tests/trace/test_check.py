"""Tests for memsim.trace.replay.check and ``memsim check``.

A small C program is compiled here (skipped without a C compiler) and recorded with
``memsim record``; the glibc model must return every recorded address (100%). Altered copies
of the recording make the check diverge where we decide, to test the report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import memsim.cli as cli
from memsim.trace import open_trace
from memsim.trace.format import Call, TraceWriter
from memsim.trace.record import fixed_environment, record
from memsim.trace.replay import CONTEXT_CALLS, check, replay

PROGRAM = r"""
#include <malloc.h>
#include <stdlib.h>

#define N 500
static void *slot[N];

int main(void)
{
    volatile size_t huge = (size_t)-1;
    void *none = malloc(huge);                    /* NULL, in both worlds */
    unsigned x = 123456789u;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            unsigned k = x % 100;
            size_t n = k < 75 ? 1 + x % 150 : k < 97 ? 150 + x % 3000 : 150000 + x % 200000;
            if (slot[i] && (x >> 24) % 2 == 0) { free(slot[i]); slot[i] = 0; }
            else if (slot[i]) slot[i] = realloc(slot[i], n);
            else if ((x >> 8) % 11 == 0) slot[i] = memalign(128, n);
            else slot[i] = malloc(n);
        }
    }
    for (int i = 0; i < N; i += 3) free(slot[i]);
    return none != NULL;
}
"""


def _compile(tmp: Path, *flags: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) to build the test program")
    src = tmp / "prog.c"
    src.write_text(PROGRAM)
    exe = tmp / "prog"
    subprocess.run([cc, "-O1", "-w", *flags, "-o", str(exe), str(src)], check=True)
    return exe


def _record(exe: Path, out: Path, env: dict[str, str] | None = None) -> Path:
    environment = fixed_environment()
    environment.update(env or {})
    rec = record([str(exe)], out, env=environment, stdout=subprocess.DEVNULL, timeout=120)
    assert rec.returncode == 0 and rec.main is not None
    return out


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("check")
    return _record(_compile(d), d / "prog.trace")


def calls_of(path: Path) -> list[Call]:
    with open_trace(path) as reader:
        return list(reader)


def _rewrite(src: Path, dst: Path, calls: list[tuple[str, int, int, int, int]]) -> Path:
    with TraceWriter(dst, dict(open_trace(src).meta)) as w:
        for c in calls:
            w.write_call(c)
    return dst


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- 100% on a recording ---------------------------------------------------------------------

def test_a_recorded_program_matches_at_100_percent(trace: Path) -> None:
    res = check(trace)
    calls = calls_of(trace)
    assert res.ok and res.first is None and not res.stopped
    assert res.share == 1.0 and res.mismatched == 0
    assert res.compared == sum(1 for c in calls if c[0] != "f") == res.matched
    assert res.matched == res.heap_matched + res.mmap_matched + res.null_matched
    assert res.mmap_matched > 0            # the blocks above the mmap threshold
    assert res.null_matched >= 1           # malloc(SIZE_MAX)
    assert res.replay.calls == len(calls)


def test_cli_check_exit_status_and_report(trace: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    status, out, err = run_main(capsys, "check", str(trace), "--plain")
    assert status == 0 and err == ""
    assert "(100.00%)" in out and "mmapped chunks" in out
    status, out, _ = run_main(capsys, "check", str(trace), "--json")
    doc = json.loads(out)
    assert status == 0 and doc["ok"] is True and doc["share"] == 1.0
    assert doc["first_divergence"] is None and doc["compared"] == doc["matched"]


def test_tunables_given_to_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    tunables = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"
    tr = _record(_compile(tmp_path), tmp_path / "t.trace", {"GLIBC_TUNABLES": tunables})
    assert not check(tr).ok                       # the default glibc behaves otherwise
    assert check(tr, options={"env": {"GLIBC_TUNABLES": tunables}}).ok
    status, _, _ = run_main(capsys, "check", str(tr), "--env", f"GLIBC_TUNABLES={tunables}")
    assert status == 0


def test_a_non_pie_program_matches(tmp_path: Path) -> None:
    tr = _record(_compile(tmp_path, "-no-pie"), tmp_path / "nopie.trace")
    brk0 = open_trace(tr).brk0
    assert brk0 is not None and brk0 < 0x1000_0000_0000     # below the PIE image
    res = check(tr)
    assert res.ok and res.replay.start_brk == brk0 and res.compared > 1000


# --- divergences ------------------------------------------------------------------------------

def _relabel_one(calls: list[Call], index: int) -> tuple[list[tuple[str, int, int, int, int]],
                                                          int]:
    """Give the object returned by calls[index] another recorded address, everywhere."""
    old = calls[index][3]
    new = 0x7000_0000_0000 + old % 0x1000_0000
    out = []
    for i, (op, a, b, ret, tid, _) in enumerate(calls):
        if i >= index:
            if op in "fr" and a == old:
                a = new
            if ret == old and i == index:
                ret = new
            elif ret == old and op != "f":
                old = -1                          # the address was reused by another object
        out.append((op, a, b, ret, tid))
    return out, calls[index][5]


def _a_tcache_malloc(calls: list[Call], brk0: int) -> int:
    """Index of a malloc, late enough for full context, whose address the program got back
    after freeing it (so the chunk is in a free list just before)."""
    freed: set[int] = set()
    for i, (op, a, _b, ret, _t, _) in enumerate(calls):
        if op == "f":
            freed.add(a)
        elif op == "m" and i > 3 * CONTEXT_CALLS and ret in freed and brk0 <= ret < brk0 + \
                (1 << 32):
            return i
    raise AssertionError("no reused address in the recording")


def test_first_divergence_shows_context_and_bins(trace: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    calls = calls_of(trace)
    brk0 = open_trace(trace).brk0
    assert brk0 is not None
    index = _a_tcache_malloc(calls, brk0)
    altered, lineno = _relabel_one(calls, index)
    bad = _rewrite(trace, tmp_path / "altered.trace", altered)
    res = check(bad)
    assert not res.ok and res.stopped and res.mismatched == 1
    f = res.first
    assert f is not None and f.lineno == lineno and f.kind == "mmap/heap"
    assert f.expected == altered[index][3] and f.got == calls[index][3]
    # the context: the calls just before, the last one first-before
    assert len(f.context) == CONTEXT_CALLS
    last_lines = [int(c.split()[0]) for c in f.context]
    assert last_lines == [c[5] for c in calls[index - CONTEXT_CALLS:index]]
    # the bins before the call hold the chunk the model is about to return
    assert f.heap_when == "before the call"
    assert f"{f.got - 16:#x}" in f.heap and "top" in f.heap
    assert res.matched == res.compared - 1 == sum(1 for c in calls[:index] if c[0] != "f")

    status, out, _ = run_main(capsys, "check", str(bad), "--plain")
    assert status == 1
    assert f"first divergence at line {lineno}:" in out
    assert "<-- differs" in out and "the allocator before the call:" in out
    assert "--keep-going" in out
    status, out, _ = run_main(capsys, "check", str(bad), "--json", "--context", "3")
    doc = json.loads(out)
    assert status == 1 and doc["first_divergence"]["line"] == lineno
    assert len(doc["first_divergence"]["context"]) == 3


def test_keep_going_counts_every_divergence_and_identity_holds(trace: Path,
                                                               tmp_path: Path) -> None:
    calls = calls_of(trace)
    brk0 = open_trace(trace).brk0
    assert brk0 is not None
    index = _a_tcache_malloc(calls, brk0)
    altered, _ = _relabel_one(calls, index)
    bad = _rewrite(trace, tmp_path / "altered.trace", altered)
    res = check(bad, keep_going=True)
    # one relabeled object is one divergence: the objects are followed by identity, so
    # nothing after it is disturbed
    assert res.mismatched == 1 and not res.stopped
    assert res.compared == sum(1 for c in calls if c[0] != "f")
    assert res.replay.calls == len(calls)


def test_a_missing_pair_makes_later_calls_diverge_and_the_replay_goes_on(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls = calls_of(trace)
    # drop a small malloc and its free: the model's heap no longer is the real one
    i = next(k for k, c in enumerate(calls) if k > 100 and c[0] == "m" and c[1] < 100)
    ptr = calls[i][3]
    j = next(k for k in range(i + 1, len(calls)) if calls[k][0] == "f" and calls[k][1] == ptr)
    kept = [c[:5] for k, c in enumerate(calls) if k not in (i, j)]
    bad = _rewrite(trace, tmp_path / "dropped.trace", kept)
    res = check(bad, keep_going=True)
    assert res.mismatched >= 1 and res.first is not None
    assert res.first.lineno > calls[i][5] - 1
    assert res.replay.calls == len(kept)
    assert res.divergences[0][0] == res.first.lineno
    status, out, _ = run_main(capsys, "check", str(bad), "-k", "--plain")
    assert status == 1 and "stopped at the first divergence" not in out
    if res.mismatched > 1:
        assert f"{res.mismatched:,} divergences; the first {len(res.divergences)}:" in out
        listed = re.findall(r"^  line (\d+): ", out, re.M)
        assert [int(n) for n in listed] == [d[0] for d in res.divergences]


def test_several_threads_are_noted(tmp_path: Path) -> None:
    path = tmp_path / "threads.trace"
    path.write_text("# memsim-trace v1\n# brk0 0x555555559000\nf 0x0 t=1\nf 0x0 t=2\n")
    res = check(path)
    assert res.ok and res.replay.threads == 2
    assert any("2 threads" in n for n in res.replay.notes)


def test_check_usage_errors(trace: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(capsys, "check", str(trace), "--context", "-1")
    assert status == 2 and "--context" in err
    no_brk0 = tmp_path / "nobrk.trace"
    no_brk0.write_text("# memsim-trace v1\nm 10 0x1000\n")
    status, out, err = run_main(capsys, "check", str(no_brk0))
    assert status == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "no brk0" in err
    # replay still works on it
    assert replay(no_brk0).calls == 1


# --- the corpus -----------------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
#: Corpus traces small enough for the default run (a few seconds together).
QUICK = ("awk", "bzip2", "gzip", "sort", "xz", "tclsh", "grep", "make")


def _corpus_traces(names: tuple[str, ...] | None) -> list[Path]:
    found = sorted(CORPUS.glob("*.trace.zst")) if CORPUS.is_dir() else []
    return [p for p in found if names is None or p.name.split(".")[0] in names]


@pytest.mark.parametrize("path", _corpus_traces(QUICK), ids=lambda p: p.name)
def test_small_corpus_traces_match_at_100_percent(path: Path) -> None:
    res = check(path, keep_going=True)
    assert res.ok, res.first.describe() if res.first else res.replay.skip_report


@pytest.mark.slow
@pytest.mark.parametrize("path", _corpus_traces(None), ids=lambda p: p.name)
def test_every_corpus_trace_matches_at_100_percent(path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow (minutes): run with -m slow")
    res = check(path, keep_going=True)
    assert res.ok, res.first.describe() if res.first else res.replay.skip_report
