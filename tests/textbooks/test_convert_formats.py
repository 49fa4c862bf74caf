"""memsim convert with the textbook formats: --from rep|ostep, --to rep (round trips)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsim.cli import main
from memsim.trace import open_trace
from memsim.trace.rep import synthetic_pointer

README_EXAMPLE = "20000\n3\n8\n1\na 0 512\na 1 128\nr 0 640\na 2 128\nf 1\nr 0 768\nf 0\nf 2\n"


def test_rep_to_memsim_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = tmp_path / "t.rep"
    rep.write_text(README_EXAMPLE)
    trace = tmp_path / "t.trace.gz"
    assert main(["convert", str(rep), str(trace)]) == 0          # detected by name
    with open_trace(trace) as r:
        calls = [c[:4] for c in r]
        assert r.meta["format"] == "malloclab-rep (classic)"
    assert calls[0] == ("m", 512, 0, synthetic_pointer(0))
    back = tmp_path / "back.rep"
    assert main(["convert", str(trace), str(back), "--to", "rep"]) == 0
    assert back.read_text().split("\n", 4)[4] == README_EXAMPLE.split("\n", 4)[4]
    assert "8 requests written" in capsys.readouterr().err


def test_a_rep_without_the_extension_is_detected_by_its_header(tmp_path: Path) -> None:
    rep = tmp_path / "trace.txt"
    rep.write_text(README_EXAMPLE)
    out = tmp_path / "o.trace"
    assert main(["convert", str(rep), str(out)]) == 0
    assert "m 512 0x100000000000" in out.read_text()


def test_ostep_op_lists(tmp_path: Path) -> None:
    ops = tmp_path / "ops.txt"
    ops.write_text("+10,+20,-0\n+5  # the fourth\n")
    out = tmp_path / "o.trace"
    assert main(["convert", "--from", "ostep", str(ops), str(out)]) == 0
    with open_trace(out) as r:
        assert [c[0] for c in r] == ["m", "m", "f", "m"]
    rep = tmp_path / "o.rep"
    assert main(["convert", "--from", "ostep", str(ops), str(rep), "--to", "rep",
                 "--rep-variant", "cmu"]) == 0
    assert rep.read_text() == "1\n3\n4\n30\na 0 10\na 1 20\nf 0\na 2 5\n"


def test_errors_name_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "b.rep"
    bad.write_text("20000\n1\n2\n1\na 0 10\nf 7\n")
    assert main(["convert", str(bad), str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:6:" in err
    ops = tmp_path / "ops.txt"
    ops.write_text("+10\n-1\n")
    assert main(["convert", "--from", "ostep", str(ops), str(tmp_path / "y")]) == 1
    assert f"{ops}:2: element 1 '-1': ptr[1] was never allocated" in capsys.readouterr().err
    good = tmp_path / "g.trace"
    good.write_text("# memsim-trace v1\nm 5 0x1000\n")
    assert main(["convert", "--from", "mtrace", str(good), str(tmp_path / "z")]) == 1
    assert "not mtrace" in capsys.readouterr().err
