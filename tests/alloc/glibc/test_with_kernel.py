"""The glibc model on the simulated kernel (memsim.kernel.mm.MM through memsim.Process):
the same random scripts as the differential tests, compared with the real glibc, including
the heap's resident size from the simulated page table."""

from __future__ import annotations

import pytest

from memsim.process import Process

from ..fakesys import LoggingSyscalls
from ..oracle import first_difference, random_script, run_model, run_real

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("real_glibc")]


def _kernel() -> LoggingSyscalls:
    proc = Process()
    return LoggingSyscalls(proc.mm, proc.mm.start_brk)


@pytest.mark.parametrize("seed", [7, 8])
def test_on_the_simulated_kernel_matches_real_glibc(seed: int) -> None:
    script = random_script(seed, 1200, block_brk_at=None)
    real_out, real_sys = run_real(script)
    model_out, model_sys, g = run_model(script, sys=_kernel(), check_every=100)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)
    g.check()
    g.sys.inner.check()  # type: ignore[attr-defined]


def test_heap_rss_on_the_simulated_kernel_matches_real_glibc() -> None:
    script = ["m 0 100000", "m 1 100000", "m 2 10", "f 1", "R", "c 3 1 90000", "R", "t 0",
              "R", "f 0", "R", "m 4 300000", "R", "r 4 700000", "R", "i"]
    real_out, _ = run_real(script)
    model_out, _, _ = run_model(script, sys=_kernel(), check_every=1)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)


def test_out_of_memory_matches_real_glibc() -> None:
    """Requests the kernel refuses (overcommit heuristic): NULL, and the same attempts: mmap,
    brk, then mmap as morecore (1 TiB, 64 GiB; calloc, realloc, memalign too)."""
    script = ["m 0 10", "m 1 1099511627776", "m 2 68719476736", "c 3 1 1099511627776",
              "r 0 1099511627776", "a 4 4096 1099511627776", "m 5 100", "i"]
    real_out, real_sys = run_real(script)
    model_out, model_sys, _ = run_model(script, sys=_kernel(), check_every=1)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 30))
def test_on_the_simulated_kernel_long(seed: int) -> None:
    script = random_script(seed, 10000)
    real_out, real_sys = run_real(script)
    model_out, model_sys, _ = run_model(script, sys=_kernel(), check_every=1000)
    assert not first_difference(real_out, model_out), first_difference(real_out, model_out)
    assert not first_difference(real_sys, model_sys), first_difference(real_sys, model_sys)
