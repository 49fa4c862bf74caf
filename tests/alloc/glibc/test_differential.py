"""Random call sequences through the real glibc 2.36 and the model (on the simulated kernel):
every result, every memory syscall, the heap's resident size and mallinfo2 must be
identical."""

from __future__ import annotations

import zlib

import pytest

from memsim.process import Process

from ..fakesys import LoggingSyscalls
from ..oracle import first_difference, random_script, run_model, run_real

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("real_glibc")]

ENVS = [
    {},
    {"MALLOC_TOP_PAD_": "0"},
    {"MALLOC_TOP_PAD_": "0x1000", "MALLOC_TRIM_THRESHOLD_": "8192"},
    {"MALLOC_MMAP_THRESHOLD_": "65536"},
    {"MALLOC_MMAP_MAX_": "0"},
    {"MALLOC_MMAP_THRESHOLD_": "0"},
    {"MALLOC_PERTURB_": "165"},
    {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"},
    {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"},
    {"GLIBC_TUNABLES": "glibc.malloc.tcache_max=100:glibc.malloc.mxfast=160"},
    {"GLIBC_TUNABLES": "glibc.malloc.tcache_unsorted_limit=2:glibc.malloc.tcache_count=3"},
]


def _kernel() -> LoggingSyscalls:
    proc = Process()
    return LoggingSyscalls(proc.mm, proc.mm.start_brk)


def _compare(script: list[str], env: dict[str, str] | None = None, check_every: int = 64,
             ) -> None:
    """The model runs on the simulated kernel (memsim.kernel.mm.MM): RSS from its pages."""
    real_out, real_sys = run_real(script, env=env)
    model_out, model_sys, g = run_model(script, env=env, sys=_kernel(),
                                        check_every=check_every)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)
    g.check()


@pytest.mark.parametrize("seed", range(4))
def test_random_calls_match_real_glibc(seed: int) -> None:
    _compare(random_script(seed, 1500))


@pytest.mark.parametrize("env", ENVS[1:], ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_random_calls_match_real_glibc_under_tunables(env: dict[str, str]) -> None:
    _compare(random_script(zlib.crc32(repr(sorted(env.items())).encode()), 600), env=env)


@pytest.mark.parametrize("block", [0x80000, 0x300000])
def test_brk_failure_falls_back_to_mmap_like_real_glibc(block: int) -> None:
    _compare(random_script(block, 1500, block_brk_at=block))


def test_small_sizes_only_match_real_glibc() -> None:
    """No mmapped chunks: long-lived fragmentation of the bins and the top."""
    _compare(random_script(99, 2000, big=False, max_live=400))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 140))
def test_random_calls_match_real_glibc_long(seed: int) -> None:
    _compare(random_script(seed, 20000, max_live=1000), check_every=1000)


@pytest.mark.slow
@pytest.mark.parametrize("env", ENVS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
@pytest.mark.parametrize("seed", range(3))
def test_random_calls_match_real_glibc_under_tunables_long(env: dict[str, str], seed: int,
                                                           ) -> None:
    _compare(random_script(seed * 7919 + len(str(env)), 8000), env=env, check_every=500)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_brk_failure_long(seed: int) -> None:
    _compare(random_script(seed, 8000, block_brk_at=0x40000 + seed * 0x40000),
             check_every=500)
