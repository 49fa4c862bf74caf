"""memsim.viz.heapstrip: the chunks tile the heap and match the model; memsim.viz.maps too."""

from __future__ import annotations

import random

import pytest

from memsim.alloc.base import create
from memsim.cli import main
from memsim.kernel import procfs
from memsim.process import Process
from memsim.viz import heapstrip, maps

from .helpers import trace


def _random_heap(seed: int, steps: int = 400) -> tuple[Process, object]:
    rng = random.Random(seed)
    proc = Process()
    alloc = create("glibc", proc.mm)
    live: list[int] = []
    for _ in range(steps):
        if live and rng.random() < 0.4:
            alloc.free(live.pop(rng.randrange(len(live))))
        else:
            live.append(alloc.malloc(rng.choice([10, 24, 100, 700, 1200, 4000, 150000])))
    return proc, alloc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chunks_tile_the_heap_and_match_the_model(seed: int) -> None:
    _proc, alloc = _random_heap(seed)
    a: object = alloc
    av = a.av  # type: ignore[attr-defined]
    chunks = heapstrip.heap_chunks(alloc)
    heap = [c for c in chunks if c.kind != "mmapped"]
    for x, y in zip(heap, heap[1:], strict=False):
        assert x.addr + x.size == y.addr
    assert heap[-1].kind == "top" and heap[-1].addr == av.top
    kinds = {k: sum(1 for c in chunks if c.kind == k) for k in heapstrip.KINDS}
    assert kinds["inuse"] == len(av.inuse)
    assert kinds["unsorted"] + kinds["small"] + kinds["large"] == len(av.free)
    assert kinds["fastbin"] == sum(len(fb) for fb in av.fastbins)
    assert kinds["tcache"] == len(a.cached_chunks())  # type: ignore[attr-defined]
    assert kinds["mmapped"] == len(a.mmapped)  # type: ignore[attr-defined]
    for c in chunks:
        if c.kind in ("unsorted", "small", "large"):
            assert av.free[c.addr] == c.size


def test_plain_strip_has_one_cell_group_per_chunk_and_a_limited_table() -> None:
    _proc, alloc = _random_heap(4, 60)
    chunks = heapstrip.heap_chunks(alloc)
    heap = [c for c in chunks if c.kind != "mmapped"]
    text = heapstrip.render_plain(alloc, limit=5, width=10_000)
    strip = text.splitlines()[1]
    groups = strip.strip("|").split("|")
    assert len(groups) == len(heap)
    for g, c in zip(groups, heap, strict=True):
        assert g == heapstrip.KINDS[c.kind][0] * heapstrip.strip_width(c.size)
    assert f"... {len(chunks) - 5} more chunks" in text


def test_empty_heap() -> None:
    alloc = create("glibc", Process().mm)
    assert "empty" in heapstrip.render_plain(alloc)


def test_maps_view_lists_every_vma_with_its_rss() -> None:
    proc, _alloc = _random_heap(5, 50)
    text = maps.render_plain(proc.mm)
    entries = procfs.smaps(proc.mm)
    rows = text.splitlines()[1:-1]
    assert len(rows) == len(entries)
    for row, e in zip(rows, entries, strict=True):
        assert row.startswith(f"{e.start:012x}-{e.end:012x}")
        assert f"{(e.rss_anon + e.rss_file) * 4:,} kB" in row
    heap_rows = [r for r in rows if r.endswith("[heap]")]
    assert len(heap_rows) == 1 and " heap " in heap_rows[0]


def test_view_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.trace"
    path.write_bytes(trace("m 100 A", "f A", "m 2000 B", "m 10 C", "f B").getvalue())
    assert main(["view", str(path), "--at", "2", "--bins", "--plain"]) == 0
    out = capsys.readouterr().out
    assert "after 2 calls" in out and "tcachebins\n0x70 [  1]" in out and "[heap]" not in out
    assert main(["view", str(path), "--heap", "--maps", "--plain"]) == 0
    out = capsys.readouterr().out
    assert "unsorted bin" in out and "[heap]" in out
    assert main(["view", str(path), "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"trace", "calls", "heap", "bins", "maps"} and doc["calls"] == 5
    assert main(["view", str(path), "--at", "-1"]) == 2
