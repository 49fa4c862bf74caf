"""tunables.py: GLIBC_TUNABLES and MALLOC_*_ parsing, precedence and bounds."""

from __future__ import annotations

import pytest

from memsim.alloc.glibc import Glibc236
from memsim.alloc.glibc.tunables import M_MXFAST, M_TOP_PAD, Tunables, strtoul
from memsim.errors import ConfigError

from ..fakesys import FakeSyscalls


def test_strtoul_reads_decimal_hex_and_octal() -> None:
    assert strtoul("4096") == 4096 and strtoul("0x1000") == 4096 and strtoul("010") == 8
    assert strtoul("12k") is None and strtoul("") is None


def test_glibc_tunables_win_over_the_alias() -> None:
    t = Tunables.from_env({"MALLOC_TOP_PAD_": "1", "GLIBC_TUNABLES": "glibc.malloc.top_pad=2"})
    assert t.values == {"top_pad": 2}


def test_out_of_bounds_values_are_ignored_with_a_warning() -> None:
    t = Tunables.from_env({"MALLOC_PERTURB_": "300", "MALLOC_ARENA_MAX": "0",
                           "GLIBC_TUNABLES": "glibc.malloc.nosuch=1:glibc.rtld.x=2:junk"})
    assert t.values == {}
    assert len(t.warnings) == 4


def test_secure_programs_ignore_malloc_tunables() -> None:
    assert Tunables.from_env({"MALLOC_TOP_PAD_": "0"}, secure=True).values == {}


def test_hugetlb_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="hugetlb"):
        Tunables.from_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"})


def test_setting_a_threshold_freezes_the_dynamic_threshold() -> None:
    for env in ({"MALLOC_TOP_PAD_": "131072"}, {"MALLOC_MMAP_MAX_": "65536"},
                {"MALLOC_TRIM_THRESHOLD_": "131072"}, {"MALLOC_MMAP_THRESHOLD_": "131072"}):
        g = Glibc236(FakeSyscalls(), env=env)
        g.free(g.malloc(200000))
        assert g.mp.no_dyn_threshold == 1 and g.mp.mmap_threshold == 131072
    g = Glibc236(FakeSyscalls(), env={"MALLOC_PERTURB_": "1"})
    g.free(g.malloc(200000))
    assert g.mp.no_dyn_threshold == 0 and g.mp.mmap_threshold > 131072


def test_mallopt_return_values() -> None:
    g = Glibc236(FakeSyscalls())
    assert g.mallopt(M_MXFAST, 161) == 0 and g.mallopt(M_MXFAST, -1) == 0
    assert g.mallopt(M_MXFAST, 0) == 1 and g.mp.global_max_fast == 16
    assert g.mallopt(M_TOP_PAD, 0) == 1 and g.mp.no_dyn_threshold == 1
    assert g.mallopt(12345, 1) == 1
    g.tunables.check()

