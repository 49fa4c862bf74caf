"""Metrics computed from a simulated run (one module per metric family).

- :mod:`memsim.metrics.utilization`: the CS:APP Malloc Lab driver's space utilization
  (peak requested payload / heap size) and performance index.
"""

from __future__ import annotations
