"""glibc mtrace logs: a live log from this machine's glibc, and every malformed shape."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from memsim.errors import TraceError
from memsim.trace import open_trace
from memsim.trace.format import TraceReader
from memsim.trace.mtrace import MtraceReader, looks_like_mtrace

# The C program whose mtrace log is read back: each call is named in CALLS, in order.
MTRACE_PROGRAM = r"""
#include <mcheck.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    mtrace();
    void *a = malloc(100);
    void *b = calloc(3, 40);
    a = realloc(a, 1000);
    void *c = realloc(NULL, 5);
    c = realloc(c, 0);
    void *d = memalign(64, 100);
    void *e;
    if (posix_memalign(&e, 32, 50)) return 1;
    volatile size_t huge = SIZE_MAX - 100;
    void *f = realloc(b, huge);
    free(a); free(NULL); free(d); free(e); free(b);
    muntrace();
    printf("%p %p\n", (void *)c, f);
    return 0;
}
"""
# (op, size or None): what the log must say, with the mapping the reader documents.
CALLS = [("m", 100), ("m", 120), ("r", 1000), ("m", 5), ("f", None), ("m", 100), ("m", 50),
         ("r", None), ("f", None), ("f", None), ("f", None), ("f", None)]

DEBUG_LIB = "libc_malloc_debug.so.0"


def _live_mtrace_log(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) to build the mtrace test program")
    src = tmp_path / "mt.c"
    src.write_text(MTRACE_PROGRAM)
    exe = tmp_path / "mt"
    subprocess.run([cc, "-O0", "-w", "-o", str(exe), str(src)], check=True)
    log = tmp_path / "mt.log"
    env = {**os.environ, "MALLOC_TRACE": str(log), "LD_PRELOAD": DEBUG_LIB}
    proc = subprocess.run([str(exe)], env=env, capture_output=True, text=True)
    if "cannot be preloaded" in proc.stderr or not log.exists():
        pytest.skip(f"glibc's {DEBUG_LIB} is not available to produce an mtrace log")
    assert proc.returncode == 0, proc.stderr
    return log


def test_a_real_mtrace_log_reads_as_the_calls_the_program_made(tmp_path: Path) -> None:
    log = _live_mtrace_log(tmp_path)
    with MtraceReader(log) as tr:
        calls = list(tr)
    assert tr.sessions == 1
    assert [(c[0], c[1] if c[0] == "m" else c[2] if c[0] == "r" and c[3] else None)
            for c in calls] == CALLS
    a, b = calls[0][3], calls[1][3]
    assert calls[2][1] == a                 # realloc(a, 1000): '<' a, '>' new
    assert calls[7][1] == b and calls[7][3] == 0   # the failed realloc of b: '!' b SIZE
    assert calls[4][1] == calls[3][3]      # realloc(c, 0) logs a free of c
    assert all(c[4] == 0 for c in calls)   # mtrace has no thread ids
    assert tr.brk0 is None


def test_open_trace_recognises_mtrace(tmp_path: Path) -> None:
    log = _live_mtrace_log(tmp_path)
    gz = tmp_path / "mt.log.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    with open_trace(gz) as tr:
        assert isinstance(tr, MtraceReader)
        assert len(list(tr)) == len(CALLS)


SAMPLE = """= Start
@ ./prog:[0x4005d6] + 0x1e8f460 0x64
@ /lib/x86_64-linux-gnu/libc.so.6:(_IO_file_doallocate+0x94)[0x7f00] + 0x1e8f4d0 0x1000
+ 0x1e904e0 0x10
@ [0x400600] < 0x1e8f460
@ [0x400600] > 0x1e90500 0x200
- 0x1e904e0
@ ./prog:[0x400610] + (nil) 0xffffffffffff
! 0x1e90500 0xffffffffffffff00
- 0x1e90500
= End"""


def test_sample_shapes_without_caller_and_with_nil(tmp_path: Path) -> None:
    p = tmp_path / "s.log"
    p.write_text(SAMPLE)                  # no newline after "= End", as glibc writes it
    with MtraceReader(p) as tr:
        calls = [c[:4] for c in tr]
    assert calls == [
        ("m", 0x64, 0, 0x1e8f460), ("m", 0x1000, 0, 0x1e8f4d0), ("m", 0x10, 0, 0x1e904e0),
        ("r", 0x1e8f460, 0x200, 0x1e90500), ("f", 0x1e904e0, 0, 0), ("m", 0xffffffffffff, 0, 0),
        ("r", 0x1e90500, 0xffffffffffffff00, 0), ("f", 0x1e90500, 0, 0)]


def test_first_line_detection() -> None:
    assert looks_like_mtrace(b"= Start\n")
    assert looks_like_mtrace(b"@ ./x:[0x1] + 0x10 0x5\n")
    assert looks_like_mtrace(b"+ 0x10 0x5\n")
    assert not looks_like_mtrace(b"# memsim-trace v1\n")


@pytest.mark.parametrize("body,why", [
    ("@ ./p:[0x1] * 0x10 0x5\n", "not an mtrace line"),
    ("@ ./p:[0x1] + 0x10 five\n", "not a hexadecimal number"),
    ("@ ./p:[0x1] + 0x10 100\n", "not a hexadecimal number"),
    ("- 0x10\n", "free of unknown address 0x10"),
    ("+ 0x10 0x5\n- 0x10\n- 0x10\n", "double free of 0x10"),
    ("+ 0x10 0x5\n< 0x10\n+ 0x20 0x5\n", "'<' line without its '>'"),
    ("> 0x20 0x5\n", "without a '<' line"),
    ("+ 0x10 0x5\n< 0x10\n", "the log ends"),
    ("garbage here\n", "not an mtrace line"),
])
def test_bad_mtrace_lines_name_file_and_line(tmp_path: Path, body: str, why: str) -> None:
    p = tmp_path / "bad.log"
    p.write_text("= Start\n" + body + "= End\n")
    with pytest.raises(TraceError) as e, MtraceReader(p) as tr:
        list(tr)
    assert why in str(e.value)
    assert str(p) in str(e.value) and e.value.lineno is not None
    with MtraceReader(p, skip_bad=True) as tr2:
        list(tr2)
    assert tr2.skipped >= 1
    assert tr2.skip_report() is not None


def test_truncated_compressed_mtrace_is_an_error(tmp_path: Path) -> None:
    text = "= Start\n" + "".join(f"+ {0x1000 + 32 * i:#x} 0x10\n" for i in range(40_000))
    data = gzip.compress(text.encode())
    p = tmp_path / "cut.log"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated"), MtraceReader(p, skip_bad=True) as tr:
        list(tr)


def test_mtrace_converts_to_a_memsim_trace(tmp_path: Path) -> None:
    from memsim.trace.format import write_trace

    p = tmp_path / "s.log"
    p.write_text(SAMPLE)
    out = tmp_path / "s.trace.zst"
    with MtraceReader(p) as tr:
        write_trace(out, tr, {"source": "mtrace"})
    with TraceReader(out) as tr2, MtraceReader(p) as tr3:
        assert [c[:4] for c in tr2] == [c[:4] for c in tr3]
