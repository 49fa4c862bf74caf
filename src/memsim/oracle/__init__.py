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

Modules: :mod:`~memsim.oracle.ops` (the op language, seeded random programs),
:mod:`~memsim.oracle.kernel` (the two runners and the comparison; the C side is
``memsim/native/kdriver.c``), :mod:`~memsim.oracle.scenarios` (named programs). The command
``memsim verify-kernel`` runs them; docs/kernel-oracle.md explains the method.
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
from memsim.oracle.ops import Program, parse, random_program, random_program_wide
from memsim.oracle.scenarios import SCENARIOS, max_map_count_program

__all__ = [
    "SCENARIOS",
    "COMPARED",
    "KernelReport",
    "OracleUnavailable",
    "Program",
    "RealRunner",
    "SimRunner",
    "compare_kernel",
    "max_map_count_program",
    "parse",
    "random_program",
    "random_program_wide",
    "run_real",
    "unavailable_reason",
]
