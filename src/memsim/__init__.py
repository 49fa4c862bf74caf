"""memsim: how a Linux x86-64 process gets and uses memory, from malloc() to page frames."""

from __future__ import annotations

from memsim.errors import (
    ConfigError,
    MemsimError,
    OutOfMemoryKilled,
    SegmentationFault,
    Signal,
    TraceError,
)
from memsim.kernel.machine import Machine
from memsim.process import Process

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Machine",
    "Process",
    "MemsimError",
    "ConfigError",
    "TraceError",
    "Signal",
    "SegmentationFault",
    "OutOfMemoryKilled",
]
