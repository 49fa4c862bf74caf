"""Scale benchmark: a simulated TiB must cost what a simulated MiB costs.

The scenario of issue 2, on a machine with overcommit mode 1 (so the kernel accepts the TiB
without MAP_NORESERVE)::

    tib       mmap 1 TiB rw; write all of its first GiB; then 1 byte in each further GiB
              (1023 single-page touches)
    baseline  mmap 1 GiB rw; write its first MiB
    shape     the TiB scenario at 1/1024 scale: mmap 1 GiB; write its first MiB; then 1 byte
              in each further MiB (as many touched ranges as the TiB scenario)

For each: wall time (median of --runs runs, perf_counter, tracemalloc off), peak Python
memory of one run (tracemalloc), and the state the simulator holds afterwards (VMAs, and the
items of every container reachable from the process and machine objects). The ratio
tib/shape is the figure that matters: memsim's state grows with the number of touched
ranges, never with bytes or pages, so a TiB costs what a MiB of the same shape costs. The
same TiB scenario is also timed on the real kernel (kdriver), for scale.

Run:  /work/venv/bin/python benchmarks/bench_scale.py [--runs 7] [--json PATH]
Writes benchmarks/results/bench_scale.json (figures + machine description).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import memsim

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
HERE = Path(__file__).resolve().parent


def state_items(*roots: object) -> int:
    """Items held in every container reachable from ``roots`` through memsim objects: list,
    dict, set and sortedcontainers lengths summed. Proportional to what the simulator keeps."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = list(roots)
    while stack:
        o = stack.pop()
        if id(o) in seen or o is None or isinstance(o, (int, float, str, bytes, bool)):
            continue
        seen.add(id(o))
        mod = type(o).__module__ or ""
        if isinstance(o, dict):
            total += len(o)
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            total += len(o)
            stack.extend(o)
        elif mod.startswith("sortedcontainers"):
            total += len(o)  # type: ignore[arg-type]
            stack.extend(iter(o))  # type: ignore[call-overload]
            if hasattr(o, "values"):
                stack.extend(o.values())  # type: ignore[attr-defined]
        elif mod.startswith("memsim"):
            if hasattr(o, "__dict__"):
                stack.extend(vars(o).values())
            for klass in type(o).__mro__:
                for slot in getattr(klass, "__slots__", ()):
                    stack.append(getattr(o, slot, None))
    return total


def run_tib() -> tuple[Any, Any]:
    machine = memsim.Machine(overcommit=1)
    proc = memsim.Process(machine=machine)
    a = proc.mmap(TiB, prot="rw")
    assert a is not None, f"mmap 1 TiB failed: errno {proc.errno}"
    proc.write(a, GiB)
    proc.write(a + GiB, TiB - GiB, every=GiB)
    return proc, machine


def run_baseline() -> tuple[Any, Any]:
    machine = memsim.Machine(overcommit=1)
    proc = memsim.Process(machine=machine)
    a = proc.mmap(GiB, prot="rw")
    assert a is not None, f"mmap 1 GiB failed: errno {proc.errno}"
    proc.write(a, MiB)
    return proc, machine


def run_same_shape_small() -> tuple[Any, Any]:
    """The TiB scenario's shape at 1/1024 scale: 1 GiB mapped, its first MiB written, then one
    byte in each further MiB (1023 touches, as many as the TiB scenario makes)."""
    machine = memsim.Machine(overcommit=1)
    proc = memsim.Process(machine=machine)
    a = proc.mmap(GiB, prot="rw")
    assert a is not None, f"mmap 1 GiB failed: errno {proc.errno}"
    proc.write(a, MiB)
    proc.write(a + MiB, GiB - MiB, every=MiB)
    return proc, machine


def measure(fn: Callable[[], tuple[Any, Any]], runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    proc, machine = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    status = proc.status()
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": runs,
        "peak_python_bytes": peak,
        "vmas": sum(1 for line in str(proc.maps()).splitlines() if line.strip()),
        "state_items": state_items(proc, machine),
        "VmSize_kB": status["VmSize"],
        "RssAnon_kB": status["RssAnon"],
        "VmPTE_kB": status["VmPTE"],
    }


TIB_OPS = """
    m = mmap 1T rw noreserve
    write m 1G every=4096
    write m+1G 1023G every=1G
    mark
"""


def measure_real(runs: int) -> dict[str, Any] | None:
    """The same TiB scenario on this machine's kernel (kdriver, MAP_NORESERVE because the host
    runs overcommit mode 0): wall time of the driver process and what it holds afterwards."""
    from memsim.oracle.kernel import RealRunner, _deltas, unavailable_reason
    from memsim.oracle.ops import parse

    if unavailable_reason():
        return None
    runner, program = RealRunner(), parse(TIB_OPS)
    times, run = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        run = runner.run(program)
        times.append(time.perf_counter() - t0)
    assert run is not None
    (delta,) = _deltas(run.snapshots)
    return {"median_s": statistics.median(times), "runs": runs,
            "RssAnon_kB": delta["RssAnon"], "VmPTE_kB": delta["VmPTE"]}


def machine_description() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu": cpu, "cpus": os.cpu_count(), "memsim": memsim.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-real", action="store_true",
                    help="do not time the same scenario on the real kernel")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "bench_scale.json")
    args = ap.parse_args(argv)
    rows = {"tib": measure(run_tib, args.runs), "baseline": measure(run_baseline, args.runs),
            "same_shape": measure(run_same_shape_small, args.runs)}
    keys = ("median_s", "peak_python_bytes", "state_items")
    ratio = {k: rows["tib"][k] / rows["baseline"][k] if rows["baseline"][k] else None
             for k in keys}
    ratio_shape = {k: rows["tib"][k] / rows["same_shape"][k] if rows["same_shape"][k] else None
                   for k in keys}
    print(f"{'scenario':<34} {'median':>9} {'peak mem':>10} {'VMAs':>5} {'state':>7} "
          f"{'RssAnon':>12} {'VmPTE':>9}")
    names = {"tib": "1 TiB, 1st GiB + 1 B/GiB written", "baseline": "1 GiB, 1st MiB written",
             "same_shape": "1 GiB, 1st MiB + 1 B/MiB written"}
    for key, r in rows.items():
        print(f"{names[key]:<34} {r['median_s'] * 1000:>7.1f}ms "
              f"{r['peak_python_bytes'] / MiB:>7.2f}MiB {r['vmas']:>5} {r['state_items']:>7} "
              f"{r['RssAnon_kB']:>9} kB {r['VmPTE_kB']:>6} kB")
    for label, rt in (("ratio tib / 1 GiB-1 MiB", ratio), ("ratio tib / same shape", ratio_shape)):
        print(f"{label:<34} {rt['median_s']:>8.1f}x "
              f"{rt['peak_python_bytes']:>9.1f}x {'':>5} {rt['state_items']:>6.1f}x")
    real = None if args.no_real else measure_real(min(args.runs, 3))
    if real:
        print(f"{'real kernel, same TiB scenario':<34} {real['median_s'] * 1000:>7.1f}ms "
              f"{'(RAM)':>10} {'':>5} {'':>7} {real['RssAnon_kB']:>9} kB "
              f"{real['VmPTE_kB']:>6} kB")
    result = {"machine": machine_description(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
              time.gmtime()), "results": rows, "ratio": ratio, "ratio_same_shape": ratio_shape,
              "real_kernel_tib": real}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
