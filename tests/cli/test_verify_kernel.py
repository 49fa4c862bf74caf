"""`memsim verify-kernel`: the command over memsim.oracle.compare_kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memsim.cli import main
from memsim.oracle.kernel import unavailable_reason
from memsim.oracle.scenarios import SCENARIOS

REASON = unavailable_reason()
needs_real = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def test_list_prints_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-kernel", "--list"]) == 0
    assert capsys.readouterr().out.split() == list(SCENARIOS)


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-kernel", "no_such_scenario"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'no_such_scenario'" in err and len(err.strip().splitlines()) == 1


def test_bad_program_is_one_line_naming_the_line(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    prog = tmp_path / "bad.ops"
    prog.write_text("m = mmap 4096 rw\nfrobnicate m\n")
    assert main(["verify-kernel", "--file", str(prog)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "<ops>:2" in err and "frobnicate" in err


@pytest.mark.oracle
@needs_real
def test_one_scenario_plain_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-kernel", "zero_page_then_write", "--plain", "-v"]) == 0
    out = capsys.readouterr().out
    assert "zero_page_then_write" in out and "agree" in out and "ΔRssAnon" in out
    assert main(["verify-kernel", "zero_page_then_write", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    (prog,) = doc["programs"]
    assert prog["program"] == "zero_page_then_write" and prog["failures"] == []
    assert [m["real"]["RssAnon"] for m in prog["marks"]] == \
        [m["sim"]["RssAnon"] for m in prog["marks"]]


@pytest.mark.oracle
@needs_real
def test_a_difference_exits_1_and_is_shown(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a machine the real kernel is not (overcommit mode 1 on this mode-0 host): the
    1 TiB accounted mapping is refused for real and accepted by the simulator."""
    import memsim.oracle.kernel as k

    real_opts = k.host_machine_options()
    if real_opts.get("overcommit") != 0:
        pytest.skip("needs a host in overcommit mode 0")
    monkeypatch.setattr(k, "host_machine_options", lambda: {**real_opts, "overcommit": 1})
    prog = tmp_path / "tib.ops"
    prog.write_text("t = mmap 1T rw\nmark\n")
    assert main(["verify-kernel", "--file", str(prog), "--plain"]) == 1
    out = capsys.readouterr().out
    assert "DIFFER" in out and "real err ENOMEM" in out
