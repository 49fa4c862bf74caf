"""The exception tree of memsim.

::

    MemsimError                  anything memsim raises on purpose
    ├── ConfigError (ValueError) a request no kernel call could express, bad options
    ├── TraceError               a malformed or inconsistent trace (names file and line)
    └── Signal                   the simulated process received a fatal signal
        ├── SegmentationFault    SIGSEGV: access outside any VMA or against its protection
        └── OutOfMemoryKilled    SIGKILL from the OOM killer

A request the simulated system can refuse (brk beyond a limit, mmap with no room) is *not* an
exception: it is a return value with ``errno`` set, as in C. Exceptions are for what would end
the simulated process, and for bad input to memsim itself.
"""

from __future__ import annotations


class MemsimError(Exception):
    """Base class of every error memsim raises on purpose."""


class ConfigError(MemsimError, ValueError):
    """A request that no kernel call could express (an unknown prot string, a bad option)."""


class TraceError(MemsimError):
    """A trace that cannot be read: says which file, which line, and what is wrong."""

    def __init__(self, message: str, path: str | None = None, lineno: int | None = None,
                 line: str | None = None) -> None:
        self.path = path
        self.lineno = lineno
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{lineno}: " if lineno is not None else f"{path}: "
        text = f"{where}{message}"
        if line is not None:
            text += f": {line.rstrip()!r}"
        super().__init__(text)


class Signal(MemsimError):
    """The simulated process received a fatal signal."""

    signo: int = 0
    name: str = "SIG?"


class SegmentationFault(Signal):
    """SIGSEGV. ``code`` is ``"SEGV_MAPERR"`` (no VMA) or ``"SEGV_ACCERR"`` (protection)."""

    signo = 11
    name = "SIGSEGV"

    def __init__(self, addr: int, code: str, access: str) -> None:
        self.addr = addr
        self.code = code
        self.access = access
        super().__init__(f"segmentation fault ({code}) on {access} at {addr:#x}")


class OutOfMemoryKilled(Signal):
    """SIGKILL sent by the OOM killer to the process that was chosen as the victim."""

    signo = 9
    name = "SIGKILL"

    def __init__(self, pid: int, points: int, message: str | None = None) -> None:
        self.pid = pid
        self.points = points
        super().__init__(message or f"process {pid} killed by the OOM killer (badness {points})")
