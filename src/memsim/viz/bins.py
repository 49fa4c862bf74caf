"""The glibc model's bins, laid out as pwndbg's ``bins`` command prints a live heap.

Sections in pwndbg's order: ``tcachebins``, ``fastbins``, ``unsortedbin``, ``smallbins``,
``largebins``; each non-empty bin on one line with its size, its count and its chain from
the head (the chunk the next allocation takes from a tcache/fastbin; the front ``fd`` of a
doubly linked bin)::

    tcachebins
    0x70 [  2]: 0x555555559310 -> 0x5555555592a0 <- 0
    fastbins
    empty
    unsortedbin
    all [  1]: 0x555555559300 (0x7e0) -> main_arena
    smallbins
    empty
    largebins
    empty
    top: 0x55555555a6a0 (0x1f960 bytes)  last_remainder: 0  mmapped chunks: 0

As in pwndbg, tcache entries are the pointers the tcache stores (``mem`` = chunk + 0x10);
the other bins list chunk addresses, with each chunk's size for the doubly linked bins.
Everything is read from the model (:func:`bins_data`), nothing is inferred.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Bin", "bins_data", "render_plain", "render_rich"]

Bin = tuple[str, int, list[int], list[int]]     # (label, count, addresses, sizes or [])


def bins_data(alloc: Any) -> dict[str, list[Bin]]:
    """Section name -> its non-empty bins, each ``(label, count, addresses from the head,
    sizes)`` (sizes only for the unsorted, small and large bins)."""
    av = alloc.av
    out: dict[str, list[Bin]] = {"tcachebins": [], "fastbins": [], "unsortedbin": [],
                                 "smallbins": [], "largebins": []}
    tc = alloc.tcache
    if tc is not None:
        for i, stack in enumerate(tc.entries):
            if stack:
                out["tcachebins"].append((f"{32 + 16 * i:#x}", len(stack),
                                          [p + 16 for p in reversed(stack)], []))
    for i, fb in enumerate(av.fastbins):
        if fb:
            out["fastbins"].append((f"{(i + 2) * 16:#x}", len(fb), list(reversed(fb)), []))
    for b in range(1, 127):
        chunks = list(av.bin_chunks(b))
        if not chunks:
            continue
        sizes = [av.free[p] for p in chunks]
        if b == 1:
            out["unsortedbin"].append(("all", len(chunks), chunks, sizes))
        elif b < 64:
            out["smallbins"].append((f"{b * 16:#x}", len(chunks), chunks, sizes))
        else:
            out["largebins"].append((f"{min(sizes):#x}-{max(sizes):#x} (bin {b})", len(chunks),
                                     chunks, sizes))
    return out


def _chain(addrs: list[int], sizes: list[int], arrow: str, end: str) -> str:
    if sizes:
        items = [f"{p:#x} ({s:#x})" for p, s in zip(addrs, sizes, strict=True)]
        return f" {arrow} ".join(items) + f" {arrow} main_arena"
    return f" {arrow} ".join(f"{p:#x}" for p in addrs) + f" {end} 0"


def _footer(alloc: Any) -> str:
    av = alloc.av
    return (f"top: {av.top:#x} ({av.top_size:#x} bytes)  last_remainder: "
            f"{av.last_remainder:#x}  mmapped chunks: {len(alloc.mmapped)}")


def render_plain(alloc: Any) -> str:
    """pwndbg's layout in ASCII (``->`` for ``—▸``, ``<-`` for ``◂—``)."""
    lines = []
    for section, bins in bins_data(alloc).items():
        lines.append(section)
        if not bins:
            lines.append("empty")
        for label, count, addrs, sizes in bins:
            lines.append(f"{label} [{count:3d}]: {_chain(addrs, sizes, '->', '<-')}")
    lines.append(_footer(alloc))
    return "\n".join(lines) + "\n"


def render_rich(alloc: Any) -> Any:
    """The same, coloured as pwndbg colours it (section names, sizes, addresses)."""
    from rich.text import Text

    styles = {"tcachebins": "cyan", "fastbins": "blue", "unsortedbin": "yellow",
              "smallbins": "bright_yellow", "largebins": "red"}
    text = Text()
    for section, bins in bins_data(alloc).items():
        text.append(section + "\n", style=f"bold {styles[section]}")
        if not bins:
            text.append("empty\n", style="dim")
        for label, count, addrs, sizes in bins:
            text.append(label, style=styles[section])
            text.append(f" [{count:3d}]: ")
            text.append(_chain(addrs, sizes, "—▸", "◂—") + "\n")
    text.append(_footer(alloc), style="dim")
    return text
