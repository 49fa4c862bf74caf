"""The public API: ``memsim.__all__`` is exactly what memsim offers, and all of it is documented.

"Public" means: a name in the ``memsim`` namespace that does not start with an underscore and
is not a subpackage or a ``from __future__`` artefact. Each such name must be in ``__all__``,
each name in ``__all__`` must exist, carry a docstring (classes and functions), and appear in
README.md or docs/, so that nothing users can reach is undocumented.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from pathlib import Path

import memsim

ROOT = Path(__file__).resolve().parent.parent
_FUTURE = {"annotations"}


def _public_names() -> set[str]:
    names = set()
    for name, value in vars(memsim).items():
        if name.startswith("_") or name in _FUTURE:
            continue
        if isinstance(value, types.ModuleType):
            continue                      # memsim.kernel, memsim.units...: reached by path
        names.add(name)
    return names


def _documentation() -> str:
    parts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    parts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(parts)


def test_all_has_no_duplicates() -> None:
    assert len(memsim.__all__) == len(set(memsim.__all__))


def test_all_is_exactly_the_public_names() -> None:
    public = _public_names()
    exported = set(memsim.__all__) - {"__version__"}
    assert public - exported == set(), "public but missing from __all__"
    assert exported - public == set(), "in __all__ but not defined in memsim"


def test_every_name_in_all_is_importable() -> None:
    for name in memsim.__all__:
        namespace: dict[str, object] = {}
        exec(f"from memsim import {name}", namespace)
        assert namespace[name] is getattr(memsim, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from memsim import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(memsim.__all__)


def test_every_class_and_function_in_all_has_a_docstring() -> None:
    for name in memsim.__all__:
        value = getattr(memsim, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            doc = inspect.getdoc(value)
            assert doc and doc.strip(), f"memsim.{name} has no docstring"


def test_every_name_in_all_is_documented() -> None:
    docs = _documentation()
    missing = [name for name in memsim.__all__ if name != "__version__"
               and not re.search(rf"\b{re.escape(name)}\b", docs)]
    assert missing == [], "not mentioned in README.md or docs/*.md"


def test_the_promised_entry_points_exist() -> None:
    # README's tour and `memsim demo` are built on these two.
    assert {"Machine", "Process"} <= set(memsim.__all__)
    assert inspect.isclass(memsim.Machine) and inspect.isclass(memsim.Process)


def test_version_matches_pyproject() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    assert m is not None
    assert memsim.__version__ == m.group(1)


def test_package_is_typed() -> None:
    assert (Path(memsim.__file__).parent / "py.typed").exists()


def test_cli_entry_point_is_the_documented_main() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^memsim\s*=\s*"memsim\.cli:main"', text, re.MULTILINE)
    assert callable(importlib.import_module("memsim.cli").main)
