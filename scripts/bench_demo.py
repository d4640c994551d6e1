"""`make demo` over seeds 42, 123, 456: best View 1 EER (mean +- std), wall time per run
including start-up, and the figure README documents beside it.

    python scripts/bench_demo.py [--seeds 42,123,456] [--preset demo] [--out runs/bench-demo]

Each seed is one `facerec train --preset demo --seed S` subprocess, timed from launch to exit.
A finished seed (summary.json present) is reused, so an interrupted benchmark resumes; --fresh
retrains. The figures are appended to docs/benchmarks.md; tests/test_readme_figures.py holds
README's demo figure to the newest of them."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlog

ROOT = Path(__file__).resolve().parents[1]
TITLE = "make demo over seeds"
# README's demo figure: "best View 1 EER **16.60 ± 1.06%** (mean ± std over seeds 42, 123, 456)"
README_FIGURE = re.compile(r"best View 1 EER \*\*(\d+\.\d+) ± (\d+\.\d+)%\*\*")


def documented() -> tuple[float, float] | None:
    m = README_FIGURE.search((ROOT / "README.md").read_text())
    return (float(m.group(1)), float(m.group(2))) if m else None


def run_seed(preset: str, seed: int, run_dir: Path, fresh: bool) -> dict:
    summary = run_dir / "summary.json"
    timing = run_dir / "bench_wall_seconds.txt"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if not summary.is_file():
        cmd = [sys.executable, "-m", "facerec", "train", "--preset", preset, "--seed", str(seed), "--run-dir",
               str(run_dir), "--no-progress"]
        if (run_dir / "last.pt").is_file():
            cmd = [sys.executable, "-m", "facerec", "train", "--resume", str(run_dir), "--no-progress"]
        t = time.perf_counter()
        rc = subprocess.call(cmd)
        if rc != 0:
            raise SystemExit(f"seed {seed}: `{' '.join(cmd)}` exited with {rc}")
        timing.write_text(f"{time.perf_counter() - t:.1f}\n")
    s = json.loads(summary.read_text())
    wall = float(timing.read_text()) if timing.is_file() else None
    return {"seed": seed, "eer": s["best_eer"], "epoch": s["best_epoch"], "epochs": s["epochs"],
            "auc": s["best_metrics"].get("auc"), "wall": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seeds", default="42,123,456", help="comma-separated seeds")
    ap.add_argument("--preset", default="demo", help="training preset")
    ap.add_argument("--out", default="runs/bench-demo", help="folder of the per-seed run directories")
    ap.add_argument("--fresh", action="store_true", help="retrain seeds that already finished")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [run_seed(args.preset, s, Path(args.out) / f"{args.preset}-seed{s}", args.fresh) for s in seeds]
    eers = [r["eer"] for r in rows]
    mean = statistics.mean(eers)
    std = statistics.stdev(eers) if len(eers) > 1 else 0.0
    lines = [f"- preset {args.preset}, seeds {', '.join(map(str, seeds))}; wall time = `facerec train` launch to "
             "exit, start-up included", "", "| seed | best View 1 EER % | best epoch | AUC | wall min |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        wall = "reused" if r["wall"] is None else f"{r['wall'] / 60:.1f}"
        auc = "" if r["auc"] is None else f"{r['auc']:.4f}"
        lines.append(f"| {r['seed']} | {r['eer']:.2f} | {r['epoch']}/{r['epochs']} | {auc} | {wall} |")
    lines += ["", f"- measured: best View 1 EER **{mean:.2f} ± {std:.2f}%** (mean ± std over {len(seeds)} seeds)"]
    doc = documented()
    lines.append("- README documents: " + (f"{doc[0]:.2f} ± {doc[1]:.2f}%" if doc else "no demo figure found"))
    print("\n".join(lines))
    benchlog.append(TITLE, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
