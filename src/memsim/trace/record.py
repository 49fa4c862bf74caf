"""Record the malloc-family calls of a real program as memsim-trace v1 (``memsim record``).

How
---

The program runs with ``LD_PRELOAD`` pointing at ``memsim/native/memsim_shim.c``, compiled on
first use by :func:`memsim.native.build.build_native` (cached in ``~/.cache/memsim``). The
shim interposes malloc, free, calloc, realloc, reallocarray, memalign, aligned_alloc,
posix_memalign, valloc and pvalloc, forwards each to glibc's ``__libc_*`` entry point and
writes one line per call, with the address glibc returned and the thread id. It records what
glibc and every library allocate, not only the program's own calls. Its docstring explains
how it avoids allocating, keeps the lines in call order, and survives exec and ``_exit``.

::

    memsim record -o OUT -- COMMAND ARGS
        │
        ├─ mkdtemp .memsim-record-XXXX next to OUT      (a private directory: fresh names)
        ├─ env: LD_PRELOAD=shim.so  MEMSIM_TRACE_OUT=<tmp>/trace  MEMSIM_RECORD_PPID=<our pid>
        ├─ personality(ADDR_NO_RANDOMIZE) in the child  (like `setarch -R`; unless aslr=True)
        ├─ run COMMAND; every process image it becomes or starts writes its own file:
        │      <tmp>/trace             the command's first image
        │      <tmp>/trace.<pid>       a fork child, or an exec'd image
        │      <tmp>/trace.<pid>.<n>   the n-th image of a pid that already has a file
        └─ finish each file (strip the NUL tail an image left when it ended without running
           its destructors: exec, _exit, a signal), count calls and threads, and move it to
           OUT, OUT.<pid>, OUT.<pid>.<n> (before a compression suffix: x.trace.zst ->
           x.trace.<pid>.zst), compressing when OUT ends in .gz, .xz or .zst.

A fork child's file starts with the parent's calls up to the fork (``# inherited N``), so
every file replays on its own. Files named like OUT.<digits> left over from an earlier
recording to the same OUT are removed first, so the files next to OUT are all from this run.

brk0 (the program break before the first malloc) is read by the shim with a raw ``brk(0)``
at the image's first call, before that call reaches glibc; see the comment at ``enter()`` in
the shim for why that is the break before any malloc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memsim.errors import MemsimError
from memsim.trace.format import compression_for_name

#: personality(2) flag that turns off address-space randomisation (what `setarch -R` sets).
ADDR_NO_RANDOMIZE = 0x0040000

SHIM_SOURCE = "memsim_shim.c"

_COMPRESSION_SUFFIXES = (".gz", ".xz", ".zst", ".zstd", ".bz2")


class RecordError(MemsimError):
    """The command could not be recorded (not found, not executable, no compiler...)."""


@dataclass
class RecordedTrace:
    """One trace file a recording produced (one process image)."""

    path: Path
    calls: int                      # call lines (inherited ones from a fork parent included)
    inherited: int = 0              # of those, copied from the parent at fork
    threads: int = 0                # distinct t= values
    brk0: int | None = None
    program: str = ""
    argv: str = ""
    pid: int | None = None
    forked_from: int | None = None
    size_bytes: int = 0


@dataclass
class RecordResult:
    """What :func:`record` did: the command's exit status and the traces, main one first."""

    command: list[str]
    returncode: int
    traces: list[RecordedTrace] = field(default_factory=list)
    #: the trace of the command's first image (None if it wrote none: a static binary...)
    main: RecordedTrace | None = None
    #: whether address-space randomisation was off for the command
    aslr_disabled: bool = False

    @property
    def total_calls(self) -> int:
        return sum(t.calls - t.inherited for t in self.traces)


def shim_library() -> Path:
    """The compiled shim (built on first use; raises NativeBuildError without a compiler)."""
    from memsim.native.build import build_native

    return build_native(SHIM_SOURCE, shared=True)


def fixed_environment(home: str | None = None) -> dict[str, str]:
    """A small, deterministic environment for reproducible recordings (C locale, UTC)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
        "TERM": "dumb",
        "HOME": home if home is not None else os.environ.get("HOME", "/tmp"),
        "USER": os.environ.get("USER", "memsim"),
    }
    return env


def resolve_command(command: Sequence[str], path_env: str | None = None) -> str:
    """The executable ``command[0]`` names, or RecordError (one line) when there is none."""
    if not command:
        raise RecordError("no command to record (use: memsim record -- COMMAND [ARGS...])")
    prog = command[0]
    if "/" in prog:
        p = Path(prog)
        if not p.exists():
            raise RecordError(f"command not found: {prog}")
        if p.is_dir() or not os.access(p, os.X_OK):
            raise RecordError(f"not an executable file: {prog}")
        return os.path.abspath(prog)
    found = shutil.which(prog, path=path_env)
    if found is None:
        raise RecordError(f"command not found: {prog}")
    return found


def aslr_can_be_disabled() -> bool:
    """Whether this process may set ADDR_NO_RANDOMIZE (a seccomp filter, as in some
    containers, may refuse it). Tried on ourselves and put back at once: the flag only
    matters at exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(0xFFFFFFFF)
        if current == -1:
            return False
        if libc.personality(current | ADDR_NO_RANDOMIZE) == -1:
            return False
        libc.personality(current)
        return True
    except (OSError, AttributeError):
        return False


def _no_aslr() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    current = libc.personality(0xFFFFFFFF)
    if current != -1:
        libc.personality(current | ADDR_NO_RANDOMIZE)


def _split_suffix(out: Path) -> tuple[str, str]:
    """``x.trace.zst`` -> (``x.trace``, ``.zst``); ``x.trace`` -> (``x.trace``, ``""``)."""
    name = out.name
    for suffix in _COMPRESSION_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return name, ""


def strip_nul_tail(path: Path) -> None:
    """Truncate the NUL bytes an unfinished image left at the end of its file."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        end = size
        while end > 0:
            start = max(0, end - (1 << 20))
            f.seek(start)
            chunk = f.read(end - start)
            stripped = chunk.rstrip(b"\0")
            if stripped:
                end = start + len(stripped)
                break
            end = start
        if end != size:
            f.truncate(end)


_T_FIELD = re.compile(rb" t=(\d+)")
_SCAN_BLOCK_BYTES = 8 << 20


def scan_trace(path: Path) -> RecordedTrace:
    """Count the calls and threads of a plain trace file and read its header.

    Works on 8 MiB blocks of whole lines with bytes.count and a regular expression, so a
    trace of a hundred million calls is scanned at disk speed, not line by line in Python.
    Thread ids are collected after the ``# inherited`` lines of a fork child (those are the
    parent's).
    """
    meta: dict[str, str] = {}
    calls = 0
    tids: set[bytes] = set()
    with open(path, "rb") as f:
        rest = b""
        while True:                                   # the header
            line = f.readline()
            if not line:
                break
            if line[:1] == b"#":
                key, _, value = line[1:].strip().decode("utf-8", "replace").partition(" ")
                meta[key] = value.strip()
                continue
            if not line.strip():
                continue
            rest = line
            break
        try:
            skip = int(meta.get("inherited", "0") or 0)
        except ValueError:
            skip = 0
        carry = rest
        while True:
            data = f.read(_SCAN_BLOCK_BYTES)
            block = carry + data
            if data:
                cut = block.rfind(b"\n") + 1
                if cut == 0:                           # no whole line yet
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            else:
                carry = b""
            if not block:
                break
            if not block.endswith(b"\n"):
                block += b"\n"
            # lines that are not calls: comments and blank lines
            text = b"\n" + block
            n = block.count(b"\n") - text.count(b"\n#") - text.count(b"\n\n") \
                - text.count(b"\n\r\n")
            if skip >= n:
                skip -= n
            else:
                start = 0
                while skip:                            # find where the inherited lines end
                    nl = block.index(b"\n", start)
                    if block[start:start + 1] not in (b"#", b"\n"):
                        skip -= 1
                    start = nl + 1
                tids.update(_T_FIELD.findall(block, start))
            calls += n
            if not data:
                break

    def num(key: str, base: int = 10) -> int | None:
        try:
            return int(meta[key], base)
        except (KeyError, ValueError):
            return None

    return RecordedTrace(path=path, calls=calls, inherited=num("inherited") or 0,
                         threads=len(tids), brk0=num("brk0", 16),
                         program=meta.get("program", ""), argv=meta.get("argv", ""),
                         pid=num("pid"), forked_from=num("forked_from"),
                         size_bytes=path.stat().st_size)


def _compress(src: Path, dst: Path, kind: str, level: int | None) -> None:
    if kind == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=level if level is not None else 10)
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            cctx.copy_stream(fi, fo)
        return
    import bz2
    import gzip
    import lzma

    opener: Callable[[Path], object]
    if kind == "gzip":
        opener = lambda p: gzip.GzipFile(p, "wb", compresslevel=level or 6, mtime=0)  # noqa: E731
    elif kind == "xz":
        opener = lambda p: lzma.LZMAFile(p, "wb", preset=level if level is not None else 6)  # noqa: E731
    else:
        opener = lambda p: bz2.BZ2File(p, "wb", compresslevel=level or 9)  # noqa: E731
    with open(src, "rb") as fi, opener(dst) as fo:  # type: ignore[attr-defined]
        shutil.copyfileobj(fi, fo, 1 << 20)  # type: ignore[arg-type]


def _remove_stale(out: Path) -> None:
    stem, suffix = _split_suffix(out)
    pattern = re.compile(re.escape(stem) + r"\.\d+(\.\d+)?" + re.escape(suffix) + r"\Z")
    if out.parent.is_dir():
        for p in out.parent.iterdir():
            if pattern.match(p.name) and p.is_file():
                p.unlink()


def record(command: Sequence[str], out: str | os.PathLike[str], *, aslr: bool = False,
           env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
           level: int | None = None, stdin: int | None = None, stdout: int | None = None,
           stderr: int | None = None, timeout: float | None = None) -> RecordResult:
    """Run ``command`` under the recording shim; return its exit status and the traces.

    ``env`` replaces the environment (see :func:`fixed_environment`); the shim's variables
    are added to it. ``aslr=False`` (the default) runs the command without address-space
    randomisation, so that addresses are the same from run to run. ``level`` is the
    compression level when ``out`` ends in .gz/.xz/.zst. ``stdin``/``stdout``/``stderr``
    are passed to :class:`subprocess.Popen` (default: inherited).
    """
    base_env = dict(os.environ if env is None else env)
    exe = resolve_command(command, base_env.get("PATH"))
    shim = shim_library()
    out = Path(out)
    if out.is_dir():
        raise RecordError(f"{out} is a directory (give -o a file name)")
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = compression_for_name(out.name)
    tmp = Path(tempfile.mkdtemp(prefix=".memsim-record-", dir=out.parent))
    try:
        base = tmp / "trace"
        preload = base_env.get("LD_PRELOAD", "")
        base_env["LD_PRELOAD"] = f"{shim} {preload}".strip()
        base_env["MEMSIM_TRACE_OUT"] = str(base)
        base_env["MEMSIM_RECORD_PPID"] = str(os.getpid())
        no_aslr = not aslr and aslr_can_be_disabled()
        try:
            proc = subprocess.Popen(list(command), executable=exe, env=base_env, cwd=cwd,
                                    stdin=stdin, stdout=stdout, stderr=stderr,
                                    preexec_fn=_no_aslr if no_aslr else None)
        except OSError as e:
            raise RecordError(f"cannot run {command[0]}: {e.strerror or e}") from None
        try:
            returncode = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if returncode < 0:
            returncode = 128 - returncode
        files = sorted(tmp.iterdir(), key=lambda p: (p.name != "trace", p.stat().st_mtime_ns,
                                                      p.name))
        _remove_stale(out)
        if out.exists():
            out.unlink()
        stem, suffix = _split_suffix(out)
        result = RecordResult(command=list(command), returncode=returncode,
                              aslr_disabled=no_aslr)
        for f in files:
            strip_nul_tail(f)
            info = scan_trace(f)
            tail = f.name[len("trace"):]                 # "" or ".<pid>" or ".<pid>.<n>"
            dest = out.parent / f"{stem}{tail}{suffix}"
            if kind is None:
                shutil.move(str(f), dest)
            else:
                _compress(f, dest, kind, level)
            info.path = dest
            info.size_bytes = dest.stat().st_size
            result.traces.append(info)
            if f.name == "trace":
                result.main = info
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def format_report(result: RecordResult) -> list[str]:
    """The lines ``memsim record`` prints: where each trace went and how many calls."""
    lines: list[str] = []
    if not result.traces:
        lines.append("no trace was written: the command made no malloc call the recorder could "
                     "see (a static or setuid binary ignores LD_PRELOAD)")
    for t in result.traces:
        what = Path(t.program).name or "?"
        extra = []
        if t.inherited:
            extra.append(f"{t.inherited:,} inherited from pid {t.forked_from}")
        if t.threads > 1:
            extra.append(f"{t.threads} threads")
        more = f" ({'; '.join(extra)})" if extra else ""
        brk = f", brk0 {t.brk0:#x}" if t.brk0 is not None else ""
        lines.append(f"{t.path}: {what} pid {t.pid}, {t.calls:,} calls{more}{brk}")
    if not result.aslr_disabled:
        lines.append("address-space randomisation was on: addresses differ from run to run"
                     " (--aslr, or personality(ADDR_NO_RANDOMIZE) is not allowed here)")
    n = len(result.traces)
    lines.append(f"{n} trace{'s' if n != 1 else ''}, {result.total_calls:,} calls recorded; "
                 f"the command exited with status {result.returncode}")
    return lines


__all__ = ["ADDR_NO_RANDOMIZE", "RecordError", "RecordResult", "RecordedTrace",
           "aslr_can_be_disabled", "fixed_environment", "format_report", "record",
           "resolve_command", "scan_trace", "shim_library", "strip_nul_tail"]
