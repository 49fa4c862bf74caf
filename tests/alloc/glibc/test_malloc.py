"""The regression cases of the spec (glibc-malloc-2.36.md §19, probes t1-t12), each replayed
through the real glibc of this machine and through the model; results, syscalls, heap RSS
and mallinfo2 must agree. No expected number is written here: the real glibc is the oracle.
"""

from __future__ import annotations

import pytest

from ..oracle import first_difference, run_model, run_real

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("real_glibc")]


def _rep(op: str, n: int, start: int, *args: int) -> list[str]:
    return [" ".join([op, str(start + i), *map(str, args)]) for i in range(n)]


def _frees(slots: range) -> list[str]:
    return [f"f {s}" for s in slots]


CASES: dict[str, list[str]] = {
    # t1: tcache reuse; 0x90 chunks beyond the tcache coalesce into top; a large request
    "t1_tcache_and_top": ["m 0 10", "m 1 256", "f 0", "f 1", "m 2 10",
                          *_rep("m", 10, 10, 0x80), *_frees(range(10, 20)), "m 3 128",
                          "m 4 0x500".replace("0x500", "1280"), *_rep("m", 10, 30, 0x80), "i",
                          "R"],
    # t2-1: memalign before any malloc: the aligned chunk comes before the tcache struct
    "t2_memalign_first": ["a 0 64 100", "m 1 10", "m 2 10", "i"],
    # t2-2: dynamic mmap threshold: the second malloc(200000) comes from brk
    "t2_dynamic_threshold": ["m 0 10", "m 1 200000", "f 1", "m 2 200000", "f 2",
                             "m 3 300000", "f 3", "i"],
    # t2-3: calloc never takes from the tcache
    "t2_calloc_no_tcache": ["m 0 24", "m 1 24", "f 0", "c 2 1 24", "m 3 24"],
    # t2-4: realloc shrink: the tail goes to the tcache
    "t2_realloc_tail_tcache": ["m 0 256", "m 1 10", "r 0 32", "m 2 208"],
    # t2-5: binmap split then the last remainder serves twice
    "t2_last_remainder": ["m 0 1280", "m 1 10", "f 0", "m 2 256", "m 3 256", "m 4 96", "i"],
    # t2-6: large-bin best fit takes the second chunk of a run
    "t2_largebin_best_fit": [x for i, sz in enumerate([0x1000, 0x1100, 0x1040, 0x1100, 0x1080,
                                                       0x1000])
                             for x in (f"m {i} {sz}", f"m {10 + i} 10")]
    + _frees(range(6)) + ["m 20 8192", f"m 21 {0x1050}", f"m 22 {0xff0}", f"m 23 {0x10f0}"],
    # t3-1: trimming after the dynamic threshold moved trim_threshold
    "t3_trim_after_threshold": ["m 0 10", "m 1 295904", "f 1", "m 2 100000", "m 3 100000",
                                "m 4 100000", "f 4", "f 3", "f 2", "i"],
    # t3-2: a >= 64 KiB free consolidates the fastbins
    "t3_consolidate_on_big_free": [*_rep("m", 20, 0, 0x30), "m 30 70000", "m 31 10",
                                   *_frees(range(20)), "f 30", "m 40 48", "m 41 256", "i"],
    # t3-3: realloc grows into top, then mremap of mmapped chunks
    "t3_realloc_mremap": ["m 0 256", "r 0 8192", "m 1 262144", "r 1 524288", "r 1 16",
                          "f 1", "i"],
    # t3-4: malloc_trim madvises free pages and shrinks the break
    "t3_malloc_trim": ["m 0 10", "m 1 100000", "m 2 10", "f 1", "R", "t 0", "R", "i"],
    # t3-5: valloc / pvalloc / posix_memalign / aligned_alloc
    "t3_aligned_family": ["v 0 100", "V 1 4096", "u 1", "m 5 4096", "p 2 256 1000",
                          "A 3 32 48", "p 4 24 10", "i"],
    # t5: tunables without tcache, fastbin LIFO
    "t5_small_reuse": ["m 0 24", "m 1 24", "m 2 24", "f 0", "f 1", "m 3 24", "m 4 40"],
    # t7: tcache stash order from fastbins, the unsorted bin and small bins
    "t7_1_fastbin_stash": [*_rep("m", 10, 0, 0x18), *_frees(range(10)),
                           *_rep("m", 10, 10, 0x18)],
    "t7_2_unsorted_stash": [x for i in range(10) for x in (f"m {i} {0x88}", f"m {20 + i} 24")]
    + _frees(range(10)) + _rep("m", 10, 40, 0x88),
    "t7_3_smallbin_stash": [x for i in range(10) for x in (f"m {i} {0x88}", f"m {20 + i} 24")]
    + _frees(range(10)) + ["m 39 1280"] + _rep("m", 10, 40, 0x88),
    # t8: trimming on free of 100000-byte chunks; fastbin + top consolidation
    "t8_trim_on_free": ["m 0 10", "m 1 100000", "m 2 100000", "m 3 100000", "f 3", "f 2",
                        "f 1", *_rep("m", 8, 10, 0x58), *_frees(range(10, 18)), "m 20 768",
                        "i"],
    # t9: realloc never takes from the tcache; realloc into a free neighbour
    "t9_realloc": ["m 0 72", "m 1 24", "f 0", "m 2 24", "m 3 24", "r 2 72", "m 4 24",
                   "m 5 1048", "m 6 1048", "m 7 24", "f 6", "r 5 1536", "m 8 512", "i"],
    # t10: a foreign sbrk: fenceposts, the old top freed into the unsorted bin
    "t10_foreign_sbrk": ["m 0 10", "s 100", "m 1 98304", "m 2 98304", "m 3 32768", "i", "R"],
    # a break that is not page aligned before the first malloc (like a static binary's TLS):
    # sysmalloc aligns the top's start and issues a second brk to page-align its end
    "unaligned_break_first": ["s 100", "m 0 10", "m 1 5000", "s 24", "m 2 200000",
                              "m 3 150000", "i", "R"],
    # t12: mallopt consolidates the fastbins
    "t12_mallopt_consolidates": [*_rep("m", 10, 0, 0x18), "m 10 24", *_frees(range(10)),
                                 "o -6 0", *_rep("m", 7, 20, 0x18), "m 30 40"],
    "t12_without_mallopt": [*_rep("m", 10, 0, 0x18), "m 10 24", *_frees(range(10)),
                            *_rep("m", 7, 20, 0x18), "m 30 40"],
    # mallopt: every parameter, then allocations that depend on them
    "mallopt_all": ["m 0 10", "o 1 0", "o -1 65536", "o -2 4096", "o -3 1000000",
                    "o -4 2", "o -5 1", "o -6 0", "o -7 2", "o -8 1", "o 1 200", "o 1 -5",
                    "o 99 1", "m 1 24", "f 1", "m 2 500000", "m 3 2000000", "i"],
    # malloc_usable_size of used, cached and mmapped chunks; NULL and failed requests
    "usable_and_null": ["m 0 24", "u 0", "m 1 1000000", "u 1", "m 2 -1", "c 3 -1 16",
                        "c 4 4611686018427387904 4", "m 5 0", "u 5", "r 5 0", "u 9",
                        "a 6 -1 10", "V 7 -1", "i"],
    # realloc: _int_malloc consolidates the fastbin chunk after p into top and returns it
    "realloc_takes_consolidated_next": [*_rep("m", 7, 10, 0x60), "m 0 256", "m 1 96",
                                        *_frees(range(10, 17)), "f 1", "r 0 4096", "m 2 96",
                                        "i"],
}
# the unsorted scan sorts at most MAX_ITERS (10000) chunks per pass: 10050 free 0x4c0 chunks,
# a large request from top, then malloc(1200) finds one of the 50 left in the unsorted bin
CASES["unsorted_scan_max_iters"] = (
    [x for i in range(10050) for x in (f"m {i} 1200", f"m {20000 + i} 24")]
    + _frees(range(10050)) + ["m 40000 2000", "m 40001 1200", "m 40002 1200", "i"])

# top too small for a small request while fastbins hold chunks: consolidate, scan again
CASES_TOP_PAD_0 = {
    "consolidate_when_top_is_short": ["m 0 10", "m 1 2304", *_rep("m", 9, 10, 0x28),
                                      *_frees(range(10, 19)), "m 20 768", "m 21 40", "i"],
}
# with tcache_unsorted_limit=1 the unsorted scan returns a stashed exact fit early
CASES_UNSORTED_LIMIT = {
    "unsorted_limit_returns_early": [x for i in range(10) for x in (f"m {i} {0x88}",
                                                                    f"m {20 + i} 24",
                                                                    f"m {40 + i} {0xb8}",
                                                                    f"m {60 + i} 24")]
    + _frees(range(10)) + _frees(range(40, 50)) + _rep("m", 10, 80, 0x88) + ["i"],
}


@pytest.mark.parametrize("name", sorted(CASES_TOP_PAD_0))
def test_top_pad_0_case_matches_real_glibc(name: str) -> None:
    _check(CASES_TOP_PAD_0[name], {"MALLOC_TOP_PAD_": "0"})


@pytest.mark.parametrize("name", sorted(CASES_UNSORTED_LIMIT))
@pytest.mark.parametrize("limit", ["1", "2", "0"])
def test_unsorted_limit_case_matches_real_glibc(name: str, limit: str) -> None:
    _check(CASES_UNSORTED_LIMIT[name],
           {"GLIBC_TUNABLES": f"glibc.malloc.tcache_unsorted_limit={limit}"})


def _check(script: list[str], env: dict[str, str]) -> None:
    real_out, real_sys = run_real(script, env=env)
    model_out, model_sys, _ = run_model(script, env=env, check_every=1)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)


@pytest.mark.parametrize("name", sorted(CASES))
def test_spec_case_matches_real_glibc(name: str) -> None:
    script = CASES[name]
    real_out, real_sys = run_real(script)
    model_out, model_sys, g = run_model(script, check_every=1 if len(script) < 500 else 5000)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)


@pytest.mark.parametrize("env", [{"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:"
                                                    "glibc.malloc.mxfast=0"},
                                 {"MALLOC_TOP_PAD_": "131072"},
                                 {"MALLOC_TOP_PAD_": "0x1000"},
                                 {"MALLOC_TOP_PAD_": "010000"},
                                 {"MALLOC_MMAP_THRESHOLD_": "4096",
                                  "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"},
                                 {"MALLOC_MMAP_THRESHOLD_": "0"}],
                         ids=str)
@pytest.mark.parametrize("name", ["t5_small_reuse", "t2_dynamic_threshold", "t1_tcache_and_top"])
def test_spec_case_under_tunables_matches_real_glibc(name: str, env: dict[str, str]) -> None:
    script = CASES[name]
    real_out, real_sys = run_real(script, env=env)
    model_out, model_sys, _ = run_model(script, env=env, check_every=1)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)
