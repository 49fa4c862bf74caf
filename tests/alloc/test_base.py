"""base.py: the registry and the contract's shared pieces."""

from __future__ import annotations

import pytest

import memsim.alloc as alloc
from memsim.alloc import Allocator, AllocatorAbort, available, create, get, register
from memsim.alloc.glibc import Glibc236
from memsim.errors import ConfigError, Signal

from .fakesys import FakeSyscalls


def test_public_api_is_exactly_all() -> None:
    assert sorted(alloc.__all__) == sorted(
        ["Allocator", "AllocatorAbort", "HeapUsage", "MallInfo2", "NotModelled", "available",
         "create", "get", "register"])
    for name in alloc.__all__:
        assert hasattr(alloc, name)


def test_glibc_is_registered_with_a_description() -> None:
    names = dict(available())
    assert "glibc" in names and names["glibc"]
    assert get("glibc") is Glibc236
    g = create("glibc", FakeSyscalls(), {"env": {"MALLOC_TOP_PAD_": "0"}})
    assert isinstance(g, Allocator) and g.tunables.values == {"top_pad": 0}


def test_unknown_names_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown allocator 'nope'.*glibc"):
        get("nope")
    with pytest.raises(ConfigError, match="bad options"):
        create("glibc", FakeSyscalls(), {"colour": "blue"})
    with pytest.raises(ConfigError):
        register("bad name!", "x")


def test_registering_a_second_class_under_a_taken_name_fails() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register("glibc", "again")(type("Other", (Glibc236,), {}))


def test_allocator_abort_is_a_sigabrt_signal() -> None:
    e = AllocatorAbort("free(): invalid pointer", 0x1234)
    assert isinstance(e, Signal) and e.signo == 6 and e.name == "SIGABRT"
    assert "free(): invalid pointer" in str(e) and "0x1234" in str(e)
    assert "not detected" in str(AllocatorAbort("x", detected=False))
