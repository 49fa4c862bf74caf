"""Oracles: check the simulator against the real system of this machine.

:func:`compare_kernel` runs a program of memory operations (the op language of
:mod:`memsim.oracle.ops`) on :class:`memsim.Process` and, compiled by the system C compiler,
on the real kernel, and compares results and /proc/self/status deltas side by side::

    from memsim.oracle import compare_kernel
    report = compare_kernel('''
        m = mmap 1M rw
        mark mapped
        write m 1M
        mark written
    ''')
    assert report.ok, report.format()
"""

from __future__ import annotations

from memsim.oracle.kernel import (
    COMPARED,
    KernelReport,
    OracleUnavailable,
    RealRunner,
    SimRunner,
    compare_kernel,
    run_real,
    unavailable_reason,
)
from memsim.oracle.ops import Program, parse

__all__ = [
    "COMPARED",
    "KernelReport",
    "OracleUnavailable",
    "Program",
    "RealRunner",
    "SimRunner",
    "compare_kernel",
    "parse",
    "run_real",
    "unavailable_reason",
]
