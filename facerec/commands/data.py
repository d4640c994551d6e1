"""`facerec data fetch lfw`: download LFW through scikit-learn's own downloader."""

from __future__ import annotations

from .. import dataroot
from ..data import lfw
from .common import add_data_root


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="fetch datasets")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("dataset", choices=["lfw"])
    add_data_root(p)
    p.set_defaults(func=run)


def run(args) -> int:
    root = dataroot.candidates(args.data_root)[0]
    images = lfw.fetch(root)
    print(f"LFW images in {images}")
    return 0
