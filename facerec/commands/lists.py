"""`facerec lists lfw|orl`: generate train lists and pair CSVs into data_lists/."""

from __future__ import annotations

from pathlib import Path

from facerec.commands.common import add_data_root
from facerec.data import lfw
from facerec.data import root as dataroot
from facerec.data.split import split_folder


def add_parser(sub) -> None:
    p = sub.add_parser("lists", help="write train lists and val pair CSVs for LFW or ORL into data_lists/")
    p.add_argument("dataset", choices=["lfw", "orl"])
    add_data_root(p)
    p.add_argument("--out", default=None, help="output folder (default data_lists/<dataset>)")
    p.add_argument("--seed", type=int, default=0, help="ORL split seed")
    p.add_argument("--val-fraction", type=float, default=0.25, help="ORL: share of identities held out for val")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out or f"data_lists/{args.dataset}")
    if args.dataset == "lfw":
        written = lfw.write_lists(dataroot.resolve(args.data_root, dataroot.LFW_DIRS), out)
    else:
        root = dataroot.resolve(args.data_root, "orl")
        written = split_folder(root / "orl", out, val_fraction=args.val_fraction, seed=args.seed, per_image=3, name="orl")
    for w in written:
        print(w)
    return 0

