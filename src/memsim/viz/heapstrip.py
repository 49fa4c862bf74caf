"""The glibc heap as a strip of chunks: in use, free by bin, top, as the model holds them.

The walk mirrors ``do_check_malloc_state``: each heap segment of the main arena is read
chunk by chunk from its start, every chunk found in exactly one of the model's tables (in
use, the tcache, a fastbin, the unsorted/small/large bins, malloc's own chunks, fenceposts)
or as top. The strip draws each chunk with a width that grows with log2 of its size (a
16-byte chunk and a 1 MiB top both stay visible), the table below gives exact numbers::

    |mmmmm|##|tt|uuuuuu|##|..........|        m malloc's own (tcache struct)  # in use
     ^ sbrk_base                     ^ brk    t tcache  f fastbin  u unsorted  s small
                                              L large  | fencepost  . top

Chunks the program holds in their own mappings (mmapped chunks) are listed after the heap.
Cost: O(chunks in the heap); ``limit`` caps the rows printed, never the walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsim.viz.explain import bin_name

__all__ = ["Chunk", "KINDS", "heap_chunks", "render_plain", "render_rich", "strip_width"]

#: kind -> (strip character, rich style, legend text)
KINDS: dict[str, tuple[str, str, str]] = {
    "internal": ("m", "magenta", "malloc's own (tcache_perthread_struct)"),
    "inuse": ("#", "bold green", "in use"),
    "tcache": ("t", "cyan", "tcache"),
    "fastbin": ("f", "blue", "fastbin"),
    "unsorted": ("u", "yellow", "unsorted bin"),
    "small": ("s", "bright_yellow", "small bin"),
    "large": ("L", "red", "large bin"),
    "fence": ("|", "dim", "fencepost"),
    "top": (".", "white", "top"),
    "mmapped": ("M", "bright_magenta", "mmapped chunk"),
}


@dataclass(frozen=True)
class Chunk:
    """One chunk of the heap: address (the header), size, kind (a key of :data:`KINDS`) and
    where it is listed (``tcache 0x70 #0`` = head of its bin)."""

    addr: int
    size: int
    kind: str
    where: str


def heap_chunks(alloc: Any) -> list[Chunk]:
    """Every chunk of the glibc model's main-arena heap in address order, then its mmapped
    chunks. Raises ValueError if a segment cannot be walked (a model bug)."""
    av = alloc.av
    out: list[Chunk] = []
    tcache: dict[int, tuple[int, int]] = {}
    if alloc.tcache is not None:
        for i, stack in enumerate(alloc.tcache.entries):
            for pos, p in enumerate(reversed(stack)):
                tcache[p] = (i, pos)
    fast = {p: (i, pos) for i, fb in enumerate(av.fastbins) for pos, p in enumerate(reversed(fb))}
    if av.top:
        segs = list(av.segments) + [(av.seg_start, av.top + av.top_size)]
        for start, end in segs:
            p = start
            while p < end:
                if p == av.top:
                    out.append(Chunk(p, av.top_size, "top", "top"))
                    break
                if p in av.inuse:
                    size, kind, where = av.inuse[p], "inuse", "in use"
                elif p in tcache:
                    i, pos = tcache[p]
                    size, kind, where = 32 + 16 * i, "tcache", f"tcache {32 + 16 * i:#x} #{pos}"
                elif p in fast:
                    i, pos = fast[p]
                    size, kind, where = (i + 2) * 16, "fastbin", f"fastbin {(i + 2) * 16:#x} #{pos}"
                elif p in av.free:
                    b = av.bin_of[p]
                    size = av.free[p]
                    kind = "unsorted" if b == 1 else "small" if b < 64 else "large"
                    where = bin_name(b)
                elif p in av.internal:
                    size, kind, where = av.internal[p], "internal", "tcache_perthread_struct"
                elif p in av.fences:
                    size, kind, where = av.fences[p], "fence", "fencepost"
                else:
                    raise ValueError(f"no chunk at {p:#x} in heap segment {start:#x}-{end:#x}")
                out.append(Chunk(p, size, kind, where))
                p += size
    for p in sorted(alloc.mmapped):
        out.append(Chunk(p, alloc.mmapped[p][1], "mmapped", "own mapping"))
    return out


def strip_width(size: int) -> int:
    """Cells for a chunk of ``size`` bytes: 1 for 0x20, one more per doubling, at most 12."""
    return min(12, max(1, size.bit_length() - 5))


def _strip_plain(chunks: list[Chunk], max_cells: int) -> str:
    cells = ["|"]
    used = 1
    for c in chunks:
        if c.kind == "mmapped":
            continue
        w = strip_width(c.size)
        if used + w + 1 > max_cells:
            cells.append("...")
            break
        cells.append(KINDS[c.kind][0] * w + "|")
        used += w + 1
    return "".join(cells)


def _legend_plain(chunks: list[Chunk]) -> str:
    kinds = [k for k in KINDS if any(c.kind == k for c in chunks)]
    return "  ".join(f"{KINDS[k][0]} {KINDS[k][2]}" for k in kinds)


def render_plain(alloc: Any, limit: int = 40, width: int = 100) -> str:
    """The strip, its legend and a table of chunks (at most ``limit`` rows)."""
    chunks = heap_chunks(alloc)
    if not chunks:
        return "heap: empty (malloc was never called)\n"
    heap = [c for c in chunks if c.kind != "mmapped"]
    lines = []
    if heap:
        lines.append(f"heap {heap[0].addr:#x}-{heap[-1].addr + heap[-1].size:#x} "
                     f"({len(heap)} chunks; widths grow with log2(size))")
        lines.append(_strip_plain(chunks, width))
    lines.append("legend: " + _legend_plain(chunks))
    lines.append(f"{'chunk':>16}  {'size':>10}  {'state':<9} where")
    for c in chunks[:limit]:
        lines.append(f"{c.addr:#16x}  {c.size:#10x}  {c.kind:<9} {c.where}")
    if len(chunks) > limit:
        lines.append(f"... {len(chunks) - limit} more chunks (use a larger limit)")
    return "\n".join(lines) + "\n"


def render_rich(alloc: Any, limit: int = 40, width: int = 100) -> Any:
    """The same as :func:`render_plain` as a rich renderable (coloured strip and table)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    chunks = heap_chunks(alloc)
    if not chunks:
        return Text("heap: empty (malloc was never called)")
    heap = [c for c in chunks if c.kind != "mmapped"]
    parts: list[Any] = []
    if heap:
        parts.append(Text(f"heap {heap[0].addr:#x}-{heap[-1].addr + heap[-1].size:#x} "
                          f"({len(heap)} chunks; widths grow with log2(size))", style="bold"))
        strip = Text()
        used = 0
        for i, c in enumerate(heap):
            w = strip_width(c.size)
            if used + w > width:
                strip.append("…")
                break
            char = "▌" if i % 2 else "█"
            strip.append(char * w, style=KINDS[c.kind][1])
            used += w
        parts.append(strip)
    legend = Text("legend: ")
    for k, (_ch, style, text) in KINDS.items():
        if any(c.kind == k for c in chunks):
            legend.append("██", style=style)
            legend.append(f" {text}  ")
    parts.append(legend)
    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("chunk", justify="right")
    table.add_column("size", justify="right")
    table.add_column("state")
    table.add_column("where")
    for c in chunks[:limit]:
        style = KINDS[c.kind][1]
        table.add_row(f"{c.addr:#x}", f"{c.size:#x}", Text(c.kind, style=style), c.where)
    parts.append(table)
    if len(chunks) > limit:
        parts.append(Text(f"... {len(chunks) - limit} more chunks", style="dim"))
    return Group(*parts)
