"""Arguments several subcommands share, defined once."""

from __future__ import annotations

import argparse


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None,
                   help="data root holding lfw/ and orl/ (default: $FACEREC_DATA, else ./data, else ../shared/data)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: one per CPU core, max 8)")
