"""Run directories, index rows and CSVs written before the one-vocabulary change still read."""

from __future__ import annotations

import json

import pytest

from facerec.evaluation.metric_keys import LABELS, TAR_KEYS, tar_key, upgrade_index_row, upgrade_metrics, upgrade_row
from facerec.experiments.compare import load_run
from facerec.experiments.index import Index, row_from_run

OLD_BEST = {"n_pairs": 6, "eer": 33.3, "eer_threshold": 0.7, "auc": 0.88,
            "tar_at_far": {"0.1": 0.5, "0.01": 0.25, "0.001": 0.125}, "best_accuracy": 0.75, "best_threshold": 0.8,
            "n_folds": 2, "fold_accuracy_mean": 0.6, "fold_accuracy_sem": 0.1}


def test_names():
    assert TAR_KEYS == ("tar_far_1e-1", "tar_far_1e-2", "tar_far_1e-3") and tar_key("1e-2") == "tar_far_1e-2"
    assert LABELS["tar_far_1e-3"] == "TAR@FAR=1e-3 (%)"


def test_old_metrics_become_percent_under_todays_names():
    m = upgrade_metrics(OLD_BEST)
    assert m == {"n_pairs": 6, "eer": 33.3, "eer_threshold": 0.7, "auc": 0.88, "tar_far_1e-1": 50.0,
                 "tar_far_1e-2": 25.0, "tar_far_1e-3": 12.5, "acc": 75.0, "acc_threshold": 0.8, "n_folds": 2,
                 "fold_acc_mean": 60.0, "fold_acc_sem": pytest.approx(10.0)}
    assert upgrade_metrics(m) is m  # today's dict is left alone
    assert upgrade_row({"epoch": "2", "val_eer": "30.0", "val_tar@far0.01": "0.5", "train_accuracy": "0.25"}) == {
        "epoch": "2", "val_eer": "30.0", "val_tar_far_1e-2": 50.0, "train_acc": 25.0}
    assert upgrade_index_row({"eer": 30.0, "tar_far_1e-2": 0.5, "tar_far_1e-3": None})["tar_far_1e-2"] == 50.0
    new = {"eer": 30.0, "tar_far_1e-2": 0.5, "metrics_version": 2}  # 0.5% is a real v2 value: untouched
    assert upgrade_index_row(new) == new


def test_an_old_run_directory_loads_into_reports_and_the_index(tmp_path):
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"epochs": 2, "best_eer": 33.3, "best_epoch": 2,
                                                  "best_metrics": OLD_BEST}))
    (run / "metrics.csv").write_text("epoch,loss,train_accuracy,val_eer,val_tar@far0.01\n1,5.0,0.1,40.0,0.2\n"
                                     "2,4.0,0.3,33.3,0.25\n")
    data = load_run(run)
    assert data.metrics["tar_far_1e-2"] == 25.0 and data.metrics["acc"] == 75.0
    assert data.history[1] == {"epoch": 2.0, "loss": 4.0, "train_acc": 30.0, "val_eer": 33.3, "val_tar_far_1e-2": 25.0}
    row = row_from_run(run, phase="p", preset="baseline", seed=42)
    assert row["tar_far_1e-2"] == 25.0 and row["eer"] == 33.3
    idx = Index(tmp_path / "idx")
    idx.folder.mkdir()
    # An index written before v2: TAR stored as a fraction under today's name.
    idx.path.write_text(json.dumps({"phase": "p", "preset": "old", "seed": 1, "tar_far_1e-2": 0.25}) + "\n")
    idx.upsert(row)
    got = {r["preset"]: r for r in idx.rows()}
    assert got["old"]["tar_far_1e-2"] == 25.0 and got["baseline"]["tar_far_1e-2"] == 25.0
