"""The address space as /proc/PID/maps lists it, with each VMA's size and resident pages.

One row per VMA in address order (the same entries as :func:`memsim.kernel.procfs.smaps`),
coloured by kind::

    start-end                      perms       size        rss  kind     name
    555555554000-555555555000      r--p       4 kB       4 kB  image    /usr/bin/a.out
    555555559000-55555557a000      rw-p     132 kB       8 kB  heap     [heap]
    7ffff7d8e000-7ffff7db3000      rw-p     148 kB       0 kB  anon
    ...

Kinds: ``image`` (the program's file), ``lib`` (other files), ``heap``, ``stack``, ``anon``
(anonymous mappings: mmapped chunks, thread stacks), ``guard`` (no access), ``special``
([vdso], [vvar], [vsyscall]). RSS is RssAnon + RssFile of the VMA, in kB as /proc prints.
"""

from __future__ import annotations

from typing import Any

from memsim.kernel import procfs
from memsim.kernel.procfs import MapEntry

__all__ = ["KIND_STYLES", "kind_of", "render_plain", "render_rich"]

KIND_STYLES = {"image": "green", "lib": "blue", "heap": "bold yellow", "stack": "magenta",
               "anon": "cyan", "guard": "dim", "special": "dim cyan"}


def kind_of(e: MapEntry, image: str | None) -> str:
    """The kind of one maps entry (see the module docstring)."""
    if e.name in ("[heap]",):
        return "heap"
    if e.name == "[stack]":
        return "stack"
    if e.name is not None and e.name.startswith("["):
        return "special"
    if e.perms.startswith("---"):
        return "guard"
    if e.name is None:
        return "anon"
    return "image" if e.name == image else "lib"


def _rows(mm: Any) -> list[tuple[MapEntry, str]]:
    entries = procfs.smaps(mm)
    image = next((e.name for e in entries if e.name and not e.name.startswith("[")), None)
    return [(e, kind_of(e, image)) for e in entries]


def _kb(nbytes: int) -> str:
    return f"{nbytes >> 10:,} kB"


def render_plain(mm: Any) -> str:
    """Aligned columns: range, perms, size, RSS, kind, name; then the totals."""
    rows = _rows(mm)
    lines = [f"{'start-end':<33} {'perms':<5} {'size':>12} {'rss':>10}  {'kind':<8} name"]
    total = rss = 0
    for e, kind in rows:
        r = (e.rss_anon + e.rss_file) * 4096
        total += e.size
        rss += r
        span = f"{e.start:012x}-{e.end:012x}"
        lines.append(f"{span:<33} {e.perms:<5} {_kb(e.size):>12} "
                     f"{_kb(r):>10}  {kind:<8} {e.name or ''}".rstrip())
    lines.append(f"{len(rows)} VMAs, {_kb(total)} mapped, {_kb(rss)} resident")
    return "\n".join(lines) + "\n"


def render_rich(mm: Any) -> Any:
    """The same as a rich table, rows coloured by kind, with a legend."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("start-end", no_wrap=True, min_width=25)
    for name, justify in ( ("perms", "left"), ("size", "right"),
                          ("rss", "right"), ("kind", "left"), ("name", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    total = rss = 0
    rows = _rows(mm)
    for e, kind in rows:
        r = (e.rss_anon + e.rss_file) * 4096
        total += e.size
        rss += r
        table.add_row(Text(f"{e.start:012x}-{e.end:012x}"), Text(e.perms), Text(_kb(e.size)),
                      Text(_kb(r)), Text(kind), Text(e.name or ""), style=KIND_STYLES[kind])
    legend = Text("legend: ")
    for k, style in KIND_STYLES.items():
        legend.append(k, style=style)
        legend.append("  ")
    return Group(table, Text(f"{len(rows)} VMAs, {_kb(total)} mapped, {_kb(rss)} resident"),
                 legend)
