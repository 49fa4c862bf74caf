"""Build small traces in memory for the viz tests (addresses are labels: the replay maps
recorded addresses to simulated ones, so any distinct non-zero values do)."""

from __future__ import annotations

import io

BRK0 = 0x555555559000


def trace(*lines: str, brk0: int = BRK0) -> io.BytesIO:
    """A memsim-trace v1 stream from call lines written with labels: ``"m 100 A"`` ...
    Labels (words of letters) become distinct addresses."""
    labels: dict[str, int] = {}

    def addr(word: str) -> str:
        if word[0].isalpha() and word not in ("m", "c", "r", "f", "a", "v", "p"):
            labels.setdefault(word, 0x10000 * (len(labels) + 1))
            return hex(labels[word])
        return word

    body = []
    for line in lines:
        parts = line.split()
        body.append(" ".join([parts[0]] + [addr(w) for w in parts[1:]]))
    text = f"# memsim-trace v1\n# brk0 {brk0:#x}\n" + "\n".join(body) + "\n"
    return io.BytesIO(text.encode())
