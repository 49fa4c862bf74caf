"""Helpers shared by the ``memsim`` subcommands: argument types, output modes, errors, progress.

Every subcommand module (see :mod:`memsim.cli`) may use these so that all commands read their
arguments and print their results the same way:

- argument types for argparse: :func:`size_arg` (``"64k"``, ``"24G"``), :func:`address_arg`
  (``0x7f…`` or a size), :func:`prot_arg` (``"rw"``, ``"r-x"``, ``"none"``);
- output modes: :func:`add_output_arguments` adds ``--plain`` and ``--json``;
  :func:`output_mode` picks ``"rich"`` (a terminal), ``"plain"`` (a pipe, a file, ``--plain``,
  ``NO_COLOR``/``TERM=dumb``) or ``"json"``; :func:`make_console` gives a rich console for the
  rich mode; :func:`print_json` writes one JSON document;
- errors: raise :class:`UsageError` for arguments that make no sense together (exit 2, like
  argparse); anything else from :mod:`memsim.errors` exits 1. :func:`error_line` is the one
  line ``memsim: error: ...`` that main() prints;
- :func:`progress` wraps a long loop with a progress bar on a terminal's stderr, and does nothing
  anywhere else (so tests and pipes see no control characters).

Nothing here imports the simulator, so that importing a command module stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

from memsim.errors import ConfigError
from memsim.units import parse_size

if TYPE_CHECKING:
    from rich.console import Console

PROG = "memsim"

T = TypeVar("T")


class UsageError(ConfigError):
    """Arguments that parse one by one but make no sense together: exit code 2, like argparse."""


# --- argument types -------------------------------------------------------------------------

def size_arg(text: str) -> int:
    """argparse ``type=``: ``"4096"``, ``"64k"``, ``"1G"``, ``"2 MiB"`` -> bytes."""
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (use a number of bytes or a size like 64k, 1G, 2MiB)"
        ) from None


def address_arg(text: str) -> int:
    """argparse ``type=``: ``"0x7ffff7fff000"`` (hexadecimal) or a decimal/size -> int."""
    t = text.strip().lower()
    try:
        if t.startswith("0x"):
            return int(t, 16)
        return parse_size(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an address: {text!r} (use hexadecimal like 0x7f0000000000)"
        ) from None


_PROT_WORDS = {"none": "", "---": ""}


def parse_prot(text: str) -> str:
    """Normalise a protection: ``"rw"``, ``"rw-"``, ``"r-x"``, ``"RWX"``, ``"none"`` -> ``"rw"``..

    The result keeps only the letters, in ``r w x`` order (``""`` for PROT_NONE). Raises
    :class:`memsim.errors.ConfigError` for anything else.
    """
    t = text.strip().lower()
    if t in _PROT_WORDS:
        return _PROT_WORDS[t]
    letters = t.replace("-", "")
    if not letters or any(c not in "rwx" for c in letters) or len(set(letters)) != len(letters):
        raise ConfigError(f"not a protection: {text!r} (use letters from 'rwx', or 'none')")
    return "".join(c for c in "rwx" if c in letters)


def prot_arg(text: str) -> str:
    """argparse ``type=`` for :func:`parse_prot`."""
    try:
        return parse_prot(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# --- output modes ---------------------------------------------------------------------------

def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--plain`` and ``--json`` (mutually exclusive) to a subcommand."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--plain", action="store_true",
                       help="plain text without colour or boxes (the default when not a terminal)")
    group.add_argument("--json", action="store_true", help="one JSON document on stdout")


def stdout_is_terminal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default stdout) is an interactive terminal that wants colour."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def output_mode(args: argparse.Namespace) -> str:
    """``"json"``, ``"plain"`` or ``"rich"`` for a namespace that has ``plain``/``json``."""
    if getattr(args, "json", False):
        return "json"
    if getattr(args, "plain", False) or not stdout_is_terminal():
        return "plain"
    return "rich"


def make_console(stream: IO[str] | None = None) -> Console:
    """A rich console on ``stream`` (default: the current sys.stdout, looked up now)."""
    from rich.console import Console

    return Console(file=stream if stream is not None else sys.stdout, highlight=False)


def print_json(obj: Any, stream: IO[str] | None = None) -> None:
    """Write ``obj`` as indented JSON followed by a newline."""
    stream = stream if stream is not None else sys.stdout
    json.dump(obj, stream, indent=2, sort_keys=False)
    stream.write("\n")


def kb(nbytes: int) -> str:
    """Bytes -> ``"1,048,576 kB"`` the way /proc reports sizes (kB = KiB)."""
    return f"{nbytes // 1024:,} kB"


# --- errors ---------------------------------------------------------------------------------

def error_line(message: object) -> str:
    """The one line main() prints for an error: ``memsim: error: <message>``."""
    text = " ".join(str(message).split()) or type(message).__name__
    return f"{PROG}: error: {text}"


def describe_os_error(e: OSError) -> str:
    """``[Errno 2] No such file or directory: 'x'`` -> ``cannot open 'x': No such file ...``."""
    reason = e.strerror or str(e)
    if e.filename is not None:
        return f"{e.filename}: {reason}"
    return reason


# --- progress -------------------------------------------------------------------------------

def progress(items: Iterable[T], total: int | None = None, label: str = "working",
             enabled: bool | None = None) -> Iterator[T]:
    """Yield ``items``, drawing a progress bar on stderr when stderr is a terminal.

    ``enabled=None`` decides from the terminal; pass ``False`` for ``--json`` or quiet modes.
    """
    if enabled is None:
        enabled = stdout_is_terminal(sys.stderr)
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)
