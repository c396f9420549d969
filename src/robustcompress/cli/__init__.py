"""The ``robustcompress`` command line: thin wrappers around the Python API.

Each command lives in its own module ``robustcompress.cli.<command>`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` to a handler
``(args) -> int``. Errors derived from :class:`RobustCompressError` are printed
on one line (``error: …``; line breaks inside it, e.g. from a file name, are escaped)
with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from robustcompress import __version__
from robustcompress.errors import RobustCompressError

COMMANDS = (
    "models",
    "data",
    "structure",
    "attack",
    "run",
    "sweep",
    "search",
    "runs",
    "resume",
    "reproduce",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command's sub-parser."""
    parser = argparse.ArgumentParser(
        prog="robustcompress",
        description="Measure, induce and attack structure in neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"robustcompress {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"robustcompress.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RobustCompressError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


#: Characters that end a line for ``str.splitlines``, and how :func:`one_line` shows them.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(message: str) -> str:
    """``message`` with line breaks escaped (``\\n``), e.g. from a file name holding one,
    so that every error is printed on exactly one line."""
    return message.translate(_LINE_BREAKS)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
