"""Compile a C source shipped in :mod:`memsim.native` with the system's compiler; cache it.

::

    build_native("memsim_shim.c", shared=True)      # -> ~/.cache/memsim/memsim_shim-<key>.so
    build_native("kdriver.c", ["-O0"], shared=False) # -> ~/.cache/memsim/kdriver-<key>

The cache key is a hash of everything that decides the output: the source text, the compiler's
path and its ``--version`` banner, the flags and the kind of output. A changed source or a
different compiler gives a new file; an unchanged one is reused without running the compiler.
The output is written under a temporary name and renamed into place, so concurrent builds
(two test processes) never see a half-written file.

Where the cache is: ``$MEMSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/memsim``, else
``~/.cache/memsim``. Which compiler: ``$CC`` (first word), else ``cc``, ``gcc`` or ``clang``
on ``PATH``. Failures raise :class:`NativeBuildError` with one line that says what to do.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from memsim.errors import MemsimError

#: Flags every build gets. -D_GNU_SOURCE because the sources use Linux and glibc extensions.
BASE_FLAGS: tuple[str, ...] = ("-O2", "-g", "-Wall", "-D_GNU_SOURCE")


class NativeBuildError(MemsimError):
    """No C compiler, or the compiler rejected a shipped source."""


def cache_dir() -> Path:
    """The directory compiled files are cached in (created on demand by :func:`build_native`)."""
    env = os.environ.get("MEMSIM_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "memsim"


def find_compiler() -> list[str]:
    """The compiler command (``$CC`` split like a shell would, or cc/gcc/clang)."""
    env = os.environ.get("CC")
    if env:
        words = shlex.split(env)
        if words and shutil.which(words[0]):
            return [shutil.which(words[0]) or words[0], *words[1:]]
        raise NativeBuildError(f"the C compiler in $CC ({env!r}) was not found")
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return [found]
    raise NativeBuildError("no C compiler found (install gcc, e.g. 'apt-get install gcc', "
                           "or set CC)")


def source_path(source_name: str) -> Path:
    """The path of a C source shipped in memsim.native (a real file: the package is on disk)."""
    ref = resources.files("memsim.native").joinpath(source_name)
    path = Path(str(ref))
    if not path.is_file():
        raise NativeBuildError(f"memsim.native has no source named {source_name!r}")
    return path


def _compiler_banner(cc: list[str]) -> str:
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise NativeBuildError(f"cannot run the C compiler {cc[0]}: {e.strerror}") from None
    return out.stdout.splitlines()[0] if out.stdout else ""


def build_native(source_name: str, extra_flags: Sequence[str] = (), shared: bool = True) -> Path:
    """Compile ``memsim/native/<source_name>`` (cached) and return the path of the result.

    ``shared=True`` makes a shared library (``-fPIC -shared``, suffix ``.so``) for LD_PRELOAD;
    ``shared=False`` an executable. ``extra_flags`` go after :data:`BASE_FLAGS` (and so win).
    """
    src = source_path(source_name)
    text = src.read_bytes()
    cc = find_compiler()
    kind_flags = ["-fPIC", "-shared"] if shared else []
    flags = [*BASE_FLAGS, *kind_flags, *extra_flags]
    key_material = b"\0".join([text, " ".join(cc).encode(), _compiler_banner(cc).encode(),
                               " ".join(flags).encode(), b"shared" if shared else b"exe"])
    key = hashlib.sha256(key_material).hexdigest()[:16]
    stem = Path(source_name).stem
    out_dir = cache_dir()
    out = out_dir / (f"{stem}-{key}.so" if shared else f"{stem}-{key}")
    if out.is_file():
        return out
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NativeBuildError(f"cannot create the cache directory {out_dir}: "
                               f"{e.strerror}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}-", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        cmd = [*cc, *flags, "-o", str(tmp), str(src)]
        if not shared:
            cmd.append("-lpthread")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln),
                         proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "")
            raise NativeBuildError(f"compiling {source_name} with {cc[0]} failed: {first}")
        tmp.chmod(0o755)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


__all__ = ["BASE_FLAGS", "NativeBuildError", "build_native", "cache_dir", "find_compiler",
           "source_path"]
