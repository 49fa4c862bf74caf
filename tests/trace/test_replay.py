"""Tests for memsim.trace.replay.replay, the syscall proxy and ``memsim replay``.

The traces are recordings of a small C program compiled here (skipped without a C compiler),
made with ``memsim record``; the strace comparison runs the same program under strace
(skipped without strace). Nothing is compared with hard-coded addresses: the references are
the recording and strace of this machine.
"""

from __future__ import annotations

import ctypes
import io
import json
import re
import shutil
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import memsim.cli as cli
from memsim.errors import TraceError
from memsim.kernel.abi import (
    ENOMEM,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_STACK,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
)
from memsim.process import Process
from memsim.trace import open_trace
from memsim.trace.format import Call, TraceWriter
from memsim.trace.record import ADDR_NO_RANDOMIZE, fixed_environment, record
from memsim.trace.replay import PROGRESS_EVERY, Replayer, check, replay
from memsim.trace.syscall_log import SyscallLog, format_call, mmap_flags, prot_names
from memsim.units import PAGE_SIZE

PROGRAM = r"""
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define N 700
static void *slot[N];

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    volatile size_t huge = (size_t)-1;
    free(NULL);
    void *a = malloc(10), *b = calloc(4, 25), *c = realloc(NULL, 40), *d = NULL;
    if (posix_memalign(&d, 64, 100) != 0) return 1;
    void *e = aligned_alloc(256, 512), *f = valloc(100), *g = pvalloc(5000);
    void *h = memalign(32, 70);
    void *big = malloc(300000);
    memset(big, 1, 300000);
    big = realloc(big, 600000);
    big = realloc(big, 100);
    void *none = malloc(huge);                 /* fails: NULL */
    c = realloc(c, 0);                         /* frees c, returns NULL */
    unsigned x = 88172645u;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < N; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            unsigned k = x % 100;
            size_t n = k < 70 ? 1 + x % 200 : k < 95 ? 200 + x % 5000 : 100000 + x % 300000;
            if (slot[i] && (x >> 24) % 3 == 0) { free(slot[i]); slot[i] = 0; }
            else if (slot[i]) slot[i] = realloc(slot[i], n);
            else if ((x >> 8) % 9 == 0) slot[i] = calloc(1 + n % 5, n / 5 + 1);
            else slot[i] = malloc(n);
        }
        for (int i = round; i < N; i += 4) { free(slot[i]); slot[i] = 0; }
    }
    free(a); free(b); free(d); free(e); free(f); free(g); free(h); free(big); free(none);
    for (int i = 0; i < N; i += 2) free(slot[i]);
    return c != NULL;
}
"""


def _no_aslr() -> None:  # between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality(libc.personality(0xFFFFFFFF) | ADDR_NO_RANDOMIZE)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) to build the test program")
    d = tmp_path_factory.mktemp("prog")
    src = d / "prog.c"
    src.write_text(PROGRAM)
    exe = d / "prog"
    subprocess.run([cc, "-O1", "-w", "-o", str(exe), str(src)], check=True)
    return exe


@pytest.fixture(scope="module")
def trace(program: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trace") / "prog.trace"
    rec = record([str(program)], out, env=fixed_environment(), stdout=subprocess.DEVNULL,
                 timeout=120)
    assert rec.returncode == 0 and rec.main is not None
    return out


def calls_of(path: Path | str) -> list[Call]:
    with open_trace(path) as reader:
        return list(reader)


def in_heap(ptr: int, brk0: int) -> bool:
    return brk0 <= ptr < brk0 + (1 << 32)


# --- the strace notation ------------------------------------------------------------------

def test_strace_notation_of_flags_and_padding() -> None:
    assert prot_names(PROT_READ | PROT_WRITE) == "PROT_READ|PROT_WRITE"
    assert prot_names(0) == "PROT_NONE"
    assert mmap_flags(MAP_PRIVATE | MAP_ANONYMOUS) == "MAP_PRIVATE|MAP_ANONYMOUS"
    # strace's table order (not numeric): NORESERVE before GROWSDOWN/STACK
    assert mmap_flags(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK | 0x100) == \
        "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_GROWSDOWN|MAP_STACK"
    assert mmap_flags(MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS) == \
        "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS"
    short = format_call("munmap(0x7ffff68fd000, 602112)", "0")
    assert short.index("= ") == 40 and short.endswith("= 0")
    long_ = format_call("mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, "
                        "-1, 0)", "0x7f0000000000")
    assert long_.endswith(", -1, 0) = 0x7f0000000000")


def test_syscall_log_forwards_counts_and_tracks_mappings() -> None:
    proc = Process()
    out = io.StringIO()
    log = SyscallLog(proc.mm, out)
    assert log.write == proc.mm.write          # the hot path is not wrapped
    brk = log.sys_brk(0)
    assert log.sys_brk(brk + 3 * PAGE_SIZE) == brk + 3 * PAGE_SIZE
    a = log.sys_mmap(0, 5 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    assert a > 0 and log.mapped == 5 * PAGE_SIZE
    assert log.sys_munmap(a + PAGE_SIZE, PAGE_SIZE) == 0        # a hole in the middle
    assert log.mapped == 4 * PAGE_SIZE and len(log.maps) == 2
    b = log.sys_mremap(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE, 6 * PAGE_SIZE, MREMAP_MAYMOVE)
    assert b > 0 and log.mapped == 7 * PAGE_SIZE and log.peak_mapped == 7 * PAGE_SIZE
    huge = log.sys_mmap(0, 1 << 62, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    assert huge == -ENOMEM and log.failed == 1
    log.check()
    assert log.counts["brk"] == 2 and log.counts["mmap"] == 2 and log.counts["munmap"] == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == log.lines == log.total == 6
    assert lines[0] == format_call("brk(NULL)", f"{brk:#x}")
    assert lines[3] == format_call(f"munmap({a + PAGE_SIZE:#x}, {PAGE_SIZE})", "0")
    assert lines[4] == format_call(
        f"mremap({a + 2 * PAGE_SIZE:#x}, {3 * PAGE_SIZE}, {6 * PAGE_SIZE}, MREMAP_MAYMOVE)",
        f"{b:#x}")
    assert lines[5].endswith("= -1 ENOMEM (Cannot allocate memory)")
    c = log.sys_mremap(b, 6 * PAGE_SIZE, 6 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED,
                       b - (1 << 30))
    assert c == b - (1 << 30)
    assert out.getvalue().splitlines()[-1].startswith(
        f"mremap({b:#x}, {6 * PAGE_SIZE}, {6 * PAGE_SIZE}, MREMAP_MAYMOVE|MREMAP_FIXED, "
        f"{c:#x})")
    assert log.sys_madvise(c, PAGE_SIZE, 4) == 0
    assert log.sys_mprotect(c, PAGE_SIZE, PROT_READ) == 0
    assert out.getvalue().splitlines()[-2:] == [
        format_call(f"madvise({c:#x}, {PAGE_SIZE}, MADV_DONTNEED)", "0"),
        format_call(f"mprotect({c:#x}, {PAGE_SIZE}, PROT_READ)", "0")]
    assert log.sys_munmap(c + 1, PAGE_SIZE) < 0 and log.failed == 2
    assert out.getvalue().splitlines()[-1].endswith("= -1 EINVAL (Invalid argument)")
    log.check()


# --- replaying a recording ------------------------------------------------------------------

def test_summary_figures_agree_with_the_trace_and_the_kernel(trace: Path) -> None:
    calls = calls_of(trace)
    out = io.StringIO()
    r = replay(trace, emit_syscalls=out)
    # live bytes and objects, computed here from the trace alone
    live: dict[int, int] = {}
    cur = peak = peak_n = 0
    for op, a, b, ret, _tid, _ in calls:
        if op == "f":
            cur -= live.pop(a, 0)
            continue
        if op == "r" and a:
            cur -= live.pop(a)
            if b == 0 or ret == 0:
                if ret == 0 and b:
                    live[a] = 0        # (not in this program: no failed realloc)
                continue
        size = a * b if op == "c" else b if op in "ra" else a
        if ret:
            live[ret] = size
            cur += size
            peak = max(peak, cur)
            peak_n = max(peak_n, len(live))
    assert r.calls == len(calls)
    assert r.ops["free"] == sum(1 for c in calls if c[0] == "f")
    assert (r.live_bytes, r.live_objects) == (cur, len(live))
    assert (r.peak_live_bytes, r.peak_live_objects) == (peak, peak_n)
    assert r.brk0 == open_trace(trace).brk0 == r.start_brk
    assert r.threads == 1 and r.failed_allocations == 0 and r.skipped == 0
    # syscalls: the counts are the lines of the log
    names = [line.split("(")[0] for line in out.getvalue().splitlines()]
    assert {k: names.count(k) for k in r.syscalls} == r.syscalls
    assert r.syscalls["mremap"] >= 1 and r.syscalls["munmap"] >= 1
    # the heap is what the brk lines say; the peak is the highest break
    breaks = [int(line.rsplit("= ", 1)[1], 16) for line in out.getvalue().splitlines()
              if line.startswith("brk(")]
    assert r.heap_bytes == breaks[-1] - r.start_brk
    assert r.peak_heap_bytes == max(breaks) - r.start_brk
    assert r.rss_anon_kb > r.rss_anon_start_kb
    d = r.as_dict()
    assert json.loads(json.dumps(d))["calls"] == r.calls and d["events_per_second"] > 0


def test_emit_trace_round_trips_through_the_reader(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim.trace.zst"
    r = replay(trace, emit_trace=out)
    original = calls_of(trace)
    emitted = calls_of(out)                    # read back with the reader's own checks on
    assert len(emitted) == len(original) == r.calls
    brk0 = r.start_brk
    assert open_trace(out).brk0 == brk0
    for (op, a, b, ret, tid, _), (op2, a2, b2, ret2, tid2, _) in zip(original, emitted,
                                                                     strict=True):
        assert (op, b, tid) == (op2, b2, tid2)
        if op != "f" and op != "r":
            assert a == a2
        for real, sim in ((ret, ret2), (a, a2) if op in "fr" else (0, 0)):
            # heap addresses are the recorded ones; mmapped chunks are mmapped in both
            assert real == sim or (not in_heap(real, brk0) and not in_heap(sim, brk0))
    # The emitted trace carries the model's own mmap addresses: checked against itself,
    # every pointer is the same address.
    res = check(out)
    assert res.ok and res.matched == res.compared == res.heap_matched + res.null_matched


def test_object_identity_survives_other_recorded_addresses(trace: Path, tmp_path: Path
                                                           ) -> None:
    """Relabel every recorded pointer: the simulation must not change at all."""
    original = calls_of(trace)
    meta = dict(open_trace(trace).meta)
    relabeled = tmp_path / "relabeled.trace"

    def moved(p: int) -> int:
        return p ^ 0x0000100000000ff0 if p else 0

    with TraceWriter(relabeled, meta) as w:
        for op, a, b, ret, tid, _ in original:
            w.write_call((op, moved(a) if op in "fr" else a, b, moved(ret), tid))
    sim1, sim2 = tmp_path / "a.trace", tmp_path / "b.trace"
    r1 = replay(trace, emit_trace=sim1)
    r2 = replay(relabeled, emit_trace=sim2)
    assert [c[:4] for c in calls_of(sim1)] == [c[:4] for c in calls_of(sim2)]
    assert (r1.live_objects, r1.live_bytes, r1.rss_anon_kb, r1.syscalls) == \
        (r2.live_objects, r2.live_bytes, r2.rss_anon_kb, r2.syscalls)
    # and the check sees every heap pointer differ, yet goes on to the end
    res = check(relabeled, keep_going=True)
    assert not res.ok and res.mismatched > 0 and res.replay.calls == len(original)


def test_brk_and_mmap_calls_match_strace_of_the_same_program(program: Path, trace: Path,
                                                             tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-o", str(log), "-e", "trace=brk,mmap,munmap,mremap",
                    str(program)], env=fixed_environment(), stdout=subprocess.DEVNULL,
                   preexec_fn=_no_aslr, timeout=120)
    pattern = re.compile(r"^(\w+)\((.*)\)\s+= (.*)$")
    real = [m.groups() for m in map(pattern.match, log.read_text().splitlines()) if m]
    # The loader's brk(NULL) comes first: its result is the break the recorder saw.
    assert real[0][0] == "brk" and real[0][1] == "NULL"
    brk0 = int(real[0][2], 16)
    assert brk0 == open_trace(trace).brk0
    # glibc's malloc starts with its own brk(NULL): everything from there is malloc's.
    start = next(i for i, (name, args, _) in enumerate(real)
                 if i > 0 and name == "brk" and args == "NULL")
    real = real[start:]
    out = io.StringIO()
    replay(trace, emit_syscalls=out)
    sim = [m.groups() for m in map(pattern.match, out.getvalue().splitlines()) if m]
    # brk: identical lines, addresses included (the heap is at the same place)
    assert [s for s in sim if s[0] == "brk"] == [s for s in real if s[0] == "brk"]
    assert sum(1 for s in sim if s[0] == "brk") >= 2

    def shape(calls: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """mmap/munmap/mremap without addresses (the libraries mapped differ)."""
        shaped = []
        for name, args, _ in calls:
            parts = args.split(", ")
            if name == "mmap":
                shaped.append((name, *parts[1:]))
            elif name == "munmap":
                shaped.append((name, parts[1]))
            elif name == "mremap":
                shaped.append((name, *parts[1:]))
            else:
                shaped.append((name, args))
        return shaped

    assert shape(sim) == shape(real)
    assert any(s[0] == "mremap" for s in sim)


# --- memory, progress, bad input ------------------------------------------------------------

def _pairs(n: int) -> Iterator[Call]:
    """malloc/free pairs whose recorded addresses are all different (never reused)."""
    for i in range(n):
        p = 0x5555_0000_0000 + 16 * i
        yield ("m", 24 + i % 50, 0, p, 0, 2 * i + 1)
        yield ("f", p, 0, 0, 0, 2 * i + 2)


def _peak_bytes(n: int) -> int:
    rep = Replayer(brk0=0x5555_5555_9000)
    tracemalloc.start()
    try:
        rep.feed(_pairs(n))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_with_live_objects_not_with_calls() -> None:
    small, large = _peak_bytes(2_000), _peak_bytes(16_000)
    assert large < 1.5 * small + 200_000, (small, large)
    rep = Replayer(brk0=0x5555_5555_9000)
    rep.feed(_pairs(1000))
    assert rep.live == {} and rep.peak_live_objects == 1


def test_progress_is_reported() -> None:
    seen: list[int] = []
    rep = Replayer(brk0=0x5555_5555_9000, touch=False)
    n = PROGRESS_EVERY // 2 + 10
    rep.feed(_pairs(n), progress=seen.append)
    assert seen and seen[0] == PROGRESS_EVERY and seen[-1] == 2 * n
    assert rep.result().calls == 2 * n


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("body, message", [
    ("m 10 0x1000\nf 0x2000\n", "free of 0x2000, which is not live"),
    ("m 10 0x1000\nm 20 0x1000\n", "returned while still live"),
    ("m 10 0x1000\nr 0x1000 0 0x1000\n", "must free and return 0x0"),
    ("r 0x3000 10 0x4000\n", "realloc of 0x3000, which is not live"),
    ("m ten 0x1000\n", "not a decimal number"),
    ("q 1 2\n", "unknown operation"),
])
def test_bad_traces_raise_one_error_naming_file_and_line(tmp_path: Path, body: str,
                                                         message: str) -> None:
    path = _write(tmp_path / "bad.trace", "# memsim-trace v1\n# brk0 0x555555559000\n" + body)
    with pytest.raises(TraceError) as info:
        replay(path)
    text = str(info.value)
    assert message in text and "bad.trace:" in text and "\n" not in text
    assert info.value.lineno == 2 + body.count("\n")


def test_skip_bad_counts_and_goes_on(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.trace", "# memsim-trace v1\n# brk0 0x555555559000\n"
                  "m 10 0x1000\nf 0x2000\nq\nf 0x1000\nm 5 0x1000\n")
    r = replay(path, skip_bad=True)
    assert r.skipped == 2 and r.calls == 3 and r.live_objects == 1
    assert r.skip_report is not None and "0x2000" in r.skip_report


def test_an_mtrace_log_replays_without_brk0(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.log", "= Start\n@ ./p:[0x1] + 0x5555555592a0 0x64\n"
                  "@ ./p:[0x1] < 0x5555555592a0\n@ ./p:[0x1] > 0x555555559310 0x3e8\n"
                  "@ ./p:[0x1] - 0x555555559310\n= End\n")
    r = replay(path)
    assert r.calls == 3 and r.brk0 is None and r.live_objects == 0
    assert any("brk0" in n for n in r.notes)
    with pytest.raises(TraceError, match="no brk0"):
        check(path)


def test_a_non_pie_break_below_the_default_image_is_placed(tmp_path: Path) -> None:
    path = _write(tmp_path / "low.trace", "# memsim-trace v1\n# brk0 0x256d000\n"
                  "m 10 0x256d2a0\n")
    r = replay(path)
    assert r.start_brk == 0x256d000 and not r.notes
    assert check(path).ok


# --- the command --------------------------------------------------------------------------

def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_replay_prints_the_summary(trace: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    status, out, err = run_main(capsys, "replay", str(trace), "--plain")
    assert status == 0 and err == ""
    for label in ("calls", "live", "heap", "mapped", "RssAnon", "syscalls", "time"):
        assert re.search(rf"^{label}\s", out, re.M), label
    assert "events/s" in out


def test_cli_replay_json(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(capsys, "replay", str(trace), "--json", "--no-touch")
    doc = json.loads(out)
    assert status == 0 and doc["touch"] is False and doc["calls"] == len(calls_of(trace))
    assert set(doc["syscalls"]) >= {"brk", "mmap", "munmap", "mremap"}
    assert doc["rss_anon_kb"] > 0 and doc["events_per_second"] > 0


def test_cli_emit_syscalls_and_trace(trace: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    sysout, simout = tmp_path / "sys.txt", tmp_path / "sim.trace"
    status, _, _ = run_main(capsys, "replay", str(trace), "--emit-syscalls", str(sysout),
                            "--emit-trace", str(simout), "--plain")
    assert status == 0
    line = re.compile(
        r"^(brk\((NULL|0x[0-9a-f]+)\)"
        r"|mmap\(NULL, \d+, PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS, -1, 0\)"
        r"|munmap\(0x[0-9a-f]+, \d+\)"
        r"|mremap\(0x[0-9a-f]+, \d+, \d+, MREMAP_MAYMOVE\)) += (0x[0-9a-f]+|0)$")
    lines = sysout.read_text().splitlines()
    assert lines and all(line.match(x) for x in lines), lines
    assert all(x.index("= ") == 40 for x in lines if len(x.split(" =")[0]) < 40)
    assert len(calls_of(simout)) == len(calls_of(trace))
    # to stdout: the syscalls go to stdout, the summary to stderr
    status, out, err = run_main(capsys, "replay", str(trace), "--emit-syscalls", "-")
    assert status == 0 and out.splitlines() == lines and "RssAnon" in err


@pytest.mark.parametrize("text, needle", [
    ("not a trace\n", "not a memsim-trace v1 trace"),
    ("# memsim-trace v1\n# brk0 0x555555559000\nf 0x0\nf 0x20\n", "free of 0x20"),
    ("", "empty file"),
])
def test_cli_bad_traces_fail_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           text: str, needle: str) -> None:
    path = _write(tmp_path / "t.trace", text)
    for command in ("replay", "check"):
        status, out, err = run_main(capsys, command, str(path))
        assert status == 1 and out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("memsim: error:")
        assert needle in err


def test_cli_usage_errors(trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    status, _, err = run_main(capsys, "replay", str(tmp_path / "missing.trace"))
    assert status == 1 and len(err.strip().splitlines()) == 1 and "missing.trace" in err
    status, _, err = run_main(capsys, "replay", str(trace), "--allocator", "nope")
    assert status == 1 and "unknown allocator 'nope'" in err
    status, _, err = run_main(capsys, "replay", str(trace), "--env", "NOEQUALS")
    assert status == 2 and "NAME=VALUE" in err
    status, _, err = run_main(capsys, "replay", str(trace), "--emit-trace", "-",
                              "--emit-syscalls", "-")
    assert status == 2


def test_cli_reads_standard_input_and_writes_the_trace_to_stdout(
        trace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = trace.read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    status, out, err = run_main(capsys, "replay", "-", "--emit-trace", "-", "--plain")
    assert status == 0 and "RssAnon" in err          # the summary moves to stderr
    emitted = tmp = trace.parent / "from-stdout.trace"
    tmp.write_text(out)
    assert len(calls_of(emitted)) == len(calls_of(trace))


def test_progress_only_on_a_terminal_and_never_on_stdout(
        capsys: pytest.CaptureFixture[str]) -> None:
    from memsim.cli.replay import progress_callback

    with progress_callback("replaying x") as cb:      # stderr is not a terminal here
        assert cb is None
    with progress_callback("replaying x", enabled=True) as cb:
        assert cb is not None
        for done in range(0, 4 * PROGRESS_EVERY, PROGRESS_EVERY):
            cb(done)
    out, _ = capsys.readouterr()
    assert out == ""


def test_a_bad_realloc_line_changes_nothing_in_the_simulation(tmp_path: Path) -> None:
    """A skipped line must leave the model as if it were not there (fast loop and stepwise)."""
    good = _write(tmp_path / "good.trace", "# memsim-trace v1\n# brk0 0x555555559000\n"
                  "m 10 0x1000\nm 20 0x2000\nf 0x1000\n")
    bad = _write(tmp_path / "bad.trace", "# memsim-trace v1\n# brk0 0x555555559000\n"
                 "m 10 0x1000\nr 0x1000 0 0x1000\nm 20 0x2000\nr 0x2000 5 0x1000\nf 0x1000\n")
    for emit in (None, tmp_path / "out.trace"):
        r_good = replay(good, emit_trace=emit)
        r_bad = replay(bad, skip_bad=True, emit_trace=emit)
        assert r_bad.skipped == 2
        assert (r_bad.calls, r_bad.live_objects, r_bad.live_bytes, r_bad.rss_anon_kb) == \
            (r_good.calls, r_good.live_objects, r_good.live_bytes, r_good.rss_anon_kb)
        assert r_bad.ops == r_good.ops


def test_the_oom_killer_ends_the_replay_with_the_call_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from memsim.kernel.machine import Machine

    body = "".join(f"m 20000000 {0x7F00_0000_0010 - i * 0x1000_0000:#x}\n" for i in range(4))
    path = _write(tmp_path / "big.trace", "# memsim-trace v1\n# brk0 0x555555559000\n" + body)
    with pytest.raises(TraceError, match="SIGKILL") as info:
        replay(path, machine=Machine(ram="64M"))
    assert info.value.lineno == 6          # the fourth 20 MB block does not fit in 64 MiB
    # without touching, nothing is resident, so nothing is killed
    assert replay(path, touch=False, machine=Machine(ram="64M")).calls == 4
    status, _, err = run_main(capsys, "replay", str(path), "--ram", "64M")
    assert status == 1 and "big.trace:6:" in err and len(err.strip().splitlines()) == 1
    status, _, _ = run_main(capsys, "replay", str(path), "--ram", "64M", "--swap", "64M")
    assert status == 0


def test_invariants_hold_after_every_call_of_a_recording(trace: Path) -> None:
    """Replayer.check (object map, peaks, proxy, allocator, process) after each call, both
    through the fast loop (in slices) and one call at a time."""
    calls = calls_of(trace)
    brk0 = open_trace(trace).brk0
    fast, slow = Replayer(brk0=brk0), Replayer(brk0=brk0)
    for i in range(0, len(calls), 97):
        fast.feed(calls[i:i + 97])
        fast.check()
    for call in calls[:400]:
        slow.step(call)
        slow.check()
    assert fast.result().calls == len(calls)
    assert fast.result().as_dict() | {"seconds": 0, "events_per_second": 0} == \
        replay(trace).as_dict() | {"seconds": 0, "events_per_second": 0, "trace": "<trace>"}


def test_the_native_replayer_reproduces_the_recording(trace: Path, tmp_path: Path) -> None:
    """src/memsim/native/replay.c (the benchmark's physical limit) replays the same calls
    through the real glibc: it must read every call, and every heap pointer glibc returns
    there must sit at the recorded offset from the initial break."""
    from memsim.native.build import NativeBuildError, build_native

    try:
        binary = build_native("replay.c", shared=False)
    except NativeBuildError as e:
        pytest.skip(str(e))
    for flags in ([], ["-t"]):
        out = subprocess.run([str(binary), *flags, str(trace)], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        fields = dict(kv.split("=", 1) for kv in out.split())
        assert int(fields["calls"]) == len(calls_of(trace))
        assert int(fields["heap_compared"]) > 1000
        assert fields["heap_same"] == fields["heap_compared"]
        assert float(fields["events_per_s"]) > 0 and float(fields["cpu_events_per_s"]) > 0
    bad = _write(tmp_path / "bad.trace", "# memsim-trace v1\nf 0x10\n")
    r = subprocess.run([str(binary), str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "not live" in r.stderr
