"""Course-sized data on this box: start-up, memory and throughput at 20k, 200k and 1M images.

Builds identity folders of symlinks to LFW View 1 training images (2,882 identities, like the
course's train1; no image bytes copied: every link points at one short per-image alias, so each
link fits in its inode), then runs `facerec train` on each size as a user would and records:
  - seconds from launch to the first finished training step (cold and warm leakage-digest cache),
  - peak memory: the trainer's own peak RSS, and the peak PSS summed over the trainer and its
    DataLoader workers (sampled every 0.2 s; PSS splits shared pages, so nothing counts twice),
  - the cache on disk (leakage digests; the decoded store where one is built),
  - training img/s after the first step, resnet18 + ArcFace at 112 and 224 px, streamed from files;
    at the smallest size also through the decoded store, for the streamed/store ratio.
Validation uses the first 100 pairs of pairsDevTest (identities disjoint from the training set).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import COURSE_IDENTITIES, append, deal_symlinks  # noqa: E402

IDENTITIES = COURSE_IDENTITIES


def lfw_root(data_root: str | None) -> Path:
    from facerec.data import root as dataroot

    return Path(dataroot.resolve(data_root, dataroot.LFW_DIRS))


def lfw_layout(root: Path):
    from facerec.data import lfw as lfw_lists

    return lfw_lists.find(root)


def build_set(out: Path, root: Path, n: int) -> Path:
    """`out/n<N>/id<k>/<j>.jpg` -> `../../src/<i>.jpg` -> an LFW peopleDevTrain image."""
    src = out / "src"
    if not (src / ".done").is_file():
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        layout = lfw_layout(root)
        images = layout.images.resolve()
        people = [line.split("\t")[0] for line in (layout.protocol / "peopleDevTrain.txt").read_text().splitlines()[1:]
                  if line]
        i = 0
        for name in people:
            for f in sorted(os.listdir(images / name)):
                os.symlink(images / name / f, src / f"{i}.jpg")
                i += 1
        (src / ".done").write_text(str(i))
    n_src = int((src / ".done").read_text())
    d = out / f"n{n}"
    if (d / ".done").is_file():
        return d
    shutil.rmtree(d, ignore_errors=True)
    t = time.perf_counter()
    deal_symlinks(d, n, lambda i: f"../../src/{i % n_src}.jpg", IDENTITIES)
    (d / ".done").write_text(str(n))
    print(f"built {d} ({n} symlinks) in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return d


def val_pairs(out: Path, root: Path, n_pairs: int = 100) -> Path:
    from facerec.data import lfw as lfw_lists

    lists = out / "lists"
    if not (lists / "view1_val_pairs.csv").is_file():
        lfw_lists.write_lists(root, lists)
    lines = (lists / "view1_val_pairs.csv").read_text().splitlines()
    head = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if line and not line.startswith("#")]
    path = out / f"val{n_pairs}.csv"
    path.write_text("\n".join(head + body[: n_pairs // 2] + body[-(n_pairs - n_pairs // 2):]) + "\n")
    return path


def tree_pss_kb(pid: int) -> int:
    """PSS of `pid` and all its descendants (Linux smaps_rollup)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            for tid in os.listdir(f"/proc/{p}/task"):
                stack += [int(c) for c in open(f"/proc/{p}/task/{tid}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def run(train_dir: Path, val: Path, run_dir: Path, cache_dir: Path, *, input_size: int, steps: int, cache: str,
        batch_classes: int) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "facerec.cli", "train", "--train", str(train_dir), "--val", str(val),
           "--model", "resnet18", "--loss", "arcface", "--input-size", str(input_size), "--batch-classes",
           str(batch_classes), "--per-class", "2", "--epochs", "1", "--max-steps", str(steps), "--cache", cache,
           "--no-progress", "--run-dir", str(run_dir)]
    env = {**os.environ, "FACEREC_CACHE": str(cache_dir), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_pss_kb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first_step, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        if first_step is None and line.startswith("first step done"):
            first_step = time.perf_counter() - t0
    proc.wait()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{''.join(lines[-30:])}")
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "metrics.csv") as fh:
        row = list(csv.DictReader(fh))[-1]
    mode = next((m.group(1) for m in map(re.compile(r"data \(train\): \d+ images (\w+)").search, lines) if m), "?")
    return {"first_step_s": first_step, "trainer_peak_rss_mb": summary["peak_memory_mb"],
            "tree_peak_pss_mb": peak[0] / 1024, "img_s": float(row.get("steady_images_per_s") or row["images_per_s"]), "mode": mode,
            "wall_s": time.perf_counter() - t0}


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()
    return int(out[0]) / 1024 if out else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,200000,1000000", help="images per set, comma-separated")
    ap.add_argument("--out", default="/tmp/facerec-bench-scale", help="where the symlinked sets and caches go")
    ap.add_argument("--data-root", default=None, help="folder holding lfw/ (default: $FACEREC_DATA, else ./data)")
    ap.add_argument("--steps-112", type=int, default=4, help="training steps of the 112 px runs")
    ap.add_argument("--steps-224", type=int, default=2, help="training steps of the 224 px runs")
    ap.add_argument("--batch-classes", type=int, default=16, help="P identities per batch (K = 2)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args()
    out = Path(args.out)
    root = lfw_root(args.data_root)
    val = val_pairs(out, root)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        d = build_set(out, root, n)
        cache_dir = out / f"cache-n{n}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        kw = dict(batch_classes=args.batch_classes)
        cold = run(d, val, out / "run", cache_dir, input_size=112, steps=args.steps_112, cache="off", **kw)
        warm = run(d, val, out / "run", cache_dir, input_size=112, steps=args.steps_112, cache="off", **kw)
        digests_mb = du_mb(cache_dir)
        big = run(d, val, out / "run", cache_dir, input_size=224, steps=args.steps_224, cache="off", **kw)
        row = {"images": n, "links_disk_mb": du_mb(d), "cold": cold, "warm": warm, "224": big, "cache_mb": digests_mb}
        if n == sizes[0]:
            row["store"] = run(d, val, out / "run", cache_dir, input_size=112, steps=args.steps_112, cache="ram", **kw)
            row["store_cache_mb"] = du_mb(cache_dir) - digests_mb
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    lines = ["| images | links on disk | first step, cold digests | first step, warm | trainer peak RSS | "
             "tree peak PSS | digest cache | img/s 112 px | img/s 224 px |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        w = r["warm"]
        lines.append(f"| {r['images']:,} | {r['links_disk_mb']:.0f} MB | {r['cold']['first_step_s']:.1f} s | "
                     f"{w['first_step_s']:.1f} s | {w['trainer_peak_rss_mb']:.0f} MB | {w['tree_peak_pss_mb']:.0f} MB | "
                     f"{r['cache_mb']:.1f} MB | {w['img_s']:.1f} | {r['224']['img_s']:.1f} |")
    first, last = rows[0], rows[-1]
    lines += ["", f"- peak RSS {last['images']:,} / {first['images']:,} images: "
                  f"{last['warm']['trainer_peak_rss_mb'] / first['warm']['trainer_peak_rss_mb']:.2f}x (trainer), "
                  f"{last['warm']['tree_peak_pss_mb'] / first['warm']['tree_peak_pss_mb']:.2f}x (PSS with workers); "
                  "target <= 1.3x",
              f"- first step at {last['images']:,} images with a warm digest cache: {last['warm']['first_step_s']:.1f} s "
              "(target < 60 s)"]
    if "store" in first:
        s = first["store"]
        lines.append(f"- {first['images']:,} images at 112 px: streamed {first['warm']['img_s']:.1f} img/s vs decoded "
                     f"store {s['img_s']:.1f} img/s = {first['warm']['img_s'] / s['img_s']:.2f}x (target >= 0.9); "
                     f"the store took {first['store_cache_mb']:.0f} MB on disk, trainer peak RSS "
                     f"{s['trainer_peak_rss_mb']:.0f} MB, first step {s['first_step_s']:.1f} s (decoding included)")
    print("\n".join(lines))
    if not args.no_record:
        append("Scale: start-up, memory, throughput at course size (resnet18 + ArcFace, CPU)", lines)


if __name__ == "__main__":
    main()
