"""LFW View 2 benchmark: one real fold on LFW, checked against an independent threshold search."""

from __future__ import annotations

import json

import numpy as np
import pytest

import facerec
from facerec.benchmark_lfw import parse_folds
from facerec.cli import main
from facerec.data.pairs import read_pairs
from facerec.errors import FacerecError


def test_parse_folds():
    assert parse_folds("1-10") == list(range(1, 11)) and parse_folds("3,1,2-2") == [1, 2, 3]
    for bad in ("0-3", "11", "a", "5-2"):
        with pytest.raises(FacerecError, match="--folds"):
            parse_folds(bad)


def test_one_fold_trains_on_the_other_folds_people_and_thresholds_without_the_fold(
        data_root_lfw, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEREC_LISTS", str(tmp_path / "lists"))
    out = tmp_path / "v2"
    argv = ["benchmark", "lfw", "--folds", "3", "--out", str(out), "--data-root", str(data_root_lfw), "--no-progress",
            *[x for kv in ("epochs=1", "max_steps=2", "input_size=32", "workers=0", "batch_classes=16",
                           "max_classes=64", "cache=off") for x in ("--set", kv)]]
    assert main(argv) == 0
    first = capsys.readouterr().out
    fold = json.loads((out / "fold03" / "fold.json").read_text())
    pairs = read_pairs(tmp_path / "lists" / "lfw" / "view2_pairs.csv")
    # The training list holds no person of fold 3's pairs.
    train = (tmp_path / "lists" / "lfw" / "view2_train_fold03.txt").read_text().splitlines()[1:]
    people = {line.split(" ", 1)[1].split("/")[0] for line in train}
    test = pairs.subset_folds([3])
    assert len(test) == 600 and not people & {p.split("/")[0] for p in test.path1 + test.path2}
    # Independent: score every pair with the fold's model, search the threshold on the other folds by hand.
    m = facerec.load(fold["run_dir"] + "/last.pt", device="cpu")
    uniq, i1, i2 = pairs.unique_paths()
    e = m.embed([str(pairs.root / p) for p in uniq], progress=False)
    s = (e[i1] * e[i2]).sum(1)
    rest = pairs.folds != 3
    cands = np.r_[np.inf, np.unique(s[rest])[::-1]]
    accs = [np.mean((s[rest] >= t) == (pairs.labels[rest] == 1)) for t in cands]
    thr = cands[int(np.argmax(accs))]
    want = 100 * np.mean((s[~rest] >= thr) == (pairs.labels[~rest] == 1))
    assert fold["threshold"] == pytest.approx(thr, abs=1e-5) and fold["accuracy"] == pytest.approx(want, abs=0.2)
    bench = json.loads((out / "benchmark.json").read_text())
    assert bench["accuracy_mean"] == fold["accuracy"] and (out / "roc_det.png").read_bytes()[:4] == b"\x89PNG"
    # A second call reuses the finished fold: no training, the same figure.
    stamp = (out / "fold03" / "fold.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == first.splitlines()[-1]
    assert (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    # Another recipe into the same folder is refused, naming the key, instead of reusing the fold.
    other = [a.replace("epochs=1", "epochs=2") for a in argv] + ["--set", "workers=1"]
    capsys.readouterr()
    assert main(other) != 0
    assert "fold03/run/config.yaml: this fold was trained with another recipe (epochs: 1 -> 2)" in capsys.readouterr().err
    assert main(argv + ["--set", "workers=1"]) == 0  # a run-only key changes nothing learnt: reused
    assert (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    # The same fold as a job of its own (--jobs: one process per fold, the parent summarises): the same scores.
    jobs_out = tmp_path / "v2jobs"
    argv_jobs = [a if a != str(out) else str(jobs_out) for a in argv] + ["--jobs", "1", "--devices", "cpu"]
    assert main(argv_jobs) == 0
    assert "fold 3: accuracy" in capsys.readouterr().out
    again = json.loads((jobs_out / "fold03" / "fold.json").read_text())
    assert again["scores"] == fold["scores"] and again["accuracy"] == fold["accuracy"]
    assert "--no-summary" in (jobs_out / "fold03" / "log.txt").read_text()
    assert json.loads((jobs_out / "benchmark.json").read_text())["accuracy_mean"] == bench["accuracy_mean"]
