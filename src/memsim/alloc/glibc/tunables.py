"""glibc 2.36 malloc parameters: ``mallopt`` numbers, ``GLIBC_TUNABLES`` and ``MALLOC_*_``.

Three ways set the same parameters (``do_set_*`` helpers, malloc.c L5098-5200):

=====================  ==============================  ========================  ===========
mallopt(M_*)           GLIBC_TUNABLES=glibc.malloc.X   environment alias         freezes the
                                                                                 dynamic
                                                                                 threshold
=====================  ==============================  ========================  ===========
M_MXFAST (1)           mxfast                          --                        no
M_TRIM_THRESHOLD (-1)  trim_threshold                  MALLOC_TRIM_THRESHOLD_    yes
M_TOP_PAD (-2)         top_pad                         MALLOC_TOP_PAD_           yes
M_MMAP_THRESHOLD (-3)  mmap_threshold                  MALLOC_MMAP_THRESHOLD_    yes
M_MMAP_MAX (-4)        mmap_max                        MALLOC_MMAP_MAX_          yes
M_CHECK_ACTION (-5)    check                           MALLOC_CHECK_             (no effect)
M_PERTURB (-6)         perturb                         MALLOC_PERTURB_           no
M_ARENA_TEST (-7)      arena_test                      MALLOC_ARENA_TEST         no
M_ARENA_MAX (-8)       arena_max                       MALLOC_ARENA_MAX          no
--                     tcache_max / tcache_count /     --                        no
                       tcache_unsorted_limit / hugetlb
=====================  ==============================  ========================  ===========

Tunables are read at startup (``ptmalloc_init``, arena.c L312) and applied in a fixed order,
only those that were set; ``GLIBC_TUNABLES`` wins over an alias. Values are parsed like
``_dl_strtoul`` (decimal, ``0x`` hex, leading-``0`` octal); a value outside the tunable's
bounds (elf/dl-tunables.list) is ignored, as glibc ignores it. Tunables of other namespaces
are not malloc's business and are skipped; an unknown ``glibc.malloc.*`` name or an unreadable
value is ignored by glibc too, and is recorded in :attr:`Tunables.warnings`.

``check()``: every recorded value lies within its tunable's bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from memsim.errors import ConfigError

M_MXFAST = 1
M_NLBLKS = 2
M_GRAIN = 3
M_KEEP = 4
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
M_CHECK_ACTION = -5
M_PERTURB = -6
M_ARENA_TEST = -7
M_ARENA_MAX = -8

MALLOPT_NAMES = {
    "M_MXFAST": M_MXFAST, "M_TRIM_THRESHOLD": M_TRIM_THRESHOLD, "M_TOP_PAD": M_TOP_PAD,
    "M_MMAP_THRESHOLD": M_MMAP_THRESHOLD, "M_MMAP_MAX": M_MMAP_MAX,
    "M_CHECK_ACTION": M_CHECK_ACTION, "M_PERTURB": M_PERTURB, "M_ARENA_TEST": M_ARENA_TEST,
    "M_ARENA_MAX": M_ARENA_MAX,
}

_U64 = (1 << 64) - 1
_I32 = (1 << 31) - 1

# name -> (env alias or None, min, max): elf/dl-tunables.list, glibc.malloc namespace.
# The order is the order in which ptmalloc_init applies them.
TUNABLES: dict[str, tuple[str | None, int, int]] = {
    "check": ("MALLOC_CHECK_", 0, 3),
    "top_pad": ("MALLOC_TOP_PAD_", 0, _U64),
    "perturb": ("MALLOC_PERTURB_", 0, 0xFF),
    "mmap_threshold": ("MALLOC_MMAP_THRESHOLD_", 0, _U64),
    "trim_threshold": ("MALLOC_TRIM_THRESHOLD_", 0, _U64),
    "mmap_max": ("MALLOC_MMAP_MAX_", 0, _I32),
    "arena_max": ("MALLOC_ARENA_MAX", 1, _U64),
    "arena_test": ("MALLOC_ARENA_TEST", 1, _U64),
    "tcache_max": (None, 0, _U64),
    "tcache_count": (None, 0, _U64),
    "tcache_unsorted_limit": (None, 0, _U64),
    "mxfast": (None, 0, _U64),
    "hugetlb": (None, 0, _U64),
}


def strtoul(text: str) -> int | None:
    """``_dl_strtoul``: decimal, 0x-hex or 0-octal; None if ``text`` is not a whole number."""
    t = text.strip()
    neg = t.startswith("-")
    if t[:1] in "+-":
        t = t[1:]
    try:
        if t[:2].lower() == "0x":
            v = int(t[2:], 16)
        elif len(t) > 1 and t[0] == "0":
            v = int(t[1:], 8)
        else:
            v = int(t, 10)
    except ValueError:
        return None
    return (-v) & _U64 if neg else v


@dataclass
class Tunables:
    """The malloc tunables a process starts with: name -> value, only those that were set."""

    values: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None, secure: bool = False) -> Tunables:
        """Read ``GLIBC_TUNABLES`` and the ``MALLOC_*`` aliases from ``env`` (ignored in
        AT_SECURE programs, like glibc does for the malloc tunables)."""
        tun = cls()
        if not env or secure:
            return tun
        for name, (alias, lo, hi) in TUNABLES.items():
            if alias and alias in env:
                tun._set(name, env[alias], lo, hi, alias)
        spec = env.get("GLIBC_TUNABLES", "")
        for item in spec.split(":"):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                tun.warnings.append(f"GLIBC_TUNABLES: {item!r} has no '=value' (ignored)")
                continue
            if not key.startswith("glibc.malloc."):
                continue
            name = key[len("glibc.malloc."):]
            if name not in TUNABLES:
                tun.warnings.append(f"GLIBC_TUNABLES: unknown tunable {key!r} (ignored)")
                continue
            _, lo, hi = TUNABLES[name]
            tun._set(name, value, lo, hi, key)
        if tun.values.get("hugetlb", 0):
            raise ConfigError("glibc.malloc.hugetlb is not modelled by memsim (use 0)")
        return tun

    def _set(self, name: str, text: str, lo: int, hi: int, source: str) -> None:
        v = strtoul(text)
        if v is None:
            self.warnings.append(f"{source}={text!r}: not a number (ignored)")
            return
        if not lo <= v <= hi:
            self.warnings.append(f"{source}={text!r}: outside [{lo}, {hi}] (ignored)")
            return
        self.values[name] = v

    def ordered(self) -> list[tuple[str, int]]:
        """The set tunables in ptmalloc_init's order of application."""
        order = ["top_pad", "perturb", "mmap_threshold", "trim_threshold", "mmap_max",
                 "arena_max", "arena_test", "tcache_max", "tcache_count",
                 "tcache_unsorted_limit", "mxfast", "hugetlb", "check"]
        return [(n, self.values[n]) for n in order if n in self.values]

    def check(self) -> None:
        for name, v in self.values.items():
            _, lo, hi = TUNABLES[name]
            assert lo <= v <= hi, f"tunable {name}={v} outside [{lo}, {hi}]"
