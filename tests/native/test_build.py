"""build_native: compiles a shipped source once, caches by content, fails in one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from memsim.native.build import NativeBuildError, build_native, cache_dir

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="no C compiler (cc/gcc)")


@needs_cc
def test_builds_once_and_reuses_the_cached_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSIM_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    lib = build_native("memsim_shim.c", shared=True)
    assert lib.parent == tmp_path and lib.suffix == ".so"
    stamp = lib.stat().st_mtime_ns
    assert build_native("memsim_shim.c", shared=True) == lib
    assert lib.stat().st_mtime_ns == stamp                  # not rebuilt
    other = build_native("memsim_shim.c", ["-O1"], shared=True)
    assert other != lib                                     # flags are part of the key
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                         text=True)
    if out.returncode == 0:
        for sym in ("malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc"):
            assert f" T {sym}\n" in out.stdout


def test_missing_compiler_is_a_clear_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "nocc"))
    with pytest.raises(NativeBuildError, match="C compiler"):
        build_native("memsim_shim.c")


def test_unknown_source_is_a_clear_error(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSIM_CACHE_DIR", str(tmp_path))
    with pytest.raises(NativeBuildError, match="no source named"):
        build_native("nope.c")


@needs_cc
def test_compiler_errors_are_reported_in_one_line(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSIM_CACHE_DIR", str(tmp_path))
    with pytest.raises(NativeBuildError) as e:
        build_native("memsim_shim.c", ["-DXX=", "-include", "/nonexistent.h"])
    assert "failed" in str(e.value) and "\n" not in str(e.value)
