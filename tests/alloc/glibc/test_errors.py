"""Misuse by the program is reported as the real glibc reports it (malloc_printerr + abort),
compared with the message the real glibc prints; misuse glibc would miss is still raised."""

from __future__ import annotations

import pytest

from memsim.alloc import AllocatorAbort
from memsim.alloc.glibc import Glibc236
from memsim.errors import ConfigError, Signal

from ..fakesys import FakeSyscalls
from ..oracle import run_model, run_real_abort

FILL7 = [f"m {i} 24" for i in range(10, 17)]
FREE7 = [f"f {i}" for i in range(10, 17)]

DETECTED = {
    "tcache_double_free": ["m 0 24", "F 0", "F 0"],
    "fastbin_fasttop": [*FILL7, "m 0 24", "m 1 24", *FREE7, "F 0", "F 0"],
    "unsorted_not_prev": ["m 0 2000", "m 1 24", "F 0", "F 0"],
    "misaligned_pointer": ["m 0 24", "P 0 8"],
    "large_double_free_tcache_full": [*[f"m {i} 600" for i in range(10, 17)], "m 0 600",
                                      "m 1 24", *FREE7, "F 0", "F 0"],
}


@pytest.mark.oracle
@pytest.mark.usefixtures("real_glibc")
@pytest.mark.parametrize("name", sorted(DETECTED))
def test_misuse_message_matches_real_glibc(name: str) -> None:
    script = DETECTED[name]
    real = run_real_abort(script)
    with pytest.raises(AllocatorAbort) as exc:
        run_model(script, check_every=1)
    assert exc.value.detected
    assert exc.value.message == real
    assert isinstance(exc.value, Signal) and exc.value.signo == 6


def _g() -> Glibc236:
    return Glibc236(FakeSyscalls())


def test_free_of_an_unknown_pointer_is_invalid_pointer() -> None:
    g = _g()
    p = g.malloc(100)
    with pytest.raises(AllocatorAbort, match=r"free\(\): invalid pointer"):
        g.free(p + 32)


def test_double_free_glibc_would_miss_is_still_raised() -> None:
    g = _g()
    ptrs = [g.malloc(24) for _ in range(9)]
    for q in ptrs[:7]:
        g.free(q)
    g.free(ptrs[7])
    g.free(ptrs[8])                 # fastbin: ptrs[8] on top of ptrs[7]
    with pytest.raises(AllocatorAbort) as exc:
        g.free(ptrs[7])             # not the fastbin head: glibc would not notice
    assert not exc.value.detected
    assert "not detected" in str(exc.value)


def test_realloc_of_a_freed_pointer_is_reported() -> None:
    g = _g()
    p = g.malloc(5000)
    g.malloc(10)
    g.free(p)
    with pytest.raises(AllocatorAbort, match=r"realloc\(\) of a freed pointer") as exc:
        g.realloc(p, 10)
    assert not exc.value.detected
    with pytest.raises(AllocatorAbort, match=r"realloc\(\): invalid pointer"):
        g.realloc(p + 4096, 10)


def test_usable_size_of_unknown_pointer_is_reported() -> None:
    g = _g()
    p = g.malloc(10)
    with pytest.raises(AllocatorAbort):
        g.malloc_usable_size(p + 64)


@pytest.mark.parametrize("call", [lambda g: g.malloc(-1), lambda g: g.calloc(1, 1 << 64),
                                  lambda g: g.memalign(-16, 1), lambda g: g.mallopt(1 << 40, 1)])
def test_arguments_outside_c_types_are_config_errors(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        call(_g())
