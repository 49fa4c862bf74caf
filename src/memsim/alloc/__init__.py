"""Allocators: the malloc family simulated on top of the kernel ABI.

The contract every allocator implements is :class:`Allocator` (see ``base.py``); allocators
are found by name in a registry::

    >>> from memsim.alloc import available, create
    >>> [name for name, _ in available()]
    ['glibc']

``glibc`` is the exact model of glibc 2.36's ptmalloc2 (``memsim.alloc.glibc``).
"""

from __future__ import annotations

from memsim.alloc.base import (
    Allocator,
    AllocatorAbort,
    HeapUsage,
    MallInfo2,
    NotModelled,
    available,
    create,
    get,
    register,
)

__all__ = [
    "Allocator",
    "AllocatorAbort",
    "HeapUsage",
    "MallInfo2",
    "NotModelled",
    "available",
    "create",
    "get",
    "register",
]
