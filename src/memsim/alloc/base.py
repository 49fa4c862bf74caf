"""The allocator contract: what every memsim allocator implements, and how it reports misuse.

An allocator is the C library's ``malloc`` family, simulated. It is built on top of one
:class:`memsim.kernel.abi.Syscalls` object given at construction, and reaches the kernel only
through it (``sys_brk``, ``sys_mmap``, ``sys_munmap``, ``sys_mremap``, ``sys_madvise``) and
touches memory only through ``syscalls.write(addr, length)``::

        traced program (trace replay, memsim.Process)
               |  malloc / free / calloc / realloc / memalign ...
               v
        +--------------+   Allocator (this contract): returns addresses, 0 = NULL
        |  allocator   |   errno in .errno; misuse raises AllocatorAbort (SIGABRT)
        +--------------+
               |  sys_brk / sys_mmap / sys_munmap / sys_mremap / sys_madvise / write
               v
        memsim.kernel (abi.Syscalls): VMAs, page tables, frames

Conventions, as in C:

* A pointer is an ``int``; ``0`` is NULL. A request the allocator cannot satisfy returns 0
  and sets ``self.errno`` (``ENOMEM`` / ``EINVAL``): it is data, not an exception.
* Misuse by the traced program (double free, free of a pointer that was never returned,
  corrupted metadata) raises :class:`AllocatorAbort` with the message the real allocator
  prints before ``abort()``, e.g. ``free(): double free detected in tcache 2``. Misuse that the
  real allocator would *not* detect (it would silently corrupt its heap) is still raised, with
  ``detected=False`` and a message that says so: memsim never ignores it silently.
* ``check()`` asserts every invariant of the allocator's structures (AssertionError on
  failure); tests call it after every step.
* ``usage()`` puts every byte the allocator obtained from the kernel in exactly one bucket.
* Behaviour of the real allocator that a model does not simulate raises
  :class:`NotModelled` rather than diverging silently.

The registry maps a short name (``"glibc"``) to an allocator class with a one-line
description: :func:`register`, :func:`get`, :func:`available`, :func:`create`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from memsim.errors import ConfigError, MemsimError, Signal
from memsim.kernel.abi import EINVAL, ENOMEM, Syscalls
from memsim.units import PAGE_SIZE

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


class AllocatorAbort(Signal):
    """SIGABRT raised by an allocator that found misuse by the program (``malloc_printerr``).

    ``message`` is the text the real allocator prints (``free(): invalid pointer``);
    ``detected`` is False when the real allocator would not have noticed (it would have
    corrupted its heap instead), in which case the message says so.
    """

    signo = 6
    name = "SIGABRT"

    def __init__(self, message: str, ptr: int = 0, detected: bool = True) -> None:
        self.message = message
        self.ptr = ptr
        self.detected = detected
        text = message if detected else f"{message} [not detected by the real allocator]"
        if ptr:
            text += f" (pointer {ptr:#x})"
        super().__init__(text)


class NotModelled(MemsimError):
    """The program reached behaviour the allocator model does not simulate (for glibc: a
    thread arena). Going on would silently diverge from the real allocator, so it stops."""


@dataclass
class MallInfo2:
    """``struct mallinfo2`` (malloc.h): the fields glibc reports, in bytes or counts."""

    arena: int = 0       # bytes obtained with brk (or mmap as morecore)
    ordblks: int = 0     # free chunks (top counts as one)
    smblks: int = 0      # fastbin chunks
    hblks: int = 0       # mmapped chunks
    hblkhd: int = 0      # bytes in mmapped chunks
    usmblks: int = 0     # always 0
    fsmblks: int = 0     # bytes in fastbin chunks
    uordblks: int = 0    # bytes in use (arena - fordblks)
    fordblks: int = 0    # bytes free (top + bins + fastbins)
    keepcost: int = 0    # top size

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class HeapUsage:
    """Every byte the allocator got from the kernel, in exactly one bucket (bytes).

    ``total`` is the address space the allocator holds (heap + its own mappings); the buckets
    add up to it exactly (a test asserts it).
    """

    in_use: int = 0      # chunks the program holds, headers included
    cached: int = 0      # chunks the allocator keeps for quick reuse (tcache, fastbins)
    free: int = 0        # chunks in free lists / bins
    top: int = 0         # the wilderness at the end of the heap
    overhead: int = 0    # allocator metadata and unusable bytes (fenceposts, gaps)
    total: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Allocator(ABC):
    """The malloc family on top of :class:`~memsim.kernel.abi.Syscalls`. 0 means NULL."""

    #: registry name and one-line description (set by :func:`register`)
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, syscalls: Syscalls) -> None:
        self.sys = syscalls
        self.errno = 0

    # --- the core every allocator implements -----------------------------------------------
    @abstractmethod
    def malloc(self, size: int) -> int:
        """``malloc(size)``: a pointer to at least ``size`` bytes, or 0 (errno ENOMEM)."""

    @abstractmethod
    def free(self, ptr: int) -> None:
        """``free(ptr)``; ``free(0)`` does nothing; misuse raises AllocatorAbort."""

    @abstractmethod
    def calloc(self, nmemb: int, size: int) -> int:
        """``calloc(nmemb, size)``: zeroed memory, or 0 (overflow or no memory: ENOMEM)."""

    @abstractmethod
    def realloc(self, ptr: int, size: int) -> int:
        """``realloc(ptr, size)``: resize, possibly moving; 0 on failure (ptr untouched)."""

    @abstractmethod
    def memalign(self, alignment: int, size: int) -> int:
        """``memalign(alignment, size)``: a pointer aligned to ``alignment``, or 0."""

    @abstractmethod
    def malloc_usable_size(self, ptr: int) -> int:
        """``malloc_usable_size(ptr)``: bytes usable at ``ptr`` (0 for NULL)."""

    @abstractmethod
    def check(self) -> None:
        """Assert every invariant of the allocator's structures."""

    @abstractmethod
    def usage(self) -> HeapUsage:
        """Every byte obtained from the kernel, in exactly one bucket."""

    # --- derived entry points (an allocator may override them) ---------------------------
    def aligned_alloc(self, alignment: int, size: int) -> int:
        """``aligned_alloc`` (C11); glibc 2.36 makes it an alias of memalign."""
        return self.memalign(alignment, size)

    def posix_memalign(self, alignment: int, size: int) -> tuple[int, int]:
        """``posix_memalign``: returns ``(error, ptr)``; EINVAL unless alignment is a power of
        two multiple of ``sizeof(void *)``, ENOMEM when no memory (ptr is then 0)."""
        if alignment % 8 != 0 or alignment == 0 or alignment & (alignment - 1):
            return EINVAL, 0
        ptr = self.memalign(alignment, size)
        return (0, ptr) if ptr else (ENOMEM, 0)

    def valloc(self, size: int) -> int:
        """``valloc(size)``: page-aligned memory."""
        return self.memalign(PAGE_SIZE, size)

    def pvalloc(self, size: int) -> int:
        """``pvalloc(size)``: page-aligned memory rounded up to whole pages."""
        return self.memalign(PAGE_SIZE, (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))

    def malloc_trim(self, pad: int) -> int:
        """``malloc_trim(pad)``: give free memory back to the kernel; 1 if any was released."""
        return 0

    def mallopt(self, param: int, value: int) -> int:
        """``mallopt(param, value)``: 1 on success, 0 for a parameter the allocator refuses."""
        return 0

    def mallinfo2(self) -> MallInfo2:
        """``mallinfo2()``, computed from :meth:`usage` for allocators without arenas."""
        u = self.usage()
        return MallInfo2(arena=u.total, uordblks=u.in_use + u.cached + u.overhead,
                         fordblks=u.free + u.top, keepcost=u.top)

    def malloc_stats(self) -> str:
        """The text ``malloc_stats()`` writes to stderr."""
        mi = self.mallinfo2()
        return (f"Arena 0:\nsystem bytes     = {mi.arena:10d}\nin use bytes     = "
                f"{mi.uordblks:10d}\n")


A = TypeVar("A", bound=type[Allocator])
_REGISTRY: dict[str, type[Allocator]] = {}


def register(name: str, description: str) -> Callable[[A], A]:
    """Class decorator: make an allocator available as ``name`` with a one-line description."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"bad allocator name {name!r}: use letters, digits, '-' and '_'")

    def deco(cls: A) -> A:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"allocator {name!r} is already registered "
                              f"({_REGISTRY[name].__qualname__})")
        cls.name = name
        cls.description = description
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # The built-in allocators register themselves on import.
    import memsim.alloc.buddy  # noqa: F401
    import memsim.alloc.csapp  # noqa: F401
    import memsim.alloc.glibc  # noqa: F401
    import memsim.alloc.segfit  # noqa: F401
    import memsim.alloc.seqfit  # noqa: F401
    import memsim.alloc.sizeclass  # noqa: F401


def get(name: str) -> type[Allocator]:
    """The allocator class registered as ``name``; ConfigError listing the names otherwise."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(f"unknown allocator {name!r} (known: {known})") from None


def available() -> list[tuple[str, str]]:
    """``[(name, one-line description), ...]`` sorted by name."""
    _load_builtin()
    return sorted((n, c.description) for n, c in _REGISTRY.items())


def create(name: str, syscalls: Syscalls, options: Mapping[str, Any] | None = None) -> Allocator:
    """Instantiate the allocator ``name`` on ``syscalls`` with keyword ``options``."""
    cls = get(name)
    try:
        return cls(syscalls, **dict(options or {}))  # type: ignore[call-arg]
    except TypeError as exc:
        raise ConfigError(f"bad options for allocator {name!r}: {exc}") from None
