"""Replay speed: the glibc model in CPython beside the real glibc replaying the same trace.

What is timed, on one recorded trace of at least a million calls:

    model            memsim.trace.replay.replay(trace) as `memsim replay` runs it: reading
                     and parsing the (compressed) trace, the glibc 2.36 model, the simulated
                     kernel (brk/mmap, page faults for every store), the object map. Default
                     settings (the program writes what it allocates: touch=True), and
                     --no-touch (only the allocator's own stores).
    model, parsed    the same replay fed from calls already parsed into a list: the model
                     and kernel alone, to split the time between the reader and the rest.
    native           src/memsim/native/replay.c: the same calls through this machine's real
                     glibc malloc, calls pre-parsed, only the replay loop timed (the physical
                     limit), without and with memset of every block (-t).

Each figure is the median of --runs runs (events/s = calls / seconds), by wall clock and by
the process's CPU time (steadier when other work shares the CPUs), all measured in the same
invocation so that the ratio native/model compares like with like on a machine whose load
varies (the load average is recorded next to the figures). The trace: --trace, else
corpus/python3.trace.zst, else the smallest corpus trace with >= 1,000,000 calls, else a
fresh recording of `ls -laR /usr/lib /usr/share` (stated in the output).

Run:  /work/venv/bin/python benchmarks/bench_replay.py [--runs 5] [--trace T] [--profile]
Writes benchmarks/results/bench_replay.json; --profile also prints the cProfile top 25
(tottime) of one model replay.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import memsim
from memsim.native.build import build_native
from memsim.trace import open_trace
from memsim.trace.replay import Replayer, replay

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIN_CALLS = 1_000_000
TARGET_EVENTS_PER_S = 200_000


def count_calls(path: Path) -> int:
    """Call lines of a trace (decompressed as a stream, counted at C speed)."""
    from memsim.trace.format import _open_binary

    stream, _, owned = _open_binary(path)
    calls = 0
    try:
        while True:
            block = stream.read(1 << 22)
            if not block:
                break
            calls += block.count(b"\n") - block.count(b"\n#")
    finally:
        if owned:
            stream.close()
    return calls - 1  # the first line is a comment not preceded by a newline


def pick_trace(explicit: Path | None, workdir: Path) -> tuple[Path, str]:
    if explicit is not None:
        return explicit, "given with --trace"
    corpus = ROOT / "corpus"
    preferred = corpus / "python3.trace.zst"
    if preferred.is_file() and count_calls(preferred) >= MIN_CALLS:
        return preferred, "corpus (CPython running json/ast/difflib work)"
    if corpus.is_dir():
        for p in sorted(corpus.glob("*.trace*"), key=lambda p: p.stat().st_size):
            if count_calls(p) >= MIN_CALLS:
                return p, "corpus (smallest trace with >= 1M calls)"
    from memsim.trace.record import record

    out = workdir / "ls.trace"
    record(["ls", "-laR", "/usr/lib", "/usr/share"], out, stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
    return out, "recorded now: memsim record -- ls -laR /usr/lib /usr/share"


def plain_copy(path: Path, workdir: Path) -> Path:
    """The trace as plain text (the native replayer reads plain files)."""
    from memsim.trace.format import _open_binary

    stream, _, owned = _open_binary(path)
    out = workdir / "plain.trace"
    with open(out, "wb") as f:
        shutil.copyfileobj(stream, f, 1 << 22)
    if owned:
        stream.close()
    return out


def time_model(path: Path, runs: int, touch: bool) -> dict[str, Any]:
    rates, secs, cpu_rates = [], [], []
    calls = 0
    for _ in range(runs):
        c0 = time.process_time()
        r = replay(path, touch=touch)
        cpu = time.process_time() - c0
        calls = r.calls
        rates.append(r.events_per_second)
        secs.append(r.seconds)
        cpu_rates.append(r.calls / cpu)
    return {"calls": calls, "runs": runs, "events_per_s": rates,
            "median_events_per_s": statistics.median(rates), "median_s": statistics.median(secs),
            "cpu_events_per_s": cpu_rates,
            "median_cpu_events_per_s": statistics.median(cpu_rates)}


def time_model_parsed(path: Path, runs: int, touch: bool) -> dict[str, Any]:
    with open_trace(path, check=False) as reader:
        brk0 = reader.brk0
        t0 = time.perf_counter()
        calls = list(reader)
        read_s = time.perf_counter() - t0
    rates, cpu_rates = [], []
    for _ in range(runs):
        rep = Replayer(brk0=brk0, touch=touch)
        t0, c0 = time.perf_counter(), time.process_time()
        rep.feed(calls)
        rates.append(len(calls) / (time.perf_counter() - t0))
        cpu_rates.append(len(calls) / (time.process_time() - c0))
    n = len(calls)
    del calls
    return {"runs": runs, "events_per_s": rates, "median_events_per_s": statistics.median(rates),
            "cpu_events_per_s": cpu_rates,
            "median_cpu_events_per_s": statistics.median(cpu_rates),
            "reader_events_per_s": n / read_s, "read_s": read_s}


def time_native(binary: Path, plain: Path, runs: int, touch: bool) -> dict[str, Any]:
    rates, parse, cpu_rates = [], [], []
    fields: dict[str, str] = {}
    for _ in range(runs):
        cmd = [str(binary), *(["-t"] if touch else []), str(plain)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        fields = dict(kv.split("=", 1) for kv in out.split())
        rates.append(float(fields["events_per_s"]))
        parse.append(float(fields["parse_s"]))
        cpu_rates.append(float(fields["cpu_events_per_s"]))
    return {"runs": runs, "events_per_s": rates, "median_events_per_s": statistics.median(rates),
            "cpu_events_per_s": cpu_rates,
            "median_cpu_events_per_s": statistics.median(cpu_rates),
            "median_parse_s": statistics.median(parse), "calls": int(fields["calls"]),
            "heap_same": int(fields["heap_same"]), "heap_compared": int(fields["heap_compared"])}


def profile_model(path: Path) -> str:
    prof = cProfile.Profile()
    prof.enable()
    replay(path)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    text = buf.getvalue()
    return re.sub(r"/\S*/src/memsim/", "memsim/", text)


def machine_description() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(),
            "memsim": memsim.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--native-runs", type=int, default=9)
    ap.add_argument("--trace", type=Path, default=None)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one replay")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "bench_replay.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        trace, origin = pick_trace(args.trace, work)
        calls = count_calls(trace)
        print(f"trace: {trace} ({calls:,} calls; {origin})")
        plain = plain_copy(trace, work)
        binary = build_native("replay.c", shared=False)
        load_before = os.getloadavg()
        native = time_native(binary, plain, args.native_runs, touch=False)
        native_t = time_native(binary, plain, args.native_runs, touch=True)
        model = time_model(trace, args.runs, touch=True)
        model_nt = time_model(trace, args.runs, touch=False)
        parsed = time_model_parsed(trace, max(1, args.runs // 2), touch=False)
        load_after = os.getloadavg()
        prof = profile_model(trace) if args.profile else None
    rows = [
        ("model, default (touch)", model),
        ("model, --no-touch", model_nt),
        ("model, --no-touch, pre-parsed calls", parsed),
        ("native glibc, replay loop", native),
        ("native glibc, replay loop + memset", native_t),
    ]
    print(f"{'median events/s':<38} {'wall clock':>14} {'CPU time':>14}")
    for name, row in rows:
        print(f"{name:<38} {row['median_events_per_s']:>14,.0f} "
              f"{row['median_cpu_events_per_s']:>14,.0f}")
    print(f"{'trace reader alone (parse to a list)':<38} {parsed['reader_events_per_s']:>14,.0f}")
    ratio = native["median_events_per_s"] / model_nt["median_events_per_s"]
    ratio_t = native_t["median_events_per_s"] / model["median_events_per_s"]
    cpu_ratio = native["median_cpu_events_per_s"] / model_nt["median_cpu_events_per_s"]
    cpu_ratio_t = native_t["median_cpu_events_per_s"] / model["median_cpu_events_per_s"]
    print(f"native / model: {ratio:,.0f}x (no touch), {ratio_t:,.0f}x (touch); by CPU time "
          f"{cpu_ratio:,.0f}x and {cpu_ratio_t:,.0f}x")
    def verdict(eps: float) -> str:
        return "met" if eps >= TARGET_EVENTS_PER_S else "NOT met"

    print(f"target {TARGET_EVENTS_PER_S:,} events/s for the model (default settings): "
          f"{verdict(model['median_events_per_s'])} by wall clock, "
          f"{verdict(model['median_cpu_events_per_s'])} by CPU time")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"native cross-check: {native['heap_same']:,} of {native['heap_compared']:,} heap "
          f"pointers at the recorded offset from the initial break")
    if prof:
        print(prof)
    result = {
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "trace": {"path": os.path.relpath(trace, ROOT) if trace.is_relative_to(ROOT)
                  else str(trace), "calls": calls, "origin": origin},
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        "model_touch": model, "model_no_touch": model_nt, "model_no_touch_preparsed": parsed,
        "native": native, "native_memset": native_t,
        "ratio_native_over_model": {"no_touch": ratio, "touch": ratio_t,
                                    "no_touch_cpu": cpu_ratio, "touch_cpu": cpu_ratio_t},
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "target_met": model["median_events_per_s"] >= TARGET_EVENTS_PER_S,
        "target_met_by_cpu_time": model["median_cpu_events_per_s"] >= TARGET_EVENTS_PER_S,
        "profile_top25": prof,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
