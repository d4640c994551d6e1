"""Metrics against hand-computed values, sklearn, and naive reference loops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from facerec import metrics
from facerec.cli import main
from facerec.errors import FacerecError, ValidationError
from facerec.scores import read_scores, write_scores

# Worked by hand (see the comments): 3 same pairs at 0.9, 0.8, 0.6; 3 different at 0.7, 0.5, 0.4.
HAND_SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
HAND_LABELS = [1, 1, 0, 1, 0, 0]


def test_hand_computed_case():
    m = metrics.compute_all(HAND_SCORES, HAND_LABELS)
    # ROC after dropping collinear points: (0,0) (0,2/3)@0.8 (1/3,2/3)@0.7 (1/3,1)@0.6 (1,1)@0.4;
    # |fnr - fpr| is 0 at threshold 0.7 where fpr = fnr = 1/3.
    assert m["eer"] == pytest.approx(100 / 3) and m["eer_threshold"] == 0.7
    assert m["auc"] == pytest.approx(8 / 9)  # 8 of 9 (same, different) pairs ordered right
    assert m["tar_at_far"] == {"0.1": pytest.approx(2 / 3), "0.01": pytest.approx(2 / 3), "0.001": pytest.approx(2 / 3)}
    # accept >= 0.8: 2 TP + 3 TN = 5/6 (0.6 ties at 5/6; the stricter threshold comes first)
    assert m["best_accuracy"] == pytest.approx(5 / 6) and m["best_threshold"] == 0.8


def face_trainer_eer(labels, scores):
    """face_trainer's tuneThresholdfromScore, verbatim in substance."""
    fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=1)
    fnr = 1 - tpr
    idx = np.nanargmin(np.absolute(fnr - fpr))
    return max(fpr[idx], fnr[idx]) * 100, thresholds[idx]


@pytest.mark.parametrize("n,decimals", [(50, 1), (1000, 2), (20000, 3)])
def test_matches_sklearn_and_face_trainer_with_ties(n, decimals):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n)
    s = np.round(rng.normal(size=n) + 1.2 * y, decimals)
    f1, t1, th1 = roc_curve(y, s)
    f2, t2, th2 = metrics.roc(s, y)
    np.testing.assert_allclose(f2, f1)
    np.testing.assert_allclose(t2, t1)
    np.testing.assert_allclose(th2, th1)
    m = metrics.compute_all(s, y)
    e, t = face_trainer_eer(y, s)
    assert m["eer"] == pytest.approx(e) and m["eer_threshold"] == pytest.approx(t)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))


def test_tar_at_far_and_fold_accuracy_against_naive_loops():
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.integers(0, 2, n)
    s = np.round(rng.normal(size=n) + 2 * y, 2)
    folds = np.repeat(np.arange(1, 11), n // 10)
    m = metrics.compute_all(s, y, folds)
    neg, pos = s[y == 0], s[y == 1]
    for far in (0.1, 0.01, 0.001):
        best = max((np.mean(pos >= t) for t in np.r_[np.inf, np.unique(s)] if np.mean(neg >= t) <= far), default=0)
        assert m["tar_at_far"][str(far)] == pytest.approx(best)
    accs = []
    for f in range(1, 11):
        tr, te = folds != f, folds == f
        cands = np.r_[np.inf, np.unique(s[tr])][::-1]
        acc = [np.mean((s[tr] >= t) == (y[tr] == 1)) for t in cands]
        t = cands[int(np.argmax(acc))]
        accs.append(np.mean((s[te] >= t) == (y[te] == 1)))
    assert m["fold_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert m["fold_accuracy_sem"] == pytest.approx(np.std(accs, ddof=1) / np.sqrt(10))


def test_bad_inputs():
    with pytest.raises(FacerecError, match="0 or 1"):
        metrics.compute_all([0.1, 0.2], [1, 2])
    with pytest.raises(FacerecError, match="only one class"):
        metrics.compute_all([0.1, 0.2], [1, 1])
    with pytest.raises(FacerecError, match="NaN"):
        metrics.compute_all([np.nan, 0.2], [1, 0])


def test_scores_file_round_trip_cli_and_plot(tmp_path, capsys):
    path = tmp_path / "scores.csv"
    write_scores(path, np.array(HAND_SCORES), HAND_LABELS, [f"a{i}.jpg" for i in range(6)], [f"b{i}.jpg" for i in range(6)])
    s = read_scores(path)
    assert s.labels.tolist() == HAND_LABELS and s.path1[0] == "a0.jpg"
    plot = tmp_path / "roc.png"
    assert main(["score", str(path), "--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eer"] == pytest.approx(100 / 3) and out["n_pairs"] == 6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_malformed_scores_file_lists_every_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("0.5,1,a,b\nxx,1,a,b\n0.3,7,a,b\n0.1,1,a\n")
    with pytest.raises(ValidationError) as exc:
        read_scores(path)
    msg = str(exc.value)
    assert f"{path}:2: score is not a number" in msg and f"{path}:3: label must be 0 or 1" in msg and f"{path}:4:" in msg
