"""Textbook simulators that memsim models exactly (their own small worlds, not the kernel).

- :mod:`memsim.textbooks.ostep`: OSTEP's free-space simulator ``malloc.py`` (chapter 17),
  same problems and same answers for the same flags and seed (``memsim ostep``).

The CS:APP textbook allocator is an allocator on the simulated kernel instead:
:mod:`memsim.alloc.csapp` (``csapp-first-fit``, ``csapp-next-fit``), measured with
:mod:`memsim.metrics.utilization` (``memsim malloclab``).
"""

from __future__ import annotations
