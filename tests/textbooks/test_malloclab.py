"""mdriver's utilization (memsim.metrics.utilization) and ``memsim malloclab``.

Hand-written traces whose utilization is worked out in the comments; the printf rounding
compared with this machine's C library; the correctness checks; and, when
MEMSIM_MALLOCLAB_TRACES names a folder holding the lab's traces (they may not be
redistributed: see docs/textbooks.md for where to get them), the published mdriver figures of
the book's allocator, to the printed percent.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any

import pytest

from memsim.alloc import create
from memsim.alloc.base import Allocator, HeapUsage
from memsim.cli import main
from memsim.metrics.utilization import (
    Footprint,
    TraceUtil,
    average_util,
    format_report,
    perf_index,
    replay_util,
)
from memsim.process import Process
from memsim.trace.rep import RepReader

README_EXAMPLE = "20000\n3\n8\n1\na 0 512\na 1 128\nr 0 640\na 2 128\nf 1\nr 0 768\nf 0\nf 2\n"


def _run(text: str, name: str = "csapp-first-fit", tmp: Path | None = None,
         **kw: Any) -> TraceUtil:
    import io

    proc = Process()
    fp = Footprint(proc.mm)
    a = create(name, fp, {"max_heap": 20 << 20} if name.startswith("csapp") else {})  # type: ignore[arg-type]
    with RepReader(io.BytesIO(text.encode()), name="t.rep") as r:
        return replay_util(r, a, fp, name="t.rep", **kw)


def test_the_readme_trace_by_hand() -> None:
    # payload: 512+128 -> 640+128 (r 0 640) -> +128 = 896, f 1 -> 768, r 0 768 -> 896: peak 896
    # heap: 16 + 4096; blocks 520+136+648+136+776 = 2216 fit in the first chunk
    res = _run(README_EXAMPLE)
    assert res.valid and res.peak_payload == 896 and res.heap_size == 4112
    assert res.util == 896 / 4112


def test_a_large_request_grows_the_heap_by_itself() -> None:
    # a 0 5000: asize 5008 > CHUNKSIZE, extend by 5008 (merged with the 4096 block)
    res = _run("20000\n1\n2\n1\na 0 5000\nf 0\n")
    assert (res.peak_payload, res.heap_size) == (5000, 16 + 4096 + 5008)


def test_the_denominator_of_other_allocators_is_their_peak_footprint() -> None:
    res = _run(README_EXAMPLE, name="first-fit")
    assert res.valid and res.peak_payload == 896
    assert res.heap_size > 896 and res.heap_size % 16 == 0


def test_misaligned_payloads_make_the_trace_invalid() -> None:
    res = _run(README_EXAMPLE, alignment=16)          # the book aligns to 8 only
    assert not res.valid and res.util == 0.0
    assert res.error is not None and "not aligned to 16 bytes" in res.error
    assert res.error.startswith("ERROR [trace 0, line ")


class _Overlapping(Allocator):
    """Returns the same block for every request: mdriver must notice."""

    def malloc(self, size: int) -> int:
        return 0x10000

    def free(self, ptr: int) -> None:
        pass

    def calloc(self, nmemb: int, size: int) -> int:
        return 0x10000

    def realloc(self, ptr: int, size: int) -> int:
        return 0x10000

    def memalign(self, alignment: int, size: int) -> int:
        return 0x10000

    def malloc_usable_size(self, ptr: int) -> int:
        return 1 << 20

    def check(self) -> None:
        pass

    def usage(self) -> HeapUsage:
        return HeapUsage(total=1 << 20, in_use=1 << 20)


def test_overlapping_payloads_make_the_trace_invalid() -> None:
    import io

    with RepReader(io.BytesIO(README_EXAMPLE.encode()), name="t.rep") as r:
        res = replay_util(r, _Overlapping(Process().mm), index=3)
    assert not res.valid and res.error == (
        "ERROR [trace 3, line 6]: Payload (0x10000:0x1007f) overlaps another payload "
        "(0x10000:0x101ff)")


def test_a_heap_past_max_heap_fails_like_mdriver() -> None:
    res = _run(f"20000\n1\n2\n1\na 0 {21 << 20}\nf 0\n")
    assert not res.valid and "mm_malloc failed" in (res.error or "")


def test_the_average_counts_invalid_traces_as_zero() -> None:
    good = TraceUtil("a", peak_payload=90, heap_size=100)
    bad = TraceUtil("b", valid=False, peak_payload=90, heap_size=100)
    assert average_util([good, bad]) == pytest.approx(0.45)


def test_perf_index_formula() -> None:
    # p1 = 0.6 * 0.74 = 0.444; p2 = 0.4 * 300/600 = 0.2; capped at 0.4 above 600 Kops/s
    p1, p2, total = perf_index(0.74, 300e3)
    assert (round(p1, 9), round(p2 or 0, 9), round(total or 0, 9)) == (44.4, 20.0, 64.4)
    assert perf_index(0.74, 900e3)[1] == pytest.approx(40.0)
    assert perf_index(0.5) == (30.0, None, None)


def _c_printf(fmt: bytes, value: float) -> str:
    libc = ctypes.CDLL(None)
    buf = ctypes.create_string_buffer(64)
    libc.snprintf(buf, 64, fmt, ctypes.c_double(value))
    return buf.value.decode()


@pytest.mark.parametrize("peak, heap", [(745, 1000), (1, 8), (3, 8), (5, 8), (995, 1000),
                                        (2012279, 2028880), (14646112, 16127576), (1, 200)])
def test_percentages_round_as_the_c_library_prints_them(peak: int, heap: int) -> None:
    r = TraceUtil("x", peak_payload=peak, heap_size=heap, ops=7)
    line = format_report([r]).splitlines()[2]
    assert line[12:18] == _c_printf(b"%5.0f%%", peak / heap * 100.0)


def test_the_report_has_mdrivers_columns() -> None:
    rs = [TraceUtil("a.rep", peak_payload=99, heap_size=100, ops=5694),
          TraceUtil("b.rep", peak_payload=50, heap_size=100, ops=12)]
    text = format_report(rs)
    assert text.splitlines()[1:5] == [
        "trace  valid  util     ops  name",
        " 0       yes   99%    5694  a.rep",
        " 1       yes   50%      12  b.rep",
        "Total          74%    5706"]
    assert "Perf index = 45 (util)" in text
    bad = format_report([TraceUtil("c.rep", valid=False, error="ERROR [trace 0, line 5]: x")])
    assert " 0        no     -       -  c.rep" in bad and "Terminated with 1 errors" in bad


def test_the_cli_reports_and_fails_on_invalid_traces(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t1.rep").write_text(README_EXAMPLE)
    assert main(["malloclab", str(tmp_path), "--plain"]) == 0
    out = capsys.readouterr().out
    assert " 0       yes   22%       8  t1.rep" in out          # 896/4112 = 21.8%
    assert main(["malloclab", str(tmp_path / "t1.rep"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["traces"][0]["heap_size"] == 4112 and doc["valid"] is True
    assert main(["malloclab", str(tmp_path), "--alignment", "16", "--plain"]) == 1
    assert "not aligned to 16 bytes" in capsys.readouterr().out
    (tmp_path / "bad.rep").write_text("20000\n1\n2\n1\na 0 10\nf 1\n")
    assert main(["malloclab", str(tmp_path / "bad.rep")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.rep:6:" in err
    assert main(["malloclab", str(tmp_path / "nope")]) == 1
    assert main(["malloclab", str(tmp_path), "--option", "wsize"]) == 2


# --- the lab's own traces (not shipped) --------------------------------------------------------

#: mdriver -v output of the book's allocator as published (many public repositories print it;
#: /work/shared/reference/fragmentation.md §6.1): first fit and NEXT_FIT, percent
PUBLISHED = {
    "amptjp-bal.rep": (99, 91), "cccp-bal.rep": (99, 92), "cp-decl-bal.rep": (99, 95),
    "expr-bal.rep": (100, 97), "coalescing-bal.rep": (66, 66), "random-bal.rep": (92, 91),
    "random2-bal.rep": (92, 89), "binary-bal.rep": (55, 55), "binary2-bal.rep": (51, 51),
    "realloc-bal.rep": (27, 27), "realloc2-bal.rep": (34, 45),
}
PUBLISHED_MEAN = (74, 73)
#: random-bal.rep circulates in several versions; the published figures come from one we do
#: not have (the book's C code itself gives 91% / 90% on the common public one), so its
#: figure is compared with the C code instead (test_csapp.py, MEMSIM_CSAPP_MM_C)
VERSION_DEPENDENT = {"random-bal.rep"}


@pytest.fixture(scope="module")
def lab_traces() -> Path:
    folder = os.environ.get("MEMSIM_MALLOCLAB_TRACES")
    if not folder:
        pytest.skip("set MEMSIM_MALLOCLAB_TRACES to a folder with the Malloc Lab traces "
                    "(amptjp-bal.rep ...; see docs/textbooks.md)")
    path = Path(folder)
    missing = [n for n in PUBLISHED if not (path / n).is_file()]
    if missing:
        pytest.skip(f"MEMSIM_MALLOCLAB_TRACES={folder} lacks {', '.join(missing)}")
    return path


@pytest.mark.parametrize("column, name", [(0, "csapp-first-fit"), (1, "csapp-next-fit")])
def test_published_mdriver_figures(lab_traces: Path, column: int, name: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["malloclab", str(lab_traces), "--allocator", name, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    got = {t["trace"]: t for t in doc["traces"]}
    assert list(got) == list(PUBLISHED)                  # mdriver's order
    for trace, figures in PUBLISHED.items():
        assert got[trace]["valid"]
        pct = int(f"{got[trace]['util'] * 100:.0f}")
        if trace in VERSION_DEPENDENT:
            assert abs(pct - figures[column]) <= 2, trace
        else:
            assert pct == figures[column], trace
    assert int(f"{doc['average_util'] * 100:.0f}") == PUBLISHED_MEAN[column]


def test_cmu_traces_align_to_16_and_weights_0_and_3_stay_out_of_the_average(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "u.rep").write_text("1\n2\n4\n20\na 0 10\na 1 10\nf 0\nf 1\n")
    (tmp_path / "p.rep").write_text("3\n1\n2\n10\na 0 10\nf 0\n")
    # the book's 8-byte alignment fails the CMU driver's 16: blocks of 24 bytes put the
    # second payload 8 bytes off
    assert main(["malloclab", str(tmp_path / "u.rep"), "--plain"]) == 1
    assert "not aligned to 16 bytes" in capsys.readouterr().out
    assert main(["malloclab", str(tmp_path), "--all", "--option", "wsize=8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    util = {t["trace"]: t["util"] for t in doc["traces"]}
    # wsize 8: 32 bytes of padding/prologue/epilogue + 4096; 20 / 4128
    assert util["u.rep"] == 20 / 4128
    assert doc["average_util"] == util["u.rep"]          # p.rep (weight 3) is left out
