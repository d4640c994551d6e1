"""`facerec split DIR`: identity-disjoint train/val split of any identity folder."""

from __future__ import annotations

from pathlib import Path

from facerec.data.split import split_folder


def add_parser(sub) -> None:
    p = sub.add_parser("split", help="identity-disjoint train list + balanced val pairs from an identity folder")
    p.add_argument("folder", help="identity folder root/<identity>/<image>")
    p.add_argument("--out", default="data_lists", help="output folder (default data_lists)")
    p.add_argument("--name", default=None, help="file name prefix (default: the folder's name)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of identities held out for the validation pairs, used to pick the best epoch (default 0.2)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="share of identities held out for a test pair list that no choice sees: report its EER "
                        "(default 0: no test list)")
    p.add_argument("--pairs-per-image", type=int, default=1, help="positive and negative partners per val image (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the identity split and the pair draws (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    name = args.name or Path(args.folder).resolve().name
    for w in split_folder(args.folder, args.out, val_fraction=args.val_fraction, seed=args.seed,
                          per_image=args.pairs_per_image, name=name, test_fraction=args.test_fraction):
        print(w)
    return 0
