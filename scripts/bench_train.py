"""Training throughput: pure compute (forward + backward + step on batches already in memory)
vs end-to-end training through the real data path on LFW View 1 (decoded-image store, P x K
sampler, batched crop/flip/normalise), same model, batch and input size. Reports img/s and
their ratio (median over repeats, measured in one run). Target on the 2-core CPU: >= 0.90."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlog import append, median_seconds

from facerec import config
from facerec.trainer import Trainer


def trainer_for(model: str, input_size: int, batch: int, device: str, amp: str) -> Trainer:
    cfg = config.load([], {"model": model, "loss": "arcface", "input_size": input_size, "batch_classes": batch,
                           "per_class": 1, "max_img_per_cls": 40, "device": device, "amp": amp, "epochs": 1,
                           "out": "/tmp/facerec-bench"})
    t = Trainer(cfg, progress=False, log=lambda *_: None)
    t.prepare()
    t.build()
    return t



def measure(model: str, input_size: int, batch: int, steps: int, device: str, amp: str) -> dict:
    from facerec.data.cache import load_store
    from facerec.data.transforms import BatchTransform

    t = trainer_for(model, input_size, batch, device, amp)
    dev = t.device
    store = load_store(t.data.train.abspaths(), t.pre, progress=False)
    labels = torch.as_tensor(t.data.train.labels)
    transform = BatchTransform(t.pre, train=True)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    gen = torch.Generator().manual_seed(0)
    batches = iter(t.sampler)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_step(x, y):
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = t.loss(t.model(x).float(), y)
        t.optimizer.zero_grad(set_to_none=True)
        t.scaler.scale(loss).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
        loss.item()

    idx0 = torch.as_tensor(next(batches))
    x_mem = transform(store[idx0], gen).to(dev).contiguous(memory_format=torch.channels_last)
    y_mem = labels[idx0].to(dev)

    def pure():
        train_step(x_mem, y_mem)
        sync()

    def end_to_end():
        nonlocal batches
        try:
            b = next(batches)
        except StopIteration:
            batches = iter(t.sampler)
            b = next(batches)
        idx = torch.as_tensor(b)
        x = transform(store[idx], gen).to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        train_step(x, labels[idx].to(dev, non_blocking=True))
        sync()

    results = {}
    for _ in range(2):  # interleave so machine noise hits both alike
        results.setdefault("pure", []).append(len(idx0) / median_seconds(pure, steps))
        results.setdefault("e2e", []).append(len(idx0) / median_seconds(end_to_end, steps))
    pure_ips, e2e_ips = statistics.median(results["pure"]), statistics.median(results["e2e"])
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    return {"model": model, "input": input_size, "batch": len(idx0), "pure": pure_ips, "e2e": e2e_ips,
            "ratio": e2e_ips / pure_ips, "peak_gib": peak}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="resnet18,mobilefacenet")
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="off")
    args = p.parse_args(argv)
    rows = [measure(m, args.input_size, args.batch, args.steps, args.device, args.amp) for m in args.models.split(",")]
    lines = ["| model | input | batch | pure compute img/s | end-to-end img/s | ratio | peak GPU GiB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['input']} | {r['batch']} | {r['pure']:.1f} | {r['e2e']:.1f} | {r['ratio']:.3f} | "
              f"{r['peak_gib']:.2f} |" for r in rows]
    print("\n".join(lines))
    append(f"Training throughput, ArcFace, amp {args.amp} (scripts/bench_train.py)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
