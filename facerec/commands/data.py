"""`facerec data fetch lfw|orl`: download LFW or ORL through scikit-learn's own downloaders."""

from __future__ import annotations

from facerec.commands.common import add_data_root
from facerec.data import lfw, orl
from facerec.data import root as dataroot


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="fetch datasets (LFW, ORL) into the data root")
    p.add_argument("action", choices=["fetch"], help="what to do: fetch downloads into the data root")
    p.add_argument("dataset", choices=["lfw", "orl"],
                   help="lfw: LFW funneled with its pair files; orl: the 40 x 10 ORL faces (scikit-learn's "
                        "Olivetti copy, 64x64) as orl/s1..s40/1..10.pgm")
    add_data_root(p)
    p.set_defaults(func=run)


def run(args) -> int:
    root = dataroot.candidates(args.data_root)[0]
    if args.dataset == "orl":
        print(f"ORL images in {orl.fetch(root)}")
        return 0
    images = lfw.fetch(root)
    print(f"LFW images in {images}")
    return 0
