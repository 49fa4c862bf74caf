"""The examples in README.md and docs/*.md run, so the documentation cannot rot.

What is checked in each Markdown file, in order, with one namespace per file (a later block
may use names an earlier one defined):

- ```` ```python ```` blocks are executed; they must not raise.
- ```` ```pycon ```` blocks (``>>>`` sessions) are run with doctest: the printed output must
  match (``...`` matches anything, whitespace is normalised).
- ```` ```console ```` blocks: every line ``$ memsim ...`` is run in-process through
  ``memsim.cli.main`` and must exit 0 (anything after a ``|`` or ``>`` is not run); the
  lines shown under it must appear in its output, in order (``...`` skips lines). Commands
  that need a C compiler, real programs or their traces (``record``, ``verify-kernel``,
  ``replay``, ``check``) are skipped here: their own tests run them.

Add ``skip`` to a block's info string (```` ```python skip ````) for an example that must
not run (one that needs a file the reader has, say).

The first screen of README.md, and .ci/run, are checked against each other too: the test
command a newcomer is given is the one CI runs.
"""

from __future__ import annotations

import doctest
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
NOT_RUN_COMMANDS = ("record", "verify-kernel", "replay", "check")

INSTALL_COMMAND = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/memsim demo"
TEST_COMMAND = ("apt-get update && apt-get install -y chromium strace && python3 -m venv .venv && "
                ".venv/bin/pip install -e '.[test,plot,browser]' && .venv/bin/python -m pytest")

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass
class Block:
    path: Path
    lineno: int           # line of the opening fence
    lang: str
    skip: bool
    code: str

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.lineno}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip().split()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        lang = info[0].lower() if info else ""
        found.append(Block(path, start + 1, lang, "skip" in info[1:],
                           textwrap.dedent("\n".join(body)) + "\n"))
    return found


def test_there_are_documents_with_examples() -> None:
    assert (ROOT / "README.md").exists()
    runnable = [b for p in DOCS for b in blocks(p) if b.lang in ("python", "pycon", "console")
                and not b.skip]
    assert len(runnable) >= 5


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for block in blocks(path):
        if block.skip:
            continue
        if block.lang == "python":
            try:
                exec(compile(block.code, block.where(), "exec"), namespace)
            except Exception as e:
                pytest.fail(f"{block.where()}: the example raised {type(e).__name__}: {e}")
        elif block.lang == "pycon":
            _run_pycon(block, namespace)
        elif block.lang == "console":
            _run_console(block, capsys)
        capsys.readouterr()


def _run_pycon(block: Block, namespace: dict[str, object]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, block.where(), str(block.path),
                              block.lineno)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append, clear_globs=False)
    namespace.update(test.globs)        # DocTest works on a copy: keep what the session defined
    if runner.failures:
        pytest.fail(f"{block.where()}: the session's output differs:\n" + "".join(out))


def _console_commands(code: str) -> list[tuple[str, list[str]]]:
    """``$ ...`` lines of a console block, each with the output lines shown under it."""
    commands: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line.rstrip())
    return commands


def _argv(command: str) -> list[str]:
    """The words of a shell command up to its first pipe or redirection."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|<>&;")
    lexer.whitespace_split = True
    argv: list[str] = []
    for token in lexer:
        if token and all(c in "|<>&;" for c in token):
            break
        argv.append(token)
    return argv


def _run_console(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    from memsim.cli import main

    for command, shown in _console_commands(block.code):
        argv = _argv(command)
        if not argv or argv[0] != "memsim" or (len(argv) > 1 and argv[1] in NOT_RUN_COMMANDS):
            continue
        status = main(argv[1:])
        out, err = capsys.readouterr()
        assert status == 0, f"{block.where()}: `{command}` exited {status}: {err}"
        _check_shown_output(block, command, shown, out)


def _check_shown_output(block: Block, command: str, shown: list[str], out: str) -> None:
    """Every line shown under a command must appear in its output, in that order ("..."
    stands for lines left out; spaces are compared loosely)."""
    actual = [" ".join(line.split()) for line in out.splitlines()]
    i = 0
    for want in shown:
        if want.strip() == "...":
            continue
        w = " ".join(want.split())
        while i < len(actual) and w not in actual[i]:
            i += 1
        assert i < len(actual), (f"{block.where()}: `{command}` did not print {want.strip()!r} "
                                 f"(in this order)")
        i += 1


# --- the set-up commands ----------------------------------------------------------------------

def _first_screen() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[:40])


def test_readme_first_screen_gives_the_two_setup_commands() -> None:
    screen = _first_screen()
    assert INSTALL_COMMAND in screen
    assert TEST_COMMAND in screen
    commands = [b.code.strip() for b in blocks(ROOT / "README.md")
                if b.lineno <= 40 and b.lang in ("sh", "bash", "console", "shell")]
    assert commands == [INSTALL_COMMAND, TEST_COMMAND]


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue                                # a URL or an anchor in the same page
        file = (path.parent / target.split("#", 1)[0]).resolve()
        if not file.exists():
            broken.append(target)
    assert broken == [], f"{path.relative_to(ROOT)} links to missing files"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in ci
    code = "\n".join(line for line in ci.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\\n\s*", "", code)       # undo line continuations
    assert TEST_COMMAND in joined
    assert '"$status" -eq 5' in joined         # "no tests collected" is reported, not passed
