"""The streamed data path: same batches as the decoded store, any worker count, bounded memory."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from facerec import config
from facerec.data import cache as store_cache
from facerec.data.lists import load_train
from facerec.data.sampling import PKSampler
from facerec.data.stream import Batches, FileFaces, Plan, StoredFaces, make_loader
from facerec.data.transforms import BatchTransform, Preprocess
from facerec.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def _batches(faces, pre, labels, augment="medium"):
    return Batches(faces, BatchTransform(pre, train=True, augment=augment), labels, seed=11)


def test_files_and_store_give_the_same_batches_with_any_workers(orl_dir):
    train = load_train(orl_dir)
    pre = Preprocess(input_size=48)
    store = store_cache.load_store(train.paths, pre, root=str(train.root), workers=0, progress=False)
    sampler = PKSampler(train.labels, per_class=2, classes_per_batch=8, seed=5)
    sampler.set_epoch(3)
    plan = Plan(sampler.batches(), epoch=3, stop=4)
    got = {}
    for name, faces, workers in (("store", StoredFaces(store), 0), ("files", FileFaces(train.root, train.paths, pre), 0),
                                 ("files x2", FileFaces(train.root, train.paths, pre), 2)):
        loader = make_loader(_batches(faces, pre, train.labels), plan, workers=workers, device=torch.device("cpu"))
        got[name] = list(loader)
    ref = got.pop("store")
    assert len(ref) == 4 and ref[0][0].shape == (16, 3, 48, 48)
    for name, batches in got.items():
        for (x, y), (rx, ry) in zip(batches, ref, strict=True):
            assert torch.equal(y, ry), name
            assert torch.equal(x, rx), name  # bit-identical: decode, crop, flip, rotation, jitter
    # A batch depends on its (epoch, step) only: step 2 alone equals step 2 of the epoch.
    alone = list(make_loader(_batches(StoredFaces(store), pre, train.labels), Plan(plan.batches, 3, start=2, stop=3),
                             workers=0, device=torch.device("cpu")))
    assert torch.equal(alone[0][0], ref[2][0])
    # Another epoch draws other crops for the same indices.
    other = _batches(StoredFaces(store), pre, train.labels)[(4, 2, plan.batches[2])]
    assert not torch.equal(other[0], ref[2][0])
    # The trainer's uint8 hand-off (normalised by the consumer, on its device) gives the same floats.
    raw = Batches(StoredFaces(store), BatchTransform(pre, train=True, augment="medium"), train.labels, seed=11,
                  uint8=True)
    x8, y8 = raw[(3, 2, plan.batches[2])]
    assert x8.dtype == torch.uint8 and torch.equal(y8, ref[2][1])
    assert torch.equal(raw.transform.normalize(x8), ref[2][0])


def test_disk_mode_is_memory_mapped_and_equal_to_ram(orl_dir):
    train = load_train(orl_dir)
    pre = Preprocess(input_size=32)
    ram = store_cache.load_store(train.paths, pre, root=str(train.root), workers=0, progress=False)
    mapped = store_cache.load_store(train.paths, pre, root=str(train.root), in_ram=False, workers=0, progress=False)
    assert isinstance(mapped, np.memmap)
    idx = np.array([5, 0, 399, 17])
    assert torch.equal(StoredFaces(mapped).get(idx), StoredFaces(ram).get(idx))


def test_auto_keeps_the_store_only_within_budget():
    pre = Preprocess(input_size=112)  # 128 x 128 x 3 = 48 KiB an image
    assert store_cache.choose("auto", 1000, pre, budget_mb=100)[0] == "ram"
    mode, why = store_cache.choose("auto", 1_000_000, pre, budget_mb=2048)
    assert mode == "off" and "46875 MB" in why and "2048 MB" in why
    assert store_cache.choose("disk", 10, pre, budget_mb=0)[0] == "disk"


def _metrics(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "metrics.csv") as fh:
        return [[r[k] for k in ("epoch", "loss", "val_eer", "train_acc")] for r in csv.DictReader(fh)]


def test_a_run_is_the_same_streamed_or_stored(orl_lists, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEREC_CACHE", str(tmp_path / "cache"))
    base = {"model": "resnet18", "input_size": 32, "embedding_dim": 64, "batch_classes": 10, "per_class": 2,
            "loss": "arcface", "epochs": 2, "max_steps": 4, "augment": "conservative", "seed": 9,
            "train": str(orl_lists / "orl_train.txt"), "val": str(orl_lists / "orl_val_pairs.csv")}
    runs = {}
    # The first "ram" run fills the store while its first epoch trains from the files (2 workers
    # writing into it); the second finds it complete and decodes nothing.
    for name, cache, workers in (("filling", "ram", 2), ("stored", "ram", 0), ("off", "off", 0), ("off x2", "off", 2)):
        logs = []
        cfg = config.load([], {**base, "cache": cache, "workers": workers, "out": str(tmp_path / name)})
        runs[name] = _metrics(Path(Trainer(cfg, progress=False, log=logs.append).fit()["run_dir"]))
        text = "\n".join(logs)
        if name == "filling":
            assert "on the first pass, which fills the decoded store (in RAM after it)" in text, text
            assert "data (train): decoded store complete" in text and "data (val): decoded store complete" in text
        if name == "stored":
            assert "decoded once, in RAM: --cache ram" in text and "first pass" not in text, text
        if name == "off x2":
            assert "streamed from files by 2 worker(s)" in text
    assert runs["filling"] == runs["stored"] == runs["off"] == runs["off x2"]
    assert len(runs["off"]) == 2
    assert not [p for p in (tmp_path / "cache").iterdir() if ".tmp" in p.name]


def _symlinked_set(root: Path, orl_dir: Path, n: int) -> Path:
    """n symlinks to ORL people s1..s30 in 500 identity folders (no image bytes copied)."""
    src = [orl_dir / f"s{p}" / f"{i}.pgm" for p in range(1, 31) for i in range(1, 11)]
    per = n // 500
    for ident in range(500):
        d = root / f"id{ident:04d}"
        d.mkdir(parents=True)
        for j in range(per):
            os.symlink(src[(ident * per + j) % len(src)], d / f"{j:05d}.pgm")
    return root


def _peak_rss_mb(train_dir: Path, val: Path, out: Path, budget_mb: int = 64) -> tuple[float, dict]:
    """Peak RSS of the largest process of a `facerec train` run (trainer or one of its workers)."""
    args = ["train", "--train", str(train_dir), "--val", str(val), "--model", "resnet18", "--input-size", "64",
            "--embedding-dim", "64", "--loss", "softmax", "--batch-classes", "16", "--per-class", "2", "--epochs", "1",
            "--max-steps", "2", "--workers", "2", "--cache", "auto", "--cache-budget-mb", str(budget_mb), "--no-progress",
            "--run-dir", str(out)]
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    # Few malloc arenas: the peak then measures what the data costs, not how many threads happened to
    # allocate at once on a busy machine (a run beside another job once grew 59 MB of arenas).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2"}
    p = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "facerec.cli", *args], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return int(p.stdout.split()[-1]) / 1024, json.loads((out / "summary.json").read_text())


def test_memory_does_not_grow_with_the_number_of_images(tmp_path, orl_dir):
    val = tmp_path / "val.csv"  # people s31..s40: disjoint from the symlinked training images
    val.write_text(f"# root: {orl_dir}\n" + "".join(f"1,s{p}/1.pgm,s{p}/2.pgm\n0,s{p}/3.pgm,s{p + 1}/3.pgm\n"
                                                     for p in range(31, 40)))
    small = _symlinked_set(tmp_path / "small", orl_dir, 5_000)
    large = _symlinked_set(tmp_path / "large", orl_dir, 50_000)
    rss_small, s_small = _peak_rss_mb(small, val, tmp_path / "run_small")
    rss_large, s_large = _peak_rss_mb(large, val, tmp_path / "run_large")
    assert s_small["epochs"] == s_large["epochs"] == 1
    decoded_kb = store_cache.store_bytes(1, Preprocess(input_size=64)) / 1024  # ~16 KB an image if decoded
    growth_kb = (rss_large - rss_small) * 1024 / 45_000
    # The lists cost ~0.1 KB an image; a decoded set would add ~16 KB an image (720 MB here). A run's
    # peak RSS varies by up to ~50 MB between identical runs on a busy machine (1.1 KB an image here),
    # so the bound sits well above that noise and well below a decoded copy.
    assert growth_kb < decoded_kb / 4, (f"peak RSS grew {rss_large - rss_small:.0f} MB ({growth_kb:.2f} KB/image; "
                                        f"decoded: {decoded_kb:.0f})")
