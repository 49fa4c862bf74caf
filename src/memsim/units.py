"""Units and sizes: KiB/MiB/GiB, the page size, alignment helpers, and parse_size("64k").

Every constant in memsim carries its unit in its name or its value (``MMAP_THRESHOLD = 128 *
KiB``). Sizes given by users may be ints or strings with a binary suffix.
"""

from __future__ import annotations

import re

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

_SUFFIX = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB, "p": 1 << 50}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)


def align_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment`` (a power of two)."""
    return (value + alignment - 1) & ~(alignment - 1)


def align_down(value: int, alignment: int) -> int:
    """Round ``value`` down to a multiple of ``alignment`` (a power of two)."""
    return value & ~(alignment - 1)


def page_align(value: int) -> int:
    """The kernel's ``PAGE_ALIGN``: round up to a whole page."""
    return (value + PAGE_SIZE - 1) & PAGE_MASK


def parse_size(value: int | str) -> int:
    """Turn ``4096``, ``"64k"``, ``"24G"``, ``"1 TiB"`` or ``"8MB"`` into bytes (binary units).

    Raises ValueError with the offending text for anything else, including negative numbers.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * _SUFFIX[m.group(2).lower()]
    raise ValueError(f"not a size: {value!r} (use an integer or a string like '64k', '24G')")


def format_size(nbytes: int) -> str:
    """A short human form: ``4096 -> '4 KiB'``, ``1536 -> '1.5 KiB'``."""
    n = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            text = f"{n:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
