"""memsim.viz.bins lists exactly what the glibc model's bins hold, in pwndbg's layout."""

from __future__ import annotations

import random
import re

from memsim.alloc.base import create
from memsim.process import Process
from memsim.viz import bins


def _parse(text: str) -> dict[str, dict[str, tuple[int, list[int]]]]:
    """Section -> bin label -> (count, addresses), read back from the plain view."""
    out: dict[str, dict[str, tuple[int, list[int]]]] = {}
    section = ""
    for line in text.splitlines():
        if line in ("tcachebins", "fastbins", "unsortedbin", "smallbins", "largebins"):
            section = line
            out[section] = {}
            continue
        m = re.match(r"^(.*?) \[\s*(\d+)\]: (.*)$", line)
        if m:
            addrs = [int(x, 16) for x in re.findall(r"(0x[0-9a-f]+)(?! bytes)", m.group(3))
                     if int(x, 16) != 0]
            out[section][m.group(1)] = (int(m.group(2)), addrs)
    return out


def _model(alloc: object) -> dict[str, dict[str, tuple[int, list[int]]]]:
    """The same, straight from the model's structures."""
    a: object = alloc
    av = a.av  # type: ignore[attr-defined]
    tc = a.tcache  # type: ignore[attr-defined]
    want: dict[str, dict[str, tuple[int, list[int]]]] = {
        "tcachebins": {}, "fastbins": {}, "unsortedbin": {}, "smallbins": {}, "largebins": {}}
    for i, stack in enumerate(tc.entries):
        if stack:
            want["tcachebins"][f"{32 + 16 * i:#x}"] = (len(stack), [p + 16 for p in stack[::-1]])
    for i, fb in enumerate(av.fastbins):
        if fb:
            want["fastbins"][f"{(i + 2) * 16:#x}"] = (len(fb), fb[::-1])
    for b in range(1, 127):
        chunks = list(av.bin_chunks(b))
        if not chunks:
            continue
        pairs = [x for p in chunks for x in (p, av.free[p])]
        if b == 1:
            want["unsortedbin"]["all"] = (len(chunks), pairs)
        elif b < 64:
            want["smallbins"][f"{b * 16:#x}"] = (len(chunks), pairs)
        else:
            sizes = [av.free[p] for p in chunks]
            want["largebins"][f"{min(sizes):#x}-{max(sizes):#x} (bin {b})"] = (len(chunks),
                                                                                pairs)
    return want


def test_the_bins_view_lists_exactly_the_models_bins() -> None:
    rng = random.Random(5)
    alloc = create("glibc", Process().mm)
    live: list[int] = []
    seen_sections: set[str] = set()
    for step in range(600):
        if step % 150 == 75:                    # a burst that overflows a tcache bin
            burst = [alloc.malloc(24) for _ in range(10)]
            for q in burst:
                alloc.free(q)
        if live and rng.random() < 0.45:
            alloc.free(live.pop(rng.randrange(len(live))))
        else:
            size = rng.choice([16, 24, 40, 100, 200, 500, 1000, 1500, 3000, 5000, 20000])
            p = alloc.malloc(size)
            assert p
            live.append(p)
        if step % 25 == 0:
            view = _parse(bins.render_plain(alloc))
            want = _model(alloc)
            # the plain view prints a chunk's size after its address; the model pairs match
            assert view == want, step
            seen_sections |= {s for s, b in want.items() if b}
    assert seen_sections == {"tcachebins", "fastbins", "unsortedbin", "smallbins",
                             "largebins"}


def test_empty_sections_say_empty_and_footer_has_top() -> None:
    alloc = create("glibc", Process().mm)
    alloc.free(alloc.malloc(10))
    text = bins.render_plain(alloc)
    assert text.count("empty") == 4
    assert f"top: {alloc.av.top:#x}" in text          # type: ignore[attr-defined]
