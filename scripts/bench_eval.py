"""Evaluation throughput: embedding the LFW View 1 val pairs end to end (`facerec eval`'s path:
list validation, decoding, batching, inference) vs pure forward on tensors already in memory,
same model, batch and input size. Target on the 2-core CPU: ratio >= 0.90."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlog import append

from facerec import models
from facerec.data import lfw
from facerec.data import root as dataroot
from facerec.data.lists import read_pairs
from facerec.data.transforms import Preprocess
from facerec.evaluation.scoring import score_pairs
from facerec.util import device as devices


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    lists = dataroot.lists_dir("lfw")
    if not (lists / "view1_val_pairs.csv").is_file():
        lfw.write_lists(dataroot.resolve(None, dataroot.LFW_DIRS), lists)
    dev = devices.resolve(args.device)
    torch.manual_seed(0)
    model = models.create(args.model, input_size=args.input_size).to(dev).eval()
    model = model.to(memory_format=torch.channels_last)
    pre = Preprocess(input_size=args.input_size)
    pairs = read_pairs(lists / "view1_val_pairs.csv")
    n_images = len(pairs.unique_paths()[0])

    x = torch.randn(args.batch, 3, args.input_size, args.input_size, device=dev).contiguous(
        memory_format=torch.channels_last)

    def pure():
        with torch.inference_mode():
            for _ in range((n_images + args.batch - 1) // args.batch):
                model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def end_to_end():
        score_pairs([(model, pre)], read_pairs(lists / "view1_val_pairs.csv"), device=dev, batch_size=args.batch,
                    progress=False)

    pure_t, e2e_t = [], []
    for _ in range(args.repeats):  # interleaved: machine noise hits both alike
        for fn, out in ((pure, pure_t), (end_to_end, e2e_t)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    n_pure = (n_images + args.batch - 1) // args.batch * args.batch
    pure_ips = n_pure / statistics.median(pure_t)
    e2e_ips = n_images / statistics.median(e2e_t)
    lines = ["| model | input | images | pure forward img/s | end-to-end img/s | ratio |", "|---|---|---|---|---|---|",
             f"| {args.model} | {args.input_size} | {n_images} | {pure_ips:.1f} | {e2e_ips:.1f} | {e2e_ips / pure_ips:.3f} |"]
    print("\n".join(lines))
    append("Evaluation throughput, LFW View 1 val pairs (scripts/bench_eval.py)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
