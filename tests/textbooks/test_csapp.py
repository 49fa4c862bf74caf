"""csapp-first-fit / csapp-next-fit: the CS:APP book's mm.c on the simulated kernel.

Hand-worked heaps (every number below is derived in the comments from the book's rules),
the invariants after every call, memlib's MAX_HEAP, and, when the book's mm.c is at hand
(MEMSIM_CSAPP_MM_C=path/to/mm.c and gcc), a live comparison with the real C code on seeded
synthetic traces: the same peak payload and the same heap size, byte for byte.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from memsim.alloc import AllocatorAbort, create
from memsim.alloc.csapp import MALLOCLAB_MAX_HEAP, CsappAllocator
from memsim.metrics.utilization import replay_util
from memsim.process import Process
from memsim.trace.rep import RepReader

HERE = Path(__file__).parent


def _alloc(name: str = "csapp-first-fit", **options: object) -> CsappAllocator:
    a = create(name, Process().mm, options)
    assert isinstance(a, CsappAllocator)
    return a


def test_mm_init_lays_out_padding_prologue_epilogue_and_a_chunk() -> None:
    a = _alloc()
    assert a.mm_init() == 0
    start = a.mem_heap_lo()
    # 4 words (padding, prologue header+footer, epilogue) + CHUNKSIZE 4096
    assert a.mem_heapsize() == 16 + 4096
    assert a.heap_listp == start + 8
    assert a.free_blocks == {start + 16: 4096}
    a.check()


def test_block_sizes_follow_the_book() -> None:
    a = _alloc()
    a.mm_init()
    start = a.mem_heap_lo()
    p = a.malloc(1)            # size <= DSIZE: 2*DSIZE = 16
    q = a.malloc(9)            # DSIZE * ceil((9 + 8) / 8) = 24
    r = a.malloc(100)          # 8 * ceil(108 / 8) = 112
    assert (p, q, r) == (start + 16, start + 32, start + 56)
    assert a.alloc_blocks == {p: 16, q: 24, r: 112}
    assert a.malloc_usable_size(r) == 104
    assert a.malloc(0) == 0                    # "ignore spurious requests"
    a.check()


def test_a_split_leaves_no_block_under_16_bytes() -> None:
    a = _alloc()
    a.mm_init()
    start = a.mem_heap_lo()
    big = a.malloc(4096 - 8 - 8)               # asize 4088 of the 4096 free block: rest 8
    assert a.alloc_blocks[big] == 4096 and not a.free_blocks
    a.free(big)
    assert a.free_blocks == {start + 16: 4096}


def test_extend_heap_takes_max_of_request_and_chunk_and_coalesces() -> None:
    a = _alloc()
    p = a.malloc(5000)         # asize 5008 > 4096: extend by 5008, merge with the 4096 block
    assert a.mem_heapsize() == 16 + 4096 + 5008
    assert a.alloc_blocks[p] == 5008 and list(a.free_blocks.values()) == [4096]
    a.check()


def test_next_fit_goes_on_from_the_rover_first_fit_from_the_start() -> None:
    for name, where in (("csapp-first-fit", 0), ("csapp-next-fit", 3)):
        a = _alloc(name)
        ptrs = [a.malloc(100) for _ in range(3)]       # blocks of 112 bytes
        a.free(ptrs[0])
        p = a.malloc(50)                                # 64 bytes
        start = a.mem_heap_lo()
        # first fit: the freed first block; next fit: the rover is at ptrs[2]'s block, the
        # search goes on to the remainder right after it
        assert p == start + 16 + 112 * where, name
        a.check()


def test_the_rover_is_moved_out_of_a_merged_block() -> None:
    a = _alloc("csapp-next-fit")
    x, y, z = (a.malloc(100) for _ in range(3))         # 3 blocks of 112 bytes
    w = a.malloc(4096 - 3 * 112 - 8)                    # takes the rest of the chunk whole
    assert not a.free_blocks and a.rover == w
    a.free(y)
    assert a.malloc(40) == y                            # nothing after w: wraps to y
    assert a.rover == y
    a.free(x)                                           # x free, y allocated: no merge
    a.free(y)                                           # y merges into x: rover moves to x
    assert a.rover == x and a.free_blocks == {x: 224}
    a.check()
    del z


def test_realloc_is_malloc_copy_free() -> None:
    a = _alloc()
    p = a.malloc(100)
    q = a.realloc(p, 50)                                # never in place, even to shrink
    assert q != p and p not in a.alloc_blocks
    assert a.realloc(q, 0) == 0 and not a.alloc_blocks
    assert a.realloc(0, 10)


def test_memlib_max_heap_makes_mem_sbrk_fail() -> None:
    a = _alloc(max_heap=MALLOCLAB_MAX_HEAP)
    assert a.malloc(MALLOCLAB_MAX_HEAP) == 0 and a.errno
    assert a.malloc(MALLOCLAB_MAX_HEAP // 2)
    b = _alloc()                                        # no memlib limit: the kernel's only
    assert b.malloc(MALLOCLAB_MAX_HEAP)


def test_misuse_is_reported() -> None:
    a = _alloc()
    p = a.malloc(10)
    with pytest.raises(AllocatorAbort):
        a.free(p + 8)
    a.free(p)
    with pytest.raises(AllocatorAbort):
        a.free(p)


@pytest.mark.parametrize("name", ["csapp-first-fit", "csapp-next-fit"])
@pytest.mark.parametrize("wsize", [4, 8])
def test_invariants_hold_after_every_call(name: str, wsize: int) -> None:
    a = _alloc(name, wsize=wsize)
    rng = random.Random(wsize)
    live: list[int] = []
    for step in range(600):
        r = rng.random()
        if r < 0.45 or not live:
            p = a.malloc(rng.choice([rng.randint(1, 64), rng.randint(1, 6000)]))
            assert p % (2 * wsize) == 0
            live.append(p)
        elif r < 0.8:
            a.free(live.pop(rng.randrange(len(live))))
        elif r < 0.92:
            i = rng.randrange(len(live))
            live[i] = a.realloc(live[i], rng.randint(1, 9000))
        else:
            p = a.memalign(rng.choice([32, 64, 4096]), rng.randint(1, 500))
            assert p % 32 == 0
            live.append(p)
        a.check()
        u = a.usage()
        assert u.in_use + u.free + u.top + u.overhead == u.total == a.mem_heapsize(), step


def test_the_64_bit_layout_uses_8_byte_words() -> None:
    a = _alloc(wsize=8)
    a.mm_init()
    assert a.alignment == 16 and a.MIN_BLOCK == 32 and a.mem_heapsize() == 32 + 4096
    p = a.malloc(1)
    assert a.alloc_blocks[p] == 32 and p % 16 == 0


# --- the real C code (optional) ---------------------------------------------------------------

def _synthetic_rep(path: Path, seed: int, n: int = 1500) -> None:
    """A seeded random .rep trace (classic header): mixed sizes, reallocs, all freed."""
    rng = random.Random(seed)
    live: list[int] = []
    lines: list[str] = []
    nid = 0
    while len(lines) < n:
        r = rng.random()
        if r < 0.5 or not live:
            size = rng.choice([rng.randint(1, 48), rng.randint(1, 700), rng.randint(1, 9000)])
            lines.append(f"a {nid} {size}")
            live.append(nid)
            nid += 1
        elif r < 0.85:
            lines.append(f"f {live.pop(rng.randrange(len(live)))}")
        else:
            lines.append(f"r {rng.choice(live)} {rng.randint(1, 12000)}")
    rng.shuffle(live)
    lines.extend(f"f {i}" for i in live)
    path.write_text(f"20000\n{nid}\n{len(lines)}\n1\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def book_oracles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    mm_c = os.environ.get("MEMSIM_CSAPP_MM_C")
    if not mm_c:
        pytest.skip("set MEMSIM_CSAPP_MM_C to the book's mm.c (e.g. a Malloc Lab handout's "
                    "mm-textbook.c) to compare with the real C code")
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the book's mm.c")
    out = tmp_path_factory.mktemp("oracle")
    bins = {}
    for name, flags in (("csapp-first-fit", []), ("csapp-next-fit", ["-DNEXT_FIT"])):
        exe = out / name
        subprocess.run(["gcc", "-O1", "-w", "-DDRIVER", *flags, "-o", str(exe),
                        str(HERE / "c" / "csapp_oracle.c"), mm_c], check=True)
        bins[name] = exe
    return bins


def _simulated(name: str, path: Path) -> tuple[int, int]:
    a = create(name, Process().mm, {"max_heap": MALLOCLAB_MAX_HEAP})
    with RepReader(path) as reader:
        res = replay_util(reader, a, name=path.name)
    assert res.valid, res.error
    return res.peak_payload, res.heap_size


@pytest.mark.parametrize("name", ["csapp-first-fit", "csapp-next-fit"])
@pytest.mark.parametrize("seed", range(6))
def test_same_heap_as_the_books_c_code(book_oracles: dict[str, Path], name: str, seed: int,
                                       tmp_path: Path) -> None:
    trace = tmp_path / f"syn{seed}.rep"
    _synthetic_rep(trace, seed)
    out = subprocess.run([str(book_oracles[name]), str(trace)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert _simulated(name, trace) == (int(out[0]), int(out[1]))


@pytest.mark.parametrize("name", ["csapp-first-fit", "csapp-next-fit"])
def test_same_heap_as_the_books_c_code_on_the_lab_traces(book_oracles: dict[str, Path],
                                                         name: str) -> None:
    folder = os.environ.get("MEMSIM_MALLOCLAB_TRACES")
    if not folder:
        pytest.skip("set MEMSIM_MALLOCLAB_TRACES to the Malloc Lab traces as well")
    traces = sorted(Path(folder).glob("*.rep"))
    assert traces, f"no .rep files in {folder}"
    for trace in traces:
        out = subprocess.run([str(book_oracles[name]), str(trace)], capture_output=True,
                             text=True, check=True).stdout.split()
        assert _simulated(name, trace) == (int(out[0]), int(out[1])), trace.name


# --- the book's header walk, literally ----------------------------------------------------------

class _BookHeap:
    """The book's mm.c with memory as a dict of 4-byte words: GET/PUT on headers and footers,
    the header walk of find_fit, the rover, nothing indexed. A test oracle for the indexed
    search of CsappAllocator (the same answers, by a different route)."""

    W, D, CHUNK = 4, 8, 4096

    def __init__(self, start: int, next_fit: bool) -> None:
        self.mem: dict[int, int] = {}
        self.start = self.brk = start
        self.next_fit = next_fit
        W, D = self.W, self.D
        p = self.sbrk(4 * W)
        self.mem[p + W] = self.mem[p + 2 * W] = D | 1        # prologue header, footer
        self.mem[p + 3 * W] = 1                            # epilogue
        self.heap_listp = self.rover = p + 2 * W
        self.extend(self.CHUNK // W)

    def sbrk(self, n: int) -> int:
        old = self.brk
        self.brk += n
        return old

    def size(self, bp: int) -> int:
        return self.mem[bp - self.W] & ~7

    def alloc(self, bp: int) -> int:
        return self.mem[bp - self.W] & 1

    def mark(self, bp: int, size: int, a: int) -> None:
        self.mem[bp - self.W] = size | a
        self.mem[bp + size - self.D] = size | a

    def extend(self, words: int) -> int:
        size = (words + words % 2) * self.W
        bp = self.sbrk(size)
        self.mark(bp, size, 0)
        self.mem[bp + size - self.W] = 1                   # new epilogue
        return self.coalesce(bp)

    def coalesce(self, bp: int) -> int:
        prev_alloc = self.mem[bp - self.D] & 1
        nxt = bp + self.size(bp)
        next_alloc = self.alloc(nxt)
        size = self.size(bp)
        if not next_alloc:
            size += self.size(nxt)
        if not prev_alloc:
            psize = self.mem[bp - self.D] & ~7             # the previous block's footer
            bp -= psize
            size += psize
        self.mark(bp, size, 0)
        if self.next_fit and bp < self.rover < bp + size:
            self.rover = bp
        return bp

    def find_fit(self, asize: int) -> int:
        if not self.next_fit:
            bp = self.heap_listp
            while self.size(bp) > 0:
                if not self.alloc(bp) and asize <= self.size(bp):
                    return bp
                bp += self.size(bp)
            return 0
        old = self.rover
        while self.size(self.rover) > 0:
            if not self.alloc(self.rover) and asize <= self.size(self.rover):
                return self.rover
            self.rover += self.size(self.rover)
        self.rover = self.heap_listp
        while self.rover < old:
            if not self.alloc(self.rover) and asize <= self.size(self.rover):
                return self.rover
            self.rover += self.size(self.rover)
        return 0

    def place(self, bp: int, asize: int) -> None:
        csize = self.size(bp)
        if csize - asize >= 2 * self.D:
            self.mark(bp, asize, 1)
            self.mark(bp + asize, csize - asize, 0)
        else:
            self.mark(bp, csize, 1)

    def malloc(self, size: int) -> int:
        D = self.D
        asize = 2 * D if size <= D else D * ((size + D + D - 1) // D)
        bp = self.find_fit(asize)
        if not bp:
            bp = self.extend(max(asize, self.CHUNK) // self.W)
        self.place(bp, asize)
        return bp

    def free(self, bp: int) -> None:
        self.mark(bp, self.size(bp), 0)
        self.coalesce(bp)

    def realloc(self, bp: int, size: int) -> int:
        new = self.malloc(size)
        self.free(bp)
        return new


@pytest.mark.parametrize("name", ["csapp-first-fit", "csapp-next-fit"])
@pytest.mark.parametrize("seed", range(8))
def test_the_indexed_search_returns_what_the_header_walk_returns(name: str, seed: int) -> None:
    a = _alloc(name)
    a.mm_init()
    book = _BookHeap(a.mem_heap_lo(), name.endswith("next-fit"))
    rng = random.Random(seed)
    live: list[int] = []
    for step in range(700):
        r = rng.random()
        if r < 0.5 or not live:
            n = rng.choice([rng.randint(1, 40), rng.randint(1, 900), rng.randint(1, 7000)])
            p, q = a.malloc(n), book.malloc(n)
            live.append(p)
        elif r < 0.85:
            i = rng.randrange(len(live))
            a.free(live[i])
            book.free(live.pop(i))
            p = q = 0
        else:
            i = rng.randrange(len(live))
            n = rng.randint(1, 9000)
            p, q = a.realloc(live[i], n), book.realloc(live[i], n)
            live[i] = p
        assert p == q, (seed, step)
        assert a.mem_heapsize() == book.brk - book.start, (seed, step)
        if name.endswith("next-fit"):
            assert a.rover == book.rover, (seed, step)
