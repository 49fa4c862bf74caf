"""``memsim allocators``: the registered allocator models, one a line, with a description.

A thin layer over :func:`memsim.alloc.available`. ``--options`` adds each allocator's options
and their defaults (the keyword arguments :func:`memsim.alloc.create` accepts).
"""

from __future__ import annotations

import argparse
from typing import Any

from memsim.cli._common import add_output_arguments, output_mode, print_json

NAME = "allocators"
HELP = "list the allocator models (names for --allocator) with a one-line description"
DESCRIPTION = """\
List every registered allocator model, one a line: its name (what --allocator and
memsim.alloc.create() take) and a one-line description. glibc is the exact ptmalloc2 model;
the others are the textbook policies (sequential fits, segregated fits, simple segregated
storage, the binary buddy system) and a size-class page allocator in the style of mimalloc.

examples:
  memsim allocators
  memsim allocators --options
  memsim allocators --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--options", action="store_true",
                        help="also show each allocator's options and their defaults")
    add_output_arguments(parser)


def _options(name: str) -> dict[str, Any]:
    from memsim.alloc import get

    defaults = getattr(get(name), "defaults", None)
    return dict(defaults) if isinstance(defaults, dict) else {}


def run(args: argparse.Namespace) -> int:
    from memsim.alloc import available

    rows = available()
    if output_mode(args) == "json":
        print_json([{"name": n, "description": d,
                     **({"options": _options(n)} if args.options else {})} for n, d in rows])
        return 0
    width = max(len(n) for n, _ in rows)
    for name, description in rows:
        print(f"{name:{width}s}  {description}")
        if args.options:
            opts = _options(name)
            if opts:
                text = ", ".join(f"{k}={v!r}" for k, v in opts.items())
                print(f"{'':{width}s}    options: {text}")
    return 0
