"""Identity k-fold cross-validation on real ORL faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facerec.cli import main
from facerec.data.lists import load_train, read_pairs, scan_identity_folder
from facerec.errors import FacerecError
from facerec.experiments.cv import fold_identities


def test_folds_partition_the_identities(orl_dir):
    train = scan_identity_folder(orl_dir)
    folds = fold_identities(train, 4, seed=3)
    flat = [c for f in folds for c in f]
    assert sorted(flat) == sorted(train.classes) and len(set(flat)) == 40
    assert sorted(len(f) for f in folds) == [10, 10, 10, 10]
    assert folds == fold_identities(train, 4, seed=3) != fold_identities(train, 4, seed=4)
    with pytest.raises(FacerecError, match="21 folds need at least 42 identities"):
        fold_identities(train, 21, seed=0)


def test_three_fold_cv_on_orl(orl_dir, tmp_path, one_thread, capsys):
    run = tmp_path / "cv"
    assert main(["train", "--train", str(orl_dir), "--folds", "3", "--run-dir", str(run), "--input-size", "32",
                 "--embedding-dim", "64", "--batch-classes", "10", "--epochs", "1", "--max-steps", "3",
                 "--workers", "0", "--no-progress", "--loss", "arcface"]) == 0
    cv = json.loads((run / "cv.json").read_text())
    eers = [f["eer"] for f in cv["per_fold"]]
    assert len(eers) == 3 and cv["eer_mean"] == pytest.approx(np.mean(eers))
    assert cv["eer_std"] == pytest.approx(np.std(eers, ddof=1))
    seen = set()
    for i in (1, 2, 3):
        tr = load_train(str(run / f"fold{i}" / "train.txt"))
        va = read_pairs(run / f"fold{i}" / "val_pairs.csv")
        val_ids = {p.split("/")[0] for p in va.path1 + va.path2}
        assert not val_ids & set(tr.classes)  # held-out identities never train
        assert len(tr.classes) + len(val_ids) == 40
        seen |= val_ids
        assert (run / f"fold{i}" / "summary.json").is_file()
    assert len(seen) == 40
    stamp = (run / "fold1" / "summary.json").stat().st_mtime_ns
    argv = ["train", "--train", str(orl_dir), "--folds", "3", "--run-dir", str(run), "--input-size", "32",
            "--embedding-dim", "64", "--batch-classes", "10", "--epochs", "1", "--max-steps", "3",
            "--no-progress", "--loss", "arcface"]
    assert main(argv + ["--workers", "1"]) == 0  # a run-only key changes nothing learnt
    assert (run / "fold1" / "summary.json").stat().st_mtime_ns == stamp  # finished folds are reused
    # Another recipe under the same name is refused before anything is written, naming the key.
    lists = {p: p.stat().st_mtime_ns for p in run.rglob("*.txt")}
    capsys.readouterr()
    assert main([a if a != "1" else "2" for a in argv] + ["--workers", "0"]) != 0
    err = capsys.readouterr().err
    assert "fold1/config.yaml: this run was started with another recipe (epochs: 1 -> 2)" in err, err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*.txt")} == lists
