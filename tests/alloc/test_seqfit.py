"""seqfit.py: the placement policies pick the block the real list walk would pick, the list
structures keep their invariants, and the heap grows, coalesces and shrinks as described."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.alloc import create
from memsim.alloc.seqfit import FitList, SeqFit
from memsim.errors import ConfigError
from memsim.process import Process
from memsim.units import PAGE_SIZE

_SHIFT = 48


def list_key(a: SeqFit, blk: int, size: int) -> int:
    """The position of a free block in the allocator's list order (as documented)."""
    if a.order == "address":
        return blk
    if a.order == "size":
        return (size << _SHIFT) | blk
    return a.pos[blk]


def expected_block(a: SeqFit, asize: int) -> int | None:
    """The block a walk over the free list (in list order) would choose, or None."""
    entries = sorted((list_key(a, b, s), b, s) for b, s in a.free_blocks.items())
    fits = [(k, b, s) for k, b, s in entries if s >= asize]
    if not fits:
        return None
    if a.placement == "first":
        return fits[0][1]
    if a.placement == "next":
        after = [e for e in fits if e[0] >= a.rover]
        return (after or fits)[0][1]
    if a.placement == "best":
        return min(fits, key=lambda e: (e[2], e[0]))[1]
    return min(fits, key=lambda e: (-e[2], e[0]))[1]


CONFIGS = [
    {"placement": p, "order": o}
    for p in ("first", "next", "best", "worst")
    for o in ("address", "lifo", "fifo", "size")
] + [{"placement": "first", "coalesce": "none"}, {"placement": "best", "coalesce": "none"},
     {"placement": "next", "lists": "implicit", "min_block": 16},
     {"placement": "first", "footer": "free", "header": 16, "min_block": 48}]

OPS = st.lists(st.tuples(st.booleans(), st.integers(0, 600), st.integers(0, 10**6)),
               min_size=1, max_size=80)


@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: "-".join(map(str, o.values())))
@settings(max_examples=20, deadline=None)
@given(ops=OPS)
def test_placement_is_the_list_walk(options: dict[str, Any], ops: list[tuple[bool, int, int]]
                                    ) -> None:
    a = create("seqfit", Process().mm, {"grow": 4096, **options})
    assert isinstance(a, SeqFit)
    live: list[int] = []
    for is_malloc, size, pick in ops:
        if is_malloc or not live:
            asize = a._asize(size)
            want = expected_block(a, asize)
            p = a.malloc(size)
            assert p
            if want is not None:
                assert p - a.hdr == want, f"{options}: malloc({size}) took {p - a.hdr:#x}, " \
                                          f"the list walk takes {want:#x}"
            live.append(p)
        else:
            a.free(live.pop(pick % len(live)))
        a.check()


def test_first_best_worst_next_on_a_known_heap() -> None:
    """Holes of 304, 112 and 208 bytes (in address order) and a large free end."""
    results = {}
    for placement in ("first", "best", "worst", "next"):
        a = create("seqfit", Process().mm, {"placement": placement, "grow": 8192})
        assert isinstance(a, SeqFit)
        sizes = [288, 64, 96, 64, 192, 64]               # blocks of 304, 80, 112, 80, 208, 80
        ptrs = [a.malloc(n) for n in sizes]
        for i in (0, 2, 4):
            a.free(ptrs[i])
        holes = {ptrs[i] - 8: a.free_blocks[ptrs[i] - 8] for i in (0, 2, 4)}
        assert list(holes.values()) == [304, 112, 208]
        results[placement] = a.malloc(180) - 8                  # a 208-byte block
        a.check()
    hole = sorted(holes)
    assert results["first"] == hole[0]
    assert results["best"] == hole[2]
    assert results["worst"] not in hole                         # the free end is larger
    assert results["next"] not in (hole[0], hole[1])            # the rover is past them


def test_next_fit_wraps_around_to_the_start() -> None:
    a = create("next-fit", Process().mm, {"grow": 4096})
    assert isinstance(a, SeqFit)
    p = [a.malloc(200) for _ in range(18)]                      # fills the first 4 KiB
    a.free(p[1])
    q = a.malloc(4096)                                          # rover moves to the end
    assert q > p[-1]
    assert all(s < 128 for b, s in a.free_blocks.items() if b > q)
    assert a.malloc(100) - 8 == p[1] - 8                        # wraps to the first hole
    a.check()


def test_immediate_coalescing_merges_both_neighbours() -> None:
    a = create("first-fit", Process().mm)
    p = [a.malloc(100) for _ in range(4)]
    size = a.alloc_blocks[p[1] - 8]
    a.free(p[0])
    a.free(p[2])
    a.free(p[1])                                                # merges with both sides
    assert a.free_blocks[p[0] - 8] == 3 * size
    a.check()


def test_deferred_coalescing_waits_for_a_failed_search() -> None:
    a = create("deferred-first-fit", Process().mm, {"grow": 4096})
    assert isinstance(a, SeqFit)
    p = [a.malloc(1000) for _ in range(3)]                      # 3 x 1024 of the first 4 KiB
    for x in p:
        a.free(x)
    assert len(a.free_blocks) == 4                              # not merged yet
    brk = a.curbrk
    q = a.malloc(3000)                                          # no fit: sweep, then fits
    assert q == p[0] and a.curbrk == brk
    a.check()


def test_no_coalescing_keeps_blocks_apart() -> None:
    a = create("seqfit", Process().mm, {"coalesce": "none", "grow": 4096})
    assert isinstance(a, SeqFit)
    p = [a.malloc(1000) for _ in range(3)]
    for x in p:
        a.free(x)
    q = a.malloc(2000)
    assert q > p[-1]                                            # the heap grew instead
    a.check()


def test_heap_grows_by_the_step_and_trims_back() -> None:
    proc = Process()
    a = create("first-fit", proc.mm, {"grow": 64 * 1024})
    assert isinstance(a, SeqFit)
    start = proc.mm.brk
    p = a.malloc(100)
    assert proc.mm.brk - start >= 64 * 1024
    big = a.malloc(200_000)                                     # max(request, grow)
    assert proc.mm.brk - start >= 64 * 1024 + 200_000
    a.free(big)
    a.free(p)
    assert a.malloc_trim(0) == 1
    assert proc.mm.brk - start < PAGE_SIZE
    a.check()
    assert a.malloc(10)
    a.check()


def test_big_requests_go_to_mmap_when_asked() -> None:
    proc = Process()
    a = create("first-fit", proc.mm, {"mmap_threshold": 128 * 1024})
    vm = proc.mm.total_vm
    brk = proc.mm.brk
    p = a.malloc(1 << 20)
    assert proc.mm.total_vm - vm == (1 << 20) // PAGE_SIZE + 1 and p % 16 == 0
    assert proc.mm.brk == brk                                   # not from the heap
    assert a.malloc_usable_size(p) >= 1 << 20
    a.free(p)
    assert proc.mm.total_vm == vm
    a.check()


def test_only_headers_and_footers_are_written() -> None:
    """RSS: a large block touches the pages of its header, its footer and the free
    remainder's header, not the pages in between."""
    proc = Process()
    a = create("first-fit", proc.mm, {"grow": 1 << 20})
    before = proc.mm.rss
    p = a.malloc(512 * 1024)
    touched = proc.mm.rss - before
    assert 2 <= touched <= 5, touched
    proc.mm.write(p, 512 * 1024)
    assert proc.mm.rss - before >= 128


def test_cs_app_geometry_is_expressible() -> None:
    """4-byte header and footer, 8-byte alignment, 16-byte minimum block, 4 KiB chunks."""
    a = create("seqfit", Process().mm, {"lists": "implicit", "header": 4, "alignment": 8,
                                        "min_block": 16, "grow": 4096, "prologue": 8,
                                        "realloc": "copy"})
    assert isinstance(a, SeqFit)
    p = a.malloc(1)
    assert p % 8 == 0 and a.alloc_blocks[p - 4] == 16
    q = a.realloc(p, 2)
    assert q != p                                               # mm_realloc always moves
    u = a.usage()
    assert u.overhead == 4 + 8 + 4                              # pad, prologue, epilogue
    a.check()


def test_memalign_frees_the_unaligned_lead() -> None:
    a = create("first-fit", Process().mm)
    assert isinstance(a, SeqFit)
    a.malloc(10)
    p = a.memalign(4096, 100)
    assert p % 4096 == 0 and a.malloc_usable_size(p) >= 100
    assert a.free_end.get(p - 8) is not None                    # the lead is a free block
    a.check()


def test_realloc_grows_into_the_next_free_block_and_shrinks_in_place() -> None:
    a = create("first-fit", Process().mm)
    p = a.malloc(100)
    q = a.malloc(100)
    a.free(q)
    assert a.realloc(p, 150) == p
    assert a.realloc(p, 20) == p
    assert a.malloc_usable_size(p) >= 20
    a.check()


@pytest.mark.parametrize("bad", [
    {"placement": "random"}, {"order": "backwards"}, {"alignment": 24}, {"min_block": 8},
    {"lists": "implicit", "order": "lifo"}, {"header": -1}, {"mmap_threshold": 0},
    {"colour": "blue"},
])
def test_bad_options_are_one_line_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as e:
        create("seqfit", Process().mm, bad)
    assert "\n" not in str(e.value) and str(e.value)


def test_named_configurations_differ_only_in_defaults() -> None:
    for name, placement in (("first-fit", "first"), ("next-fit", "next"),
                            ("best-fit", "best"), ("worst-fit", "worst")):
        a = create(name, Process().mm, {"grow": 8192})
        assert isinstance(a, SeqFit) and a.placement == placement and a.grow == 8192


def test_free_of_a_heap_pointer_inside_a_block_is_reported() -> None:
    from memsim.alloc import AllocatorAbort

    a = create("first-fit", Process().mm)
    p = a.malloc(100)
    with pytest.raises(AllocatorAbort, match="invalid pointer"):
        a.free(p + 16)


def test_heap_is_read_write_memory_from_brk() -> None:
    proc = Process()
    a = create("best-fit", proc.mm)
    p = a.malloc(100)
    assert proc.mm.start_brk <= p < proc.mm.brk


# --- FitList ---------------------------------------------------------------------------------

def test_fitlist_first_fit_matches_a_scan() -> None:
    rng = random.Random(7)
    fl = FitList()
    ref: dict[int, int] = {}
    for _ in range(4000):
        r = rng.random()
        if ref and r < 0.4:
            k = rng.choice(list(ref))
            assert fl.remove(k) == ref.pop(k)
        elif ref and r < 0.5:
            keys = sorted(ref)
            i = rng.randrange(len(keys))
            lo = keys[i - 1] + 1 if i else 0
            new = rng.randrange(lo, keys[i] + 1)
            size = rng.randrange(1, 5000)
            fl.replace(keys[i], new, size)
            del ref[keys[i]]
            ref[new] = size
        else:
            k = rng.randrange(1 << 30)
            if k in ref:
                continue
            ref[k] = rng.randrange(1, 5000)
            fl.insert(k, ref[k])
        n = rng.randrange(1, 5200)
        start = rng.choice([None, rng.randrange(1 << 30)])
        want = next((k for k in sorted(ref) if ref[k] >= n and (start is None or k >= start)),
                    None)
        assert fl.first_fit(n, start) == want
    fl.check()
    assert len(fl) == len(ref)


@pytest.mark.parametrize("options", [
    {"placement": "best"}, {"placement": "worst"},
    {"placement": "first", "order": "lifo"}, {"placement": "next", "order": "fifo"},
    {"placement": "first"},
])
def test_a_subclass_with_its_own_index_operations_places_the_same_blocks(
        options: dict[str, Any]) -> None:
    """A subclass that overrides an index operation gets neither the specialised closures nor
    the configuration's index shortcuts: the general ones (``_ix_move``, ``_ix_merge``) must
    give the same blocks."""

    class Counting(SeqFit):
        adds = 0

        def _index_add(self, blk: int, size: int) -> None:
            self.adds += 1
            super()._index_add(blk, size)

    rng = random.Random(5)
    plain = create("seqfit", Process().mm, options)
    counting = Counting(Process().mm, **options)
    live: list[tuple[int, int]] = []
    for _ in range(3000):
        if live and rng.random() < 0.45:
            p, q = live.pop(rng.randrange(len(live)))
            plain.free(p)
            counting.free(q)
        else:
            size = rng.choice((8, 24, 40, 100, 300, 2000, 9000))
            p, q = plain.malloc(size), counting.malloc(size)
            assert p == q
            live.append((p, q))
    counting.check()
    assert counting.adds > 0
