"""The Malloc Lab .rep reader and writer, and the OSTEP op-list reader (hand-written traces)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from memsim.errors import TraceError
from memsim.trace.ostep_ops import OstepOpsReader, looks_like_ostep_ops, parse_ops_text
from memsim.trace.rep import (
    SYNTHETIC_BASE,
    RepReader,
    looks_like_rep,
    pointer_id,
    synthetic_pointer,
    write_rep,
)

README_EXAMPLE = "20000\n3\n8\n1\na 0 512\na 1 128\nr 0 640\na 2 128\nf 1\nr 0 768\nf 0\nf 2\n"


def _read(text: str, **kw: object) -> tuple[RepReader, list[tuple[str, int, int, int, int, int]]]:
    r = RepReader(io.BytesIO(text.encode()), name="t.rep", **kw)  # type: ignore[arg-type]
    return r, list(r)


def test_the_readme_example_becomes_calls_on_synthetic_pointers() -> None:
    r, calls = _read(README_EXAMPLE)
    p0, p1, p2 = (synthetic_pointer(i) for i in range(3))
    assert r.header.variant == "classic" and r.header.num_ids == 3 and r.header.num_ops == 8
    assert r.header.sugg_heapsize == 20000 and r.header.weight == 1
    assert [c[:4] for c in calls] == [
        ("m", 512, 0, p0), ("m", 128, 0, p1), ("r", p0, 640, p0), ("m", 128, 0, p2),
        ("f", p1, 0, 0), ("r", p0, 768, p0), ("f", p0, 0, 0), ("f", p2, 0, 0)]
    assert [c[5] for c in calls] == list(range(5, 13))        # file line numbers
    assert r.peak_payload == 896                              # 768 + 128


def test_ids_are_not_addresses() -> None:
    assert synthetic_pointer(0) == SYNTHETIC_BASE != 0      # id 0 is not NULL
    assert pointer_id(synthetic_pointer(12345, 2)) == (12345, 2)
    assert pointer_id(0x555555559000) is None


def test_an_id_allocated_again_while_live_gets_a_new_generation() -> None:
    _, calls = _read("1\n1\n3\n1\na 0 10\na 0 20\nf 0\n")
    assert calls[0][3] == synthetic_pointer(0, 0)
    assert calls[1][3] == synthetic_pointer(0, 1)
    assert calls[2][1] == synthetic_pointer(0, 1)


def test_the_cmu_header_is_detected_and_its_peak_checked() -> None:
    r, calls = _read("2\n2\n4\n150\na 0 100\na 1 50\nf 0\nf -1\n")
    assert r.header.variant == "cmu" and r.header.weight == 2 and r.header.data_bytes == 150
    assert calls[-1][:2] == ("f", 0)                          # f -1 is free(NULL)
    with pytest.raises(TraceError, match="peak payload is 149 bytes, the requests reach 150"):
        _read("2\n2\n4\n149\na 0 100\na 1 50\nf 0\nf 1\n")


def test_a_two_number_header_is_read_as_classic() -> None:
    r, calls = _read("3\n8\n" + README_EXAMPLE.split("\n", 4)[4])
    assert r.header.variant == "short" and r.header.num_ids == 3 and r.header.num_ops == 8
    assert [c[5] for c in calls] == list(range(3, 11)) and r.peak_payload == 896
    with pytest.raises(TraceError, match="two-number"):
        _read(README_EXAMPLE, variant="short")


def test_cmu_realloc_to_zero_frees() -> None:
    _, calls = _read("1\n1\n2\n10\na 0 10\nr 0 0\n")
    assert calls[1][:4] == ("r", synthetic_pointer(0), 0, 0)


@pytest.mark.parametrize("text, where, words", [
    ("20000\n3\n", "t.rep:3", "header ends early"),
    ("20000\nx\n1\n1\n", "t.rep:2", "needs a number here"),
    ("20000\n1\n2\n1\na 0 10\nf 0\nf 0\n", "t.rep:7", "not allocated here"),
    ("20000\n1\n1\n1\nq 0 10\n", "t.rep:5", "unknown request 'q'"),
    ("20000\n1\n1\n1\na 0\n", "t.rep:5", "needs 2 numbers"),
    ("20000\n1\n1\n1\na 0 -4\n", "t.rep:5", "not a size"),
    ("20000\n1\n3\n1\na 0 10\nf 0\n", "t.rep:6", "header says 3 requests, the trace has 2"),
    ("20000\n5\n2\n1\na 0 10\nf 0\n", "t.rep:6", "header says 5 block ids"),
])
def test_bad_traces_name_the_file_and_line(text: str, where: str, words: str) -> None:
    with pytest.raises(TraceError) as e:
        _read(text)
    msg = str(e.value)
    assert msg.startswith(where) and words in msg and "\n" not in msg


def test_bad_lines_can_be_skipped_and_counted() -> None:
    r, calls = _read("20000\n1\n3\n1\na 0 10\nzap\nf 0\n", skip_bad=True)
    assert len(calls) == 2 and r.skipped == 1 and "line 6" in (r.skip_report() or "")


def test_write_rep_round_trips_the_requests(tmp_path: Path) -> None:
    _, calls = _read(README_EXAMPLE)
    out = tmp_path / "x.rep"
    assert write_rep(out, calls) == 8
    body = README_EXAMPLE.split("\n", 4)[4]
    assert out.read_text() == "896\n3\n8\n1\n" + body
    r2, again = _read(out.read_text())
    assert [c[:4] for c in again] == [c[:4] for c in calls]
    assert r2.header.sugg_heapsize == 896
    write_rep(out, calls, variant="cmu")
    assert out.read_text().startswith("1\n3\n8\n896\n")


def test_write_rep_maps_the_other_calls(tmp_path: Path) -> None:
    calls = [("c", 3, 40, 0x1000, 0, 1), ("a", 64, 10, 0x2000, 0, 2),
             ("m", 5, 0, 0, 0, 3),                            # failed: dropped
             ("r", 0, 7, 0x3000, 0, 4), ("r", 0x3000, 0, 0, 0, 5), ("f", 0, 0, 0, 0, 6),
             ("f", 0x1000, 0, 0, 0, 7), ("f", 0x2000, 0, 0, 0, 8)]
    out = tmp_path / "y.rep"
    write_rep(out, calls)
    assert out.read_text().splitlines()[4:] == ["a 0 120", "a 1 10", "a 2 7", "f 2", "f 0",
                                                "f 1"]


def test_format_detection() -> None:
    assert looks_like_rep(b"20000\n3\n") and not looks_like_rep(b"# memsim-trace v1\n")
    assert looks_like_ostep_ops(b"+10,-0\n") and not looks_like_ostep_ops(b"+ 0x5 0x10\n")


def test_ostep_op_lists_become_calls() -> None:
    calls = parse_ops_text("+10,+20,-0, +5")
    p = [synthetic_pointer(i) for i in range(3)]
    assert [c[:4] for c in calls] == [("m", 10, 0, p[0]), ("m", 20, 0, p[1]),
                                      ("f", p[0], 0, 0), ("m", 5, 0, p[2])]


def test_ostep_op_lists_refuse_what_cannot_be_replayed() -> None:
    with pytest.raises(TraceError, match=r"<-A>:1: element 2 '-3': ptr\[3\] was never"):
        parse_ops_text("+10,-3")
    with pytest.raises(TraceError, match="double free"):
        parse_ops_text("+10,-0,-0")
    with pytest.raises(TraceError, match="element 1 '\\*5'"):
        parse_ops_text("*5")
    r = OstepOpsReader(io.BytesIO(b"+1\n-0\n-0 # again\n"), skip_bad=True, name="f")
    assert len(list(r)) == 2 and r.skipped == 1 and "line 3" in (r.skip_report() or "")
