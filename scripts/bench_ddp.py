"""Data-parallel overhead on this machine: the same training steps as 1 process x T threads and as
N processes x T/N threads (torchrun, gloo on CPU; nccl on a GPU machine), same global batch.
Reports steady img/s (after the first step) from each run's metrics.csv; one run each."""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import append  # noqa: E402


def run(nproc: int, threads: int, args, out: Path, sync_bn: bool = True) -> dict:
    train = ["-q", "train", "--preset", args.preset, "--epochs", "1", "--max-steps", str(args.steps), "--no-progress",
             "--workers", str(args.workers), "--run-dir", str(out), *(["--sync-bn"] if sync_bn else []), *args.extra]
    launch = [sys.executable, "-m", "facerec"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "facerec"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run([*launch, *train], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr[-2000:])
    with open(out / "metrics.csv") as fh:
        row = next(csv.DictReader(fh))
    return {"img_s": float(row.get("steady_images_per_s") or row["images_per_s"]), "loss": float(row["loss"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="demo", help="training preset (default demo: resnet18 64 px, ArcFace, LFW)")
    ap.add_argument("--steps", type=int, default=12, help="steps per run (default 12)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all, per configuration (default 2)")
    ap.add_argument("--nproc", type=int, default=2, help="processes of the distributed run (default 2)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers per process (default 1)")
    ap.add_argument("extra", nargs="*", help="more `facerec train` flags, after --")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args.threads, args, Path(tmp) / "one")
        t = max(1, args.threads // args.nproc)
        many = run(args.nproc, t, args, Path(tmp) / "many")
        plain = run(args.nproc, t, args, Path(tmp) / "plain", sync_bn=False)
        single = run(1, t, args, Path(tmp) / "single")
    lines = [
        f"- preset {args.preset}, {args.steps} steps, global batch as the preset says, "
        f"{args.workers} DataLoader worker(s) per process; ratio against 1 process x {args.threads} threads",
        "",
        "| configuration | steady img/s | ratio | loss (mean of the steps) |",
        "|---|---:|---:|---:|",
        f"| 1 process x {args.threads} threads | {one['img_s']:.1f} | 1.00x | {one['loss']:.5f} |",
        f"| {args.nproc} processes x {t} thread(s) (torchrun, gloo), --sync-bn | "
        f"{many['img_s']:.1f} | {many['img_s'] / one['img_s']:.2f}x | {many['loss']:.5f} |",
        f"| {args.nproc} processes x {t} thread(s), BatchNorm per rank (no --sync-bn) | {plain['img_s']:.1f} | "
        f"{plain['img_s'] / one['img_s']:.2f}x | {plain['loss']:.5f} |",
        f"| 1 process x {t} thread(s) | {single['img_s']:.1f} | {single['img_s'] / one['img_s']:.2f}x | "
        f"{single['loss']:.5f} |",
    ]
    print("\n".join(lines))
    append("Data-parallel overhead (torchrun on CPU)", lines, "python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
