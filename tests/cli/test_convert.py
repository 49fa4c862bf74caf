"""memsim convert: mtrace -> memsim-trace, recompression, bad lines in one line or counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsim.cli import main
from memsim.trace.format import TraceReader, detect_compression

MTRACE = """= Start
@ ./prog:[0x4005d6] + 0x1e8f460 0x64
@ [0x400600] < 0x1e8f460
@ [0x400600] > 0x1e90500 0x200
@ ./prog:[0x400610] - 0x1e90500
= End
"""


def test_convert_mtrace_to_compressed_memsim_trace(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "m.log"
    src.write_text(MTRACE)
    out = tmp_path / "m.trace.zst"
    assert main(["convert", str(src), str(out)]) == 0
    assert "3 calls written" in capsys.readouterr().err
    assert detect_compression(out.read_bytes()[:8]) == "zstd"
    with TraceReader(out) as tr:
        assert [c[:4] for c in tr] == [("m", 100, 0, 0x1e8f460), ("r", 0x1e8f460, 512, 0x1e90500),
                                       ("f", 0x1e90500, 0, 0)]
        assert tr.meta["format"] == "mtrace"


def test_convert_stops_at_a_bad_line_with_file_and_line(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.trace"
    src.write_text("# memsim-trace v1\nm 5 0x10\nf 0x10\nf 0x10\n")
    assert main(["convert", str(src), str(tmp_path / "o.trace")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"memsim: error: {src}:4: double free of 0x10: 'f 0x10'"


def test_convert_skip_bad_reports_the_count(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.trace"
    src.write_text("# memsim-trace v1\nm 5 0x10\nx 1\nf 0x10\nf 0x10\n")
    out = tmp_path / "o.trace"
    assert main(["convert", "--skip-bad", str(src), str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 bad lines" in err and "unknown operation" in err and "double free" in err
    with TraceReader(out) as tr:
        assert len(list(tr)) == 2


def test_record_refuses_stdout_as_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "-o", "-", "--", "true"]) == 2
    assert "not supported" in capsys.readouterr().err
