"""Tests for memsim.units (sizes, alignment) and memsim.errors (the exception tree)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memsim import errors, units
from memsim.units import (
    PAGE_MASK,
    PAGE_SIZE,
    GiB,
    KiB,
    MiB,
    TiB,
    align_down,
    align_up,
    format_size,
    page_align,
    parse_size,
)

# --- units ----------------------------------------------------------------------------------


def test_binary_units_are_powers_of_1024() -> None:
    assert (KiB, MiB, GiB, TiB) == (1024, 1024**2, 1024**3, 1024**4)


def test_page_constants_describe_4k_pages() -> None:
    assert PAGE_SIZE == 1 << units.PAGE_SHIFT == 4096
    assert 12345 & PAGE_MASK == 12288


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("4096", 4096),
        ("64k", 64 * KiB),
        ("64K", 64 * KiB),
        ("24G", 24 * GiB),
        ("1 TiB", TiB),
        ("8MB", 8 * MiB),
        ("8mib", 8 * MiB),
        (" 2m ", 2 * MiB),
        ("1p", 1 << 50),
        ("5b", 5),
    ],
)
def test_parse_size_accepts_binary_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_passes_non_negative_ints_through() -> None:
    assert parse_size(0) == 0
    assert parse_size(123) == 123


@pytest.mark.parametrize("bad", ["", "k", "1.5G", "-1", "0x10", "12 parsecs", "1e6", "G1"])
def test_parse_size_rejects_malformed_text_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(bad)


@pytest.mark.parametrize("bad", [-1, True, False, 1.5, None])
def test_parse_size_rejects_negative_and_non_size_values(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=1 << 60),
       st.sampled_from([1, 2, 16, 4096, 2 * MiB, GiB]))
def test_align_up_and_down_bracket_the_value(value: int, alignment: int) -> None:
    up, down = align_up(value, alignment), align_down(value, alignment)
    assert up % alignment == 0 and down % alignment == 0
    assert down <= value <= up
    assert up - down in (0, alignment)
    assert (up == value) == (value % alignment == 0)


@given(st.integers(min_value=0, max_value=1 << 60))
def test_page_align_rounds_up_to_a_whole_page(value: int) -> None:
    aligned = page_align(value)
    assert aligned == align_up(value, PAGE_SIZE)
    assert aligned % PAGE_SIZE == 0 and 0 <= aligned - value < PAGE_SIZE


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (4096, "4 KiB"),
        (1536, "1.5 KiB"),
        (MiB, "1 MiB"),
        (24 * GiB, "24 GiB"),
        (3 * TiB, "3 TiB"),
        (2048 * TiB, "2048 TiB"),
        (-4096, "-4 KiB"),
    ],
)
def test_format_size_picks_the_largest_unit_below_1024(nbytes: int, text: str) -> None:
    assert format_size(nbytes) == text


@given(st.integers(min_value=0, max_value=1023), st.sampled_from(["k", "M", "G", "T"]))
def test_format_size_round_trips_whole_units(n: int, suffix: str) -> None:
    nbytes = parse_size(f"{n}{suffix}")
    text = format_size(nbytes)
    number, unit = text.split()
    assert parse_size(f"{number}{unit}") == nbytes


# --- errors ---------------------------------------------------------------------------------


def test_every_error_is_a_memsim_error() -> None:
    for cls in (errors.ConfigError, errors.TraceError, errors.Signal,
                errors.SegmentationFault, errors.OutOfMemoryKilled):
        assert issubclass(cls, errors.MemsimError)
    assert issubclass(errors.SegmentationFault, errors.Signal)
    assert issubclass(errors.OutOfMemoryKilled, errors.Signal)


def test_config_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        raise errors.ConfigError("bad prot 'q'")


def test_trace_error_names_file_line_and_text() -> None:
    e = errors.TraceError("unknown operation 'z'", path="t.trace", lineno=7, line="z 12\n")
    assert str(e) == "t.trace:7: unknown operation 'z': 'z 12'"
    assert (e.path, e.lineno, e.line) == ("t.trace", 7, "z 12\n")


def test_trace_error_without_a_line_number_names_the_file() -> None:
    assert str(errors.TraceError("empty trace", path="t.trace")) == "t.trace: empty trace"
    assert str(errors.TraceError("empty trace")) == "empty trace"


def test_segmentation_fault_carries_address_code_and_access() -> None:
    e = errors.SegmentationFault(0x1000, "SEGV_MAPERR", "write")
    assert (e.signo, e.name) == (11, "SIGSEGV")
    assert (e.addr, e.code, e.access) == (0x1000, "SEGV_MAPERR", "write")
    assert "0x1000" in str(e) and "SEGV_MAPERR" in str(e) and "write" in str(e)


def test_oom_kill_reports_pid_and_badness() -> None:
    e = errors.OutOfMemoryKilled(pid=42, points=1234)
    assert (e.signo, e.name, e.pid, e.points) == (9, "SIGKILL", 42, 1234)
    assert "42" in str(e) and "1234" in str(e)
    assert str(errors.OutOfMemoryKilled(1, 2, "custom")) == "custom"
