"""Pretrain on one half of LFW View 1's training identities, fine-tune on the other half,
and report pairsDevTest EER before and after (`make finetune`).

The halves stand in for the course's train1 -> train2; both are identity-disjoint from the
val pairs. Extra arguments are config overrides, e.g. `--epochs 2 --finetune-epochs 2`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerec import config
from facerec.data import lfw
from facerec.data import root as dataroot
from facerec.trainer import Trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="demo")
    p.add_argument("--epochs", type=int, default=3, help="pretraining epochs on half 1")
    p.add_argument("--finetune-epochs", type=int, default=2, help="fine-tuning epochs on half 2")
    p.add_argument("--freeze-trunk-epochs", type=int, default=1)
    p.add_argument("--trunk-lr-scale", type=float, default=0.1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="runs/finetune")
    args = p.parse_args(argv)

    lists = dataroot.lists_dir("lfw")
    if not (lists / "view1_train_half2.txt").is_file():
        lfw.write_lists(dataroot.resolve(args.data_root, dataroot.LFW_DIRS), lists)
    val = str(lists / "view1_val_pairs.csv")
    base = {"val": val, "out": args.out, "data_root": args.data_root}

    pre = config.load([args.preset], {**base, "train": str(lists / "view1_train_half1.txt"),
                                      "epochs": args.epochs, "tag": "pretrain-half1"})
    before = Trainer(pre).fit()
    ft = config.load([args.preset], {**base, "train": str(lists / "view1_train_half2.txt"),
                                     "epochs": args.finetune_epochs, "tag": "finetune-half2",
                                     "finetune_from": str(Path(before["run_dir"]) / "best.pt"),
                                     "freeze_trunk_epochs": args.freeze_trunk_epochs,
                                     "trunk_lr_scale": args.trunk_lr_scale, "scheduler": "cosine", "warmup_epochs": 0})
    after = Trainer(ft).fit()
    print(f"pairsDevTest EER: pretrained on half 1 {before['best_eer']:.2f}% -> "
          f"fine-tuned on half 2 {after['best_eer']:.2f}%  ({before['run_dir']} -> {after['run_dir']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
