"""A simulated Linux process, driven from Python the way a small C program drives the kernel.

:class:`Process` is the user-facing object: a fresh process of a small dynamically linked C
program (see :mod:`memsim.kernel.layout`) whose memory calls read like their C counterparts
but return Python values::

    machine = memsim.Machine(ram="24G", swap=0, overcommit=0)
    proc = memsim.Process(machine=machine)
    old = proc.sbrk(4096)                 # glibc sbrk: the old break, or None (proc.errno set)
    addr = proc.mmap(1 << 20, prot="rw")  # anonymous private mapping, or None
    proc.write(addr, length=4096)         # the CPU touches memory: demand paging
    proc.status()["RssAnon"]              # /proc/PID/status figures in kB; str() is the text
    print(proc.maps())                    # /proc/PID/maps text
    p = proc.malloc(100)                  # glibc 2.36 malloc: an address, or None (errno)
    proc.free(p)

Layers::

    Process        C conventions: None/-1 and errno, prot strings, size strings
      |  malloc free calloc realloc memalign aligned_alloc posix_memalign valloc pvalloc
      |  malloc_usable_size malloc_trim mallopt mallinfo2 malloc_stats   (-> proc.allocator)
      |  sbrk brk (glibc's, sharing __curbrk with malloc), mmap munmap mprotect mremap
      |  madvise, threads (glibc's stacks), read/write (the CPU)
      v
    proc.allocator  a memsim.alloc.Allocator, glibc 2.36 by default (Process(allocator=...))
      |  sys_brk sys_mmap sys_munmap sys_mremap sys_madvise write
      v
    proc.mm        memsim.kernel.mm.MM: the syscalls, returning -errno -> PageTable/Machine

The allocator is created over ``proc.mm`` on first use (a malloc-family call or reading
``proc.allocator``), so a process that never calls malloc behaves, syscall for syscall, as a
kernel-only process; ``Process(allocator=None)`` has no allocator at all (the malloc family
then raises :class:`memsim.errors.ConfigError`). Another allocator may be attached with
``proc.allocator = alloc`` (trace replay does that, over a syscall logger).

The break is shared: glibc keeps one ``__curbrk`` for the program's ``sbrk``/``brk`` and for
malloc's. When the allocator has ``sbrk``/``brk`` (glibc does), :meth:`Process.sbrk` and
:meth:`Process.brk` go through the allocator's, so a program that calls ``sbrk`` between
mallocs sees what glibc on the real kernel gives it (malloc then finds a foreign sbrk and
starts a new top after it, as ``sysmalloc`` does). Before the allocator exists the process
keeps the cached break itself and hands it over when the allocator is created.

The malloc family in C conventions: a pointer is an int; NULL is returned as ``None`` (like
``mmap``'s MAP_FAILED) with ``errno`` set (ENOMEM/EINVAL) when the call failed; ``free``,
``realloc`` and ``malloc_usable_size`` accept ``None`` or 0 for NULL. Misuse the real
allocator would abort on (double free, invalid pointer) raises
:class:`memsim.alloc.AllocatorAbort` (SIGABRT), with glibc's message.

Argument rules: lengths and addresses are C ``size_t``; a negative int is the huge unsigned
value C would pass (``munmap(addr, -1)`` is EINVAL, ``mmap(-1)`` ENOMEM, as the kernel says).
Lengths may also be size strings (``"64k"``). Something no C call could express (a float, a
non-positive ``every``, an unknown prot string) raises :class:`memsim.errors.ConfigError`.

glibc pieces mirrored: ``__sbrk``/``__brk`` (misc/sbrk.c, sysdeps/unix/sysv/linux/brk.c: a
cached break, ``brk(0)`` on first use, failure when the kernel returns less than asked),
``allocate_stack``/``setup_stack_prot``/``get_cached_stack`` (nptl/allocatestack.c),
``queue_stack``/``free_stacks`` (nptl/nptl-stack.c: at most 40 MiB of joined threads' stacks
are kept for reuse), ``advise_stack_range`` (a returning thread gives back its stack below the
stack pointer with MADV_DONTNEED) and the default thread stack size of
``__pthread_initialize_minimal`` (RLIMIT_STACK at start, 2 MiB if unlimited).

Invariants (:meth:`Process.check`): those of the MM (which include the page table's),
glibc's cached break never lies below ``start_brk``, and those of the allocator
(``allocator.check()``, e.g. glibc's do_check_malloc_state) once it exists.

Not modelled: MAP_SHARED memory, mlock, fork, detached threads, what a thread does with its
stack beyond the pages it writes at start (use ``write`` on its range).
"""

from __future__ import annotations

import errno as _errno
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsim.errors import ConfigError
from memsim.kernel import abi, procfs
from memsim.kernel.abi import RLIM_INFINITY
from memsim.kernel.layout import DEFAULT_RLIMIT_STACK, Layout
from memsim.kernel.mm import MM, U64
from memsim.units import PAGE_SIZE, MiB, align_up, parse_size

if TYPE_CHECKING:
    from memsim.alloc.base import Allocator, MallInfo2
    from memsim.kernel.machine import Machine

__all__ = ["Process", "Thread", "parse_prot"]

_PROT_BITS = {"r": abi.PROT_READ, "w": abi.PROT_WRITE, "x": abi.PROT_EXEC, "-": 0}
_MMAP_FLAG_NAMES = {
    "fixed": abi.MAP_FIXED, "fixed_noreplace": abi.MAP_FIXED_NOREPLACE,
    "noreplace": abi.MAP_FIXED_NOREPLACE, "noreserve": abi.MAP_NORESERVE,
    "populate": abi.MAP_POPULATE, "stack": abi.MAP_STACK, "growsdown": abi.MAP_GROWSDOWN,
    "private": abi.MAP_PRIVATE, "anonymous": abi.MAP_ANONYMOUS, "anon": abi.MAP_ANONYMOUS,
}
_MREMAP_FLAG_NAMES = {"maymove": abi.MREMAP_MAYMOVE, "fixed": abi.MREMAP_FIXED,
                      "dontunmap": abi.MREMAP_DONTUNMAP}
_MADVICE = {"normal": 0, "random": 1, "sequential": 2, "willneed": 3, "dontneed": 4,
            "free": 8, "remove": 9, "dontfork": 10, "dofork": 11, "mergeable": 12,
            "unmergeable": 13, "hugepage": 14, "nohugepage": 15, "dontdump": 16, "dodump": 17,
            "wipeonfork": 18, "keeponfork": 19, "cold": 20, "pageout": 21,
            "populate_read": 22, "populate_write": 23}
_RLIMITS = {"data": "data", "rlimit_data": "data", "as": "as", "rlimit_as": "as",
            "stack": "stack", "rlimit_stack": "stack", "memlock": "memlock",
            "rlimit_memlock": "memlock"}

ARCH_STACK_DEFAULT_SIZE = 2 * MiB   # glibc x86-64, when RLIMIT_STACK is unlimited
PTHREAD_STACK_MIN = 16384
STATIC_TLS_ALIGN = 64               # __static_tls_align_m1 + 1 on x86-64
#: pages a new thread has written at the top of its stack by the time it runs (struct
#: pthread, static TLS, its first frames): RssAnon +8 kB per thread on this machine
THREAD_TOUCHED_PAGES = 2
#: top of the stack mapping minus the thread's stack pointer when its start routine returns
#: (measured: 0x112c; TLS, struct pthread and start_thread's frame)
THREAD_EXIT_SP_DEPTH = 0x112C
STACK_CACHE_MAXSIZE = 40 * MiB      # glibc's stack_cache_maxsize

_pids = itertools.count(1000)
_KEEP = object()          # setrlimit: "hard limit not given"
_UNSET = object()         # Process._alloc: "not created yet"


def parse_prot(prot: int | str) -> int:
    """``"rw"`` -> PROT_READ|PROT_WRITE. Accepts ``""``, ``"---"``, ``"none"``, any of r/w/x
    with ``-`` placeholders (``"r-x"``), or an int (passed to the kernel as is)."""
    if isinstance(prot, bool):
        raise ConfigError(f"not a protection: {prot!r}")
    if isinstance(prot, int):
        return prot & 0xFFFFFFFF
    if not isinstance(prot, str):
        raise ConfigError(f"not a protection: {prot!r} (use a string like 'rw' or an int)")
    text = prot.strip().lower()
    if text in ("", "none", "prot_none"):
        return abi.PROT_NONE
    bits = 0
    seen = set()
    for ch in text:
        if ch not in _PROT_BITS or (ch != "-" and ch in seen):
            raise ConfigError(f"unknown protection {prot!r} (use '', 'none', 'r', 'rw', "
                              f"'rx', 'rwx', 'w', '---', 'r-x' ...)")
        seen.add(ch)
        bits |= _PROT_BITS[ch]
    return bits


def _flags(value: int | str, table: dict[str, int], what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"not {what}: {value!r}")
    if isinstance(value, int):
        return value & 0xFFFFFFFF
    if not isinstance(value, str):
        raise ConfigError(f"not {what}: {value!r}")
    bits = 0
    for word in value.replace(",", "|").split("|"):
        w = word.strip().lower().removeprefix("map_").removeprefix("mremap_")
        if not w:
            continue
        if w not in table:
            raise ConfigError(f"unknown {what} {word.strip()!r} (known: {', '.join(table)})")
        bits |= table[w]
    return bits


def _size_t(value: int | str, what: str) -> int:
    """A C size_t: ints wrap like C, size strings are parsed, anything else is ConfigError."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be an integer, not {value!r}")
    if isinstance(value, int):
        return value & U64
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as e:
            raise ConfigError(f"{what}: {e}") from None
    raise ConfigError(f"{what} must be an integer (a C size_t), not {value!r}")


def _addr(value: int, what: str = "address") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an integer, not {value!r}")
    return value & U64


def _rlim_value(value: int | str | None) -> int:
    if value is None:
        return RLIM_INFINITY
    if isinstance(value, str) and value.strip().lower() in ("unlimited", "infinity", "inf"):
        return RLIM_INFINITY
    v = _size_t(value, "resource limit")
    return v


def _allocator_spec(allocator: object, env: object,
                    options: object) -> tuple[str | None, dict[str, Any]]:
    """Check ``Process(allocator=, env=, allocator_options=)``: (name or None, options)."""
    if allocator is None:
        if env is not None or options:
            raise ConfigError("env and allocator_options need an allocator "
                              "(allocator=None means kernel only)")
        return None, {}
    if not isinstance(allocator, str):
        raise ConfigError(f"allocator must be a registered name like 'glibc' or None, "
                          f"not {allocator!r} (attach an instance with proc.allocator = ...)")
    from memsim.alloc import get
    get(allocator)                                   # ConfigError naming the known ones
    opts: dict[str, Any] = {}
    if options is not None:
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise ConfigError(f"allocator_options must be a mapping of option names, "
                              f"not {options!r}")
        opts.update(options)
    if env is not None:
        if not isinstance(env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ConfigError(f"env must be a mapping of strings to strings, not {env!r}")
        if "env" in opts:
            raise ConfigError("give the environment once: env= or allocator_options['env']")
        opts["env"] = dict(env)
    return allocator, opts


def _ptr(value: int | None, what: str) -> int:
    """A pointer argument: an int (C ``void *``), None or 0 for NULL."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what}: a pointer must be an integer or None, not {value!r}")
    return value & U64


@dataclass(frozen=True)
class Thread:
    """A thread created by :meth:`Process.create_thread`, with the stack glibc gave it::

        guard_start   guard_end = stack_start                         stack_end
            |--- ---p guard ---|------------- rw-p stack ----------------|
    """

    tid: int
    guard_start: int
    guard_end: int
    stack_start: int
    stack_end: int

    @property
    def stack(self) -> tuple[int, int]:
        """The usable (read-write) stack range ``(start, end)``."""
        return (self.stack_start, self.stack_end)

    @property
    def stacksize(self) -> int:
        return self.stack_end - self.stack_start

    @property
    def guardsize(self) -> int:
        return self.guard_end - self.guard_start


class Process:
    """A simulated process; see the module docstring.

    ``machine``: the :class:`memsim.Machine` it runs on (default: a fresh ``Machine()``).
    ``start_brk``: place the heap at this page-aligned address (trace replay uses the
    recorded initial break). ``aslr``/``seed``: randomise the layout as the kernel does
    (default off, like ``setarch -R``). ``stack_limit``: RLIMIT_STACK at exec (bytes or None
    for unlimited; it moves mmap_base and sets the default thread stack size).
    ``rlimits``: initial limits, ``{"data": soft or (soft, hard), ...}``.

    ``allocator``: the malloc family behind :meth:`malloc` & co.: ``"glibc"`` (the exact
    glibc 2.36 model, default), another registered name (``memsim allocators`` lists them) or
    None (kernel only). ``env``: the process environment the glibc model reads at its first
    call (``{"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "MALLOC_TOP_PAD_": "0"}``).
    ``allocator_options``: other keyword options of the allocator class. With ``env`` or
    ``allocator_options`` the allocator is created at once (bad options fail here);
    otherwise on first use.
    """

    def __init__(self, machine: Machine | None = None, *, start_brk: int | None = None,
                 aslr: bool = False, seed: int | None = None,
                 stack_limit: int | str | None = DEFAULT_RLIMIT_STACK,
                 rlimits: dict[str, object] | None = None, name: str = "a.out",
                 pid: int | None = None, privileged: bool = True,
                 layout: Layout | None = None, allocator: str | None = "glibc",
                 env: Mapping[str, str] | None = None,
                 allocator_options: Mapping[str, Any] | None = None) -> None:
        if machine is None:
            from memsim.kernel.machine import Machine
            machine = Machine()
        if not isinstance(aslr, bool):
            raise ConfigError(f"aslr must be True or False, not {aslr!r}")
        if start_brk is not None:
            start_brk = _addr(start_brk, "start_brk")
        rlim_stack = _rlim_value(stack_limit)
        self._alloc_name, self._alloc_options = _allocator_spec(allocator, env,
                                                                allocator_options)
        if layout is None:
            layout = Layout.default(aslr=aslr, seed=seed, rlimit_stack=rlim_stack,
                                    start_brk=start_brk)
        self.machine = machine
        self.name = name
        self.pid = next(_pids) if pid is None else pid
        self.errno = 0
        self.mm = MM(machine, self.pid, layout, privileged=privileged)
        self._alloc: Any = _UNSET if self._alloc_name is not None else None
        self.threads: list[Thread] = []             # running threads (besides main)
        self._exited: list[Thread] = []             # returned, not joined yet
        self._stack_cache: list[tuple[int, int, int]] = []   # (mem, size, guard), newest first
        self._stack_cache_size = 0
        self._curbrk: int | None = None             # glibc's __curbrk
        self._tids = itertools.count(self.pid + 1)
        for res, value in (rlimits or {}).items():
            soft, hard = value if isinstance(value, tuple) else (value, value)
            if self.setrlimit(res, soft, hard) != 0:    # type: ignore[arg-type]
                raise ConfigError(f"bad initial resource limit {res}={value!r}")
        # glibc reads RLIMIT_STACK once at start-up for the default thread stack size
        if rlim_stack == RLIM_INFINITY:
            default = ARCH_STACK_DEFAULT_SIZE
        else:
            default = max(rlim_stack, PTHREAD_STACK_MIN)
        self.default_stacksize = align_up(default, PAGE_SIZE)
        if self._alloc_options:
            self._alloc = self._create_allocator()      # bad options fail now

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, vmas={self.mm.map_count}, brk={self.mm.brk:#x})"

    # --- results in C conventions ---------------------------------------------------------
    def _ret(self, value: int) -> int:
        """0/address on success; -1 with errno on a -errno result."""
        if value < 0:
            self.errno = -value
            return -1
        return value

    # --- the allocator ----------------------------------------------------------------------
    @property
    def allocator(self) -> Allocator | None:
        """The :class:`memsim.alloc.Allocator` behind the malloc family (created over
        ``proc.mm`` on first use), or None for a kernel-only process.

        Assigning an allocator instance (built over ``proc.mm`` or a wrapper of it, before it
        made any call) replaces it; glibc's cached break is handed over to it."""
        if self._alloc is _UNSET:
            self._alloc = self._create_allocator()
        return self._alloc  # type: ignore[no-any-return]

    @allocator.setter
    def allocator(self, alloc: Allocator | None) -> None:
        from memsim.alloc.base import Allocator
        if alloc is not None and not isinstance(alloc, Allocator):
            raise ConfigError(f"not an allocator: {alloc!r} (use memsim.alloc.create)")
        curbrk = self._libc_curbrk()
        self._alloc = alloc
        if alloc is not None and getattr(alloc, "curbrk", 0) is None:
            alloc.curbrk = curbrk                     # type: ignore[attr-defined]
        self._curbrk = curbrk

    def _create_allocator(self) -> Allocator:
        from memsim.alloc import create
        assert self._alloc_name is not None
        alloc = create(self._alloc_name, self.mm, self._alloc_options)
        if getattr(alloc, "curbrk", 0) is None:
            alloc.curbrk = self._curbrk               # type: ignore[attr-defined]
        return alloc

    def _libc_curbrk(self) -> int | None:
        """glibc's ``__curbrk``: the allocator's when it keeps one, else the process's."""
        alloc = self._alloc
        if alloc is not None and alloc is not _UNSET and hasattr(alloc, "curbrk"):
            return alloc.curbrk                       # type: ignore[no-any-return]
        return self._curbrk

    def _malloc(self) -> Any:
        """The allocator for a malloc-family call (ConfigError when there is none)."""
        alloc = self._alloc
        if alloc is _UNSET:
            alloc = self.allocator
        if alloc is None:
            raise ConfigError("this process has no allocator (Process(allocator=None)); "
                              "use allocator='glibc' or attach one to proc.allocator")
        if self.mm.dead:
            raise ConfigError(f"process {self.pid} has exited; its address space is gone")
        return alloc

    def _brk_owner(self) -> Any:
        """The allocator when it keeps glibc's cached break (has sbrk and brk), else None."""
        alloc = self._alloc
        if alloc is None or alloc is _UNSET or not hasattr(alloc, "curbrk"):
            return None
        return alloc

    # --- brk / sbrk -----------------------------------------------------------------------
    def brk(self, addr: int) -> int:
        """The raw ``brk`` system call: the break after the call (the old one if refused).

        Like glibc's ``brk()`` it also refreshes the cached break that ``sbrk`` and malloc
        use, and sets ``errno`` to ENOMEM when the result is below the request.
        """
        a = _addr(addr)
        alloc = self._brk_owner()
        if alloc is not None and hasattr(alloc, "brk"):
            if alloc.brk(a) != 0:                      # glibc __brk: 0 or -1 (ENOMEM)
                self.errno = _errno.ENOMEM
            new = alloc.curbrk
            self._curbrk = new
            return new  # type: ignore[no-any-return]
        new = self.mm.sys_brk(a)
        self._curbrk = new
        if alloc is not None:
            alloc.curbrk = new
        if new < a:
            self.errno = _errno.ENOMEM
        return new

    def sbrk(self, increment: int | str = 0) -> int | None:
        """glibc ``sbrk``: the old break, or None with ``errno`` = ENOMEM.

        The cached break (``__curbrk``) is the one malloc uses: once the allocator exists,
        this is its ``sbrk``, so the program's and malloc's break moves interleave as in C."""
        if isinstance(increment, str):
            increment = _size_t(increment, "increment")
        if isinstance(increment, bool) or not isinstance(increment, int):
            raise ConfigError(f"sbrk increment must be an integer (intptr_t), "
                              f"not {increment!r}")
        if not -(1 << 63) <= increment < (1 << 63):
            raise ConfigError(f"sbrk increment {increment} does not fit an intptr_t")
        alloc = self._brk_owner()
        if alloc is not None and hasattr(alloc, "sbrk"):
            r = alloc.sbrk(increment)                  # glibc __sbrk: old break, or -1
            self._curbrk = alloc.curbrk
            if r == -1:
                self.errno = _errno.ENOMEM
                return None
            return r  # type: ignore[no-any-return]
        if self._curbrk is None:
            self._curbrk = self.mm.sys_brk(0)
        if increment == 0:
            return self._curbrk
        old = self._curbrk
        if (increment > 0 and old + increment > U64) or (increment < 0 and old < -increment):
            self.errno = _errno.ENOMEM
            return None
        want = old + increment
        new = self.mm.sys_brk(want)
        self._curbrk = new
        if new < want:
            self.errno = _errno.ENOMEM
            return None
        return old

    # --- the malloc family (proc.allocator) --------------------------------------------------
    def _result(self, alloc: Any, ptr: int) -> int | None:
        """A pointer result: the address, or None with ``errno`` from the allocator."""
        if ptr:
            return ptr
        self.errno = alloc.errno or _errno.ENOMEM
        return None

    def malloc(self, size: int | str) -> int | None:
        """``malloc(size)``: the address of at least ``size`` bytes, or None (errno ENOMEM).

        ``size`` is a size_t (``-1`` is 2**64-1, which fails as in C) or a size string."""
        alloc = self._malloc()
        return self._result(alloc, alloc.malloc(_size_t(size, "malloc size")))

    def free(self, ptr: int | None) -> None:
        """``free(ptr)``; ``free(None)``/``free(0)`` do nothing. A double free or a pointer
        malloc never returned raises :class:`memsim.alloc.AllocatorAbort` (SIGABRT)."""
        alloc = self._malloc()
        alloc.free(_ptr(ptr, "free"))

    def calloc(self, nmemb: int | str, size: int | str) -> int | None:
        """``calloc(nmemb, size)``: zeroed memory (glibc clears only what may not be zero
        yet), or None with errno ENOMEM (also when ``nmemb * size`` overflows)."""
        alloc = self._malloc()
        return self._result(alloc, alloc.calloc(_size_t(nmemb, "calloc nmemb"),
                                                 _size_t(size, "calloc size")))

    def realloc(self, ptr: int | None, size: int | str) -> int | None:
        """``realloc(ptr, size)``: the (possibly moved) block, or None. ``realloc(None, n)``
        is malloc; ``realloc(p, 0)`` frees p and returns None with errno untouched; on
        failure p stays valid and errno is ENOMEM."""
        alloc = self._malloc()
        p = _ptr(ptr, "realloc")
        n = _size_t(size, "realloc size")
        r = alloc.realloc(p, n)
        if r or (p and n == 0):
            return r or None
        return self._result(alloc, r)

    def memalign(self, alignment: int | str, size: int | str) -> int | None:
        """``memalign(alignment, size)``: an address aligned to ``alignment`` (glibc rounds
        a non-power of two up), or None with errno (EINVAL for a huge alignment, ENOMEM)."""
        alloc = self._malloc()
        return self._result(alloc, alloc.memalign(_size_t(alignment, "alignment"),
                                                  _size_t(size, "memalign size")))

    def aligned_alloc(self, alignment: int | str, size: int | str) -> int | None:
        """``aligned_alloc(alignment, size)`` (C11; the same function as memalign in glibc
        2.36), or None with errno."""
        alloc = self._malloc()
        return self._result(alloc, alloc.aligned_alloc(_size_t(alignment, "alignment"),
                                                       _size_t(size, "aligned_alloc size")))

    def posix_memalign(self, alignment: int | str,
                       size: int | str) -> tuple[int, int | None]:
        """``posix_memalign(&p, alignment, size)``: ``(0, p)``, or ``(EINVAL, None)`` when
        the alignment is not a power of two multiple of 8, ``(ENOMEM, None)``. Like C it
        returns the error and leaves ``errno`` alone."""
        alloc = self._malloc()
        err, p = alloc.posix_memalign(_size_t(alignment, "alignment"),
                                      _size_t(size, "posix_memalign size"))
        return (err, p if not err and p else None)

    def valloc(self, size: int | str) -> int | None:
        """``valloc(size)``: page-aligned memory, or None with errno."""
        alloc = self._malloc()
        return self._result(alloc, alloc.valloc(_size_t(size, "valloc size")))

    def pvalloc(self, size: int | str) -> int | None:
        """``pvalloc(size)``: page-aligned memory rounded up to whole pages, or None."""
        alloc = self._malloc()
        return self._result(alloc, alloc.pvalloc(_size_t(size, "pvalloc size")))

    def malloc_usable_size(self, ptr: int | None) -> int:
        """``malloc_usable_size(ptr)``: the bytes usable at ``ptr`` (0 for NULL)."""
        alloc = self._malloc()
        return alloc.malloc_usable_size(_ptr(ptr, "malloc_usable_size"))  # type: ignore[no-any-return]

    def malloc_trim(self, pad: int | str = 0) -> int:
        """``malloc_trim(pad)``: give free memory back to the kernel (glibc: shrink the heap
        top to ``pad`` bytes with sbrk, MADV_DONTNEED the free chunks' whole pages);
        1 if any memory was released, else 0."""
        alloc = self._malloc()
        return alloc.malloc_trim(_size_t(pad, "malloc_trim pad"))  # type: ignore[no-any-return]

    def mallopt(self, param: int | str, value: int) -> int:
        """``mallopt(param, value)``: 1 on success, 0 when refused. ``param`` is a malloc.h
        number or its name (``"M_MMAP_THRESHOLD"`` or ``"mmap_threshold"``); both arguments
        are C ints."""
        from memsim.alloc.glibc.tunables import MALLOPT_NAMES
        if isinstance(param, str):
            key = param.strip().upper()
            key = key if key.startswith("M_") else "M_" + key
            if key not in MALLOPT_NAMES:
                raise ConfigError(f"unknown mallopt parameter {param!r} "
                                  f"(known: {', '.join(MALLOPT_NAMES)})")
            param = MALLOPT_NAMES[key]
        for what, v in (("param", param), ("value", value)):
            if isinstance(v, bool) or not isinstance(v, int) or not -(1 << 31) <= v < 1 << 31:
                raise ConfigError(f"mallopt {what} must be a C int, not {v!r}")
        alloc = self._malloc()
        return alloc.mallopt(param, value)  # type: ignore[no-any-return]

    def mallinfo2(self) -> MallInfo2:
        """``mallinfo2()``: arena, ordblks, hblks, hblkhd, uordblks, fordblks, keepcost ...
        (a :class:`memsim.alloc.MallInfo2`; ``.as_dict()``)."""
        return self._malloc().mallinfo2()  # type: ignore[no-any-return]

    def malloc_stats(self) -> str:
        """The text ``malloc_stats()`` writes to stderr (returned, not printed)."""
        return self._malloc().malloc_stats()  # type: ignore[no-any-return]

    # --- mappings -------------------------------------------------------------------------
    def mmap(self, length: int | str, prot: int | str = "rw", flags: int | str = 0, *,
             addr: int = 0, fixed: bool = False, noreplace: bool = False,
             noreserve: bool = False, populate: bool = False, stack: bool = False,
             growsdown: bool = False) -> int | None:
        """``mmap(addr, length, prot, MAP_PRIVATE|MAP_ANONYMOUS|flags, -1, 0)``.

        Returns the address, or None with ``errno`` set. ``flags`` may be an int or names
        (``"fixed|noreserve"``); the keyword switches add the same flags.
        """
        n = _size_t(length, "length")
        p = parse_prot(prot)
        f = _flags(flags, _MMAP_FLAG_NAMES, "mmap flag") | abi.MAP_PRIVATE | abi.MAP_ANONYMOUS
        for on, bit in ((fixed, abi.MAP_FIXED), (noreplace, abi.MAP_FIXED_NOREPLACE),
                        (noreserve, abi.MAP_NORESERVE), (populate, abi.MAP_POPULATE),
                        (stack, abi.MAP_STACK), (growsdown, abi.MAP_GROWSDOWN)):
            if on:
                f |= bit
        r = self.mm.sys_mmap(_addr(addr), n, p, f)
        if r < 0:
            self.errno = -r
            return None
        return r

    def munmap(self, addr: int, length: int | str) -> int:
        """``munmap``: 0, or -1 with ``errno``."""
        return self._ret(self.mm.sys_munmap(_addr(addr), _size_t(length, "length")))

    def mprotect(self, addr: int, length: int | str, prot: int | str) -> int:
        """``mprotect``: 0, or -1 with ``errno``."""
        return self._ret(self.mm.sys_mprotect(_addr(addr), _size_t(length, "length"),
                                              parse_prot(prot)))

    def mremap(self, old_addr: int, old_len: int | str, new_len: int | str,
               flags: int | str = 0, new_addr: int = 0, *,
               maymove: bool = False) -> int | None:
        """``mremap``: the (possibly new) address, or None with ``errno``.

        ``flags``: an int or names (``"maymove"``, ``"maymove|fixed"``, ``"dontunmap"``).
        """
        f = _flags(flags, _MREMAP_FLAG_NAMES, "mremap flag")
        if maymove:
            f |= abi.MREMAP_MAYMOVE
        r = self.mm.sys_mremap(_addr(old_addr), _size_t(old_len, "old_len"),
                               _size_t(new_len, "new_len"), f, _addr(new_addr, "new_addr"))
        if r < 0:
            self.errno = -r
            return None
        return r

    def madvise(self, addr: int, length: int | str, advice: int | str) -> int:
        """``madvise``: 0, or -1 with ``errno``. ``advice``: ``"dontneed"`` etc., or an int."""
        if isinstance(advice, str):
            key = advice.strip().lower().removeprefix("madv_")
            if key not in _MADVICE:
                raise ConfigError(f"unknown madvise advice {advice!r} "
                                  f"(known: {', '.join(_MADVICE)})")
            adv = _MADVICE[key]
        elif isinstance(advice, int) and not isinstance(advice, bool):
            adv = advice
        else:
            raise ConfigError(f"madvise advice must be a name or an int, not {advice!r}")
        return self._ret(self.mm.sys_madvise(_addr(addr), _size_t(length, "length"), adv))

    # --- memory accesses (the hot path) ----------------------------------------------------
    def write(self, addr: int, length: int = 1, every: int | None = None) -> None:
        """Write the bytes ``[addr, addr+length)``, or one byte every ``every`` bytes.

        Raises :class:`memsim.errors.SegmentationFault` where the real program would get
        SIGSEGV (after the bytes before the bad one were written).
        """
        if type(addr) is int and type(length) is int and every is None \
                and addr >= 0 and length >= 0:
            self.mm.write(addr, length)
            return
        a, n, e = self._access_args(addr, length, every)
        self.mm.write(a, n, e)

    def read(self, addr: int, length: int = 1, every: int | None = None) -> None:
        """Read the bytes ``[addr, addr+length)`` (or one every ``every`` bytes)."""
        if type(addr) is int and type(length) is int and every is None \
                and addr >= 0 and length >= 0:
            self.mm.read(addr, length)
            return
        a, n, e = self._access_args(addr, length, every)
        self.mm.read(a, n, e)

    @staticmethod
    def _access_args(addr: int, length: int, every: int | None) -> tuple[int, int, int | None]:
        a = _addr(addr)
        if isinstance(length, bool) or not isinstance(length, int):
            raise ConfigError(f"length must be an integer, not {length!r}")
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
                raise ConfigError(f"every must be a positive integer, not {every!r}")
        return a, length & U64, every

    # --- limits ------------------------------------------------------------------------------
    def setrlimit(self, resource: str, soft: int | str | None,
                  hard: int | str | None | object = _KEEP) -> int:
        """``setrlimit``: ``resource`` is "data", "as", "stack" or "memlock"; values in bytes
        (ints or size strings; None or "unlimited" for RLIM_INFINITY). Without ``hard`` the
        current hard limit is kept. 0, or -1 with errno EINVAL when soft > hard."""
        key = _RLIMITS.get(str(resource).strip().lower())
        if key is None:
            raise ConfigError(f"unknown resource {resource!r} (use 'data', 'as', 'stack' or "
                              f"'memlock')")
        s = _rlim_value(soft)
        h = self.mm.rlimits[key][1] if hard is _KEEP else _rlim_value(hard)  # type: ignore[arg-type]
        if s > h:
            self.errno = _errno.EINVAL
            return -1
        self.mm.setrlimit(key, s, h)
        return 0

    def getrlimit(self, resource: str) -> tuple[int, int]:
        """(soft, hard) in bytes; ``memsim.kernel.abi.RLIM_INFINITY`` means unlimited."""
        key = _RLIMITS.get(str(resource).strip().lower())
        if key is None:
            raise ConfigError(f"unknown resource {resource!r}")
        soft, hard = self.mm.rlimits[key]
        return soft, hard

    # --- threads ---------------------------------------------------------------------------
    def create_thread(self, stacksize: int | str | None = None,
                      guardsize: int | str = PAGE_SIZE) -> Thread | None:
        """``pthread_create`` as far as memory goes (glibc 2.36 ``allocate_stack``).

        A stack from glibc's cache of joined threads' stacks if one fits
        (``get_cached_stack``), else mmap(stack + guard, PROT_NONE,
        MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK) and mprotect the part above the guard read-write;
        then the new thread writes the top pages of its stack. Returns the :class:`Thread`,
        or None with ``errno`` EAGAIN/EINVAL as pthread_create.
        """
        if stacksize is None:
            size = self.default_stacksize
        else:
            size = _size_t(stacksize, "stacksize")
            if size < PTHREAD_STACK_MIN:
                self.errno = _errno.EINVAL
                return None
        size &= ~(STATIC_TLS_ALIGN - 1)
        guard = _size_t(guardsize, "guardsize")
        guard_pages = align_up(guard, PAGE_SIZE)
        if guard_pages < guard or size + guard_pages > U64:
            self.errno = _errno.EINVAL
            return None
        total = size + guard_pages
        prot_rw = abi.PROT_READ | abi.PROT_WRITE
        cached = self._get_cached_stack(total)
        if cached is not None:
            mem, total, old_guard = cached
            if guard_pages > old_guard:            # a bigger guard: protect more
                self.mm.sys_mprotect(mem + old_guard, guard_pages - old_guard, abi.PROT_NONE)
            elif guard_pages < old_guard:          # a smaller guard: open the difference
                self.mm.sys_mprotect(mem + guard_pages, old_guard - guard_pages, prot_rw)
        else:
            mem = self.mm.sys_mmap(0, total, abi.PROT_NONE if guard_pages else prot_rw,
                                   abi.MAP_PRIVATE | abi.MAP_ANONYMOUS | abi.MAP_STACK)
            if mem < 0:
                self.errno = _errno.EAGAIN if mem == -_errno.ENOMEM else -mem
                return None
            if guard_pages:
                r = self.mm.sys_mprotect(mem + guard_pages, total - guard_pages, prot_rw)
                if r < 0:
                    self.mm.sys_munmap(mem, total)
                    self.errno = _errno.EAGAIN if r == -_errno.ENOMEM else -r
                    return None
        top = mem + total
        touched = min(THREAD_TOUCHED_PAGES * PAGE_SIZE, align_up(size, PAGE_SIZE))
        self.mm.write(top - touched, touched)
        t = Thread(next(self._tids), mem, mem + guard_pages, mem + guard_pages, top)
        self.threads.append(t)
        return t

    def exit_thread(self, thread: Thread) -> None:
        """The thread's start routine returns: glibc's ``advise_stack_range`` gives back
        (MADV_DONTNEED) its stack below the stack pointer, keeping PTHREAD_STACK_MIN under it.
        The stack stays mapped until :meth:`join_thread`."""
        if thread not in self.threads:
            raise ConfigError(f"thread {thread.tid} is not a running thread of this process")
        self.threads.remove(thread)
        self._exited.append(thread)
        sp = thread.stack_end - THREAD_EXIT_SP_DEPTH
        freesize = (sp - thread.guard_start) & ~(PAGE_SIZE - 1)
        if freesize > PTHREAD_STACK_MIN:
            self.mm.sys_madvise(thread.guard_start, freesize - PTHREAD_STACK_MIN,
                                abi.MADV_DONTNEED)

    def join_thread(self, thread: Thread) -> None:
        """``pthread_join``: (the thread exits first if it has not) its stack goes to glibc's
        stack cache, which keeps at most 40 MiB of stacks: the oldest beyond that are unmapped
        (``queue_stack``/``free_stacks``)."""
        if thread in self.threads:
            self.exit_thread(thread)
        if thread not in self._exited:
            raise ConfigError(f"thread {thread.tid} is not joinable")
        self._exited.remove(thread)
        total = thread.stack_end - thread.guard_start
        self._stack_cache.insert(0, (thread.guard_start, total, thread.guardsize))
        self._stack_cache_size += total
        while self._stack_cache_size > STACK_CACHE_MAXSIZE and self._stack_cache:
            mem, size, _guard = self._stack_cache.pop()          # the oldest
            self._stack_cache_size -= size
            self.mm.sys_munmap(mem, size)

    def _get_cached_stack(self, size: int) -> tuple[int, int, int] | None:
        """``get_cached_stack``: an exact fit, else the smallest that fits, but never one
        more than 4 times the size asked for."""
        best = None
        for entry in self._stack_cache:
            if entry[1] >= size:
                if entry[1] == size:
                    best = entry
                    break
                if best is None or best[1] > entry[1]:
                    best = entry
        if best is None or best[1] > 4 * size:
            return None
        self._stack_cache.remove(best)
        self._stack_cache_size -= best[1]
        return best

    # --- views ---------------------------------------------------------------------------------
    def status(self) -> procfs.Status:
        """/proc/PID/status figures in kB (VmSize, VmRSS, RssAnon, VmData, VmStk, VmPTE ...);
        ``str()`` gives the /proc text."""
        return procfs.status(self.mm, name=self.name, threads=1 + len(self.threads))

    def statm(self) -> str:
        """/proc/PID/statm: ``size resident shared text lib data dt`` in pages."""
        return procfs.statm(self.mm)

    def maps(self) -> procfs.Maps:
        """The VMAs as /proc/PID/maps lists them; ``str()`` gives the /proc text."""
        return procfs.maps(self.mm)

    def smaps(self) -> procfs.Smaps:
        """/proc/PID/smaps: per-VMA Rss/Anonymous/Swap...; ``str()`` gives the /proc text."""
        return procfs.smaps(self.mm)

    @property
    def brk_start(self) -> int:
        return self.mm.start_brk

    @property
    def alive(self) -> bool:
        return not self.mm.dead

    def exit(self) -> None:
        """The process exits: its whole address space and commit charge are released."""
        self.mm.exit_mmap()
        self.threads.clear()
        self._exited.clear()
        self._stack_cache.clear()
        self._stack_cache_size = 0

    def check(self) -> None:
        """Assert the invariants of the whole process (see the module docstring)."""
        self.mm.check()
        curbrk = self._libc_curbrk()
        if curbrk is not None and not self.mm.dead:
            assert curbrk >= self.mm.start_brk, "glibc's cached break below start_brk"
        alloc = self._alloc
        if alloc is not None and alloc is not _UNSET and not self.mm.dead:
            alloc.check()
