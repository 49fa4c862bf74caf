"""The op language of the kernel oracle: one memory operation a line.

A program in this language is run twice, once on :class:`memsim.Process` and once by a small C
program on the real kernel of this machine (:mod:`memsim.oracle.kernel`), and the two runs are
compared op by op and snapshot by snapshot.

Grammar (``#`` starts a comment; sizes are integers, ``0x`` hex or ``64k``/``2M``/``1G``/``1T``
binary sizes, and may be negative where C would accept a negative value cast to ``size_t``)::

    mark [LABEL]                                   snapshot point (/proc/self/status)
    [NAME =] sbrk INCREMENT                        glibc sbrk(): NAME = old break
    [NAME =] brk ADDR                              raw brk(2): NAME = the break after the call
    [NAME =] mmap LENGTH PROT [addr=ADDR] [fixed] [noreplace] [noreserve] [shared]
                              [populate] [growsdown] [stack] [flags=N]
    munmap ADDR LENGTH
    mprotect ADDR LENGTH PROT
    [NAME =] mremap ADDR OLD_LEN NEW_LEN [maymove] [fixed=ADDR] [dontunmap] [new=ADDR]
    madvise ADDR LENGTH ADVICE                     dontneed | free | hugepage | collapse | N
    write ADDR [LENGTH] [every=STEP]               user code stores to the bytes
    read ADDR [LENGTH] [every=STEP]                user code loads from the bytes
    setrlimit data|as|stack SOFT HARD              inf | SIZE | +SIZE (VmData/VmSize/VmStk + SIZE)

``ADDR`` is ``NAME`` or an absolute ``SIZE``, optionally followed by terms ``+SIZE``/``-SIZE``
(``brk0+1M-4096``); a ``SIZE`` may be such a sum too (``2M+4096``), and ``ram`` stands for
this machine's MemTotal (``mmap ram+4096 rw``: the overcommit heuristic's boundary).
The names ``brk0`` (the break when the program starts), ``anchor`` (a 1 GiB aligned address
directly above the free part of the mmap area, see :mod:`memsim.oracle.kernel`) and ``stack``
(the start of the ``[stack]`` VMA when the program starts) always exist; every other name is a
register set by an earlier ``NAME = ...`` op. ``PROT`` is ``none`` or letters of ``rwx``, or a
number (so that unknown bits can be tried). ``every=STEP`` touches ADDR, ADDR+STEP, ... below
ADDR+LENGTH, as a loop with that stride would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from memsim.errors import TraceError
from memsim.kernel.abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_STACK,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)

# Linux x86-64 values (uapi mman-common.h, resource.h; the MAP_*/MREMAP_* names come from
# memsim.kernel.abi, and are imported from here by memsim.oracle.kernel)
PROT_BITS = {"r": PROT_READ, "w": PROT_WRITE, "x": PROT_EXEC}
ADVICE = {"normal": 0, "random": 1, "sequential": 2, "willneed": 3, "dontneed": 4, "free": 8,
          "hugepage": 14, "nohugepage": 15, "cold": 20, "pageout": 21, "populate_read": 22,
          "populate_write": 23, "collapse": 25}
RLIMIT = {"stack": 3, "data": 2, "as": 9}

_SIZE_RE = re.compile(r"^([+-]?)(0x[0-9a-f]+|\d+)([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_HEAD_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?=[+-]|$)")
_TERM_RE = re.compile(r"[+-]?[^+-]+")

BUILTIN_NAMES = ("brk0", "anchor", "stack")


@dataclass(frozen=True)
class Addr:
    """``base + off``: base is None (absolute), ``"brk0"``, ``"anchor"`` or a register name."""

    base: str | None
    off: int

    def __str__(self) -> str:
        if self.base is None:
            return hex(self.off)
        if self.off == 0:
            return self.base
        return f"{self.base}{'+' if self.off > 0 else '-'}{abs(self.off):#x}"


@dataclass(frozen=True)
class Limit:
    """A setrlimit value: ``mode`` is ``"abs"``, ``"rel"`` (current VmData/VmStk/VmSize + value) or
    ``"inf"``."""

    mode: str
    value: int = 0


@dataclass
class Op:
    """One parsed line. Fields not used by ``kind`` keep their defaults."""

    kind: str
    lineno: int
    text: str
    dst: str | None = None
    addr: Addr | None = None
    length: int = 0
    prot: int = 0
    flags: int = 0
    new_len: int = 0
    new_addr: Addr | None = None
    advice: int = 0
    every: int = 0
    resource: str = ""
    soft: Limit = field(default_factory=lambda: Limit("inf"))
    hard: Limit = field(default_factory=lambda: Limit("inf"))
    label: str = ""


def host_ram() -> int:
    """MemTotal of this machine in bytes (what ``Machine(ram=None)`` simulates)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    raise TraceError("'ram' needs /proc/meminfo (MemTotal)", "<ops>")


def parse_size_token(tok: str, lineno: int = 0, line: str | None = None) -> int:
    """``"4096"``, ``"-1"``, ``"0x1000"``, ``"2M"``, ``"1T"``, ``"ram"`` -> int (binary units;
    ``ram`` is this machine's MemTotal)."""
    if tok.lstrip("+-").lower() == "ram":
        return -host_ram() if tok.startswith("-") else host_ram()
    m = _SIZE_RE.match(tok)
    if not m:
        raise TraceError(f"not a size: {tok!r}", "<ops>", lineno, line)
    sign, digits, suffix = m.groups()
    value = int(digits, 0) * _MULT[suffix.lower()]
    return -value if sign == "-" else value


def parse_prot(tok: str, lineno: int = 0, line: str | None = None) -> int:
    """``"rw"``, ``"r-x"``, ``"none"`` or a number -> PROT_* bits."""
    t = tok.lower()
    if t in ("none", "---", "-"):
        return 0
    if re.fullmatch(r"[rwx-]+", t):
        bits = 0
        for ch in t:
            bits |= PROT_BITS.get(ch, 0)
        return bits
    try:
        return int(t, 0)
    except ValueError:
        raise TraceError(f"not a protection: {tok!r} (use none, r, rw, rwx or a number)",
                         "<ops>", lineno, line) from None


def prot_text(prot: int) -> str:
    """PROT_* bits -> ``"rw"``/``"none"`` (unknown bits as a number)."""
    if prot & ~0x7:
        return hex(prot)
    if prot == 0:
        return "none"
    return "".join(ch for ch, bit in PROT_BITS.items() if prot & bit)


class Program:
    """A parsed op program: ``ops`` and the register names in order of first assignment."""

    def __init__(self, ops: list[Op], registers: list[str]) -> None:
        self.ops = ops
        self.registers = registers

    @property
    def nmarks(self) -> int:
        return sum(1 for op in self.ops if op.kind == "mark")


def parse(text: str) -> Program:
    """Parse an op program; raises :class:`memsim.errors.TraceError` naming the line."""
    ops: list[Op] = []
    registers: list[str] = []
    known = set(BUILTIN_NAMES)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        op = _parse_line(line, lineno, raw, known)
        if op.dst is not None and op.dst not in known:
            known.add(op.dst)
            registers.append(op.dst)
        ops.append(op)
    return Program(ops, registers)


def _parse_line(line: str, lineno: int, raw: str, known: set[str]) -> Op:
    def err(msg: str) -> TraceError:
        return TraceError(msg, "<ops>", lineno, raw)

    dst: str | None = None
    if "=" in line.split()[0] or (len(line.split()) > 1 and line.split()[1] == "="):
        left, _, line = line.partition("=")
        dst = left.strip()
        line = line.strip()
        if not _NAME_RE.match(dst) or dst in BUILTIN_NAMES:
            raise err(f"not a register name: {dst!r}")
    words = line.split()
    if not words:
        raise err("missing operation")
    kind, args = words[0].lower(), words[1:]
    pos = [a for a in args if "=" not in a]
    kw = dict(a.split("=", 1) for a in args if "=" in a)

    def size(tok: str) -> int:
        terms = _TERM_RE.findall(tok)
        if not terms or "".join(terms) != tok:
            raise err(f"not a size: {tok!r}")
        return sum(parse_size_token(t, lineno, raw) for t in terms)

    def addr(tok: str) -> Addr:
        m = _NAME_HEAD_RE.match(tok)
        if m:
            name, rest = m.group(1), tok[m.end():]
            if name not in known:
                raise err(f"unknown name {name!r} (assign it first: {name} = mmap ...)")
            return Addr(name, size(rest) if rest else 0)
        return Addr(None, size(tok))

    def need(n_min: int, n_max: int, usage: str) -> None:
        if not n_min <= len(pos) <= n_max:
            raise err(f"usage: {usage}")

    def no_kw(allowed: tuple[str, ...] = ()) -> None:
        bad = [k for k in kw if k not in allowed]
        if bad:
            raise err(f"unknown option {bad[0]}=")

    op = Op(kind=kind, lineno=lineno, text=raw.strip(), dst=dst)
    if kind == "mark":
        op.label = " ".join(words[1:]) or f"line {lineno}"
        op.dst = None
        return op
    if dst is not None and kind not in ("mmap", "mremap", "sbrk", "brk"):
        raise err(f"{kind} returns no address to name")
    if kind == "sbrk":
        need(1, 1, "sbrk INCREMENT")
        no_kw()
        op.length = size(pos[0])
    elif kind == "brk":
        need(1, 1, "brk ADDR")
        no_kw()
        op.addr = addr(pos[0])
    elif kind == "mmap":
        no_kw(("addr", "flags"))
        if len(pos) < 2:
            raise err("usage: mmap LENGTH PROT [addr=ADDR] [fixed] [noreplace] [noreserve] "
                      "[shared] [populate] [flags=N]")
        op.length = size(pos[0])
        op.prot = parse_prot(pos[1], lineno, raw)
        flags = MAP_ANONYMOUS
        shared = False
        for word in pos[2:]:
            w = word.lower()
            if w == "fixed":
                flags |= MAP_FIXED
            elif w in ("noreplace", "fixed_noreplace"):
                flags |= MAP_FIXED_NOREPLACE
            elif w == "noreserve":
                flags |= MAP_NORESERVE
            elif w == "populate":
                flags |= MAP_POPULATE
            elif w == "growsdown":
                flags |= MAP_GROWSDOWN
            elif w == "stack":
                flags |= MAP_STACK
            elif w == "shared":
                shared = True
            elif w == "private":
                pass
            else:
                raise err(f"unknown mmap option {word!r}")
        flags |= MAP_SHARED if shared else MAP_PRIVATE
        if "flags" in kw:
            flags = size(kw["flags"])
        op.flags = flags
        op.addr = addr(kw["addr"]) if "addr" in kw else Addr(None, 0)
    elif kind == "munmap":
        need(2, 2, "munmap ADDR LENGTH")
        no_kw()
        op.addr, op.length = addr(pos[0]), size(pos[1])
    elif kind == "mprotect":
        need(3, 3, "mprotect ADDR LENGTH PROT")
        no_kw()
        op.addr, op.length = addr(pos[0]), size(pos[1])
        op.prot = parse_prot(pos[2], lineno, raw)
    elif kind == "mremap":
        no_kw(("fixed", "new"))
        if len(pos) < 3:
            raise err("usage: mremap ADDR OLD_LEN NEW_LEN [maymove] [fixed=ADDR] [dontunmap]")
        op.addr, op.length, op.new_len = addr(pos[0]), size(pos[1]), size(pos[2])
        flags = 0
        for word in pos[3:]:
            w = word.lower()
            if w == "maymove":
                flags |= MREMAP_MAYMOVE
            elif w == "dontunmap":
                flags |= MREMAP_DONTUNMAP
            else:
                raise err(f"unknown mremap option {word!r}")
        if "fixed" in kw:
            flags |= MREMAP_FIXED
            op.new_addr = addr(kw["fixed"])
        elif "new" in kw:              # the fifth argument without MREMAP_FIXED
            op.new_addr = addr(kw["new"])
        else:
            op.new_addr = Addr(None, 0)
        op.flags = flags
    elif kind == "madvise":
        need(3, 3, "madvise ADDR LENGTH ADVICE")
        no_kw()
        op.addr, op.length = addr(pos[0]), size(pos[1])
        adv = pos[2].lower()
        op.advice = ADVICE[adv] if adv in ADVICE else size(adv)
    elif kind in ("write", "read"):
        need(1, 2, f"{kind} ADDR [LENGTH] [every=STEP]")
        no_kw(("every",))
        op.addr = addr(pos[0])
        op.length = size(pos[1]) if len(pos) > 1 else 1
        op.every = size(kw["every"]) if "every" in kw else 0
        if op.every < 0:
            raise err("every= must not be negative")
    elif kind == "setrlimit":
        need(3, 3, "setrlimit data|as|stack SOFT HARD")
        no_kw()
        if pos[0].lower() not in RLIMIT:
            raise err(f"unknown resource {pos[0]!r} (data, as or stack)")
        op.resource = pos[0].lower()

        def limit(tok: str) -> Limit:
            if tok.lower() in ("inf", "infinity", "unlimited"):
                return Limit("inf")
            if tok.startswith("+"):
                return Limit("rel", size(tok[1:]))
            return Limit("abs", size(tok))

        op.soft, op.hard = limit(pos[1]), limit(pos[2])
    else:
        raise err(f"unknown operation {kind!r}")
    return op


def random_program(seed: int, n_ops: int = 200, mark_every_op: bool = True) -> str:
    """A seeded random op program over anonymous private memory and the break: mmaps of 1-64
    pages (sometimes 2 MiB multiples), partial munmap/mprotect/madvise/mremap of what was
    mapped, reads and writes that may fault, and sbrk up and down. Offsets are page multiples
    most of the time and arbitrary sometimes, so error paths are exercised too."""
    import random

    rng = random.Random(seed)
    page = 4096
    regions: list[tuple[str, int]] = []       # (name, length when mapped)
    lines: list[str] = [f"# random_program(seed={seed}, n_ops={n_ops})"]
    brk_size = 0
    counter = 0

    def region() -> tuple[str, int]:
        return rng.choice(regions)

    def offset(length: int) -> int:
        if rng.random() < 0.05:
            return rng.randrange(0, length + page)
        return rng.randrange(0, max(1, length // page + 1)) * page

    def prot() -> str:
        return rng.choice(["rw", "rw", "rw", "r", "none", "rwx"])

    for _ in range(n_ops):
        r = rng.random()
        if not regions or r < 0.18:
            counter += 1
            name = f"m{counter}"
            if rng.random() < 0.1:
                length = rng.randint(1, 3) * (2 << 20)
            else:
                length = rng.randint(1, 64) * page
            extra = " noreserve" if rng.random() < 0.1 else ""
            lines.append(f"{name} = mmap {length} {prot()}{extra}")
            regions.append((name, length))
        elif r < 0.30:
            name, length = region()
            lines.append(f"munmap {name}+{offset(length)} {rng.randint(1, 8) * page}")
        elif r < 0.42:
            name, length = region()
            lines.append(f"mprotect {name}+{offset(length)} {rng.randint(1, 8) * page} {prot()}")
        elif r < 0.62:
            name, length = region()
            off = offset(length)
            n = rng.randint(1, max(1, length - min(off, length - 1)))
            kind = "write" if rng.random() < 0.7 else "read"
            every = f" every={rng.choice([1, 512, page, 3 * page])}" if rng.random() < 0.3 else ""
            lines.append(f"{kind} {name}+{off} {n}{every}")
        elif r < 0.70:
            name, length = region()
            lines.append(f"madvise {name}+{offset(length)} {rng.randint(1, 16) * page} dontneed")
        elif r < 0.78:
            name, length = region()
            new = rng.randint(1, 96) * page
            mv = " maymove" if rng.random() < 0.7 else ""
            counter += 1
            nn = f"m{counter}"
            lines.append(f"{nn} = mremap {name} {length} {new}{mv}")
            regions.append((nn, new))
        elif r < 0.90:
            inc = rng.choice([1, 100, 4095, 4096, 5000, 3 * page, 40000])
            if brk_size > 0 and rng.random() < 0.4:
                inc = -rng.randint(1, brk_size)
            brk_size = max(0, brk_size + inc)
            counter += 1
            lines.append(f"b{counter} = sbrk {inc}")
            if inc > 0 and rng.random() < 0.7:
                lines.append(f"write b{counter} {rng.randint(1, inc)}")
        else:
            lines.append(f"read brk0 {max(1, brk_size)} every={page}")
        if mark_every_op:
            lines.append("mark")
    return "\n".join(lines) + "\n"


def random_program_wide(seed: int, n_ops: int = 200, mark_every_op: bool = True, *,
                        rlimits: bool = True, dontunmap: bool = True,
                        fixed_shrink: bool = True, fixed_move: bool = True,
                        heap_ops: bool = True) -> str:
    """Like :func:`random_program` but wider: regions up to several MiB and sparse GiB-sized
    NORESERVE regions (page-table freeing at the PTE, PMD and PUD levels), MAP_FIXED and
    MAP_FIXED_NOREPLACE over and next to existing mappings, MAP_POPULATE, ranges that span
    several VMAs, mremap onto other mappings, MADV_FREE/WILLNEED/COLD, raw brk, stack growth,
    and occasional RLIMIT_DATA/RLIMIT_AS changes. ``rlimits``, ``dontunmap`` and
    ``fixed_shrink`` (mremap with MREMAP_FIXED to a smaller size), ``fixed_move`` (any
    MREMAP_FIXED) and ``heap_ops`` (munmap/mprotect/madvise/mremap of the brk heap) switch op
    families off, to look past a known discrepancy. The same seed gives the same program for
    the same switches."""
    import random

    rng = random.Random(seed ^ 0x5EED)
    page = 4096
    regions: list[tuple[str, int]] = []
    lines: list[str] = [f"# random_program_wide(seed={seed}, n_ops={n_ops})"]
    counter = 0
    brk_size = 0
    stack_depth = 0

    heapish: set[str] = {"brk0"}       # the heap, and what mremap made of it in place

    def pick(heap_ok: bool = True) -> tuple[str, int]:
        # the heap too, but never as the base of a MAP_FIXED: below brk0 lies the driver's .bss
        if heap_ops and heap_ok and brk_size > 0 and rng.random() < 0.15:
            return "brk0", (brk_size + page - 1) // page * page
        if not heap_ok:
            return rng.choice([r for r in regions if r[0] not in heapish] or [("", 0)])
        return rng.choice(regions)

    def span(length: int) -> tuple[int, int]:
        """An offset and a length, page aligned, sometimes running past the region."""
        off = rng.randrange(0, max(1, length // page)) * page
        n = rng.choice([1, 2, 3, 16, 512, 513, 1024]) * page
        if rng.random() < 0.2:
            n = length - off + rng.choice([0, page, 2 << 20])
        return off, max(page, n)

    def prot() -> str:
        return rng.choice(["rw", "rw", "rw", "r", "none", "rwx", "x"])

    def new_name() -> str:
        nonlocal counter
        counter += 1
        return f"m{counter}"

    for _ in range(n_ops):
        r = rng.random()
        if not regions or r < 0.14:
            name = new_name()
            kind = rng.random()
            opts = ""
            if kind < 0.08:
                length = rng.randint(1, 3) * (1 << 30)
                opts = " noreserve"
            elif kind < 0.35:
                length = rng.randint(1, 4) * (2 << 20) + rng.choice([0, 0, page])
            else:
                length = rng.randint(1, 300) * page
            if regions and rng.random() < 0.25:
                base, blen = pick(heap_ok=False)
            else:
                base = ""
            if base:
                # never above the picked region's end: the real driver's own mappings (and
                # libc) lie above the anchor, and a MAP_FIXED over them would kill it
                lo_off, hi_off = -(length // page), (blen - length) // page
                off = rng.randrange(lo_off, max(lo_off, hi_off) + 1) * page
                where = f"{base}{'+' if off >= 0 else '-'}{abs(off)}"
                opts += rng.choice([" fixed", " noreplace", ""]) + f" addr={where}"
            if length <= (4 << 20) and rng.random() < 0.1:
                opts += " populate"
            lines.append(f"{name} = mmap {length} {prot()}{opts}")
            regions.append((name, length))
        elif r < 0.24:
            name, length = pick()
            off, n = span(length)
            lines.append(f"munmap {name}+{off} {n}")
        elif r < 0.34:
            name, length = pick()
            off, n = span(length)
            lines.append(f"mprotect {name}+{off} {n} {prot()}")
        elif r < 0.58:
            name, length = pick()
            kind = "write" if rng.random() < 0.75 else "read"
            if length >= 1 << 30:
                step = rng.choice([1 << 21, 1 << 30, (1 << 21) + page])
                lines.append(f"{kind} {name} {length} every={step}")
            else:
                off, n = span(length)
                every = f" every={rng.choice([page, 3 * page, 700])}" if rng.random() < 0.3 \
                    else ""
                lines.append(f"{kind} {name}+{off} {n}{every}")
        elif r < 0.68:
            name, length = pick()
            off, n = span(length)
            adv = rng.choice(["dontneed", "dontneed", "dontneed", "free", "willneed", "cold",
                              "normal"])
            lines.append(f"madvise {name}+{off} {n} {adv}")
        elif r < 0.76:
            name, length = pick()
            new = rng.choice([page, 8 * page, length // 2 or page, length + page,
                              2 * length, length + (2 << 20)])
            flags = rng.choice(["", " maymove", " maymove", " dontunmap maymove"])
            if not dontunmap and "dontunmap" in flags:
                flags = " maymove"
            other = ""
            if regions and rng.random() < 0.2 and fixed_move:
                other, olen = pick()
                flags = f" maymove fixed={other}"
                if not fixed_shrink and new < length:
                    new = length
                new = min(new, olen)     # the target must not reach above the other region
            nn = new_name()
            lines.append(f"{nn} = mremap {name} {length} {new}{flags}")
            regions.append((nn, new))
            if name in heapish or other in heapish:
                heapish.add(nn)
        elif r < 0.86:
            if rng.random() < 0.3:
                target = rng.randrange(0, brk_size + 64 * page + 1)
                lines.append(f"bb{counter} = brk brk0+{target}")
                brk_size = target
            else:
                inc = rng.choice([1, 4096, 5000, 70000, 1 << 20])
                if brk_size > 0 and rng.random() < 0.4:
                    inc = -rng.randint(1, brk_size)
                brk_size = max(0, brk_size + inc)
                lines.append(f"sbrk {inc}")
                if brk_size:
                    lines.append(f"write brk0 {brk_size} every={rng.choice([page, 3 * page])}")
        elif r < 0.93:
            stack_depth = min(stack_depth + rng.choice([page, 64 * page, 1 << 20]), 6 << 20)
            lines.append(f"{rng.choice(['write', 'read'])} stack-{stack_depth}")
        else:
            res = rng.choice(["data", "as"])
            lim = rng.choice(["+1M", "+16M", "+64M", "inf"])
            if rlimits:
                lines.append(f"setrlimit {res} {lim} inf")
        if mark_every_op:
            lines.append("mark")
    return "\n".join(lines) + "\n"
