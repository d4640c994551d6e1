"""Runs per hour of one experiment phase with --jobs 1, 2, 4, 8 on one device.

Each N runs the same phase (default: the demo_models backbones on LFW View 1, 2 epochs, seed 42)
into a fresh results folder through `facerec experiment run --jobs N`. Reported per N: wall time,
runs per hour and its ratio to --jobs 1, GPU busy share and peak GPU memory (nvidia-smi samples,
on a GPU), and whether every run's metrics equal those of --jobs 1. On the CPU the threads are
divided (jobs x threads = the cores given), so the figure says whether several small runs use the
cores better than one run using them all."""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import append  # noqa: E402


class GpuSampler(threading.Thread):
    """nvidia-smi every `every` seconds: utilisation (%) and memory used (MiB) of one GPU."""

    def __init__(self, index: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.index, self.every, self.samples, self.stop = index, every, [], threading.Event()

    def run(self) -> None:
        cmd = ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu,memory.used",
               "--format=csv,noheader,nounits"]
        while not self.stop.is_set():
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip()
                util, mem = (float(v) for v in out.split(","))
                self.samples.append((util, mem))
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            self.stop.wait(self.every)

    def busy(self) -> float | None:
        return sum(u > 0 for u, _ in self.samples) / len(self.samples) if self.samples else None

    def mean_util(self) -> float | None:
        return sum(u for u, _ in self.samples) / len(self.samples) if self.samples else None

    def peak_mib(self) -> float | None:
        return max(m for _, m in self.samples) if self.samples else None


def metrics(out: Path) -> dict[str, list[tuple]]:
    """Each run's (epoch, loss, val_eer) rows, keyed by its folder relative to the results folder."""
    got = {}
    for path in sorted(out.rglob("metrics.csv")):
        with open(path) as fh:
            got[str(path.parent.relative_to(out))] = [(r["epoch"], r["loss"], r.get("val_eer")) for r in csv.DictReader(fh)]
    return got


def _difference(got: dict, ref: dict) -> str:
    """'identical', or the largest validation-EER difference (points) over the runs' epochs. On the CPU a
    different thread count per job changes the order of floating-point sums, so the numbers may move
    slightly; with the same threads per job they are identical (tests/test_jobs.py)."""
    if got == ref:
        return "identical"
    if set(got) != set(ref):
        return "other runs"
    diffs = [abs(float(a[2]) - float(b[2])) for k in ref for a, b in zip(got[k], ref[k], strict=False) if a[2] and b[2]]
    return f"max |dEER| {max(diffs, default=0):.2f} pt"


def run_phase(n: int, args, out: Path, threads: int | None) -> dict:
    cmd = [sys.executable, "-m", "facerec", "experiment", "run", args.phase, "--data", args.data, "--seeds",
           args.seeds, "--out", str(out), "--jobs", str(n), "--devices", args.device, "--no-report", "--no-progress",
           *(["--only", args.only] if args.only else []), *(["--threads-per-job", str(threads)] if threads else [])]
    for kv in args.set:
        cmd += ["--set", kv]
    sampler = GpuSampler(int(args.device.split(":")[1]) if ":" in args.device else 0) \
        if args.device.startswith("cuda") and shutil.which("nvidia-smi") else None
    if sampler:
        sampler.start()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if sampler:
        sampler.stop.set()
        sampler.join()
    if r.returncode:
        sys.exit(f"--jobs {n} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    m = metrics(out)
    return {"wall": wall, "runs": len(m), "metrics": m, "busy": sampler.busy() if sampler else None,
            "util": sampler.mean_util() if sampler else None, "peak": sampler.peak_mib() if sampler else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--phase", default="demo_models", help="experiment phase to run (default demo_models)")
    ap.add_argument("--only", default=None, help="comma-separated presets of the phase (default: all)")
    ap.add_argument("--data", default="lfw", help="data set of the phase (default lfw: LFW View 1)")
    ap.add_argument("--seeds", default="42", help="seeds of each run (default 42)")
    ap.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                    help="overrides for every run (default: epochs=2)")
    ap.add_argument("--jobs", default=None, help="comma-separated job counts (default 1,2,4,8 on a GPU, 1,2 on the CPU)")
    ap.add_argument("--device", default=None, help="the one device, cpu or cuda:N (default cuda:0 if present, else cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads in all on the CPU, divided between the jobs (default: every core)")
    args = ap.parse_args()
    args.set = args.set or ["epochs=2"]
    import torch

    args.device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    on_cpu = args.device == "cpu"
    counts = [int(v) for v in (args.jobs or ("1,2" if on_cpu else "1,2,4,8")).split(",")]
    total_threads = args.threads or os.cpu_count() or 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            threads = max(1, total_threads // n) if on_cpu else None
            results[n] = res = run_phase(n, args, Path(tmp) / f"jobs{n}", threads)
            print(f"--jobs {n}: {res['runs']} runs in {res['wall']:.0f} s", flush=True)
    ref = results[counts[0]]
    rate0 = ref["runs"] / ref["wall"] * 3600
    lines = [f"- phase {args.phase}{' (' + args.only + ')' if args.only else ''} on {args.data}, seeds {args.seeds}, "
             f"--set {' '.join(args.set)}; device {args.device}"
             + (f"; jobs x threads = {total_threads}" if on_cpu else ""),
             "",
             "| --jobs | runs | wall (s) | runs/hour | ratio | GPU busy | mean GPU util | peak GPU MiB | metrics vs --jobs "
             f"{counts[0]} |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n, res in results.items():
        rate = res["runs"] / res["wall"] * 3600
        same = _difference(res["metrics"], ref["metrics"])
        util = "-" if res["util"] is None else f"{res['util']:.0f}%"
        peak = "-" if res["peak"] is None else f"{res['peak']:.0f}"
        busy = "-" if res["busy"] is None else f"{100 * res['busy']:.0f}%"
        lines.append(f"| {n} | {res['runs']} | {res['wall']:.0f} | {rate:.1f} | {rate / rate0:.2f}x | {busy} | {util} "
                     f"| {peak} | {same} |")
    print("\n".join(lines))
    append("Runs per hour with --jobs N (scheduler)", lines)


if __name__ == "__main__":
    main()
