"""Arguments several subcommands share, defined once."""

from __future__ import annotations

import argparse


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None,
                   help="data root holding lfw/ and orl/ (default: $FACEREC_DATA, else ./data, else ../shared/data)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: one per CPU core, max 8)")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bars: auto shows them only on a terminal, never in a log file (default auto)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const="off", help="= --progress off")


def progress_on(args) -> bool:
    import sys

    return args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
