"""memsim-trace v1: round trips, compression by magic bytes, streaming, and every rejection."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import sys
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.errors import TraceError
from memsim.trace import open_trace
from memsim.trace.format import (
    MAGIC,
    TraceReader,
    TraceWriter,
    detect_compression,
    parse_call_line,
    write_trace,
)

HEADER = f"{MAGIC}\n# brk0 0x5555555559000\n# program /usr/bin/x\n# color blue\n"
BODY = ("m 5 0x5555555592a0 t=7\n"
        "c 3 40 0x5555555592c0 t=7\n"
        "r 0x5555555592c0 1000 0x555555559310\n"
        "f 0x0\n"
        "a 64 100 0x555555559740 t=7 x=ignored\n"
        "v 10 0x55555555a000\n"
        "p 4096 0x55555555b000\n"
        "f 0x5555555592a0\n"
        "r 0x0 8 0x5555555592a0\n"
        "r 0x5555555592a0 0 0x0\n")
EXPECTED = [
    ("m", 5, 0, 0x5555555592a0, 7, 5),
    ("c", 3, 40, 0x5555555592c0, 7, 6),
    ("r", 0x5555555592c0, 1000, 0x555555559310, 0, 7),
    ("f", 0, 0, 0, 0, 8),
    ("a", 64, 100, 0x555555559740, 7, 9),
    ("v", 10, 0, 0x55555555a000, 0, 10),
    ("p", 4096, 0, 0x55555555b000, 0, 11),
    ("f", 0x5555555592a0, 0, 0, 0, 12),
    ("r", 0, 8, 0x5555555592a0, 0, 13),
    ("r", 0x5555555592a0, 0, 0, 0, 14),
]

COMPRESSORS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "bzip2": bz2.compress,
}


def _write(tmp_path: Path, text: str, kind: str = "plain", name: str = "t.trace") -> Path:
    p = tmp_path / name
    p.write_bytes(COMPRESSORS[kind](text.encode()))
    return p


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_every_compression_reads_the_same_calls_whatever_the_file_name(tmp_path: Path,
                                                                        kind: str) -> None:
    p = _write(tmp_path, HEADER + BODY, kind, name="misleading.txt")
    with TraceReader(p) as tr:
        assert tr.brk0 == 0x5555555559000
        assert tr.meta["program"] == "/usr/bin/x"
        assert tr.meta["color"] == "blue"          # unknown keys are kept
        assert list(tr) == EXPECTED
        assert tr.calls == len(EXPECTED)


def test_magic_bytes_decide_the_compression() -> None:
    assert detect_compression(gzip.compress(b"x")) == "gzip"
    assert detect_compression(lzma.compress(b"x")) == "xz"
    assert detect_compression(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert detect_compression(bz2.compress(b"x")) == "bzip2"
    assert detect_compression(MAGIC.encode()) is None


def test_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    data = zstandard.ZstdCompressor().compress((HEADER + BODY).encode())

    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    with TraceReader("-") as tr:
        assert list(tr) == EXPECTED
        assert tr.name == "<stdin>"


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".zst", ".bz2"])
def test_writer_round_trip_and_compresses_by_suffix(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"out.trace{suffix}"
    calls = [c[:5] for c in EXPECTED]
    n = write_trace(p, calls, {"brk0": 0x5555555559000, "program": "/usr/bin/x"})  # type: ignore[arg-type]
    assert n == len(calls)
    raw = p.read_bytes()
    expected_kind = {"": None, ".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2"}
    assert detect_compression(raw[:8]) == expected_kind[suffix]
    with TraceReader(p) as tr:
        assert tr.brk0 == 0x5555555559000
        assert [c[:5] for c in tr] == calls


def test_writer_lines_are_the_documented_text(tmp_path: Path) -> None:
    p = tmp_path / "w.trace"
    with TraceWriter(p, {"brk0": 0x1000}) as w:
        w.malloc(5, 0x10a0, tid=3)
        w.calloc(2, 8, 0x10c0)
        w.realloc(0x10c0, 64, 0x1100)
        w.memalign(64, 10, 0x1140)
        w.valloc(1, 0x2000)
        w.pvalloc(1, 0x3000)
        w.free(0x10a0)
    assert p.read_text().splitlines() == [
        MAGIC, "# brk0 0x1000", "m 5 0x10a0 t=3", "c 2 8 0x10c0", "r 0x10c0 64 0x1100",
        "a 64 10 0x1140", "v 1 0x2000", "p 1 0x3000", "f 0x10a0"]


class _CountingRaw(io.RawIOBase):
    """An endless generated trace that counts how much of it was read."""

    def __init__(self, calls: int) -> None:
        self.read_bytes = 0
        lines = [MAGIC + "\n"]
        lines += [f"m 16 {0x10000 + 32 * i:#x}\n" for i in range(calls)]
        self._data = "".join(lines).encode()

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data[self.read_bytes:self.read_bytes + len(b)]
        b[:len(chunk)] = chunk
        self.read_bytes += len(chunk)
        return len(chunk)


def test_reading_is_streamed_not_whole() -> None:
    raw = _CountingRaw(150_000)                     # ~3 MB of text
    total = len(raw._data)
    tr = TraceReader(io.BufferedReader(raw))
    it = iter(tr)
    first = next(it)
    assert first[0] == "m"
    assert raw.read_bytes < total / 3               # only a buffer's worth was read
    assert sum(1 for _ in it) == 150_000 - 1


# --- rejections ---------------------------------------------------------------------------

BAD_CASES = [
    ("m 5\n", "needs 2 fields"),
    ("q 5 0x10\n", "unknown operation"),
    ("m five 0x10\n", "not a decimal number"),
    ("m -5 0x10\n", "not a decimal number"),
    ("m 5 4096\n", "hexadecimal"),
    ("f 0x777\n", "free of unknown address 0x777"),
    ("m 5 0x10\nf 0x10\nf 0x10\n", "double free of 0x10"),
    ("m 5 0x10\nm 7 0x10\n", "still live"),
    ("r 0x99 5 0x10\n", "realloc of unknown address 0x99"),
    ("m 5 0x10\nm 5 0x20 t=x\n", "t= must be"),
    ("m 5 0x10 junk\n", "not key=value"),
    ("m 99999999999999999999999 0x10\n", "64 bits"),
]


@pytest.mark.parametrize("body,why", BAD_CASES)
def test_bad_lines_name_file_line_number_and_line(tmp_path: Path, body: str, why: str) -> None:
    p = _write(tmp_path, MAGIC + "\n# brk0 0x0\n" + body)
    bad_lineno = 2 + body.count("\n")
    bad_line = body.splitlines()[-1]
    with pytest.raises(TraceError) as e, TraceReader(p) as tr:
        list(tr)
    msg = str(e.value)
    assert why in msg
    assert f"{p}:{bad_lineno}:" in msg
    assert repr(bad_line) in msg
    assert e.value.lineno == bad_lineno and e.value.path == str(p)


@pytest.mark.parametrize("body,why", BAD_CASES)
def test_skip_bad_counts_and_reports_every_skipped_line(tmp_path: Path, body: str,
                                                        why: str) -> None:
    good_after = "m 1 0x900000\n"
    p = _write(tmp_path, MAGIC + "\n" + body + good_after)
    with TraceReader(p, skip_bad=True) as tr:
        calls = list(tr)
    assert tr.skipped == 1
    assert calls[-1][:4] == ("m", 1, 0, 0x900000)
    assert len(calls) == body.count("\n")          # all lines but the bad one
    report = tr.skip_report()
    assert report is not None and "skipped 1 bad line" in report and why in report


def test_skip_report_is_none_when_nothing_was_skipped(tmp_path: Path) -> None:
    with TraceReader(_write(tmp_path, HEADER + BODY), skip_bad=True) as tr:
        list(tr)
    assert tr.skipped == 0 and tr.skip_report() is None


@pytest.mark.parametrize("kind", ["gzip", "xz", "zstd", "bzip2"])
def test_truncated_compression_is_an_error(tmp_path: Path, kind: str) -> None:
    text = HEADER + "".join(f"m 16 {0x10000 + 32 * i:#x}\n" for i in range(50_000))
    data = COMPRESSORS[kind](text.encode())
    p = tmp_path / "cut.trace"
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TraceError) as e:
        with TraceReader(p, skip_bad=True) as tr:     # skipping never hides a cut stream
            list(tr)
    assert str(p) in str(e.value)
    assert "truncated" in str(e.value) or "decompress" in str(e.value)


@pytest.mark.parametrize("magic", [b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"BZh9"])
def test_corrupt_compressed_data_is_an_error(tmp_path: Path, magic: bytes) -> None:
    p = tmp_path / "corrupt"
    p.write_bytes(magic + b"garbage" * 100)
    with pytest.raises(TraceError, match="cannot decompress") as e:
        with TraceReader(p, skip_bad=True) as tr:
            list(tr)
    assert f"{p}:1:" in str(e.value)


@pytest.mark.parametrize("data,why", [
    (b"", "empty file"),
    (b"\x00\x01\x02garbage\xff\xfe", "binary data"),
    (b"hello world\nm 5 0x10\n", "first line must be"),
    (b"# memsim-trace v2\n", "first line must be"),
])
def test_garbage_is_rejected_on_open(tmp_path: Path, data: bytes, why: str) -> None:
    p = tmp_path / "g"
    p.write_bytes(data)
    with pytest.raises(TraceError) as e:
        TraceReader(p)
    assert why in str(e.value) and str(p) in str(e.value)


def test_a_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        TraceReader(tmp_path / "nope")


def test_nul_tail_of_an_unfinished_recording_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "n"
    p.write_bytes((HEADER + "m 5 0x10\n").encode() + b"\0" * 5000)
    with pytest.raises(TraceError, match="NUL bytes"), TraceReader(p) as tr:
        list(tr)


def test_failed_realloc_keeps_the_old_block_live(tmp_path: Path) -> None:
    p = _write(tmp_path, MAGIC + "\nm 5 0x10\nr 0x10 99999999999 0x0\nf 0x10\n")
    with TraceReader(p) as tr:
        assert [c[0] for c in tr] == ["m", "r", "f"]


def test_check_false_accepts_inconsistent_traces(tmp_path: Path) -> None:
    p = _write(tmp_path, MAGIC + "\nf 0x10\nf 0x10\n")
    with TraceReader(p, check=False) as tr:
        assert len(list(tr)) == 2


def test_a_reader_is_a_stream_read_once(tmp_path: Path) -> None:
    tr = TraceReader(_write(tmp_path, HEADER + BODY))
    list(tr)
    with pytest.raises(TraceError, match="read once"):
        iter(tr)


def test_trailer_metadata_after_the_calls_is_kept(tmp_path: Path) -> None:
    p = _write(tmp_path, HEADER + BODY + "# nested_calls_not_recorded 0\n")
    with TraceReader(p) as tr:
        list(tr)
    assert tr.trailer == {"nested_calls_not_recorded": "0"}


def test_open_trace_picks_the_memsim_reader(tmp_path: Path) -> None:
    p = _write(tmp_path, HEADER + BODY, "zstd")
    with open_trace(p) as tr:
        assert isinstance(tr, TraceReader)
        assert list(tr) == EXPECTED


def test_parse_call_line_matches_the_fast_path() -> None:
    for line, call in zip(BODY.splitlines(), EXPECTED, strict=True):
        assert parse_call_line(line.encode(), call[5]) == call


# --- property: any consistent call sequence survives a round trip ---------------------------

@st.composite
def call_sequences(draw: st.DrawFn) -> list[tuple[str, int, int, int, int]]:
    live: list[int] = []
    nxt = 0x555555559000
    out: list[tuple[str, int, int, int, int]] = []
    for _ in range(draw(st.integers(0, 60))):
        tid = draw(st.sampled_from([0, 1, 4242]))
        choice = draw(st.sampled_from("mcrfavp"))
        if choice == "f" and live:
            p = live.pop(draw(st.integers(0, len(live) - 1)))
            out.append(("f", p, 0, 0, tid))
            continue
        if choice == "r" and live:
            i = draw(st.integers(0, len(live) - 1))
            nxt += 0x100
            out.append(("r", live[i], draw(st.integers(1, 10**6)), nxt, tid))
            live[i] = nxt
            continue
        nxt += 0x100
        size = draw(st.integers(0, 2**63))
        if choice == "c":
            out.append(("c", draw(st.integers(0, 1000)), size, nxt, tid))
        elif choice == "a":
            out.append(("a", 1 << draw(st.integers(4, 12)), size, nxt, tid))
        else:
            op = choice if choice in "vp" else "m"
            out.append((op, size, 0, nxt, tid))
        live.append(nxt)
    return out


@settings(max_examples=30, deadline=None)
@given(calls=call_sequences(), kind=st.sampled_from(["", ".gz", ".zst"]))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory,
                             calls: list[tuple[str, int, int, int, int]], kind: str) -> None:
    p = tmp_path_factory.mktemp("rt") / f"t.trace{kind}"
    write_trace(p, calls, {"brk0": 0x555555559000})  # type: ignore[arg-type]
    with TraceReader(p) as tr:
        got = [c[:5] for c in tr]
        tr.live.check()
    assert got == calls
    assert tr.live.live_count() == len({c[3] for c in calls if c[0] != "f"}) - sum(
        1 for c in calls if c[0] == "f") - sum(1 for c in calls if c[0] == "r")
