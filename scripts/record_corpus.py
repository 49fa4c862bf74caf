#!/usr/bin/env python3
"""Record the trace corpus: real programs of this machine, with real inputs, as memsim-trace v1.

Usage::

    python scripts/record_corpus.py                 # all programs -> corpus/NAME.trace.zst
    python scripts/record_corpus.py sort python3    # only these
    python scripts/record_corpus.py --list          # what would be recorded

Each program runs under ``memsim record`` (:func:`memsim.trace.record.record`) with a fixed
environment (``LC_ALL=C``, ``TZ=UTC``, a fixed ``PATH`` and ``HOME``), without address-space
randomisation (as ``setarch -R`` would), in a work directory whose path is fixed
(``/tmp/memsim-corpus-work``, emptied first), so that a second run on the same machine gives
the same traces. Inputs are files every Debian system with these tools has (``/usr/include``,
``/usr/lib/python3.*``, ``/usr/share/common-licenses``) or text this script generates from a
fixed seed.

The model of glibc is single-threaded, so every trace must come from one thread: the script
checks that each file has exactly one distinct ``t=`` value and refuses it otherwise. Programs
that may start threads are told not to (``sort --parallel=1``, ``xz -T1``).

A trace is kept from the process that does the interesting work: for ``gcc`` that is the
``cc1`` image that gcc execs, not the driver. Traces are written with zstd level 19, and
``corpus/README.md`` is regenerated with the exact commands, call counts and brk0 values.
"""

from __future__ import annotations

import argparse
import glob
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from memsim.trace.record import (  # noqa: E402
    RecordedTrace,
    fixed_environment,
    record,
    scan_trace,
)

WORK = Path("/tmp/memsim-corpus-work")
ZSTD_LEVEL = 19


@dataclass
class Program:
    name: str                       # corpus/NAME.trace.zst
    kind: str                       # compiler, interpreter, database, compressor, shell tool
    command: list[str]              # run in WORK
    note: str                       # what the input is
    pick: str | None = None         # basename of the program whose trace to keep (default: main)
    stdin: str | None = None        # file in WORK to feed on stdin
    env: dict[str, str] | None = None  # added to the fixed environment
    prepare: Callable[[Path], None] | None = None


# --- deterministic inputs -------------------------------------------------------------------

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
         "rho sigma tau upsilon phi chi psi omega malloc free brk mmap page frame chunk bin "
         "arena tcache heap stack kernel process thread").split()


def _lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(2, 12)
        out.append(f"{rng.randint(0, 10**9):09d} " + " ".join(rng.choice(WORDS) for _ in range(k))
                   + f" {i}")
    return out


def prep_text(work: Path, n: int = 300_000) -> None:
    """lines.txt: n lines of a number, 2-12 words, and the line number (the first n of one
    fixed sequence, so that a shorter file is a prefix of the longer one)."""
    (work / "lines.txt").write_text("\n".join(_lines(n, 1)) + "\n")


def prep_json(work: Path, n: int = 40_000) -> None:
    rng = random.Random(2)
    parts = []
    for i in range(n):
        tags = ",".join(f'"{rng.choice(WORDS)}"' for _ in range(rng.randint(1, 6)))
        name, size = rng.choice(WORDS), rng.randint(1, 1 << 20)
        parts.append(f'{{"id":{i},"name":"{name}-{i}","size":{size},'
                     f'"tags":[{tags}],"nested":{{"a":{rng.random():.6f},"b":[{i},{i * 2}]}}}}')
    (work / "data.json").write_text("[" + ",\n".join(parts) + "]\n")


def prep_sql(work: Path) -> None:
    rng = random.Random(3)
    rows = []
    for i in range(25_000):
        rows.append(f"INSERT INTO t VALUES({i},'{rng.choice(WORDS)}',{rng.randint(0, 999)},"
                    f"'{' '.join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))}');")
    script = ["CREATE TABLE t(id INTEGER PRIMARY KEY, w TEXT, n INTEGER, body TEXT);", "BEGIN;",
              *rows, "COMMIT;", "CREATE INDEX tw ON t(w, n);",
              "SELECT w, count(*), sum(n), max(length(body)) FROM t GROUP BY w ORDER BY 2 DESC;",
              "SELECT a.w, count(*) FROM t a JOIN t b ON a.w = b.w AND a.n = b.n GROUP BY a.w;",
              "UPDATE t SET body = body || ' ' || w WHERE n % 3 = 0;",
              "DELETE FROM t WHERE n % 7 = 0;", "VACUUM;",
              "SELECT group_concat(w, ',') FROM (SELECT w FROM t ORDER BY body LIMIT 5000);"]
    (work / "script.sql").write_text("\n".join(script) + "\n")


def prep_bash(work: Path) -> None:
    (work / "script.sh").write_text(r"""
declare -A count
words=()
while read -r num rest; do
  for w in $rest; do
    count[$w]=$(( ${count[$w]:-0} + 1 ))
  done
  words+=("${rest%% *}")
done < <(head -n 600 lines.txt)
for k in "${!count[@]}"; do printf '%s %d\n' "$k" "${count[$k]}"; done | head -n 5
s=""
for ((i = 0; i < 600; i++)); do s+="${words[i]:0:3}"; done
echo "${#s} ${#words[@]}"
""")


def prep_tcl(work: Path) -> None:
    (work / "script.tcl").write_text(r"""
set f [open lines.txt]
set n 0
while {[gets $f line] >= 0 && $n < 60000} {
    foreach w [lrange [split $line] 1 end-1] { dict incr counts $w }
    lappend keep [string toupper [lindex [split $line] 1]]
    incr n
}
close $f
set sorted [lsort -dictionary $keep]
puts [llength $sorted]
foreach {k v} [dict get $counts] { append out "$k=$v;" }
puts [string length $out]
""")


def prep_make(work: Path) -> None:
    lines = [".PHONY: all", "N := $(shell seq 1 400)", "all: $(addprefix out/,$(N))",
             "\t@echo done", "out/%: | out", "\t@:", "out:", "\t@:"]
    for i in range(1, 401):
        deps = " ".join(f"dep{i}_{j}.h" for j in range(6))
        lines.append(f"obj{i}.o: src{i}.c {deps}")
        lines.append(f"\t$(CC) -c $< -o $@ $(CFLAGS_{i % 7})")
        lines.append(f"CFLAGS_{i % 7} += -DX{i}=$(words $(wildcard *.none) {deps})")
    (work / "Makefile").write_text("\n".join(lines) + "\n")


def prep_git(work: Path) -> None:
    repo = work / "repo"
    repo.mkdir()
    env = {**fixed_environment(home=str(work)), "GIT_AUTHOR_NAME": "memsim",
           "GIT_AUTHOR_EMAIL": "memsim@example.org", "GIT_COMMITTER_NAME": "memsim",
           "GIT_COMMITTER_EMAIL": "memsim@example.org"}
    def git(*args: str, date: int = 0) -> None:
        e = dict(env)
        if date:
            e["GIT_AUTHOR_DATE"] = e["GIT_COMMITTER_DATE"] = f"{1700000000 + date} +0000"
        subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=e,
                       check=True, stdout=subprocess.DEVNULL)
    git("init", "-q")
    text = _lines(3000, 4)
    rng = random.Random(5)
    for c in range(120):
        for f in range(8):
            start = rng.randrange(len(text) - 200)
            (repo / f"file{f}.txt").write_text("\n".join(text[start:start + 150]) + "\n")
        git("add", "-A", date=c + 1)
        git("commit", "-q", "-m", f"commit {c}: {' '.join(rng.choice(WORDS) for _ in range(6))}",
            date=c + 1)


def prep_archive(work: Path) -> None:
    # A tar of license texts and Python sources: real files on any Debian system.
    pylib = (sorted(glob.glob("/usr/lib/python3*/json"))
             + sorted(glob.glob("/usr/lib/python3*/email")))
    subprocess.run(["tar", "cf", str(work / "input.tar"), "--sort=name", "--mtime=@0",
                    "--owner=0", "--group=0", "/usr/share/common-licenses", *pylib[:2]],
                   check=True, stderr=subprocess.DEVNULL)


def prep_c(work: Path) -> None:
    # A real C file: the recorder's own shim, shipped with memsim.
    shutil.copy(ROOT / "src/memsim/native/memsim_shim.c", work / "shim.c")


def prep_python(work: Path) -> None:
    prep_json(work, 5_000)
    (work / "script.py").write_text(f"""
import ast, difflib, json, re
with open("data.json") as f:
    data = json.load(f)
data.sort(key=lambda o: (o["tags"][0], -o["size"]))
by_tag = {{}}
for o in data:
    by_tag.setdefault(o["tags"][0], []).append(o["id"])
text = json.dumps(data, indent=1)
print(len(text), {{k: len(v) for k, v in by_tag.items()}})
src = open({_python_file()!r}).read()
tree = ast.parse(src)
names = sorted({{n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}})
code = compile(tree, "typing.py", "exec")
lines = src.splitlines()
diff = list(difflib.unified_diff(lines[:800], [re.sub(r"[aeiou]", "_", x) for x in lines[:800:2]]))
print(len(names), len(diff), code.co_name)
""")


def _python_file() -> str:
    found = sorted(glob.glob("/usr/lib/python3*/typing.py"))
    return found[-1] if found else "/usr/lib/python3/dist-packages/README"


def _python() -> str:
    found = sorted(glob.glob("/usr/bin/python3.[0-9]*"))
    found = [f for f in found if f.rsplit("python", 1)[1].replace(".", "").isdigit()]
    return found[-1] if found else "/usr/bin/python3"


PROGRAMS: list[Program] = [
    Program("cc1", "compiler", ["gcc", "-O2", "-g", "-c", "shim.c", "-o", "shim.o"],
            "gcc 12 compiling memsim's own shim (a real C file of ~400 lines plus system "
            "headers) with -O2 -g; the trace is cc1's, which gcc execs", pick="cc1",
            prepare=prep_c),
    Program("python3", "interpreter", [_python(), "script.py"],
            "CPython with PYTHONMALLOC=malloc (so that its small objects reach glibc instead "
            "of pymalloc's arenas): json load/sort/dump of 5,000 generated objects, ast.parse "
            "and compile of the standard library's typing.py, a difflib diff of part of it",
            prepare=prep_python, env={"PYTHONMALLOC": "malloc"}),
    Program("perl", "interpreter",
            ["perl", "-ne", 'for (split) { $c{$_}++ } END { for (sort keys %c) { $n++ } '
             'print "$n\\n" }', "lines.txt"],
            "perl counting the distinct words of 30,000 generated lines",
            prepare=lambda w: prep_text(w, 30_000)),
    Program("sqlite3", "database", ["sqlite3", "db.sqlite"],
            "sqlite3: 25,000 inserts, an index, GROUP BY, a self join, UPDATE, DELETE, VACUUM",
            stdin="script.sql", prepare=prep_sql),
    Program("xz", "compressor", ["xz", "-T1", "-6", "-k", "-c", "input.tar"],
            "xz -6 single-threaded on a tar of /usr/share/common-licenses and two Python "
            "packages", prepare=prep_archive),
    Program("bzip2", "compressor", ["bzip2", "-9", "-k", "-c", "input.tar"],
            "bzip2 -9 on the same tar", prepare=prep_archive),
    Program("gzip", "compressor", ["gzip", "-9", "-c", "input.tar"],
            "gzip -9 on the same tar", prepare=prep_archive),
    Program("sort", "shell tool", ["sort", "--parallel=1", "-S", "64M", "-k2,2", "-k1,1n",
                                   "lines.txt", "-o", "sorted.txt"],
            "GNU sort (one thread) of 300,000 generated lines by two keys", prepare=prep_text),
    Program("awk", "interpreter",
            ["awk", "{ for (i = 2; i < NF; i++) c[$i] += $1 % 1000; n[NF]++ } "
             "END { for (k in c) s += c[k]; for (k in n) t += n[k]; print s, t }", "lines.txt"],
            "awk (mawk) summing fields of 300,000 generated lines into associative arrays",
            prepare=prep_text),
    Program("sed", "shell tool",
            ["sed", "-E", "s/([a-z]+) ([a-z]+)/\\2 \\1/g; /omega|kernel/d; s/[0-9]+$/<&>/",
             "lines.txt"],
            "sed with extended regexps over 12,000 generated lines",
            prepare=lambda w: prep_text(w, 12_000)),
    Program("grep", "shell tool", ["grep", "-rn", "-E", "malloc|free \\(|struct [a-z_]+ \\{",
                                   "/usr/include"],
            "grep -r over /usr/include"),
    Program("find", "shell tool", ["find", "/usr/share", "/usr/lib", "-name", "*.py", "-o",
                                   "-name", "*.h", "-o", "-type", "d", "-name", "*doc*"],
            "find over /usr/share and /usr/lib"),
    Program("ls", "shell tool", ["ls", "-laR", "/usr/share"],
            "ls -laR /usr/share (users and groups looked up, every directory sorted)"),
    Program("tar", "shell tool", ["tar", "cf", "/dev/null", "--sort=name", "/usr/include"],
            "tar of /usr/include to /dev/null, names sorted"),
    Program("git", "shell tool", ["git", "-C", "repo", "log", "-p", "--stat", "--no-color"],
            "git log -p --stat of a repository of 120 commits the script creates",
            prepare=prep_git),
    Program("make", "shell tool", ["make", "-n", "-j1", "-f", "Makefile"],
            "GNU make -n on a generated Makefile of 400 pattern targets and 400 rules",
            prepare=prep_make),
    Program("bash", "interpreter", ["bash", "script.sh"],
            "bash: an associative array word count over 600 lines and string building",
            prepare=lambda w: (prep_text(w), prep_bash(w))),  # type: ignore[func-returns-value]
    Program("tclsh", "interpreter", ["tclsh", "script.tcl"],
            "tclsh: dict word counts, list building and sorting over 60,000 lines",
            prepare=lambda w: (prep_text(w), prep_tcl(w))),  # type: ignore[func-returns-value]
    Program("jq", "interpreter", ["jq", "-c", "[.[] | select(.size > 1000) | {id, tags, "
                                  "s: (.nested.b | add)}] | group_by(.tags[0]) | "
                                  "map({k: .[0].tags[0], n: length})", "data.json"],
            "jq filtering and grouping 15,000 generated JSON objects",
            prepare=lambda w: prep_json(w, 15_000)),
]


def available(p: Program) -> bool:
    exe = p.command[0]
    return Path(exe).exists() if "/" in exe else shutil.which(exe) is not None


def record_one(p: Program, out_dir: Path, keep_raw: bool = False) -> tuple[RecordedTrace, float]:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    if p.prepare:
        p.prepare(WORK)
    env = {**fixed_environment(home=str(WORK)), **(p.env or {})}
    tmp = Path(tempfile.mkdtemp(prefix="memsim-corpus-"))
    try:
        raw = tmp / f"{p.name}.trace"
        stdin = open(WORK / p.stdin, "rb") if p.stdin else subprocess.DEVNULL
        t0 = time.time()
        try:
            result = record(p.command, raw, env=env, cwd=WORK, stdin=stdin,  # type: ignore[arg-type]
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            if p.stdin:
                stdin.close()  # type: ignore[union-attr]
        seconds = time.time() - t0
        if result.returncode != 0:
            raise SystemExit(f"{p.name}: the command exited with status {result.returncode}")
        if p.pick is None:
            chosen = result.main
        else:
            matches = [t for t in result.traces if Path(t.program).name == p.pick]
            chosen = max(matches, key=lambda t: t.calls) if matches else None
        if chosen is None:
            raise SystemExit(f"{p.name}: no trace of {p.pick or p.command[0]} was written")
        if chosen.threads != 1:
            raise SystemExit(f"{p.name}: {chosen.threads} threads in the trace; the corpus "
                             f"takes single-threaded programs only")
        dest = out_dir / f"{p.name}.trace.zst"
        import zstandard

        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        with open(chosen.path, "rb") as fi, open(dest, "wb") as fo:
            cctx.copy_stream(fi, fo)
        info = scan_trace(chosen.path)
        info.path = dest
        info.size_bytes = dest.stat().st_size
        return info, seconds
    finally:
        if not keep_raw:
            shutil.rmtree(tmp, ignore_errors=True)


def write_readme(out_dir: Path, rows: list[tuple[Program, RecordedTrace, float]]) -> None:
    total = sum(t.calls for _, t, _ in rows)
    size = sum(t.size_bytes for _, t, _ in rows)
    lines = [
        "# The memsim trace corpus",
        "",
        "Real programs of a Debian 12 machine (glibc 2.36, gcc 12, x86-64), recorded with "
        "`memsim record` by `scripts/record_corpus.py`, which also regenerates this file. Each "
        "file is memsim-trace v1 compressed with zstd level 19 (see docs/traces.md); every "
        "trace comes from a single thread.",
        "",
        "Environment: `LC_ALL=C LANG=C TZ=UTC TERM=dumb PATH=/usr/local/bin:/usr/bin:/bin "
        f"HOME={WORK}`, working directory `{WORK}`, address-space randomisation off "
        "(`personality(ADDR_NO_RANDOMIZE)`, as `setarch -R`), stdout to /dev/null.",
        "",
        f"{len(rows)} programs, {total:,} calls, {size / 2**20:.1f} MiB compressed.",
        "",
        "| trace | kind | calls | brk0 | size | command | input |",
        "| --- | --- | ---: | --- | ---: | --- | --- |",
    ]
    for p, t, _ in rows:
        cmd = " ".join(_shell_quote(a) for a in p.command)
        if p.env:
            cmd = " ".join(f"{k}={v}" for k, v in p.env.items()) + " " + cmd
        if p.stdin:
            cmd += f" < {p.stdin}"
        if p.pick:
            cmd += f" (trace of {p.pick})"
        brk = f"`{t.brk0:#x}`" if t.brk0 is not None else "-"
        lines.append(f"| `{p.name}.trace.zst` | {p.kind} | {t.calls:,} | {brk} | "
                     f"{t.size_bytes / 1024:,.0f} KiB | `{cmd.replace('|', '&#124;')}` | "
                     f"{p.note} |")
    lines += ["", "A second recording on the same machine gives the same addresses and sizes, "
              "except for the thread ids (`t=`, the pid) and the size of any string that holds "
              "the pid: `make` copies its pid, so its trace differs in one size when the pid "
              "has another number of digits.", ""]
    lines += ["Re-record everything (a few minutes): `python scripts/record_corpus.py`; "
              "one program: `python scripts/record_corpus.py sort`.", ""]
    (out_dir / "README.md").write_text("\n".join(lines))


def _shell_quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="programs to record (default: all)")
    ap.add_argument("-o", "--out", default=str(ROOT / "corpus"), help="corpus directory")
    ap.add_argument("--list", action="store_true", help="list the programs and exit")
    ap.add_argument("--readme-only", action="store_true",
                    help="only regenerate corpus/README.md from the traces present")
    args = ap.parse_args()
    if args.list:
        for p in PROGRAMS:
            print(f"{p.name:10} {'yes' if available(p) else 'MISSING':8} {' '.join(p.command)}")
        return 0
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [p for p in PROGRAMS if not args.names or p.name in args.names]
    unknown = set(args.names) - {p.name for p in PROGRAMS}
    if unknown:
        print(f"unknown program(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for p in [] if args.readme_only else chosen:
        if not available(p):
            print(f"{p.name:10} skipped: {p.command[0]} is not installed", file=sys.stderr)
            continue
        info, seconds = record_one(p, out_dir)
        print(f"{p.name:10} {info.calls:>10,} calls  {info.size_bytes / 1024:>9,.0f} KiB  "
              f"brk0 {info.brk0:#x}  {seconds:.1f}s", flush=True)
    # The README describes every trace present, recorded now or before.
    rows = []
    for p in PROGRAMS:
        path = out_dir / f"{p.name}.trace.zst"
        if path.exists():
            rows.append((p, _scan_compressed(path), 0.0))
    write_readme(out_dir, rows)
    return 0


def _scan_compressed(path: Path) -> RecordedTrace:
    import zstandard

    with tempfile.TemporaryDirectory() as d:
        plain = Path(d) / "t"
        with open(path, "rb") as fi, open(plain, "wb") as fo:
            zstandard.ZstdDecompressor().copy_stream(fi, fo)
        info = scan_trace(plain)
    info.path = path
    info.size_bytes = path.stat().st_size
    return info


if __name__ == "__main__":
    sys.exit(main())
