"""`facerec` console command. Parsers are built inside main(), never at import time.

Each subcommand lives in `facerec/commands/<name>.py` and exposes
`add_parser(subparsers)` (which sets `func`) so commands stay independent.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import FacerecError

COMMANDS = [
    "data",
    "lists",
    "split",
    "leakage",
    "evaluate",
    "score",
    "params",
    "train",
    "experiment",
    "report",
    "search",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facerec", description="Face-recognition metric learning toolkit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"facerec.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except FacerecError as exc:
        print(f"facerec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
