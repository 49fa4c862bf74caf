"""``memsim allocators``: every registered name, one a line, with its description."""

from __future__ import annotations

import json

import pytest

import memsim.cli as cli
from memsim.alloc import available


def test_lists_every_registered_allocator_one_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["allocators"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = available()
    assert len(out) == len(rows)
    for line, (name, description) in zip(out, rows, strict=True):
        first, _, rest = line.partition(" ")
        assert first == name and rest.strip() == description


def test_json_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["allocators", "--json", "--options"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {d["name"]: d for d in doc}
    assert set(by_name) == {n for n, _ in available()}
    assert by_name["first-fit"]["options"]["placement"] == "first"
    assert by_name["best-fit"]["options"]["placement"] == "best"
    assert cli.main(["allocators", "--options", "--plain"]) == 0
    assert "options: placement='next'" in capsys.readouterr().out


def test_a_bad_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["allocators", "--nope"]) == 2
    assert "memsim: error:" in capsys.readouterr().err
