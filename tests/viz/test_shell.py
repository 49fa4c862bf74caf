"""memsim.viz.shell and `memsim shell`: scripts end to end, variables, errors by line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from memsim.cli import main
from memsim.viz.shell import Shell, ShellError, run_script

LESSON = """\
# a lesson: the first malloc, the tcache, a mapping
p = malloc 100
free p
q = malloc 100
r = calloc 4 32
s = realloc r 5000
sbrk 4096
m = mmap 1M
write m 10
read m+8k 8
status
heap
bins
maps
vars
quit
free q
"""


def test_script_end_to_end_through_the_cli(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lesson.txt"
    path.write_text(LESSON)
    assert main(["shell", "--script", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "p = malloc(100)" in out and "[sysmalloc brk]" in out
    assert "[tcache put]" in out and "[tcache hit]" in out
    assert "changed: tcache 0x70: 0 -> 1" in out
    assert "sbrk(4096) = 0x" in out and "VmSize +1024 kB" in out
    assert "tcachebins" in out and "[heap]" in out and "RssAnon" in out
    assert ">>> free q" not in out                   # quit stopped the script


def test_shell_state_follows_the_model() -> None:
    sh = Shell()
    sh.execute("p = malloc 100")
    p = sh.vars["p"]
    assert sh.alloc.av.inuse[p - 16] == 0x70
    sh.execute("r = realloc p 100000")
    assert sh.vars["r"] == sh.vars["p"]              # the old name follows the block
    sh.execute("free r")
    assert "r" not in sh.vars and "p" not in sh.vars
    sh.execute("m = mmap 64k")
    before = sh.proc.status()["RssAnon"]
    out = sh.execute("write m 16k")
    assert sh.proc.status()["RssAnon"] - before == 16
    assert "4 pages in" in out and "RssAnon +16 kB" in out
    sh.execute("munmap m")
    assert sh.proc.status()["RssAnon"] == before
    sh.alloc.check()
    sh.proc.check()


@pytest.mark.parametrize("line, message", [
    ("free nope", "unknown variable 'nope'"),
    ("p = mallocc 10", "unknown command 'mallocc'"),
    ("p = malloc lots", "not a size"),
    ("malloc", "usage: p = malloc N"),
    ("x = free 0", "returns nothing to assign"),
    ("munmap 0x1000", "give the length"),
])
def test_bad_lines_raise_a_clear_error(line: str, message: str) -> None:
    with pytest.raises(ShellError, match=message):
        Shell().execute(line)


def test_a_double_free_is_reported_not_fatal() -> None:
    sh = Shell()
    sh.execute("p = malloc 10")
    p = sh.vars["p"]
    sh.execute("free p")
    with pytest.raises(ShellError, match="SIGABRT.*double free"):
        sh.execute(f"free {p:#x}")
    assert "malloc" in sh.execute("z = malloc 10")   # the session goes on


def test_errors_name_the_line_and_strict_stops() -> None:
    script = ["p = malloc 10", "free nope", "q = malloc 20", "bogus", "r = malloc 30"]
    out, err = io.StringIO(), io.StringIO()
    assert run_script(Shell(), script, out, err, "l.txt") == 2
    assert err.getvalue().splitlines() == [
        "l.txt:2: error: unknown variable 'nope' (see 'vars')",
        "l.txt:4: error: unknown command 'bogus' (type 'help')"]
    assert "r = malloc(30)" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    sh = Shell()
    assert run_script(sh, script, out, err, "l.txt", strict=True) == 1
    assert "q" not in sh.vars and err.getvalue().count("\n") == 1


def test_cli_reads_stdin_and_fails_on_errors(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("p = malloc 10\nfree p\nfree p2\n"))
    assert main(["shell", "--quiet", "--no-echo"]) == 1
    out, err = capsys.readouterr()
    assert "[tcache put]" in out and ">>>" not in out
    assert err.strip() == "<stdin>:3: error: unknown variable 'p2' (see 'vars')"
    assert main(["shell", "--script", "/nonexistent/lesson.txt"]) == 1
    assert "lesson.txt" in capsys.readouterr().err


def test_interactive_prompt_loop(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    lines = iter(["p = malloc 100", "nonsense", "heap", "quit"])

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["shell", "--plain"]) == 0
    out, err = capsys.readouterr()
    assert "Type 'help'" in out and "[sysmalloc brk]" in out and "tcache_perthread_struct" in out
    assert err.strip() == "error: unknown command 'nonsense' (type 'help')"
