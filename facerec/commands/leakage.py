"""`facerec check-leakage TRAIN VAL`: non-zero exit when train and val share identities or images."""

from __future__ import annotations

from facerec.data import leakage
from facerec.data.lists import load_train, read_pairs


def add_parser(sub) -> None:
    p = sub.add_parser("check-leakage", help="fail when an identity or an identical image is in both train and val")
    p.add_argument("train", help="identity folder or train list")
    p.add_argument("val", help="pair CSV label,path1,path2")
    p.add_argument("--train-root", default=None, help="image root of the train list")
    p.add_argument("--val-root", default=None, help="image root of the pair CSV")
    p.add_argument("--no-hash", action="store_true", help="skip the image-content comparison")
    p.set_defaults(func=run)


def run(args) -> int:
    train = load_train(args.train, args.train_root)
    val = read_pairs(args.val, args.val_root, allow_unknown=True)
    report = leakage.check(train, val, hash_images=not args.no_hash)
    print(report.describe())
    return 0 if report.clean else 1
