"""Training throughput: pure compute (forward + backward + step on batches already in memory)
vs end-to-end training through the real data path on LFW View 1 (decoded-image store, P x K
sampler, batched crop/flip/normalise), same model, batch and input size. Reports img/s and
their ratio (median over repeats, measured in one run). Target on the 2-core CPU: >= 0.90.
`--amp off,bf16` measures each precision in the same run and gives its speed-up over the first;
`--preset` measures a recipe's own model and head (e.g. demo_e20_emb512_flat_c05 at 64 px)."""

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


def trainer_for(model: str | None, input_size: int | None, batch: int, device: str, amp: str,
                preset: str | None = None) -> Trainer:
    """A built trainer on LFW View 1; a `preset` keeps its own batch geometry and loss, and supplies what
    model/input_size leave as None."""
    over = {"device": device, "amp": amp, "epochs": 1, "out": "/tmp/facerec-bench"}
    if preset is None:
        over.update({"loss": "arcface", "batch_classes": batch, "per_class": 1, "max_img_per_cls": 40})
    over.update({k: v for k, v in (("model", model), ("input_size", input_size)) if v is not None})
    cfg = config.load([preset] if preset else [], over)
    t = Trainer(cfg, progress=False, log=lambda *_: None)
    t.prepare()
    t.build()
    return t



def measure(model: str | None, input_size: int | None, batch: int, steps: int, device: str, amp: str,
            preset: str | None = None) -> dict:
    from facerec.data.cache import load_store
    from facerec.data.transforms import BatchTransform

    t = trainer_for(model, input_size, batch, device, amp, preset)
    dev = t.device
    store = load_store(t.data.train.abspaths(), t.pre, progress=False)
    labels = torch.as_tensor(t.data.train.labels)
    transform = BatchTransform(t.pre, train=True)
    amp_dtype = t.amp_dtype
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
    return {"model": preset or t.cfg.model, "input": t.cfg.input_size, "amp": amp, "batch": len(idx0), "pure": pure_ips,
            "e2e": e2e_ips, "ratio": e2e_ips / pure_ips, "peak_gib": peak}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="resnet18,mobilefacenet", help="comma-separated backbones (default: %(default)s)")
    p.add_argument("--preset", default=None,
                   help="measure this preset's model, head, loss and input size instead of --models (default: none)")
    p.add_argument("--input-size", type=int, default=None, help="input px (default: the preset's, else 112)")
    p.add_argument("--batch", type=int, default=128, help="images per step, without --preset (default: %(default)s)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per repeat (default: %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: %(default)s)")
    p.add_argument("--amp", default="off", help="comma-separated precisions: off, bf16, fp16 (default: %(default)s)")
    args = p.parse_args(argv)
    amps = args.amp.split(",")
    size = args.input_size if args.input_size is not None or args.preset else 112
    rows = [measure(None if args.preset else m, size, args.batch, args.steps, args.device, amp, args.preset)
            for m in ([args.preset] if args.preset else args.models.split(",")) for amp in amps]
    first = {r["model"]: r for r in rows if r["amp"] == amps[0]}
    lines = ["| model | input | amp | batch | pure compute img/s | end-to-end img/s | ratio | end-to-end vs "
             f"amp {amps[0]} | peak GPU GiB |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['input']} | {r['amp']} | {r['batch']} | {r['pure']:.1f} | {r['e2e']:.1f} | "
              f"{r['ratio']:.3f} | x{r['e2e'] / first[r['model']]['e2e']:.2f} | {r['peak_gib']:.2f} |" for r in rows]
    print("\n".join(lines))
    append(f"Training throughput, ArcFace, amp {args.amp} (scripts/bench_train.py)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
