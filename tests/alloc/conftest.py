"""Fixtures for the allocator tests: the real-glibc oracle, and slow tests off by default."""

from __future__ import annotations

import pytest

from .oracle import have_toolchain


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this directory's @slow tests unless ``-m`` names them (``-m slow``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and "tests/alloc" in str(item.path):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_glibc() -> None:
    """Skip when gcc or strace is missing: the real glibc cannot be asked."""
    if not have_toolchain():
        pytest.skip("gcc and strace are needed to run the real glibc")
