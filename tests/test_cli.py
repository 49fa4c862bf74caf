"""Tests for the ``memsim`` command line (memsim.cli): the convention, errors, demo and run.

Most tests call ``main([...])`` in-process and read the captured output; one runs the installed
``memsim`` script as a subprocess, as a user would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import memsim
import memsim.cli as cli
from memsim.cli import _common
from memsim.cli._common import UsageError, parse_prot, size_arg
from memsim.errors import ConfigError, MemsimError, SegmentationFault, TraceError
from memsim.units import GiB, KiB, MiB

COMMAND_NAMES = [cli.command_name(m) for m in cli.COMMANDS]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(err: str) -> str:
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("memsim: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- the convention -------------------------------------------------------------------------


def test_demo_is_the_first_command_and_names_are_unique() -> None:
    assert cli.COMMANDS[0] == "demo"
    assert len(set(cli.COMMANDS)) == len(cli.COMMANDS)


@pytest.mark.parametrize("module", cli.COMMANDS)
def test_every_command_module_follows_the_convention(module: str) -> None:
    mod = cli.load_command(module)
    assert mod.NAME == cli.command_name(module)
    assert isinstance(mod.HELP, str) and mod.HELP and "\n" not in mod.HELP
    assert "example" in mod.DESCRIPTION, "DESCRIPTION must show an example"
    assert f"memsim {mod.NAME}" in mod.DESCRIPTION
    parser = argparse.ArgumentParser()
    mod.add_arguments(parser)
    assert callable(mod.run)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_is_documented(name: str) -> None:
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    assert any(f"memsim {name}" in p.read_text(encoding="utf-8") for p in pages), \
        f"no page in README.md or docs/ shows `memsim {name}`"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "--help")
    assert status == 0
    for name in COMMAND_NAMES:
        assert name in out
    assert "unavailable" not in out


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help_of_every_command_exits_0_with_its_description(
        capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, err = run_main(capsys, name, "--help")
    assert status == 0, err
    assert f"usage: memsim {name}" in out
    assert "example" in out
    assert "--debug" in out


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "--version")
    assert status == 0
    assert out.startswith(f"memsim {memsim.__version__}")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys)
    assert status == 2
    assert "demo" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(capsys, "no-such-command")
    assert status == 2
    assert "memsim: error: " in err and "invalid choice" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--no-such-option"], ["demo", "--no-such-option"],
                                  ["demo", "--map", "lots"], ["run", "--overcommit", "7"]])
def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                      argv: list[str]) -> None:
    status, _, err = run_main(capsys, *argv)
    assert status == 2
    assert "memsim" in err and "error: " in err
    assert "Traceback" not in err


# --- errors become one line -------------------------------------------------------------------


@pytest.fixture
def boom(monkeypatch: pytest.MonkeyPatch) -> Callable[[BaseException], None]:
    """A command ``memsim zz-boom`` whose run() raises what the test asks for."""
    to_raise: list[BaseException] = []
    mod = types.ModuleType("memsim.cli.zz_boom")
    mod.NAME = "zz-boom"  # type: ignore[attr-defined]
    mod.HELP = "raise something"  # type: ignore[attr-defined]
    mod.DESCRIPTION = "example: memsim zz-boom"  # type: ignore[attr-defined]
    mod.add_arguments = lambda parser: None  # type: ignore[attr-defined]

    def run(args: argparse.Namespace) -> int:
        raise to_raise[0]

    mod.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "memsim.cli.zz_boom", mod)
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "zz_boom"))
    return to_raise.append


@pytest.mark.parametrize(
    ("exc", "status", "text"),
    [
        (MemsimError("the simulated machine is out of swap"), 1, "out of swap"),
        (ConfigError("not a protection: 'q'"), 1, "not a protection"),
        (TraceError("unknown operation 'z'", "t.trace", 3, "z 1"), 1, "t.trace:3:"),
        (SegmentationFault(0x10, "SEGV_MAPERR", "read"), 1, "SEGV_MAPERR"),
        (UsageError("--touch is larger than --map"), 2, "--touch is larger"),
        (ValueError("not a size: 'x'"), 1, "not a size"),
        (FileNotFoundError(2, "No such file or directory", "prog.ops"), 1,
         "prog.ops: No such file or directory"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_errors_become_one_line_and_a_nonzero_status(
        capsys: pytest.CaptureFixture[str], boom: Callable[[BaseException], None],
        exc: BaseException, status: int, text: str) -> None:
    boom(exc)
    got, out, err = run_main(capsys, "zz-boom")
    assert got == status
    assert text in assert_one_error_line(err)
    assert out == ""


def test_a_bug_is_one_line_internal_error(capsys: pytest.CaptureFixture[str],
                                          boom: Callable[[BaseException], None]) -> None:
    boom(RuntimeError("oops"))
    status, _, err = run_main(capsys, "zz-boom")
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memsim: internal error: RuntimeError: oops")


@pytest.mark.parametrize("argv", [["--debug", "zz-boom"], ["zz-boom", "--debug"]])
def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str],
                                   boom: Callable[[BaseException], None],
                                   argv: list[str]) -> None:
    boom(MemsimError("bad"))
    status, _, err = run_main(capsys, *argv)
    assert status == 1
    assert "Traceback" in err
    assert err.strip().splitlines()[-1] == "memsim: error: bad"


def test_a_broken_module_does_not_take_the_others_down(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "zz_missing"))
    status, out, _ = run_main(capsys, "--help")
    assert status == 0
    assert "zz-missing" in out and "unavailable" in out
    for argv in (["zz-missing"], ["zz-missing", "--help"], ["zz-missing", "-x", "y"]):
        status, _, err = run_main(capsys, *argv)
        assert status == 1
        assert "command 'zz-missing' is unavailable" in assert_one_error_line(err)
    status, _, _ = run_main(capsys, "demo", "--help")
    assert status == 0


def test_a_module_breaking_the_convention_is_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("memsim.cli.zz_half")
    mod.NAME = "something-else"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "memsim.cli.zz_half", mod)
    with pytest.raises(ImportError, match="lacks HELP"):
        cli.load_command("zz_half")
    for attr in ("HELP", "DESCRIPTION", "add_arguments", "run"):
        setattr(mod, attr, None)
    with pytest.raises(ImportError, match="NAME is 'something-else'"):
        cli.load_command("zz_half")


def test_only_the_chosen_command_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "zz_missing"))
    parser, broken = cli.build_parser("demo")
    assert broken == {}
    _, broken = cli.build_parser(None)
    assert "zz-missing" in broken


def test_installed_script_runs_as_a_subprocess() -> None:
    script = Path(sys.executable).with_name("memsim")
    if not script.exists():
        found = shutil.which("memsim")
        if found is None:
            pytest.skip("the memsim script is not installed next to this Python")
        script = Path(found)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout
    proc = subprocess.run([str(script), "--map", "x"], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # `memsim run ... | head -1` with more output than a pipe holds: the reader goes away
    # early; no traceback, no complaint
    with subprocess.Popen([str(script), "run", "-e", "; ".join(["mark"] * 3000)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=env) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline().startswith(b"pid ")
        child.stdout.close()
        err = child.stderr.read()
        assert child.wait(timeout=60) == 1
    assert err == b""


# --- shared helpers -------------------------------------------------------------------------


def test_size_arg_reads_binary_sizes_and_rejects_others() -> None:
    assert size_arg("64k") == 64 * KiB
    assert size_arg("1G") == GiB
    with pytest.raises(argparse.ArgumentTypeError, match="not a size: 'lots'"):
        size_arg("lots")


def test_address_arg_reads_hex() -> None:
    assert _common.address_arg("0x7ffff7fff000") == 0x7FFFF7FFF000
    assert _common.address_arg("4096") == 4096
    with pytest.raises(argparse.ArgumentTypeError):
        _common.address_arg("0xzz")


@pytest.mark.parametrize(("text", "prot"), [("rw", "rw"), ("rw-", "rw"), ("r-x", "rx"),
                                            ("XWR", "rwx"), ("none", ""), ("---", "")])
def test_parse_prot_normalises(text: str, prot: str) -> None:
    assert parse_prot(text) == prot
    assert _common.prot_arg(text) == prot


@pytest.mark.parametrize("bad", ["", "rwq", "rr", "read"])
def test_parse_prot_rejects_others(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a protection"):
        parse_prot(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        _common.prot_arg(bad)


def test_output_mode_is_plain_off_a_terminal_and_rich_on_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ns = argparse.Namespace(plain=False, json=False)
    monkeypatch.setattr(_common, "stdout_is_terminal", lambda stream=None: False)
    assert _common.output_mode(ns) == "plain"
    monkeypatch.setattr(_common, "stdout_is_terminal", lambda stream=None: True)
    assert _common.output_mode(ns) == "rich"
    assert _common.output_mode(argparse.Namespace(plain=True, json=False)) == "plain"
    assert _common.output_mode(argparse.Namespace(plain=False, json=True)) == "json"


def test_no_color_turns_the_terminal_off(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _common.stdout_is_terminal(Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _common.stdout_is_terminal(Tty())  # type: ignore[arg-type]


def test_progress_yields_everything_with_or_without_a_bar() -> None:
    assert list(_common.progress(range(5), total=5, enabled=False)) == [0, 1, 2, 3, 4]
    assert list(_common.progress(iter("abc"), total=3, enabled=True)) == ["a", "b", "c"]


def test_error_line_is_one_line() -> None:
    assert _common.error_line("two\nlines") == "memsim: error: two lines"


# --- memsim demo ----------------------------------------------------------------------------


def demo_json(capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    status, out, err = run_main(capsys, "demo", "--json", *extra)
    assert status == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def heap_demo() -> dict:
    """``memsim demo --json`` (the heap story), run once for the tests below."""
    from memsim.cli import demo

    with demo.trace_source() as path:
        story = demo.replay_story(path)
    return demo.heap_to_json(story)


def test_demo_bundles_a_whole_small_recording() -> None:
    from importlib.resources import files

    from memsim.cli import demo
    from memsim.trace.replay import iter_calls

    data = files("memsim") / "data" / demo.TRACE_FILE
    assert data.is_file() and len(data.read_bytes()) < 50 * KiB
    with demo.trace_source() as path:
        calls = list(iter_calls(path))
    assert 1000 <= len(calls) <= 20000
    live: set[int] = set()
    for op, a, _b, ret, _tid, _line in calls:     # a whole run: every free is of a live block
        if op == "f" and a:
            live.remove(a)
        elif op == "r":
            live.discard(a)
            if ret:
                live.add(ret)
        elif op != "f" and ret:
            live.add(ret)


def test_demo_heap_breakdown_adds_up_to_the_heap(heap_demo: dict) -> None:
    heap = heap_demo["heap"]
    size = int(heap["brk"], 16) - int(heap["start"], 16)
    assert size == heap["bytes"] > 0
    buckets = {b["key"]: b["bytes"] for b in heap["buckets"]}
    assert all(v >= 0 for v in buckets.values())
    assert sum(buckets.values()) == size                 # every byte in exactly one bucket
    assert {"payload", "padding", "rounding", "headers", "metadata", "tcache", "fastbins",
            "unsorted", "smallbins", "largebins", "top"} == set(buckets)
    # glibc's own accounting of the same heap (mallinfo2) agrees with the buckets
    mi = heap_demo["mallinfo2"]
    free = sum(buckets[k] for k in ("tcache", "fastbins", "unsorted", "smallbins",
                                    "largebins"))
    assert mi["arena"] == size
    assert mi["keepcost"] == buckets["top"] == heap["top_bytes"]
    # tcache chunks count as in use for mallinfo2 (they are not in av's bins)
    assert mi["fordblks"] == free - buckets["tcache"] + buckets["top"]
    assert mi["uordblks"] == size - mi["fordblks"]
    assert mi["hblks"] == len(heap_demo["mmapped"])
    assert mi["hblkhd"] == sum(c["mapped"] for c in heap_demo["mmapped"])


def test_demo_figures_are_the_models(heap_demo: dict) -> None:
    from memsim.cli import demo
    from memsim.trace.replay import replay

    with demo.trace_source() as path:
        res = replay(path, "glibc")
    assert heap_demo["calls"] == res.calls
    assert heap_demo["ops"] == {k: v for k, v in res.ops.items() if v}
    assert heap_demo["live"] == {"bytes": res.live_bytes, "objects": res.live_objects,
                                 "peak_bytes": res.peak_live_bytes,
                                 "peak_objects": res.peak_live_objects}
    assert heap_demo["heap"]["bytes"] == res.heap_bytes
    assert heap_demo["heap"]["peak_bytes"] == res.peak_heap_bytes
    assert heap_demo["rss_anon_kB"] == res.rss_anon_kb
    # the model is exact on this recording: the same address for every heap pointer
    exact = heap_demo["exact"]
    assert exact["same_address"] == exact["heap_pointers"] > 0
    assert exact["mmapped_in_both"] == exact["mmapped_pointers"]
    # live bytes = payload in the heap + payload of the mmapped chunks
    payload = next(b["bytes"] for b in heap_demo["heap"]["buckets"] if b["key"] == "payload")
    assert payload + sum(c["requested"] for c in heap_demo["mmapped"]) == res.live_bytes


def test_demo_resident_pages_come_from_the_page_table(heap_demo: dict) -> None:
    heap = heap_demo["heap"]
    assert heap["smaps_kB"]["Size"] * KiB == heap["bytes"]
    assert heap["smaps_kB"]["Rss"] * KiB == heap["resident_bytes"]
    assert heap["resident_bytes"] + heap["untouched_bytes"] == heap["bytes"]
    assert 0 < heap["resident_bytes"] < heap["bytes"]
    assert heap["top_resident_bytes"] <= heap["top_whole_pages"] * 4096
    assert heap["free_resident_pages"] <= heap["free_whole_pages"]
    mapped_res = sum(c["resident"] for c in heap_demo["mmapped"])
    delta_kb = heap_demo["rss_anon_kB"] - heap_demo["rss_anon_start_kB"]
    assert delta_kb * KiB == heap["resident_bytes"] + mapped_res


def test_demo_text_is_computed_from_the_story(tmp_path: Path) -> None:
    """Another trace gives another text: nothing in the story is typed in the demo."""
    import io

    from memsim.cli import demo

    t = tmp_path / "tiny.trace"
    t.write_text("# memsim-trace v1\n# brk0 0x555555559000\n# program /bin/tiny\n"
                 "# argv tiny --once\nm 100 0x5555555592a0\nm 300 0x555555559310\n"
                 "m 200000 0x7ffff7d00010\nf 0x5555555592a0\nr 0x555555559310 5000 "
                 "0x555555559450\n")
    story = demo.replay_story(t, name="tiny.trace")
    assert sum(b.bytes for b in story.heap) == story.heap_bytes
    assert story.live_bytes == 205000 and story.live_objects == 2
    assert [c.requested for c in story.mmapped] == [200000]
    out = io.StringIO()
    demo.render_heap_plain(story, out)
    text = out.getvalue()
    assert "tiny --once" in text and "tiny.trace" in text
    assert f"{story.heap_bytes:,} bytes" in text and f"{story.live_bytes:,} bytes" in text
    assert "ls -la" not in text


def test_demo_plain_tells_where_the_heap_went(capsys: pytest.CaptureFixture[str],
                                              heap_demo: dict) -> None:
    status, out, err = run_main(capsys, "demo", "--plain")
    assert status == 0, err
    assert err == "" and "\x1b[" not in out
    for b in heap_demo["heap"]["buckets"]:
        assert b["label"] in out and f"{b['bytes']:,}" in out
    assert f"{heap_demo['heap']['bytes']:,}" in out
    for text in ("ls -la", "Why RSS is not the live bytes", "[heap]", "top", "mmap",
                 "resident", "--kernel"):
        assert text in out


def test_demo_is_plain_in_a_pipe_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "demo")
    assert status == 0
    assert "\x1b[" not in out and "Why RSS" in out
    status, out, _ = run_main(capsys, "demo", "--kernel")
    assert status == 0
    assert "\x1b[" not in out and "/maps:" in out


def test_demo_rich_draws_tables(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "stdout_is_terminal", lambda stream=None: True)
    status, out, _ = run_main(capsys, "demo")
    assert status == 0
    assert ("┃" in out or "│" in out) and "large bins" in out and "Why RSS" in out
    status, out, _ = run_main(capsys, "demo", "--kernel")
    assert status == 0
    assert "┃" in out or "│" in out
    assert "[heap]" in out and "VmPTE" in out


def test_demo_kernel_plain_tells_the_story_and_prints_maps(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys, "demo", "--kernel", "--plain")
    assert status == 0, err
    assert err == ""
    for text in ("sbrk(", "mmap(", "VmSize", "VmRSS", "RssAnon", "VmPTE", "zero page",
                 "/maps:", "[heap]", "[stack]"):
        assert text in out
    assert "\x1b[" not in out


def test_demo_json_shows_address_space_and_rss_diverge(
        capsys: pytest.CaptureFixture[str]) -> None:
    heap, mapping, touch = 256 * KiB, 512 * MiB, 8 * MiB
    data = demo_json(capsys, "--heap", "256k", "--map", "512M", "--touch", "8M")
    assert data["story"] == "kernel"          # the kernel story's options choose it
    steps = data["steps"]
    assert [s["title"].split()[0] for s in steps] == ["a", "grow", "write", "map", "write",
                                                      "read"]
    grow, write_heap, mmap, touch_step, read = (s["delta_kB"] for s in steps[1:])
    # sbrk and mmap only reserve address space
    assert grow["VmSize"] == grow["VmData"] == heap // KiB
    assert grow["RssAnon"] == 0
    assert mmap["VmSize"] == mmap["VmData"] == mapping // KiB
    assert mmap["RssAnon"] == mmap["VmRSS"] == 0 and mmap["VmPTE"] == 0
    # writes fault in exactly the written pages
    assert write_heap["RssAnon"] == heap // KiB and write_heap["VmSize"] == 0
    assert touch_step["RssAnon"] == touch // KiB
    assert touch_step["VmPTE"] >= 4 * (touch // (2 * MiB))   # one PTE table per 2 MiB
    # reads of untouched memory map the zero page: tables, no RSS
    assert read["RssAnon"] == 0 and read["VmRSS"] == 0
    assert read["VmPTE"] > 0
    last = steps[-1]["status_kB"]
    assert last["VmSize"] - last["VmRSS"] > (mapping - 2 * touch) // KiB
    assert "[heap]" in data["maps"]
    assert data["peak_kB"]["VmHWM"] >= last["VmRSS"]


def test_demo_machine_is_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ((), ("--kernel",)):
        data = demo_json(capsys, "--ram", "8G", *extra)
        assert data["story"] == ("kernel" if extra else "heap")
        assert data["machine"]["ram_bytes"] == 8 * GiB
        assert data["machine"]["swap_bytes"] == 0


@pytest.mark.parametrize("argv", [["--touch", "2G"], ["--map", "0"], ["--heap", "100"]])
def test_demo_rejects_impossible_sizes(capsys: pytest.CaptureFixture[str],
                                       argv: list[str]) -> None:
    status, _, err = run_main(capsys, "demo", *argv)
    assert status == 2
    assert_one_error_line(err)


def test_demo_quiz_asks_then_answers(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "demo", "--quiz", "--map", "2G")
    assert status == 0
    assert out.count("RssAnon ?") == 5 and "answer:" not in out and "+2 GiB" not in out
    status, out, _ = run_main(capsys, "demo", "--quiz", "-c", "--map", "2G")
    assert status == 0
    assert "RssAnon ?" not in out
    assert "answer: VmSize +2 GiB, VmData +2 GiB, RssAnon unchanged, VmPTE unchanged" in out


@pytest.mark.parametrize("argv", [["-c"], ["--quiz", "--json"], ["--kernel", "-c"]])
def test_demo_quiz_options_must_make_sense(capsys: pytest.CaptureFixture[str],
                                          argv: list[str]) -> None:
    status, _, err = run_main(capsys, "demo", *argv)
    assert status == 2
    assert_one_error_line(err)


def test_demo_workload_is_separate_from_printing() -> None:
    from memsim.cli import demo

    proc = memsim.Process(machine=memsim.Machine(ram="4G"))
    result = demo.simulate(proc, demo.workload(proc, heap=64 * KiB, mapping=4 * MiB,
                                               touch=1 * MiB))
    assert len(result.snapshots) == 6
    assert result.snapshots[3].delta(result.snapshots[2])["VmSize"] == 4 * MiB // KiB


# --- memsim run -----------------------------------------------------------------------------


def test_run_executes_ops_and_prints_marks_status_and_maps(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys, "run", "--plain", "-e",
                                "m = mmap 1G rw; write m 4M every=4k; mark touched")
    assert status == 0, err
    assert "m = mmap 1G rw" in out and "= 0x" in out
    assert "mark touched:" in out
    assert re.search(r"RssAnon [\d,]+ kB \(\+4,096\)", out)
    assert "/status" in out and "VmSize:" in out and "/maps:" in out


def test_run_json_reports_each_op(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "run", "--json", "-e",
                              "h = sbrk 8k\nwrite h 8k\nmark\nx = mmap 1T rw\nmunmap 0x10000 4k")
    assert status == 0
    data = json.loads(out)
    results = [s["result"] for s in data["steps"]]
    assert results == ["ok", "ok", "mark", "failed", "ok"]
    assert data["steps"][2]["delta_kB"]["RssAnon"] == 8
    assert data["steps"][3]["value"] == "ENOMEM"
    assert "[heap]" in data["maps"]
    assert data["machine"]["swap_bytes"] == 0


def test_run_echoes_the_machine_first(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "run", "--plain", "--ram", "2G", "--swap", "1G",
                              "--overcommit", "2", "-e", "mark")
    assert status == 0
    assert out.splitlines()[0].endswith(
        "on a machine with 2 GiB of RAM, 1 GiB swap, vm.overcommit_memory=2")


def test_run_reads_a_file_and_stdin(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    prog = tmp_path / "p.ops"
    prog.write_text("# a comment\nm = mmap 64k rw\nwrite m 64k\nmark\n")
    status, out, _ = run_main(capsys, "run", "--plain", "--no-final", str(prog))
    assert status == 0
    assert re.search(r"RssAnon [\d,]+ kB \(\+64\)", out)
    assert "/maps" not in out
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(read=lambda: "m = mmap 4k r\n"))
    status, out, _ = run_main(capsys, "run", "--plain", "-")
    assert status == 0 and "mmap 4k r" in out


def test_run_segfault_exits_139(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys, "run", "--plain", "-e",
                                "m = mmap 4k r; read m; write m; read m")
    assert status == 128 + 11
    assert "killed by SIGSEGV" in out and "SEGV_ACCERR" in out
    assert out.count("killed by") == 1
    assert err == ""


@pytest.mark.parametrize(
    ("argv", "status", "text"),
    [
        (["-e", "mmapp 4k rw"], 1, "-e:1: unknown operation 'mmapp'"),
        (["-e", "write q 1"], 1, "unknown name 'q'"),
        (["/nonexistent/prog.ops"], 1, "/nonexistent/prog.ops: No such file"),
        ([], 2, "give a program"),
    ],
)
def test_run_bad_programs_are_one_line_errors(capsys: pytest.CaptureFixture[str],
                                              argv: list[str], status: int, text: str) -> None:
    got, _, err = run_main(capsys, "run", *argv)
    assert got == status
    assert text in assert_one_error_line(err)


def test_run_failed_op_leaves_its_name_unset(capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = run_main(capsys, "run", "-e", "m = mmap 1T rw; write m")
    assert got == 1
    assert "'m' has no value" in assert_one_error_line(err)


def test_run_rich_draws_the_ops_status_and_maps(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "stdout_is_terminal", lambda stream=None: True)
    status, out, _ = run_main(capsys, "run", "-e", "m = mmap 8k rw; write m 8k; mark w")
    assert status == 0
    assert "┃ line" in out and "mark w" in out
    assert "RssAnon:" in out and "[stack]" in out


def test_run_marks_show_swap_when_the_machine_has_some(capsys: pytest.CaptureFixture[str]) -> None:
    prog = "m = mmap 96M rw; write m 96M every=4k; mark"
    status, out, _ = run_main(capsys, "run", "--json", "--ram", "64M", "--swap", "64M", "-e", prog)
    assert status == 0
    mark = json.loads(out)["steps"][-1]
    assert mark["delta_kB"]["VmSwap"] > 0
    assert mark["delta_kB"]["VmSwap"] + mark["delta_kB"]["RssAnon"] >= 96 * 1024
    status, out, _ = run_main(capsys, "run", "--json", "--ram", "1G", "-e", prog)
    assert "VmSwap" not in json.loads(out)["steps"][-1]["status_kB"]


def test_run_oom_kill_exits_137(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "run", "--plain", "--ram", "64M", "--overcommit", "1",
                              "-e", "m = mmap 1G rw; write m 1G every=4k")
    assert status == 128 + 9
    assert "killed by SIGKILL" in out


def test_run_stack_limit_relative_to_vmstk(capsys: pytest.CaptureFixture[str]) -> None:
    prog = "setrlimit stack +64k +64k; write stack-32k; mark grown; write stack-128k"
    status, out, _ = run_main(capsys, "run", "--json", "-e", prog)
    assert status == 139
    steps = json.loads(out)["steps"]
    assert steps[2]["delta_kB"]["VmStk"] == 32
    assert steps[3]["result"] == "killed" and "SEGV_MAPERR" in steps[3]["value"]
