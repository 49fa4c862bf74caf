#!/usr/bin/env python3
"""Record OSTEP's malloc.py over a grid of flags and seeds, for tests/textbooks/test_ostep.py.

Usage::

    python scripts/record_ostep.py PATH/TO/malloc.py            # -> tests/textbooks/recordings/
    python scripts/record_ostep.py PATH/TO/malloc.py --check    # compare, write nothing

malloc.py is the free-space simulator of OSTEP's homework (remzi-arpacidusseau/ostep-homework,
``vm-freespace/malloc.py``). It is not part of memsim and is never copied into it: get it from
that repository, and point this script at it. The script runs it (with this Python) once per
case and stores, per case, the argument list, what it printed on stdout and its exit status,
as one JSON object a line in ``tests/textbooks/recordings/ostep_malloc_py.jsonl.gz``
(gzip, no timestamp), after a
first line that says which malloc.py (sha256) and which Python made them. These are outputs of
the tool, the ground truth that ``memsim ostep`` is compared with, byte for byte.

The grid: every policy x list order x coalescing, with four header/alignment settings and
two seeds, 16 random operations, with answers (-c); smaller heaps (allocations fail), other
ranges, percentages and bases; runs without -c; op lists (-A) with and without headers; and
runs where malloc.py stops with an error (only its exit status is compared there).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "textbooks", "recordings", "ostep_malloc_py.jsonl.gz")

POLICIES = ("BEST", "WORST", "FIRST")
ORDERS = ("ADDRSORT", "SIZESORT+", "SIZESORT-", "INSERT-FRONT", "INSERT-BACK")


def cases() -> list[list[str]]:
    """The argument lists to record (deterministic order)."""
    out: list[list[str]] = []
    for policy, order, coalesce in itertools.product(POLICIES, ORDERS, (False, True)):
        for header, align in (("0", "-1"), ("4", "-1"), ("0", "4"), ("8", "8")):
            for seed in ("0", "7"):
                args = ["-p", policy, "-l", order, "-H", header, "-a", align, "-s", seed,
                        "-n", "16", "-c"]
                if coalesce:
                    args.append("-C")
                out.append(args)
    # allocations that fail (small heaps), other sizes, percentages, bases, seeds
    for policy in POLICIES:
        for seed in ("1", "2", "3"):
            out.append(["-p", policy, "-S", "30", "-r", "12", "-n", "25", "-s", seed, "-c"])
            out.append(["-p", policy, "-S", "40", "-H", "4", "-n", "25", "-s", seed, "-c",
                        "-C"])
            out.append(["-p", policy, "-P", "70", "-r", "30", "-S", "200", "-n", "30",
                        "-s", seed, "-c", "-l", "SIZESORT+", "-C"])
            out.append(["-p", policy, "-b", "0", "-S", "64", "-a", "8", "-n", "15", "-s",
                        seed, "-c", "-l", "INSERT-FRONT"])
    out.append(["-n", "10", "-s", "0"])                      # questions only
    out.append(["-n", "12", "-s", "5", "-p", "FIRST", "-H", "4"])
    out.append(["-s", "010", "-c"])                          # optparse: octal
    out.append(["-s", "0x1f", "-c", "-p", "WORST"])          # optparse: hex
    out.append(["-s", "-3", "-c"])                           # negative seed
    out.append(["-n", "0", "-c"])
    out.append(["-r", "0", "-n", "6", "-c"])
    out.append(["-P", "100", "-n", "12", "-S", "40", "-c", "-p", "FIRST"])
    out.append(["--seed=4", "--policy=WORST", "--listOrder=INSERT-BACK", "--coalesce",
                "--compute"])
    # op lists (-A), all allocations succeed
    lists = ("+10,-0,+20", "+3,-0,+5,-1,+8", "+10,+10,-0,-0", "+20,+20,+20,-1,+10,-0,-2,+30",
             "+5,+5,+5,+5,-1,-3,+2,-0,-2,+12", "+0,+1,-0,-1", "+50,+25,-0,+10,+10,+10,-1")
    for ops in lists:
        for policy, order in (("BEST", "ADDRSORT"), ("FIRST", "INSERT-FRONT"),
                              ("WORST", "SIZESORT-")):
            out.append(["-A", ops, "-p", policy, "-l", order, "-c"])
            out.append(["-A", ops, "-p", policy, "-l", order, "-c", "-C"])
        out.append(["-A", ops, "-H", "4", "-a", "4", "-c"])
        out.append(["-A", ops])
    out.append(["-A", "+200,+5"])
    # malloc.py stops with an error
    out.append(["-p", "NEXT"])
    out.append(["-l", "LIFO"])
    out.append(["-a", "0"])
    out.append(["-P", "0"])
    out.append(["-A", "*5", "-c"])
    out.append(["-A", "+5,,+3", "-c"])
    out.append(["-A", "+0,+0", "-c"])
    return out


def record(malloc_py: str) -> list[str]:
    with open(malloc_py, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    lines = [json.dumps({"malloc.py sha256": digest,
                         "python": sys.version.split()[0],
                         "source": "remzi-arpacidusseau/ostep-homework vm-freespace/malloc.py"})]
    for args in cases():
        proc = subprocess.run([sys.executable, malloc_py, *args], capture_output=True,
                              text=True, check=False, env={**os.environ, "LC_ALL": "C"})
        lines.append(json.dumps({"args": args, "stdout": proc.stdout,
                                 "status": proc.returncode}))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("malloc_py", help="path to OSTEP's vm-freespace/malloc.py")
    parser.add_argument("--check", action="store_true",
                        help="compare with the stored recordings instead of writing them")
    args = parser.parse_args()
    lines = record(args.malloc_py)
    text = "\n".join(lines) + "\n"
    if args.check:
        with gzip.open(OUT, "rt", encoding="utf-8") as fh:
            same = fh.read() == text
        print("recordings are up to date" if same else "recordings differ")
        return 0 if same else 1
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    print(f"{len(lines) - 1} cases written to {os.path.relpath(OUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
