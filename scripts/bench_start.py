"""Time to the first training step with an empty disk cache, and what decoding the set first costs.

`facerec train --cache auto` on a set whose decoded store fits the budget but is not cached yet:
the first epoch trains from the files and fills the store as it goes, so the first step comes
after the model and the first batch, not after the whole set is decoded. Measured: the run's
`first_step_seconds` (summary.json), and, for comparison, the time `load_store` takes to decode
the same set into a fresh cache (what the run would wait before its first step otherwise)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import append  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="baseline", help="training preset (default baseline: face_trainer's flags, 224 px)")
    ap.add_argument("--steps", type=int, default=3, help="steps of the run (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader / decode workers (default 2)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FACEREC_CACHE": str(Path(tmp) / "cache")}
        cmd = [sys.executable, "-m", "facerec", "-q", "train", "--preset", args.preset, "--epochs", "1", "--max-steps",
               str(args.steps), "--workers", str(args.workers), "--no-progress", "--run-dir", str(Path(tmp) / "run")]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            sys.exit(r.stderr[-3000:])
        first = json.loads((Path(tmp) / "run" / "summary.json").read_text())["first_step_seconds"]
        # The same run again, its store now complete in the cache (no decoding; read into RAM first).
        r = subprocess.run([*cmd[:-1], str(Path(tmp) / "run2")], cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(r.stderr[-3000:])
        warm = json.loads((Path(tmp) / "run2" / "summary.json").read_text())["first_step_seconds"]

        # The same set decoded whole into a fresh cache, as before the first step of a preloading run.
        os.environ["FACEREC_CACHE"] = str(Path(tmp) / "cache2")
        from facerec import config
        from facerec.data import cache as store_cache
        from facerec.trainer.prepare import load_data, preprocess_of

        cfg = config.load([args.preset], {"check_leakage": False})
        train = load_data(cfg).train
        t0 = time.perf_counter()
        store_cache.load_store(train.paths, preprocess_of(cfg), root=str(train.root), workers=args.workers,
                               progress=False)
        preload, n = time.perf_counter() - t0, len(train.paths)
    lines = [f"- preset {args.preset}, {args.steps} steps, {args.workers} workers, empty disk cache",
             "",
             "| measure | seconds |",
             "|---|---:|",
             f"| first step after the run started (store filled while training) | {first:.1f} |",
             f"| first step, the store already in the cache (read into RAM before it) | {warm:.1f} |",
             f"| decoding all {n} training images first (load_store, fresh cache), as before the first step "
             f"of a run that preloads | {preload:.1f} |",
             f"| whole first run ({args.steps} steps, the rest of the store decoded, validation) | {wall:.1f} |",
             "",
             f"A run that decoded first would wait about {preload:.1f} + {warm:.1f} s for its first step; filling while "
             f"training waits {first:.1f} s. The decode-first wait grows with the set; the first step does not."]
    print("\n".join(lines))
    append("Time to the first step, empty cache", lines)


if __name__ == "__main__":
    main()
