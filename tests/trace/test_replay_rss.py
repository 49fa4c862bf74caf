"""RssAnon after a replay equals the real kernel's, for a program that touches what it allocates.

Method
------

A small C program (compiled here; skipped without a C compiler) makes a deterministic mix of
malloc, calloc, realloc, memalign and free calls (small chunks from the tcache and bins,
medium ones, and blocks above the mmap threshold, so the brk heap grows, is trimmed, and
chunks are mmapped, mremapped and unmapped), and writes every byte of each block it gets
(``memset``), which is what ``memsim replay`` assumes by default (``touch=True``).

"The same" cannot mean the whole RssAnon: the real process also has anonymous memory that has
nothing to do with malloc (its stack, libc's and ld.so's written data, TLS, the program's own
.bss). So both worlds are measured as a *delta*: RssAnon at the end minus RssAnon just
before the first malloc.

- Real: the program reads its own ``/proc/self/status`` (open/read into a static buffer, no
  malloc, no stdio) before its first malloc and at the end, and prints both. Everything else
  that could move RssAnon in between is made to happen before the first reading: the
  program's static arrays (the slot table, and the buffer ``read`` fills, whose page the
  kernel faults in only after it has formatted the status) are written first.
- Simulated: ``replay`` reports RssAnon of the simulated process before the first call and
  after the last (``rss_anon_delta_kb``).

The program is run twice: plainly for the RssAnon figures, and under ``memsim record`` for
the trace (the recorder's own buffers would add to the real RssAnon). Both runs make the same
calls (same binary, same arguments; addresses are not needed for RSS, so the plain run keeps
ASLR). The deltas must be equal to the kB, at several points of the program (argv says how
many rounds to run).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from memsim.trace.record import record
from memsim.trace.replay import replay

PROGRAM = r"""
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[8192];

/* RssAnon in kB from /proc/self/status, without malloc. */
static long rss_anon_kb(void)
{
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strstr(buf, "RssAnon:");
    if (!p) return -1;
    p += 8;
    while (*p == ' ' || *p == '\t') p++;
    long v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    return v;
}

static void put(const char *label, long v)
{
    char out[64], digits[24];
    int i = 0, d = 0;
    for (const char *s = label; *s; s++) out[i++] = *s;
    out[i++] = ' ';
    if (v < 0) { out[i++] = '-'; v = -v; }
    do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (d) out[i++] = digits[--d];
    out[i++] = '\n';
    if (write(1, out, (size_t)i) < 0) _exit(3);
}

static void *touch(void *p, size_t n) { if (p) memset(p, 0x5a, n); return p; }

#define N 3000
static void *slot[N];

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 4;
    /* write our own static data now, so that only malloc moves RssAnon from here on */
    memset(slot, 0, sizeof slot);
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" ::: "memory");
    long before = rss_anon_kb();
    unsigned x = 2463534242u;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < N; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            unsigned k = x % 100;
            size_t n;
            if (k < 60) n = 1 + x % 300;
            else if (k < 85) n = 300 + x % 6000;
            else if (k < 97) n = 8000 + x % 60000;
            else n = 140000 + x % 400000;
            if (slot[i] && (x >> 24) % 3 == 0) {
                free(slot[i]);
                slot[i] = 0;
            } else if (slot[i] && (x >> 24) % 3 == 1) {
                slot[i] = touch(realloc(slot[i], n), n);
            } else if (!slot[i]) {
                unsigned how = (x >> 8) % 16;
                size_t m = 1 + n % 7, each = n / m + 1;
                if (how == 0) slot[i] = touch(calloc(m, each), m * each);
                else if (how == 1) slot[i] = touch(memalign((size_t)64 << (x % 4), n), n);
                else slot[i] = touch(malloc(n), n);
            }
        }
        for (int i = round; i < N; i += 5) { free(slot[i]); slot[i] = 0; }
    }
    long after = rss_anon_kb();
    put("before", before);
    put("after", after);
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) to build the test program")
    d = tmp_path_factory.mktemp("rss")
    src = d / "rss.c"
    src.write_text(PROGRAM)
    exe = d / "rss"
    subprocess.run([cc, "-O1", "-o", str(exe), str(src)], check=True)
    return exe


def real_delta_kb(exe: Path, rounds: int) -> int:
    out = subprocess.run([str(exe), str(rounds)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    figures = dict(line.split() for line in out.splitlines())
    before, after = int(figures["before"]), int(figures["after"])
    assert before > 0 and after > 0, out
    return after - before


@pytest.mark.parametrize("rounds", [1, 4])
def test_rss_anon_delta_equals_the_real_kernels(program: Path, tmp_path: Path,
                                               rounds: int) -> None:
    trace = tmp_path / "rss.trace"
    rec = record([str(program), str(rounds)], trace, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, timeout=120)
    assert rec.returncode == 0 and rec.main is not None
    sim = replay(trace)
    real = real_delta_kb(program, rounds)
    assert sim.rss_anon_delta_kb == real, (
        f"RssAnon grew by {real} kB in the real process and {sim.rss_anon_delta_kb} kB in "
        f"the replay ({sim.calls} calls)")
    # The program makes the brk heap grow and mmaps chunks: both parts are exercised.
    assert sim.syscalls["brk"] > 1 and sim.syscalls["mmap"] > 0 and sim.syscalls["munmap"] > 0


def test_without_touching_the_replay_counts_only_the_allocators_stores(
        program: Path, tmp_path: Path) -> None:
    trace = tmp_path / "rss.trace"
    record([str(program), "1"], trace, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
           timeout=120)
    touched = replay(trace)
    untouched = replay(trace, touch=False)
    # Headers and links touch some pages of the brk heap, but not the insides of big blocks.
    assert 0 < untouched.rss_anon_delta_kb < touched.rss_anon_delta_kb
    assert untouched.calls == touched.calls and untouched.syscalls == touched.syscalls
