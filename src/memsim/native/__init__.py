"""C sources that ship with memsim, and the helper that compiles them on first use.

- ``memsim_shim.c``: the LD_PRELOAD recorder behind ``memsim record`` (see
  :mod:`memsim.trace.record`).
- :func:`memsim.native.build.build_native` compiles any of them into the user's cache.
"""

from __future__ import annotations
