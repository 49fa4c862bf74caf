"""memsim: how a Linux x86-64 process gets and uses memory, from malloc() to page frames."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
