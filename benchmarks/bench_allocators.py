"""Replay speed of every registered allocator beside the glibc model (memsim issue 4).

For each allocator (default: all of ``memsim.alloc.available()``; glibc is always included,
as the baseline) these workloads are timed:

    synthetic/null   the synthetic workload of tests/alloc/bench_glibc.py (``workload(n)``:
                     55 % malloc / 45 % free over ~5000 live blocks, 3 % realloc, 1 % calloc,
                     sizes mostly small, a few up to 400 KB; --events, default 100,000) on the
                     NullKernel of tests/alloc/bench_policies.py: the allocator alone.
    synthetic/mm     the same events on memsim's kernel (memsim.kernel.mm.MM, as built by
                     bench_glibc._mm): what a replay runs on.
    <trace>/mm       for each --traces trace, its calls as (op, slot, size) events
                     (bench_policies.trace_ops: failed calls and free of an unknown pointer
                     dropped) replayed on MM. Converting the trace is not timed.
    <trace>/replay   the whole user-facing pipeline, memsim.trace.replay.replay(path,
                     allocator): reading and decompressing the trace, parsing it, the
                     allocator, the kernel, and the program's own stores (touch=True);
                     events = the calls the replay reports. Off with --no-replay.

Only the allocator's work is inside the clock for the first three (bench_policies.replay; the
kernel and allocator are built, and the garbage collected, before the clock starts); the whole
replay() call for the last.
Rates are events per second of this process's CPU time (time.process_time), so that other work
on the machine skews them less. Each cell is --repeat runs, each on a fresh kernel and
allocator, interleaved round-robin across the allocators within a workload so that changes in
machine load hit every allocator alike; the cell's figure is the median rate, and its ratio is
that median over glibc's median on the same workload in the same invocation. The load average
before and after is recorded beside the figures. An allocator that raises (NotModelled for a
call it does not model, an abort, ...) keeps its error string in its cell; the run goes on.

Output: progress lines on stderr; on stdout a markdown table (rows: allocators; columns:
workloads, each ``events/s (ratio x glibc)``), the list of allocator/workload cells below
glibc (ratio < 1.00; the issue asks that there be none) and the errors. The JSON (--out,
default benchmarks/results/bench_allocators.json) has every run's rate, the medians and
ratios, the machine, Python, load averages, git commit (``-dirty`` when src/ has
uncommitted changes) at the start, when the allocators are imported, and at the end if it
changed meanwhile, date and arguments.

Run:  /work/venv/bin/python benchmarks/bench_allocators.py [--allocators a,b,c]
      [--events 100000] [--repeat 3] [--traces corpus/cc1.trace.zst,...] [--no-replay]
      [--out PATH]
The default (every allocator; synthetic, cc1 and bash, with replay) takes about 6 minutes for
17 allocators on 2 CPUs; corpus/python3.trace.zst (1.4M calls, about 5 minutes more) is opt-in:
--traces corpus/cc1.trace.zst,corpus/bash.trace.zst,corpus/python3.trace.zst.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:           # tests.alloc.* (the developer benches) are reused
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_replay import machine_description  # noqa: E402
from tests.alloc.bench_glibc import _mm, workload  # noqa: E402
from tests.alloc.bench_policies import NullKernel, Ops, replay, trace_ops  # noqa: E402

from memsim.alloc import available, create  # noqa: E402
from memsim.kernel.abi import Syscalls  # noqa: E402
from memsim.trace.replay import replay as replay_trace  # noqa: E402

BASELINE = "glibc"
DEFAULT_TRACES = ("corpus/cc1.trace.zst", "corpus/bash.trace.zst")
DEFAULT_OUT = HERE / "results" / "bench_allocators.json"

# One timed run: (allocator name) -> (events, CPU seconds); raises what the allocator raises.
Runner = Callable[[str], tuple[int, float]]


def _make_mm() -> Syscalls:
    sysc = _mm()
    if sysc is None:
        raise RuntimeError("memsim.kernel.mm.MM could not be built")
    return sysc


def ops_runner(ops: Ops, make_kernel: Callable[[], Syscalls]) -> Runner:
    """Time bench_policies.replay of ``ops`` on a fresh kernel and allocator."""
    def run(name: str) -> tuple[int, float]:
        allocator = create(name, make_kernel())
        gc.collect()                    # the previous run's garbage is not this run's cost
        c0 = time.process_time()
        replay(allocator, ops)
        return len(ops), time.process_time() - c0
    return run


def pipeline_runner(path: Path) -> Runner:
    """Time memsim.trace.replay.replay(path, name): reader, allocator, kernel, stores."""
    def run(name: str) -> tuple[int, float]:
        gc.collect()
        c0 = time.process_time()
        result = replay_trace(path, name)
        return result.calls, time.process_time() - c0
    return run


class Progress:
    """Progress lines on stderr with the elapsed wall time."""

    def __init__(self, quiet: bool) -> None:
        self.t0 = time.perf_counter()
        self.quiet = quiet

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():7.1f} s] {text}", file=sys.stderr, flush=True)


def measure(workload_name: str, run: Runner, names: Sequence[str], repeat: int,
            say: Progress) -> dict[str, dict[str, Any]]:
    """``repeat`` rounds, each timing every allocator once (round-robin); the cells."""
    cells: dict[str, dict[str, Any]] = {
        n: {"events": 0, "cpu_s": [], "events_per_s": [], "median_events_per_s": None,
            "ratio_to_glibc": None, "error": None} for n in names}
    for r in range(repeat):
        for name in names:
            cell = cells[name]
            if cell["error"] is not None:
                continue
            try:
                events, cpu = run(name)
            except Exception as exc:  # noqa: BLE001 - any failure is the cell's result
                cell["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                say(f"{workload_name:24s} {name:20s} run {r + 1}/{repeat}  ERROR "
                    f"{cell['error']}")
                continue
            rate = events / max(cpu, 1e-9)
            cell["events"] = events
            cell["cpu_s"].append(cpu)
            cell["events_per_s"].append(rate)
            say(f"{workload_name:24s} {name:20s} run {r + 1}/{repeat}  {rate:12,.0f} events/s")
    base = cells[BASELINE]
    base_med = statistics.median(base["events_per_s"]) if base["events_per_s"] else None
    if base["error"] is not None:
        base_med = None
    for cell in cells.values():
        if cell["error"] is None and cell["events_per_s"]:
            cell["median_events_per_s"] = statistics.median(cell["events_per_s"])
            if base_med:
                cell["ratio_to_glibc"] = cell["median_events_per_s"] / base_med
    return cells


def git_commit() -> str | None:
    """``git rev-parse --short HEAD``, with ``-dirty`` when src/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def git_dirty_files() -> list[str]:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line[3:] for line in out.splitlines() if line.strip()]


def trace_label(path: Path) -> str:
    name = path.name
    for suffix in (".zst", ".gz", ".xz"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".trace").removesuffix(".mtrace")


def cell_text(cell: dict[str, Any]) -> str:
    if cell["error"] is not None:
        return "error (see below)"
    med, ratio = cell["median_events_per_s"], cell["ratio_to_glibc"]
    if med is None:
        return "-"
    return f"{med:,.0f} ({ratio:.2f}x)" if ratio is not None else f"{med:,.0f}"


def markdown_table(names: Sequence[str], results: dict[str, dict[str, dict[str, Any]]]) -> str:
    workloads = list(results)
    lines = ["| allocator | " + " | ".join(f"{w} events/s (x glibc)" for w in workloads) + " |",
             "| --- | " + " | ".join("---:" for _ in workloads) + " |"]
    for name in names:
        lines.append(f"| {name} | "
                     + " | ".join(cell_text(results[w][name]) for w in workloads) + " |")
    return "\n".join(lines)


def below_text(below: Sequence[tuple[str, str, float]]) -> str:
    """The cells below glibc, grouped by workload (three decimals: 0.996 is below)."""
    by_workload: dict[str, list[str]] = {}
    for name, w, ratio in below:
        by_workload.setdefault(w, []).append(f"{name} {ratio:.3f}")
    return "; ".join(f"{w}: {', '.join(cells)}" for w, cells in by_workload.items())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog="Workloads, timing and output are described in the module docstring.")
    ap.add_argument("--allocators", default=None,
                    help="comma-separated allocator names (default: every registered one); "
                         "glibc is always added as the baseline")
    ap.add_argument("--events", type=int, default=100_000,
                    help="events of the synthetic workload (default 100000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per allocator and workload; the median is kept (default 3)")
    ap.add_argument("--traces", default=",".join(DEFAULT_TRACES),
                    help="comma-separated recorded traces, relative to the repo root or "
                         "absolute; '' for none (default: %(default)s)")
    ap.add_argument("--replay", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the whole memsim.trace.replay.replay pipeline per trace "
                         "(default on)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="the JSON result file (default benchmarks/results/"
                         "bench_allocators.json)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    known = [n for n, _ in available()]
    if args.allocators:
        names = [n.strip() for n in args.allocators.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            ap.error(f"unknown allocator {', '.join(unknown)} (known: {', '.join(known)})")
    else:
        names = list(known)
    if BASELINE not in names:
        names.insert(0, BASELINE)
    args.names = list(dict.fromkeys(names))
    if args.events < 1:
        ap.error("--events must be at least 1")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    traces = []
    for t in (s.strip() for s in args.traces.split(",")):
        if not t:
            continue
        p = Path(t) if Path(t).is_absolute() else ROOT / t
        if not p.is_file():
            ap.error(f"trace not found: {t}")
        traces.append(p)
    args.trace_paths = traces
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names: list[str] = args.names
    say = Progress(args.quiet)
    commit, dirty = git_commit(), git_dirty_files()   # the code imported (available() above)
    load_before = os.getloadavg()
    say(f"{len(names)} allocators, repeat {args.repeat}, load average {load_before[0]:.2f}")

    results: dict[str, dict[str, dict[str, Any]]] = {}
    workload_events: dict[str, int] = {}
    ops = workload(args.events)
    for label, make in (("synthetic/null", NullKernel), ("synthetic/mm", _make_mm)):
        workload_events[label] = len(ops)
        results[label] = measure(label, ops_runner(ops, make), names, args.repeat, say)
    del ops
    for path in args.trace_paths:
        label = trace_label(path)
        say(f"{label}: converting {path.name} to events")
        ops = trace_ops(str(path))
        workload_events[f"{label}/mm"] = len(ops)
        results[f"{label}/mm"] = measure(f"{label}/mm", ops_runner(ops, _make_mm), names,
                                         args.repeat, say)
        del ops
        if args.replay:
            results[f"{label}/replay"] = measure(f"{label}/replay", pipeline_runner(path),
                                                 names, args.repeat, say)
            calls = [c["events"] for c in results[f"{label}/replay"].values() if c["events"]]
            workload_events[f"{label}/replay"] = max(calls, default=0)
    load_after = os.getloadavg()
    wall = say.elapsed()

    below = [(name, w, results[w][name]["ratio_to_glibc"]) for w in results for name in names
             if results[w][name]["ratio_to_glibc"] is not None
             and results[w][name]["ratio_to_glibc"] < 1.0]
    errors = [(name, w, results[w][name]["error"]) for w in results for name in names
              if results[w][name]["error"] is not None]
    commit_after = git_commit()
    changed = commit_after != commit or git_dirty_files() != dirty

    print(f"events/s of CPU time, median of {args.repeat} runs; ratio = median / glibc's "
          f"median on the same workload. Events: "
          + ", ".join(f"{w} {n:,}" for w, n in workload_events.items()))
    print()
    print(markdown_table(names, results))
    print()
    print("below glibc (ratio < 1.00): " + (below_text(below) if below else "none"))
    print("errors (cell not measured): "
          + ("; ".join(f"{n} {w}: {e}" for n, w, e in errors) if errors else "none"))
    print(f"wall time {wall:.0f} s; load average (1 min) before/after: {load_before[0]:.2f} / "
          f"{load_after[0]:.2f} on {os.cpu_count()} CPUs; commit {commit}"
          + (f" (src/ changed during the run: now {commit_after}; figures are of the code "
             "at the start)" if changed else ""))

    result = {
        "what": "events per second of CPU time (time.process_time) per allocator and "
                "workload; see the docstring of benchmarks/bench_allocators.py",
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "git_dirty_src": dirty,
        "git_commit_after": commit_after if changed else None,
        "arguments": {"allocators": names, "events": args.events, "repeat": args.repeat,
                      "traces": [os.path.relpath(p, ROOT) if p.is_relative_to(ROOT) else str(p)
                                 for p in args.trace_paths],
                      "replay": args.replay, "argv": list(sys.argv[1:] if argv is None
                                                           else argv)},
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "wall_s": wall,
        "workload_events": workload_events,
        "results": results,
        "below_glibc": [{"allocator": n, "workload": w, "ratio": r} for n, w, r in below],
        "errors": [{"allocator": n, "workload": w, "error": e} for n, w, e in errors],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
