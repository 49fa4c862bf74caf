"""memsim record: a C program whose calls we know, a real tool (sort), fork, exec, the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from memsim.cli import main
from memsim.trace.format import TraceReader
from memsim.trace.record import _no_aslr, aslr_can_be_disabled, record, scan_trace

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc): the recorder's "
                                                   "shim and the test program cannot be built")

# Every malloc-family call of this program is listed in ROOT_OPS, in order. It reports the
# program break at the start of main (before any malloc) on stdout, without using stdio.
PROGRAM = r"""
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *worker(void *arg) { void *p = malloc(48); free(p); return arg; }

int main(int argc, char **argv) {
    char line[64];
    int n = snprintf(line, sizeof line, "%p\n", sbrk(0));
    if (write(1, line, (size_t)n) != n) return 2;
    if (argc > 1 && strcmp(argv[1], "leaf") == 0) { free(malloc(5)); return 0; }
    void *a = malloc(10);
    void *b = calloc(2, 16);
    b = realloc(b, 100);
    void *c = memalign(64, 100);
    void *d;
    if (posix_memalign(&d, 32, 50)) return 3;
    void *e = aligned_alloc(64, 128);
    void *f = valloc(100);
    void *g = pvalloc(100);
    void *h = reallocarray(NULL, 4, 8);
    void *volatile nothing = NULL;
    free(nothing);                 /* a literal free(NULL) is optimised away by gcc */
    n = snprintf(line, sizeof line, "%p %p %p %p\n", a, b, c, d);
    if (write(1, line, (size_t)n) != n) return 2;
    n = snprintf(line, sizeof line, "%p %p %p %p\n", e, f, g, h);
    if (write(1, line, (size_t)n) != n) return 2;
    free(b); free(c); free(d); free(e); free(f); free(g); free(h);
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            free(malloc(77));
            free(a);
            execl("/proc/self/exe", argv[0], "leaf", (char *)NULL);
            _exit(4);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 5;
    }
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        pthread_join(t, NULL);
    }
    free(a);
    return 0;
}
"""
ROOT_OPS = ["m", "c", "r", "a", "a", "a", "v", "p", "r", "f",
            "f", "f", "f", "f", "f", "f", "f"]


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("prog")
    src = d / "prog.c"
    src.write_text(PROGRAM)
    exe = d / "prog"
    subprocess.run([CC, "-O0", "-w", "-pthread", "-o", str(exe), str(src)], check=True)  # type: ignore[list-item]
    return exe


def _calls(path: Path) -> tuple[TraceReader, list[tuple[str, int, int, int, int, int]]]:
    tr = TraceReader(path)
    calls = list(tr)
    return tr, calls


def test_records_every_call_in_order_with_the_real_addresses(program: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "p.trace"
    result = record([str(program)], out, stdout=subprocess.PIPE)
    assert result.returncode == 0
    assert result.main is not None and result.main.path == out
    tr, calls = _calls(out)
    assert [c[0] for c in calls] == ROOT_OPS + ["f"]
    assert result.main.calls == len(calls) and result.main.threads == 1
    assert tr.meta["program"] == str(program)
    assert tr.meta["argv"] == str(program)
    m, c, r, a1, a2, a3, v, p, ra = calls[:9]
    assert m[1] == 10 and c[1:3] == (2, 16) and r[1] == c[3] and r[2] == 100
    assert (a1[1], a1[2]) == (64, 100) and (a2[1], a2[2]) == (32, 50)
    assert (a3[1], a3[2]) == (64, 128) and a1[3] % 64 == 0 and a3[3] % 64 == 0
    assert v[1] == 100 and v[3] % 4096 == 0 and p[3] % 4096 == 0
    assert ra[1:3] == (0, 32)                                 # reallocarray -> realloc
    assert calls[9][:2] == ("f", 0)                           # free(NULL) is recorded
    assert len({c[4] for c in calls}) == 1 and calls[0][4] > 0


def test_brk0_is_the_break_before_the_first_malloc(program: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.trace"
    proc_out = tmp_path / "stdout"
    with open(proc_out, "wb") as so:
        record([str(program)], out, stdout=so.fileno())
    printed = int(proc_out.read_text().split()[0], 16)       # sbrk(0) at the start of main
    tr, calls = _calls(out)
    assert tr.brk0 == printed
    assert tr.brk0 is not None and tr.brk0 % 4096 == 0
    # glibc 2.36 puts its 0x290-byte tcache chunk first, so the first malloc'd chunk is at
    # brk0 + 0x2a0 (glibc-malloc-2.36.md section 3.2): brk0 was taken before any malloc.
    assert calls[0][3] == tr.brk0 + 0x2a0


def test_the_recorder_does_not_move_the_programs_heap(program: Path, tmp_path: Path) -> None:
    """The addresses in the trace are the ones the program gets when it runs without the
    recorder: the shim allocates nothing from the heap and leaves brk alone."""
    if not aslr_can_be_disabled():
        pytest.skip("personality(ADDR_NO_RANDOMIZE) is not allowed here (seccomp?)")
    plain = subprocess.run([str(program)], capture_output=True, check=True,
                           preexec_fn=_no_aslr)
    brk, *pointers = [int(w, 16) for w in plain.stdout.split()]
    out = tmp_path / "same.trace"
    with open(tmp_path / "stdout", "wb") as so:
        record([str(program)], out, stdout=so.fileno())
    assert (tmp_path / "stdout").read_bytes() == plain.stdout
    tr, calls = _calls(out)
    assert tr.brk0 == brk
    # a = malloc, b = realloc(calloc), c, d, e = memalign family, f = valloc, g = pvalloc,
    # h = reallocarray: calls 0, 2, 3, 4, 5, 6, 7, 8
    assert [calls[i][3] for i in (0, 2, 3, 4, 5, 6, 7, 8)] == pointers


def test_addresses_are_reproducible_without_aslr(program: Path, tmp_path: Path) -> None:
    if not aslr_can_be_disabled():
        pytest.skip("personality(ADDR_NO_RANDOMIZE) is not allowed here (seccomp?)")
    runs = []
    for i in range(2):
        out = tmp_path / f"r{i}.trace"
        record([str(program)], out, stdout=subprocess.DEVNULL)
        tr, calls = _calls(out)
        runs.append((tr.brk0, [c[3] for c in calls]))
    assert runs[0] == runs[1]


def test_fork_and_exec_each_get_their_own_file(program: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.trace"
    result = record([str(program), "fork"], out, stdout=subprocess.DEVNULL)
    assert result.returncode == 0
    names = sorted(t.path.name for t in result.traces)
    assert len(result.traces) == 3
    child = next(t for t in result.traces if t.forked_from is not None)
    leaf = next(t for t in result.traces if t is not child and t is not result.main)
    assert child.path.name == f"f.trace.{child.pid}"
    assert leaf.path.name == f"f.trace.{child.pid}.2"        # the image the child exec'd
    assert names == sorted(["f.trace", child.path.name, leaf.path.name])
    # The child's file starts with the parent's calls up to fork, so it replays alone.
    _, parent_calls = _calls(result.traces[0].path)
    ctr, child_calls = _calls(child.path)
    assert int(ctr.meta["inherited"]) == child.inherited == len(ROOT_OPS)
    assert [c[:4] for c in child_calls[: child.inherited]] == \
        [c[:4] for c in parent_calls[: len(ROOT_OPS)]]
    assert [c[0] for c in child_calls[child.inherited:]] == ["m", "f", "f"]
    assert child_calls[-1][1] == parent_calls[0][3]          # it freed the inherited `a`
    assert child.threads == 1                                 # inherited lines not counted
    # The exec'd image starts from scratch: a new brk0 and its own first malloc.
    ltr, leaf_calls = _calls(leaf.path)
    assert [c[0] for c in leaf_calls] == ["m", "f"]
    assert ltr.meta["argv"] == f"{program} leaf"
    assert leaf_calls[0][3] == ltr.brk0 + 0x2a0               # type: ignore[operator]
    for t in result.traces:                                    # no NUL tail after _exit/exec
        assert b"\0" not in t.path.read_bytes()


def test_threads_are_told_apart(program: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.trace"
    result = record([str(program), "thread"], out, stdout=subprocess.DEVNULL)
    assert result.main is not None and result.main.threads == 2
    _, calls = _calls(out)
    assert len({c[4] for c in calls}) == 2


def test_compressed_output_and_stale_files_are_replaced(program: Path, tmp_path: Path) -> None:
    out = tmp_path / "z.trace.zst"
    stale = tmp_path / "z.trace.99999.zst"
    stale.write_text("old")
    result = record([str(program), "fork"], out, stdout=subprocess.DEVNULL, level=3)
    assert not stale.exists()
    assert all(t.path.name.endswith(".zst") for t in result.traces)
    for t in result.traces:
        _, calls = _calls(t.path)
        assert len(calls) == t.calls


def test_recording_a_real_tool_sort(tmp_path: Path) -> None:
    if shutil.which("sort") is None:
        pytest.skip("sort is not installed")
    data = tmp_path / "in.txt"
    data.write_text("".join(f"{(i * 7919) % 1000} line {i}\n" for i in range(3000)))
    out = tmp_path / "sort.trace"
    result = record(["sort", "--parallel=1", "-k1,1n", str(data)], out,
                    stdout=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", "/usr/bin"),
                                                    "LC_ALL": "C"})
    assert result.returncode == 0 and result.main is not None
    tr, calls = _calls(out)          # parsing checks: unique while live, no bad frees
    assert result.main.threads == 1 and len(calls) == result.main.calls > 10
    assert tr.brk0 is not None and tr.brk0 % 4096 == 0
    small = [c[3] for c in calls if c[0] == "m" and 0 < c[1] < 4096 and c[3]]
    assert small and min(small) >= tr.brk0 + 0x290           # after the tcache chunk
    assert max(small) < tr.brk0 + (1 << 30)                   # in the brk heap


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_scan_agrees_with_a_line_by_line_count(tmp_path: Path, block: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import memsim.trace.record as rec

    monkeypatch.setattr(rec, "_SCAN_BLOCK_BYTES", block)
    lines = ["# memsim-trace v1", "# brk0 0x1000", "# inherited 40"]
    lines += [f"m {i} {0x2000 + 16 * i:#x} t=1" for i in range(40)]       # the parent's
    lines += [f"m {i} {0x9000 + 16 * i:#x} t={2 + i % 3}" for i in range(50)]
    lines.insert(60, "# a comment among the calls")
    p = tmp_path / "s.trace"
    p.write_text("\n".join(lines) + "\n")
    info = scan_trace(p)
    assert info.calls == 90 and info.inherited == 40
    assert info.threads == 3                      # t=1 only in the inherited lines


def test_scan_counts_calls_and_threads(tmp_path: Path) -> None:
    p = tmp_path / "s.trace"
    p.write_text("# memsim-trace v1\n# brk0 0x1000\n# pid 5\nm 1 0x10a0 t=5\nm 1 0x10c0 t=6\n"
                 "f 0x10a0 t=5\n")
    info = scan_trace(p)
    assert (info.calls, info.threads, info.brk0, info.pid) == (3, 2, 0x1000, 5)


# --- the command line ---------------------------------------------------------------------

def test_cli_reports_where_the_traces_went(program: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.trace"
    status = main(["record", "-o", str(out), "--", str(program)])
    assert status == 0
    err = capsys.readouterr().err
    assert f"{out}: prog pid" in err and f"{len(ROOT_OPS) + 1} calls" in err
    assert "1 trace," in err


def test_cli_exit_status_is_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "sh.trace"
    assert main(["record", "-o", str(out), "--", "sh", "-c", "exit 7"]) == 7


def test_cli_command_not_found_is_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["record", "-o", str(tmp_path / "x"), "--", "no-such-command-memsim"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.strip() == "memsim: error: command not found: no-such-command-memsim"


def test_cli_without_a_compiler_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-cc"))
    monkeypatch.setenv("MEMSIM_CACHE_DIR", str(tmp_path / "cache"))
    status = main(["record", "-o", str(tmp_path / "x"), "--", "true"])
    err = capsys.readouterr().err
    assert status == 1
    assert len(err.strip().splitlines()) == 1 and "C compiler" in err


def test_cli_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record"]) == 2
    assert "no command to record" in capsys.readouterr().err
