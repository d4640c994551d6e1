"""GPU training throughput end to end (JPEG files -> decode workers -> GPU step) against the pure
compute of the same step (random tensors already on the GPU), resnet18 + ArcFace, bf16.

`--images` is a folder of identity folders of JPEGs (any LFW-like set); the script builds a
course-sized training set of `--n` symlinks to them over 2,882 identities (no extra disk), trains
`--steps` steps streamed from files (`--cache off`), reads the steady img/s from metrics.csv, then
times the step alone. Also what the decode side can give: one core's decode rate x workers."""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchlog import COURSE_IDENTITIES, deal_symlinks

ROOT = Path(__file__).resolve().parents[1]
IDENTITIES = COURSE_IDENTITIES


def build(images: Path, out: Path, n: int) -> Path:
    src = sorted(str(Path(d) / f) for d, _, fs in os.walk(images) for f in fs if f.lower().endswith(".jpg"))
    deal_symlinks(out, n, lambda i: src[i % len(src)], IDENTITIES)
    return out


def train(data: Path, run_dir: Path, args) -> dict:
    cmd = [sys.executable, "-m", "facerec", "-q", "train", "--train", str(data), "--model", "resnet18", "--loss",
           "arcface", "--input-size", str(args.input_size), "--batch-classes", str(args.batch_classes), "--per-class",
           "2", "--amp", "bf16", "--cache", "off", "--workers", str(args.workers), "--epochs", "1", "--max-steps",
           str(args.steps), "--device", "cuda", "--no-progress", "--run-dir", str(run_dir), "--no-check-leakage"]
    r = subprocess.run(cmd, cwd=run_dir.parent, capture_output=True, text=True)  # not the source tree: the installed package
    if r.returncode:
        sys.exit(r.stdout[-2000:] + r.stderr[-3000:])
    with open(run_dir / "metrics.csv") as fh:
        row = next(csv.DictReader(fh))
    return {"img_s": float(row["steady_images_per_s"]), "first": r.stdout}


def compute_only(args) -> float:
    from facerec import losses, models

    dev = torch.device("cuda")
    model = models.create("resnet18", input_size=args.input_size).to(dev, memory_format=torch.channels_last)
    loss = losses.create("arcface", embedding_dim=512, num_classes=IDENTITIES).to(dev)
    opt = torch.optim.AdamW(list(model.parameters()) + list(loss.parameters()), lr=1e-3)
    b = args.batch_classes * 2
    x = torch.randn(b, 3, args.input_size, args.input_size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, IDENTITIES, (b,), device=dev)
    times = []
    for i in range(args.steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            v = loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        v.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return b / statistics.median(times)


def decode_rate(images: Path, args) -> float:
    from facerec.data.decode import load_faces
    from facerec.data.transforms import Preprocess

    torch.set_num_threads(1)
    paths = sorted(str(Path(d) / f) for d, _, fs in os.walk(images) for f in fs if f.lower().endswith(".jpg"))[:512]
    pre = Preprocess(input_size=args.input_size)
    load_faces(paths[:64], pre)
    t = time.perf_counter()
    for i in range(0, len(paths), 64):
        load_faces(paths[i : i + 64], pre)
    return len(paths) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", required=True, help="folder of identity folders of JPEGs")
    ap.add_argument("--n", type=int, default=20000, help="images in the symlinked training set (default 20000)")
    ap.add_argument("--steps", type=int, default=40, help="steps per measurement (default 40)")
    ap.add_argument("--batch-classes", type=int, default=256, help="P (K = 2) (default 256: batch 512)")
    ap.add_argument("--input-size", type=int, default=112, help="(default 112)")
    ap.add_argument("--workers", type=int, default=14, help="decode workers (default 14)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = build(Path(args.images), Path(tmp) / "set", args.n)
        e2e = train(data, Path(tmp) / "run", args)
    pure = compute_only(args)
    per_core = decode_rate(Path(args.images), args)
    name = torch.cuda.get_device_name()
    lines = [
        f"- {name}, torch {torch.__version__}, {os.cpu_count()} CPU cores; resnet18 + ArcFace (2,882 classes), "
        f"{args.input_size} px, bf16, batch {args.batch_classes * 2}, {args.n} JPEG files (symlinks), "
        f"--cache off, {args.workers} decode workers, {args.steps} steps",
        "",
        "| measurement | img/s |",
        "|---|---:|",
        f"| end to end from JPEG files (`facerec train`, steady) | {e2e['img_s']:.0f} |",
        f"| pure compute (same step, random tensors on the GPU) | {pure:.0f} |",
        f"| ratio end to end / compute | {e2e['img_s'] / pure:.2f} |",
        f"| decode + crop + resize, one CPU core (batched decode_jpeg) | {per_core:.0f} |",
        f"| decode capacity, {args.workers} workers (x one core's rate) | {per_core * args.workers:.0f} |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
