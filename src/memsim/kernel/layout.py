"""The process image at exec: where text, data, bss, the heap, the mmap area and the stack start.

A :class:`Layout` is what ``execve`` leaves behind before ``main`` runs: the VMAs of the
executable, the dynamic loader, libc, the vDSO and the main stack, and the ``mm_struct``
fields that the memory syscalls depend on (``start_brk``, ``mmap_base``, ``start_stack``...).
The default layout is a small dynamically linked C program (gcc 12, glibc 2.36) as this
machine runs it with ASLR off (``setarch -R``) and an 8 MiB stack limit; it was read from
``/proc/self/maps``, ``smaps`` and ``stat`` of such a program::

    0x555555554000  a.out   r--p / r-xp / r--p / r--p (RELRO) / rw-p   (PIE at ELF_ET_DYN_BASE)
    0x555555559000  start_brk = brk = PAGE_ALIGN(end of bss)   -- [heap] appears on first brk
          ...
    0x7ffff7dd2000  anon rw-p (ld.so's TLS etc.), libc r--p r-xp r--p r--p rw-p, anon rw-p,
                    anon rw-p, [vvar] [vvar_vclock] [vdso], ld.so r--p r-xp r--p r--p rw-p
    0x7ffff7fff000  mmap_base = TASK_SIZE - clamp(RLIMIT_STACK + gap, 128 MiB, 5/6 TASK_SIZE)
          ...       (>= 1 MiB stack guard gap)
    0x7ffffffde000  [stack] 132 KiB (128 KiB expansion + argument pages)
    0x7ffffffff000  STACK_TOP = TASK_SIZE
    0xffffffffff600000  [vsyscall] (the gate area: shown in maps, not a VMA, not in VmSize)

Mirrors ``arch_pick_mmap_layout``/``mmap_base`` (arch/x86/mm/mmap.c), ``randomize_stack_top``
and ``setup_arg_pages`` (fs/exec.c), ``load_elf_binary``'s brk placement and
``arch_randomize_brk`` (fs/binfmt_elf.c, arch/x86/kernel/process.c). A ``start_brk`` below
the PIE image (a recorded non-PIE program) moves the image down to end there, as the kernel
puts the break right after the image. With ``aslr=True`` a
seeded RNG draws the same random quantities the kernel draws: 28 bits of pages for the mmap
base and the PIE load bias, 22 bits of pages for the stack top, 18 bits of pages (+1 page of
gap) for the brk start. Everything placed top-down below ``mmap_base`` (libraries, vDSO)
moves with it, the executable moves with the load bias, the stack with its top.

Invariants (:meth:`Layout.check`): segments sorted, page aligned, non-overlapping, below
TASK_SIZE; start_brk page aligned, at or above the end of the executable image and not inside
any segment; the stack segment contains start_stack.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from memsim.errors import ConfigError
from memsim.kernel.abi import (
    MMAP_MIN_ADDR,
    RLIM_INFINITY,
    STACK_GUARD_GAP,
    STACK_TOP,
    TASK_SIZE,
)
from memsim.kernel.vma import VM_ACCOUNT, flags_from_mnemonics
from memsim.units import PAGE_SHIFT, PAGE_SIZE, GiB, KiB, MiB, page_align

#: ELF_ET_DYN_BASE on x86-64: where a PIE is loaded without ASLR
ELF_ET_DYN_BASE = 0x555555554000
#: mmap_base of the measured run (ASLR off, RLIMIT_STACK = 8 MiB)
MEASURED_MMAP_BASE = 0x7FFFF7FFF000
MMAP_RND_BITS = 28              # pages
STACK_RND_MASK = 0x3FFFFF       # pages (22 bits)
BRK_RND_RANGE = 1 * GiB         # arch_randomize_brk for 64-bit tasks
MMAP_GAP_MIN = 128 * MiB
MMAP_GAP_MAX = TASK_SIZE // 6 * 5
INITIAL_STACK_SIZE = 132 * KiB  # 128 KiB stack_expand + the argument/environment pages
DEFAULT_RLIMIT_STACK = 8 * MiB
VSYSCALL_START = 0xFFFFFFFFFF600000
VSYSCALL_END = 0xFFFFFFFFFF601000

# The default image, as ``setarch -R`` shows it on this machine for a small dynamically linked
# C program (gcc -O2, glibc 2.36, Linux 6.18). Columns: maps line prefix | smaps VmFlags |
# resident kB at main() (smaps Rss, of which Anonymous). EXE stands for the program's path, LIBC
# and LD for the paths in _PATHS.
_DEFAULT_IMAGE = """\
555555554000-555555555000 r--p 00000000 fe:00 2146596 EXE | rd mr mw me | 4 0
555555555000-555555556000 r-xp 00001000 fe:00 2146596 EXE | rd ex mr mw me | 4 0
555555556000-555555557000 r--p 00002000 fe:00 2146596 EXE | rd mr mw me | 4 0
555555557000-555555558000 r--p 00002000 fe:00 2146596 EXE | rd mr mw me ac | 4 4
555555558000-555555559000 rw-p 00003000 fe:00 2146596 EXE | rd wr mr mw me ac | 4 4
7ffff7dd2000-7ffff7dd5000 rw-p 00000000 00:00 0 - | rd wr mr mw me ac | 8 8
7ffff7dd5000-7ffff7dfb000 r--p 00000000 fe:00 339380 LIBC | rd mr mw me | 148 0
7ffff7dfb000-7ffff7f51000 r-xp 00026000 fe:00 339380 LIBC | rd ex mr mw me | 660 0
7ffff7f51000-7ffff7fa4000 r--p 0017c000 fe:00 339380 LIBC | rd mr mw me | 0 0
7ffff7fa4000-7ffff7fa8000 r--p 001cf000 fe:00 339380 LIBC | rd mr mw me ac | 16 16
7ffff7fa8000-7ffff7faa000 rw-p 001d3000 fe:00 339380 LIBC | rd wr mr mw me ac | 8 8
7ffff7faa000-7ffff7fb7000 rw-p 00000000 00:00 0 - | rd wr mr mw me ac | 20 20
7ffff7fc0000-7ffff7fc2000 rw-p 00000000 00:00 0 - | rd wr mr mw me ac | 4 4
7ffff7fc2000-7ffff7fc6000 r--p 00000000 00:00 0 [vvar] | rd mr pf io de dd | 0 0
7ffff7fc6000-7ffff7fc8000 r--p 00000000 00:00 0 [vvar_vclock] | rd mr pf io de dd | 0 0
7ffff7fc8000-7ffff7fca000 r-xp 00000000 00:00 0 [vdso] | rd ex mr mw me de | 4 0
7ffff7fca000-7ffff7fcb000 r--p 00000000 fe:00 338944 LD | rd mr mw me | 4 0
7ffff7fcb000-7ffff7ff1000 r-xp 00001000 fe:00 338944 LD | rd ex mr mw me | 148 0
7ffff7ff1000-7ffff7ffb000 r--p 00027000 fe:00 338944 LD | rd mr mw me | 40 0
7ffff7ffb000-7ffff7ffd000 r--p 00031000 fe:00 338944 LD | rd mr mw me ac | 8 8
7ffff7ffd000-7ffff7fff000 rw-p 00033000 fe:00 338944 LD | rd wr mr mw me ac | 8 8
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack] | rd wr mr mw me gd ac | 16 16
"""
# /proc/self/stat of the same run: start_code, end_code, start_data, end_data, start_brk,
# start_stack
_DEFAULT_MM = dict(start_code=0x555555555000, end_code=0x55555555520D,
                   start_data=0x555555557DD0, end_data=0x555555558030,
                   start_brk=0x555555559000, start_stack=0x7FFFFFFFE820)
#: VmPeak - VmSize of that run at main(): ld.so's transient mappings during start-up
STARTUP_PEAK_EXTRA = 36 * KiB
DEFAULT_EXE_PATH = "/usr/local/bin/a.out"
_PATHS = {"LIBC": "/usr/lib/x86_64-linux-gnu/libc.so.6",
          "LD": "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}


@dataclass(frozen=True)
class Segment:
    """One VMA of the image at exec, plus how much of it is resident when main() starts.

    ``region`` says which base it moves with under ASLR: ``"exe"`` (load bias), ``"mmap"``
    (mmap_base) or ``"stack"`` (stack top). ``resident_anon``/``resident_file`` are page
    counts: anonymous (written) pages are taken from the low end of the segment (from the
    high end for the stack), file pages that are only read follow them.
    """

    start: int
    end: int
    flags: int
    pgoff: int
    path: str | None
    name: str | None
    dev: tuple[int, int]
    inode: int
    region: str
    resident_anon: int = 0
    resident_file: int = 0

    def shifted(self, delta: int) -> Segment:
        return replace(self, start=self.start + delta, end=self.end + delta)


def _parse_image(text: str, exe_path: str) -> list[Segment]:
    segs = []
    for line in text.splitlines():
        head, vmflags, rss = (part.strip() for part in line.split("|"))
        rng, _perms, off, dev, inode, name = head.split(None, 5)
        lo, hi = (int(x, 16) for x in rng.split("-"))
        major, minor = (int(x, 16) for x in dev.split(":"))
        rss_kb, anon_kb = (int(x) for x in rss.split())
        path: str | None = None
        special: str | None = None
        if name == "EXE":
            path = exe_path
        elif name in _PATHS:
            path = _PATHS[name]
        elif name.startswith("/"):
            path = name
        elif name.startswith("[") and name != "[stack]":
            special = name
        flags = flags_from_mnemonics(vmflags)
        if path is None:
            pgoff = lo >> PAGE_SHIFT if special is None else 0
        else:
            pgoff = int(off, 16) >> PAGE_SHIFT
        region = "exe" if lo < 0x600000000000 else (
            "stack" if name == "[stack]" else "mmap")
        segs.append(Segment(lo, hi, flags, pgoff, path, special, (major, minor), int(inode),
                            region, anon_kb // 4, (rss_kb - anon_kb) // 4))
    return segs


def mmap_base(rlimit_stack: int, rnd: int, randomize: bool) -> int:
    """x86 ``mmap_base``: TASK_SIZE minus the clamped stack gap minus the random offset."""
    gap = rlimit_stack
    pad = (STACK_RND_MASK << PAGE_SHIFT if randomize else 0) + STACK_GUARD_GAP
    if gap + pad <= RLIM_INFINITY:     # "values close to RLIM_INFINITY can overflow"
        gap += pad
    gap = min(max(gap, MMAP_GAP_MIN), MMAP_GAP_MAX)
    return page_align(TASK_SIZE - gap - rnd)


@dataclass
class Layout:
    """The image a fresh process starts with; see the module docstring."""

    segments: list[Segment]
    start_code: int
    end_code: int
    start_data: int
    end_data: int
    start_brk: int
    start_stack: int
    mmap_base: int
    mmap_legacy_base: int
    rlimit_stack: int = DEFAULT_RLIMIT_STACK
    aslr: bool = False
    seed: int | None = None
    exe_path: str = DEFAULT_EXE_PATH
    extra: dict[str, int] = field(default_factory=dict)

    @classmethod
    def default(cls, *, aslr: bool = False, seed: int | None = None,
                rlimit_stack: int = DEFAULT_RLIMIT_STACK, start_brk: int | None = None,
                exe_path: str = DEFAULT_EXE_PATH) -> Layout:
        """The measured small C program; ``aslr`` draws the kernel's random offsets from
        ``random.Random(seed)``; ``start_brk`` places the heap at a given (recorded) address.
        """
        if not isinstance(rlimit_stack, int) or rlimit_stack <= 0:
            raise ConfigError(f"RLIMIT_STACK must be a positive number of bytes: "
                              f"{rlimit_stack!r}")
        segs = _parse_image(_DEFAULT_IMAGE, exe_path)
        rng = random.Random(seed)
        mmap_rnd = (rng.getrandbits(MMAP_RND_BITS) << PAGE_SHIFT) if aslr else 0
        base = mmap_base(rlimit_stack, mmap_rnd, aslr)
        legacy = page_align(TASK_SIZE // 3) + mmap_rnd
        load_bias = ELF_ET_DYN_BASE + ((rng.getrandbits(MMAP_RND_BITS) << PAGE_SHIFT)
                                       if aslr else 0)
        stack_top = STACK_TOP - (((rng.getrandbits(32) & STACK_RND_MASK) << PAGE_SHIFT)
                                 if aslr else 0)
        d_mmap = base - MEASURED_MMAP_BASE
        d_exe = load_bias - ELF_ET_DYN_BASE
        d_stack = stack_top - STACK_TOP
        out = []
        for s in segs:
            delta = {"exe": d_exe, "mmap": d_mmap, "stack": d_stack}[s.region]
            if s.region == "stack":
                # setup_arg_pages: 128 KiB expansion, bounded by the stack limit
                size = min(INITIAL_STACK_SIZE, max(rlimit_stack & ~(PAGE_SIZE - 1), PAGE_SIZE))
                s = replace(s, start=s.end - size,
                            resident_anon=min(s.resident_anon, size >> PAGE_SHIFT))
            out.append(s.shifted(delta))
        mm = {k: v + (d_stack if k == "start_stack" else d_exe) for k, v in _DEFAULT_MM.items()}
        if start_brk is None:
            sb = mm["start_brk"]
            if aslr:
                sb += PAGE_SIZE
                sb += rng.randrange(BRK_RND_RANGE >> PAGE_SHIFT) << PAGE_SHIFT
        else:
            sb = start_brk
            image_end = max(seg.end for seg in out if seg.region == "exe")
            if isinstance(sb, int) and not isinstance(sb, bool) and \
                    not sb & (PAGE_SIZE - 1) and sb < image_end:
                # a heap below the PIE image: a non-PIE program (loaded at 0x400000, say) whose
                # break follows its image; move the image down to end at start_brk
                shift = sb - image_end
                if min(seg.start for seg in out if seg.region == "exe") + shift < MMAP_MIN_ADDR:
                    raise ConfigError(f"start_brk {sb:#x} leaves no room for the program "
                                      f"image below it")
                out = [seg.shifted(shift) if seg.region == "exe" else seg for seg in out]
                mm = {k: v + (shift if k != "start_stack" else 0) for k, v in mm.items()}
        out.sort(key=lambda seg: seg.start)   # an unlimited stack puts mmap_base below the PIE
        layout = cls(out, mm["start_code"], mm["end_code"], mm["start_data"], mm["end_data"],
                     sb, mm["start_stack"], base, legacy, rlimit_stack, aslr, seed, exe_path)
        layout.check()
        return layout

    @property
    def image_end(self) -> int:
        """End of the executable's last VMA (data/bss): the heap may not start below it."""
        return max(s.end for s in self.segments if s.region == "exe")

    @property
    def stack_top(self) -> int:
        return max(s.end for s in self.segments if s.region == "stack")

    def check(self) -> None:
        """Assert the invariants in the module docstring; ConfigError for a bad start_brk."""
        prev_end = 0
        for s in self.segments:
            assert s.start < s.end and not (s.start | s.end) & (PAGE_SIZE - 1), s
            assert s.start >= prev_end, f"segments overlap at {s.start:#x}"
            assert s.end <= TASK_SIZE, s
            assert s.flags & VM_ACCOUNT or s.resident_anon == 0 or s.path is not None, s
            prev_end = s.end
        sb = self.start_brk
        if not isinstance(sb, int) or isinstance(sb, bool) or sb & (PAGE_SIZE - 1):
            raise ConfigError(f"start_brk must be a page-aligned address: {sb!r}")
        above = [s.start for s in self.segments if s.end > sb]
        if sb < self.image_end or (above and min(above) <= sb) or sb >= TASK_SIZE:
            raise ConfigError(f"start_brk {sb:#x} must lie above the end of the program "
                              f"image {self.image_end:#x}, in free address space")
        stack = [s for s in self.segments if s.region == "stack"]
        assert stack and stack[0].start <= self.start_stack < stack[0].end
