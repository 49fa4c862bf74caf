"""Run malloc call scripts through the real glibc of this machine and through the model.

The script language is the one of ``c/replay.c`` (one op per line, see there). The real run
is ``replay`` under ``strace -e trace=brk,mmap,munmap,mremap,madvise``; the model run is
:class:`memsim.alloc.glibc.Glibc236` over a :class:`FakeSyscalls` (or any Syscalls given).
Both produce the same two lists: the printed result of each op, and the memory syscalls made
after the replay started, normalised (addresses relative to the initial break, mmap lengths).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from memsim.alloc.glibc import Glibc236
from memsim.kernel.abi import (
    MAP_ANONYMOUS,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    PROT_NONE,
    Syscalls,
)

from .fakesys import FakeSyscalls

HERE = Path(__file__).parent
REPLAY_C = HERE / "c" / "replay.c"
_BUILD = Path(tempfile.gettempdir()) / f"memsim-alloc-{os.getuid()}"


def have_toolchain() -> bool:
    return shutil.which("gcc") is not None and shutil.which("strace") is not None


def replay_binary() -> Path:
    """Compile c/replay.c once (cached by the hash of its source)."""
    src = REPLAY_C.read_bytes()
    exe = _BUILD / f"replay-{hashlib.sha1(src).hexdigest()[:12]}"
    if not exe.exists():
        _BUILD.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["gcc", "-O1", "-o", str(tmp), str(REPLAY_C)], check=True)
        tmp.replace(exe)
    return exe


def madvise_line(offset: int, length: int) -> str:
    """``madvise`` normalised: heap offsets, or ``ext`` outside the brk heap."""
    if 0 <= offset < 1 << 32:
        return f"madvise {offset:+#x} {length}"
    return f"madvise ext {length}"


_STRACE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(\S+)")


def _norm_strace(lines: Sequence[str], base: int) -> list[str]:
    out: list[str] = []
    started = False
    for line in lines:
        m = _STRACE.match(line)
        if not m:
            continue
        name, args, ret = m.groups()
        if name == "getppid":
            started = True
            continue
        if not started:
            continue
        a = [x.strip() for x in args.split(",")]
        if name == "brk":
            if a[0] == "NULL":
                out.append("brk 0")
            else:
                out.append(f"brk {int(a[0], 16) - base:+#x} = {int(ret, 16) - base:+#x}")
        elif name == "mmap":
            out.append(f"mmap {int(a[1])}")
        elif name == "munmap":
            out.append(f"munmap {int(a[1])}")
        elif name == "mremap":
            out.append(f"mremap {int(a[1])} {int(a[2])}")
        elif name == "madvise":
            out.append(madvise_line(int(a[0], 16) - base, int(a[1])))
    return out


def run_real_abort(script: Sequence[str]) -> str:
    """Run ``script`` that must make the real glibc abort; returns its stderr message."""
    exe = replay_binary()
    with tempfile.TemporaryDirectory() as d:
        sp = Path(d) / "script"
        sp.write_text("\n".join(script) + "\n")
        res = subprocess.run([str(exe), str(sp)], capture_output=True, text=True, timeout=60)
    if res.returncode != -6:
        raise RuntimeError(f"expected SIGABRT, got exit status {res.returncode}")
    return res.stderr.strip()


def run_real(script: Sequence[str], env: Mapping[str, str] | None = None,
             trace: bool = True) -> tuple[list[str], list[str]]:
    """Run ``script`` through the real glibc; (printed results, normalised syscalls)."""
    exe = replay_binary()
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    if not trace:
        full_env.update(env or {})
    with tempfile.TemporaryDirectory() as d:
        sp = Path(d) / "script"
        sp.write_text("\n".join(script) + "\n")
        log = Path(d) / "strace"
        cmd = [str(exe), str(sp)]
        if trace:       # the variables go to the program only, not to strace's own malloc
            sets = [x for k, v in (env or {}).items() for x in ("-E", f"{k}={v}")]
            cmd = ["strace", "-o", str(log), *sets, "-e",
                   "trace=brk,mmap,munmap,mremap,madvise,getppid"] + cmd
        res = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"replay failed ({res.returncode}): {res.stderr[-2000:]}")
        lines = res.stdout.splitlines()
        assert lines[0].startswith("P "), lines[:1]
        base = int(lines[0][2:], 16)
        sys_lines = _norm_strace(log.read_text().splitlines(), base) if trace else []
    return lines[1:], sys_lines


def heap_rss(sys: Syscalls, base: int) -> int:
    """Resident bytes of the heap [base, brk) as the given Syscalls sees them."""
    if isinstance(sys, FakeSyscalls):
        return sys.rss_heap_pages() * 4096
    rss = getattr(sys, "heap_rss", None)
    if rss is None:
        raise NotImplementedError("this Syscalls cannot report the heap's resident size")
    return int(rss())


def run_model(script: Sequence[str], env: Mapping[str, str] | None = None,
              sys: Syscalls | None = None, check_every: int = 0,
              ) -> tuple[list[str], list[str], Glibc236]:
    """Run ``script`` through the model; same outputs as :func:`run_real`."""
    fake = sys if sys is not None else FakeSyscalls()
    g = Glibc236(fake, env=env)
    base = g.sbrk(0)
    log = getattr(fake, "log", None)
    if isinstance(log, list):
        log.clear()
    slots: dict[int, int] = {}
    out: list[str] = []
    fbase: list[tuple[int, int]] = []
    arena_before = [0]

    def ptr(q: int) -> str:
        if not q:
            return "0"
        p = q - 16
        if p in g.mmapped:
            return f"M {q & 4095:x} {g.malloc_usable_size(q)}"
        if base <= q < base + (1 << 32):
            return f"H {q - base:x}"
        inside = [i for i, (b, n) in enumerate(fbase) if b <= q < b + n]
        if inside:
            best = inside[-1]
        else:
            grown = g.av.system_mem - arena_before[0]
            fbase.append(((q - 16) & ~4095, grown or 1 << 20))
            best = len(fbase) - 1
        return f"F {best} {q - fbase[best][0]:x}"

    for n, line in enumerate(script, 1):
        arena_before[0] = g.av.system_mem
        f = line.split()
        op = f[0]
        a = [int(x) for x in f[1:]]
        if op not in "os":
            a = [x & 0xFFFFFFFFFFFFFFFF for x in a]         # C's size_t conversion
        if op == "m":
            slots[a[0]] = q = g.malloc(a[1])
            out.append(ptr(q))
        elif op == "f":
            g.free(slots.pop(a[0], 0))
            out.append("-")
        elif op == "F":
            g.free(slots.get(a[0], 0))
            out.append("-")
        elif op == "P":
            g.free(slots.get(a[0], 0) + a[1])
            out.append("-")
        elif op == "c":
            slots[a[0]] = q = g.calloc(a[1], a[2])
            out.append(ptr(q))
        elif op == "r":
            q = g.realloc(slots.get(a[0], 0), a[1])
            if q or a[1] == 0:
                slots[a[0]] = q
            out.append(ptr(q))
        elif op in "aA":
            slots[a[0]] = q = (g.memalign if op == "a" else g.aligned_alloc)(a[1], a[2])
            out.append(ptr(q))
        elif op == "p":
            err, q = g.posix_memalign(a[1], a[2])
            if err:
                out.append(f"E {err}")
            else:
                slots[a[0]] = q
                out.append(ptr(q))
        elif op in "vV":
            slots[a[0]] = q = (g.valloc if op == "v" else g.pvalloc)(a[1])
            out.append(ptr(q))
        elif op == "u":
            out.append(f"U {g.malloc_usable_size(slots.get(a[0], 0))}")
        elif op == "t":
            out.append(f"T {g.malloc_trim(a[0])}")
        elif op == "o":
            out.append(f"O {g.mallopt(a[0], a[1])}")
        elif op == "s":
            out.append(f"S {g.sbrk(a[0]) - base:x}")
        elif op == "x":
            addr = base + a[0]
            q = fake.sys_mmap(addr, 4096, PROT_NONE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE)
            out.append("X 1" if q == addr else "X 0")
        elif op == "R":
            out.append(f"R {heap_rss(fake, base) // 1024}")
        elif op == "i":
            mi = g.mallinfo2()
            v = [mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd, mi.fsmblks,
                 mi.uordblks, mi.fordblks, mi.keepcost]
            out.append("I " + " ".join(f"{x:x}" for x in v))
        else:
            raise ValueError(f"script line {n}: unknown op {line!r}")
        if check_every and n % check_every == 0:
            g.check()
    out.append(f"B {g.sbrk(0) - base:x}")
    return out, list(log or []), g


# --- random scripts ---------------------------------------------------------------------
def _size(rng: random.Random, big: bool) -> int:
    r = rng.random()
    if r < 0.30:
        return rng.randrange(0, 129)
    if r < 0.55:
        return rng.randrange(0, 1033)
    if r < 0.75:
        return rng.randrange(1033, 8193)
    if r < 0.92:
        return rng.randrange(8193, 131072)
    if r < 0.985 or not big:
        return rng.randrange(131072, 1 << 20)
    return rng.randrange(1 << 20, 8 << 20)


def random_script(seed: int, n: int, max_live: int = 200, big: bool = True,
                  mallopts: bool = True, block_brk_at: int | None = None) -> list[str]:
    """A seeded random mix of the whole malloc family over tcache, fastbin, small, large
    and mmapped sizes, with frees in random order, and a look at the heap's RSS now and
    then. ``block_brk_at`` maps a page at that heap offset first, so that brk fails there
    and sysmalloc falls back to mmap as morecore."""
    rng = random.Random(seed)
    live: list[int] = []
    free_slots = list(range(4000, 0, -1))
    script: list[str] = []
    if block_brk_at is not None:
        script.append(f"x {block_brk_at}")
    while len(script) < n:
        r = rng.random()
        if rng.random() < 0.005:
            script.append("R")
        if live and (r < 0.42 or len(live) >= max_live):
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            s = live.pop()
            script.append(f"f {s}")
            free_slots.append(s)
            continue
        if live and r < 0.52:
            s = rng.choice(live)
            script.append(f"r {s} {_size(rng, big)}")
            continue
        if live and r < 0.54:
            script.append(f"u {rng.choice(live)}")
            continue
        if r < 0.545:
            script.append("i")
            continue
        if mallopts and r < 0.548:
            script.append(f"o {rng.choice([-6, -7, -8, 1])} {rng.choice([0, 1, 64, 128])}")
            continue
        if r < 0.55:
            script.append(f"t {rng.choice([0, 4096, 1 << 17])}")
            continue
        s = free_slots.pop()
        live.append(s)
        if r < 0.60:
            script.append(f"c {s} {rng.randrange(1, 9)} {_size(rng, big) // 8}")
        elif r < 0.63:
            al = rng.choice([8, 16, 24, 32, 64, 256, 4096, 48, 100])
            op = rng.choice("aAp")
            script.append(f"{op} {s} {al} {_size(rng, big)}")
        elif r < 0.635:
            script.append(f"{rng.choice('vV')} {s} {_size(rng, big)}")
        else:
            script.append(f"m {s} {_size(rng, big)}")
    return script


def first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: real {x!r} model {y!r}"
    if len(a) != len(b):
        return f"lengths differ: real {len(a)} model {len(b)}"
    return ""
