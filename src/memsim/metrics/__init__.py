"""Metrics computed from a simulated run (one module per metric family).

- :mod:`memsim.metrics.utilization`: the CS:APP Malloc Lab driver's space utilization
  (peak requested payload / heap size) and performance index.
- :mod:`memsim.metrics.fragmentation`: Johnstone & Wilson's fragmentation #1-#4.
- :mod:`memsim.metrics.footprint`: the footprint cut into payload, padding, rounding,
  headers, metadata, free, cached, top and untouched bytes.
- :mod:`memsim.metrics.timeline`: a bounded time series of a run (CSV, JSON).
- :mod:`memsim.metrics.compare`: measure a replay; compare traces x allocators
  (``memsim compare``). docs/metrics.md defines every figure.
"""

from __future__ import annotations
