"""memsim.Process's malloc family (issue 3, item 1): glibc 2.36 by default, sharing glibc's
cached break with the program's sbrk/brk, checked against a live run of the real glibc."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from memsim import ConfigError, Machine, Process
from memsim.alloc import AllocatorAbort, MallInfo2, create
from memsim.alloc.glibc import Glibc236
from memsim.process import _UNSET

KiB = 1 << 10

# One C program mixing the program's own sbrk/brk with the whole malloc family. It prints
# offsets from the break at start (mmapped pointers as their page offset) into a static
# buffer, so stdio never mallocs before the end, then malloc_stats() on stderr.
MIX_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static char out[1 << 16];
static size_t n;
static char *b0;
static void R(const char *l, long v) { n += snprintf(out + n, sizeof out - n, "%s %ld\n", l, v); }
static void P(const char *l, void *p) {
    long off = (char *)p - b0;
    if (p == NULL) n += snprintf(out + n, sizeof out - n, "%s NULL\n", l);
    else if (off < 0 || off > (1L << 32))
        n += snprintf(out + n, sizeof out - n, "%s mmap+%#lx\n", l, (unsigned long)p & 0xfff);
    else n += snprintf(out + n, sizeof out - n, "%s %#lx\n", l, off);
}
int main(void) {
    b0 = sbrk(0);
    void *p1 = malloc(100); P("malloc", p1); R("usable", malloc_usable_size(p1));
    P("sbrk", sbrk(4096));
    void *p2 = malloc(100000); P("malloc", p2);
    void *p3 = malloc(100000); P("malloc", p3);
    P("sbrk0", sbrk(0));
    void *p4 = calloc(10, 1000); P("calloc", p4);
    void *p5 = realloc(p1, 5000); P("realloc", p5);
    void *p6 = memalign(256, 1000); P("memalign", p6);
    void *p7 = aligned_alloc(64, 640); P("aligned_alloc", p7);
    void *p8 = NULL; R("posix_memalign", posix_memalign(&p8, 4096, 100)); P("ptr", p8);
    void *p9 = NULL; R("posix_memalign", posix_memalign(&p9, 3, 100));
    void *p10 = valloc(5000); P("valloc", p10);
    void *p11 = pvalloc(5000); P("pvalloc", p11); R("usable", malloc_usable_size(p11));
    char *b = sbrk(0); R("brk", brk(b + 8192)); P("sbrk0", sbrk(0));
    void *p12 = malloc(200000); P("malloc", p12); R("usable", malloc_usable_size(p12));
    free(p2); free(p3); free(p5); free(p4);
    R("malloc_trim", malloc_trim(0)); P("sbrk0", sbrk(0));
    R("mallopt", mallopt(M_MMAP_THRESHOLD, 1 << 20));
    void *p13 = malloc(200000); P("malloc", p13);
    free(p12); free(p10);
    P("sbrk", sbrk(12345));
    void *p14 = malloc(300000); P("malloc", p14);
    struct mallinfo2 mi = mallinfo2();
    R("arena", mi.arena); R("ordblks", mi.ordblks); R("hblks", mi.hblks);
    R("hblkhd", mi.hblkhd); R("uordblks", mi.uordblks); R("fordblks", mi.fordblks);
    R("keepcost", mi.keepcost);
    volatile size_t huge = (size_t)-1, big = (size_t)1 << 40;
    errno = 0; P("malloc", malloc(huge)); R("errno", errno);
    errno = 0; P("calloc", calloc(big, big)); R("errno", errno);
    P("realloc", realloc(p6, 0));
    free(NULL); free(p7); free(p8); free(p11); free(p13); free(p14);
    R("malloc_trim", malloc_trim(0)); P("sbrk0", sbrk(0));
    if (write(1, out, n) != (ssize_t)n) return 1;
    malloc_stats();
    return 0;
}
"""


def mix_in_process(proc: Process, step: Callable[[], None] = lambda: None) -> list[str]:
    """MIX_C's calls through memsim.Process, printed the same way (``step`` runs after each
    call: the tests pass ``proc.check``)."""
    out: list[str] = []
    b0 = proc.sbrk(0)
    assert b0 is not None

    def R(label: str, v: int) -> None:
        out.append(f"{label} {v}")
        step()

    def P(label: str, p: int | None) -> None:
        if p is None:
            out.append(f"{label} NULL")
        elif not 0 <= p - b0 <= 1 << 32:
            out.append(f"{label} mmap+{p & 0xfff:#x}")
        else:
            out.append(f"{label} {p - b0:#x}")
        step()

    p1 = proc.malloc(100)
    P("malloc", p1)
    R("usable", proc.malloc_usable_size(p1))
    P("sbrk", proc.sbrk(4096))
    p2 = proc.malloc(100000)
    P("malloc", p2)
    p3 = proc.malloc(100000)
    P("malloc", p3)
    P("sbrk0", proc.sbrk(0))
    p4 = proc.calloc(10, 1000)
    P("calloc", p4)
    p5 = proc.realloc(p1, 5000)
    P("realloc", p5)
    p6 = proc.memalign(256, 1000)
    P("memalign", p6)
    p7 = proc.aligned_alloc(64, 640)
    P("aligned_alloc", p7)
    rc, p8 = proc.posix_memalign(4096, 100)
    R("posix_memalign", rc)
    P("ptr", p8)
    rc, p9 = proc.posix_memalign(3, 100)
    R("posix_memalign", rc)
    assert p9 is None
    p10 = proc.valloc(5000)
    P("valloc", p10)
    p11 = proc.pvalloc(5000)
    P("pvalloc", p11)
    R("usable", proc.malloc_usable_size(p11))
    b = proc.sbrk(0)
    assert b is not None
    R("brk", 0 if proc.brk(b + 8192) == b + 8192 else -1)   # Process.brk: the new break
    P("sbrk0", proc.sbrk(0))
    p12 = proc.malloc(200000)
    P("malloc", p12)
    R("usable", proc.malloc_usable_size(p12))
    for p in (p2, p3, p5, p4):
        proc.free(p)
    R("malloc_trim", proc.malloc_trim(0))
    P("sbrk0", proc.sbrk(0))
    R("mallopt", proc.mallopt("M_MMAP_THRESHOLD", 1 << 20))
    p13 = proc.malloc(200000)
    P("malloc", p13)
    proc.free(p12)
    proc.free(p10)
    P("sbrk", proc.sbrk(12345))
    p14 = proc.malloc(300000)
    P("malloc", p14)
    mi = proc.mallinfo2()
    for k in ("arena", "ordblks", "hblks", "hblkhd", "uordblks", "fordblks", "keepcost"):
        R(k, getattr(mi, k))
    proc.errno = 0
    P("malloc", proc.malloc(-1))
    R("errno", proc.errno)
    proc.errno = 0
    P("calloc", proc.calloc(1 << 40, 1 << 40))
    R("errno", proc.errno)
    P("realloc", proc.realloc(p6, 0))
    for p in (None, p7, p8, p11, p13, p14):
        proc.free(p)
    R("malloc_trim", proc.malloc_trim(0))
    P("sbrk0", proc.sbrk(0))
    return out


@pytest.fixture(scope="module")
def mix_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("mix")
    (d / "mix.c").write_text(MIX_C)
    subprocess.run([cc, "-O0", "-o", str(d / "mix"), str(d / "mix.c")], check=True,
                   capture_output=True)
    return d / "mix"


MALLOC_ENVS = [
    {},
    {"MALLOC_TOP_PAD_": "0", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"},
    {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=4096"},
]


@pytest.mark.parametrize("env", MALLOC_ENVS, ids=["default", "top_pad0-notcache", "thresholds"])
def test_sbrk_brk_and_malloc_share_the_break_like_real_glibc(mix_binary: Path,
                                                              env: dict[str, str]) -> None:
    real_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    real_env.update(env)
    run = subprocess.run([str(mix_binary)], env=real_env, capture_output=True, text=True,
                         check=True, timeout=30)
    real = run.stdout.splitlines()
    proc = Process(env=env) if env else Process()
    model = mix_in_process(proc, proc.check)
    assert model == real
    assert proc.malloc_stats() == run.stderr
    # the program's sbrk/brk and malloc moved one break: the kernel's
    assert proc.sbrk(0) == proc.mm.brk


def test_glibc_by_default_and_created_on_first_use() -> None:
    proc = Process()
    assert proc._alloc is _UNSET            # nothing created, nothing called yet
    old = proc.sbrk(8192)
    assert old == proc.mm.start_brk and proc._alloc is _UNSET
    p = proc.malloc(10)
    assert isinstance(proc.allocator, Glibc236)
    # malloc continued from the program's break: its heap starts where sbrk left it
    assert p is not None and p > old + 8192
    assert proc.allocator.curbrk == proc.mm.brk == proc.sbrk(0)  # type: ignore[attr-defined]
    proc.check()


def _kernel_only_story(proc: Process) -> tuple[str, str, str]:
    assert proc.sbrk(100000) is not None
    b = proc.sbrk(0)
    assert b is not None
    proc.brk(b + 3 * 4096)
    a = proc.mmap(1 << 20)
    assert a is not None
    proc.write(a, 5000)
    proc.write(proc.mm.start_brk, 70000)
    assert proc.sbrk(-4096) is not None
    proc.check()
    return str(proc.maps()), str(proc.status()), proc.statm()


def test_without_malloc_a_process_is_the_kernel_only_process() -> None:
    m1 = Machine(ram="8G", swap=0, overcommit=0)
    m2 = Machine(ram="8G", swap=0, overcommit=0)
    with_glibc = Process(machine=m1, pid=4242)
    kernel_only = Process(machine=m2, pid=4242, allocator=None)
    assert _kernel_only_story(with_glibc) == _kernel_only_story(kernel_only)
    assert kernel_only.allocator is None
    with pytest.raises(ConfigError, match="no allocator"):
        kernel_only.malloc(10)
    with pytest.raises(ConfigError, match="no allocator"):
        kernel_only.mallinfo2()


def test_results_in_c_conventions() -> None:
    proc = Process()
    assert proc.malloc("1k") is not None
    proc.errno = 0
    assert proc.malloc(-1) is None and proc.errno == errno.ENOMEM
    proc.errno = 0
    assert proc.calloc(1 << 33, 1 << 33) is None and proc.errno == errno.ENOMEM
    proc.errno = 0
    assert proc.memalign(1 << 63 | 1, 10) is None and proc.errno == errno.EINVAL
    proc.errno = 0
    assert proc.posix_memalign(24, 10) == (errno.EINVAL, None) and proc.errno == 0
    p = proc.malloc(24)
    assert p is not None
    before = proc.errno
    assert proc.realloc(p, 0) is None and proc.errno == before     # freed, not a failure
    q = proc.malloc(40)
    assert q is not None
    proc.errno = 0
    assert proc.realloc(q, 1 << 62) is None and proc.errno == errno.ENOMEM
    assert proc.malloc_usable_size(q) >= 40                     # q survived the failure
    r = proc.realloc(None, 16)                                   # realloc(NULL, n) is malloc
    assert r is not None and proc.malloc_usable_size(r) >= 16
    assert proc.malloc_usable_size(None) == 0
    proc.free(None)
    proc.free(0)
    assert proc.mallopt("mmap_threshold", 256 * KiB) == 1
    assert proc.mallopt(-3, 256 * KiB) == 1                      # M_MMAP_THRESHOLD
    mi = proc.mallinfo2()
    assert isinstance(mi, MallInfo2) and mi.arena == proc.mm.brk - proc.mm.start_brk
    assert proc.malloc_stats().startswith("Arena 0:\nsystem bytes     =")
    proc.check()


def test_misuse_aborts_like_glibc() -> None:
    proc = Process()
    p = proc.malloc(32)
    proc.free(p)
    with pytest.raises(AllocatorAbort, match="double free detected in tcache 2"):
        proc.free(p)
    with pytest.raises(AllocatorAbort, match="invalid pointer"):
        proc.free(12345)


@pytest.mark.parametrize("call", [
    lambda p: Process(allocator="nonesuch"),
    lambda p: Process(allocator=Glibc236),          # a class, not a name
    lambda p: Process(allocator=None, env={"MALLOC_TOP_PAD_": "0"}),
    lambda p: Process(env={"MALLOC_TOP_PAD_": 0}),
    lambda p: Process(env="MALLOC_TOP_PAD_=0"),     # not a mapping
    lambda p: Process(allocator_options={"bogus": 1}),
    lambda p: Process(env={"A": "1"}, allocator_options={"env": {}}),
    lambda p: p.malloc(1.5),
    lambda p: p.malloc("lots"),
    lambda p: p.free("0x10"),
    lambda p: p.mallopt("M_NOSUCH", 1),
    lambda p: p.mallopt("M_MMAP_MAX", 1 << 40),
    lambda p: setattr(p, "allocator", "glibc"),
])
def test_bad_input_is_a_config_error(call: Callable[[Process], object]) -> None:
    with pytest.raises(ConfigError):
        call(Process())


def test_env_reaches_the_glibc_model() -> None:
    plain, padded = Process(), Process(env={"MALLOC_TOP_PAD_": "0"})
    plain.malloc(10)
    padded.malloc(10)
    heap = [p.mm.brk - p.mm.start_brk for p in (plain, padded)]
    assert heap[1] < heap[0]                    # no 128 KiB top pad: a smaller first sbrk
    assert heap[1] == 4096                      # 0x290 + 0x20 + MINSIZE, rounded to a page


def test_another_registered_allocator() -> None:
    proc = Process(allocator="buddy")
    p = proc.malloc(1000)
    assert p is not None and proc.malloc_usable_size(p) >= 1000
    proc.free(p)
    assert proc.allocator is not None and proc.allocator.name == "buddy"
    proc.check()


def test_check_runs_the_allocators_invariants() -> None:
    proc = Process()
    p = proc.malloc(1 << 20)                    # an mmapped chunk
    assert p is not None
    proc.check()
    alloc = proc.allocator
    assert isinstance(alloc, Glibc236)
    alloc.mp.n_mmaps += 1                       # corrupt malloc_par
    with pytest.raises(AssertionError, match="n_mmaps"):
        proc.check()


def test_attaching_an_allocator_hands_over_the_break() -> None:
    proc = Process()
    old = proc.sbrk(4096)
    assert old is not None
    alloc = create("glibc", proc.mm)
    proc.allocator = alloc
    assert alloc.curbrk == old + 4096           # type: ignore[attr-defined]
    q = proc.sbrk(4096)
    assert q == old + 4096 and alloc.curbrk == old + 8192  # type: ignore[attr-defined]
    p = proc.malloc(10)
    assert p is not None and p > old + 8192
    proc.allocator = None                       # kernel only from here
    assert proc.sbrk(0) == proc.mm.brk
    with pytest.raises(ConfigError):
        proc.malloc(1)
    proc.check()


def test_malloc_after_exit_is_a_config_error() -> None:
    proc = Process()
    assert proc.malloc(10) is not None
    proc.exit()
    proc.check()
    with pytest.raises(ConfigError, match="exited"):
        proc.malloc(10)
