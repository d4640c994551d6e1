"""Metrics against hand-worked cases, sklearn / face_trainer, and naive reference loops; the
`facerec score` command and the ROC/DET plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from facerec.cli import main
from facerec.errors import FacerecError
from facerec.evaluation import metrics
from facerec.evaluation.scores import write_scores

PNG = b"\x89PNG\r\n\x1a\n"

# 3 same pairs at 0.9, 0.8, 0.6; 3 different at 0.7, 0.5, 0.4.
HAND_SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
HAND_LABELS = [1, 1, 0, 1, 0, 0]


def face_trainer_eer(labels, scores, **kw):
    """face_trainer's tuneThresholdfromScore EER, verbatim in substance."""
    fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=1, **kw)
    fnr = 1 - tpr
    idx = np.nanargmin(np.absolute(fnr - fpr))
    return max(fpr[idx], fnr[idx]) * 100, thresholds[idx]


def test_hand_computed_case():
    m = metrics.compute_all(HAND_SCORES, HAND_LABELS)
    # (tp, fp) accepting score >= t: 0.9 (1,0) 0.8 (2,0) 0.7 (2,1) 0.6 (3,1) 0.5 (3,2) 0.4 (3,3).
    # 0.5 sits on the straight line 0.6 -> 0.4 and is dropped; the ROC is (0,0)@inf (0,1/3)@0.9
    # (0,2/3)@0.8 (1/3,2/3)@0.7 (1/3,1)@0.6 (1,1)@0.4. |fnr - fpr| is 0 at 0.7: fpr = fnr = 1/3.
    assert m["eer"] == pytest.approx(100 / 3) and m["eer_threshold"] == 0.7
    assert m["auc"] == pytest.approx(8 / 9)  # 8 of the 9 (same, different) pairs are ordered right
    # FAR <= 0.1 of 3 negatives allows no false accept: the best is 2 of 3 at 0.8.
    assert [m[k] for k in ("tar_far_1e-1", "tar_far_1e-2", "tar_far_1e-3")] == [pytest.approx(200 / 3)] * 3
    # Correct of 6: inf 3, 0.9 4, 0.8 5, 0.7 4, 0.6 5, 0.5 4, 0.4 3; the tie goes to the stricter 0.8.
    assert m["acc"] == pytest.approx(500 / 6) and m["acc_threshold"] == 0.8
    assert (m["n_pairs"], m["n_positive"], m["n_negative"]) == (6, 3, 3)
    assert "n_folds" not in m


def test_eer_follows_face_trainer_where_drop_intermediate_matters():
    s, y = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0, 1, 1, 1, 1, 0]
    # (tp, fp): 0.9 (0,1) 0.8 (1,1) 0.7 (2,1) 0.6 (3,1) 0.5 (4,1) 0.4 (4,2). 0.8, 0.7 and 0.6 lie
    # inside the vertical run at fpr = 1/2 and are dropped. Left: (0,0) (1/2,0)@0.9 (1/2,1)@0.5
    # (1,1); |fnr - fpr| = 1, 1/2, 1/2, 1, the first minimum is at 0.9 where fnr = 1: EER 100%.
    assert face_trainer_eer(y, s) == (100.0, 0.9)
    assert metrics.eer(s, y) == (100.0, 0.9)
    assert metrics.compute_all(s, y)["eer"] == 100.0
    # The full curve reaches fnr = fpr = 1/2 at 0.7: the definition, not the data, decides.
    assert face_trainer_eer(y, s, drop_intermediate=False) == (50.0, 0.7)


def test_tar_at_far_uses_points_dropped_from_the_thinned_roc():
    # Three tied (same, different) runs then 17 different: (tp, fp) 0.9 (1,1) 0.8 (2,2) 0.7 (3,3) 0.1 (3,20).
    # 0.8 is collinear and leaves the ROC, yet it is a real threshold with FAR 2/20 = 0.1 exactly.
    s = [0.9, 0.9, 0.8, 0.8, 0.7, 0.7] + [0.1] * 17
    y = [1, 0, 1, 0, 1, 0] + [0] * 17
    fpr, _tpr, _ = metrics.roc(s, y)
    assert 0.1 not in fpr.tolist()
    assert metrics.compute_all(s, y)["tar_far_1e-1"] == pytest.approx(200 / 3)


@pytest.mark.parametrize("n,decimals", [(5, 1), (50, 1), (1000, 2), (20000, 3), (3000, 12)])
def test_matches_sklearn_and_face_trainer_with_ties(n, decimals):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=n) + 1.2 * y, decimals)
    for got, want in zip(metrics.roc(s, y), roc_curve(y, s)):
        np.testing.assert_array_equal(got, want)
    m = metrics.compute_all(s, y)
    assert (m["eer"], m["eer_threshold"]) == face_trainer_eer(y, s)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s), rel=1e-12)


def test_float32_scores_and_bool_labels():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500).astype(bool)
    s = (rng.normal(size=500) + y).astype(np.float32)
    assert metrics.eer(s, y) == face_trainer_eer(y, s)


def naive_tar(s, y, far):
    neg, pos = s[y == 0], s[y == 1]
    return max(np.mean(pos >= t) for t in np.r_[np.inf, np.unique(s)] if np.mean(neg >= t) <= far)


def naive_fold_accuracy(s, y, folds):
    """LFW protocol, literally: best threshold of the other folds (first = strictest on ties)."""
    accs = []
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        cands = np.r_[np.inf, np.unique(s[tr])[::-1]]
        t = cands[int(np.argmax([np.mean((s[tr] >= t) == (y[tr] == 1)) for t in cands]))]
        accs.append(np.mean((s[te] >= t) == (y[te] == 1)))
    return np.array(accs)


@pytest.mark.parametrize("seed,decimals", [(1, 2), (2, 1), (3, 6)])
def test_tar_at_far_best_accuracy_and_folds_against_naive_loops(seed, decimals):
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.integers(0, 2, n)
    s = np.round(rng.normal(size=n) + 2 * y, decimals)
    folds = rng.permutation(np.repeat(np.arange(1, 11), n // 10))  # scattered, not blocks
    m = metrics.compute_all(s, y, folds)
    for far, key in ((0.1, "tar_far_1e-1"), (0.01, "tar_far_1e-2"), (0.001, "tar_far_1e-3")):
        assert m[key] == pytest.approx(100 * naive_tar(s, y, far))
    cands = np.r_[np.inf, np.unique(s)[::-1]]
    accs = [np.mean((s >= t) == (y == 1)) for t in cands]
    assert m["acc"] == pytest.approx(100 * max(accs)) and m["acc_threshold"] == cands[int(np.argmax(accs))]
    want = 100 * naive_fold_accuracy(s, y, folds)
    np.testing.assert_allclose(metrics.fold_accuracy(s, y, folds), want, rtol=0, atol=1e-12)
    assert m["n_folds"] == 10
    assert m["fold_acc_mean"] == pytest.approx(want.mean())
    assert m["fold_acc_sem"] == pytest.approx(want.std(ddof=1) / np.sqrt(10))


def test_accuracy_at_a_threshold_by_hand_and_against_sklearn():
    from sklearn.metrics import accuracy_score

    s, y = np.array([0.9, 0.5, 0.4, 0.1]), np.array([1, 0, 1, 0])
    # 0.45: accept 0.9 (right) and 0.5 (wrong), reject 0.4 (wrong) and 0.1 (right). A score equal to
    # the threshold is accepted, so 0.5 decides the same; 0.3 also accepts 0.4.
    assert [metrics.accuracy_at(s, y, t) for t in (0.45, 0.5, 0.3, 0.95)] == [50.0, 50.0, 75.0, 50.0]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y
    best, thr = metrics.best_accuracy(s, y)
    assert metrics.accuracy_at(s, y, thr) == pytest.approx(best)
    assert metrics.accuracy_at(s, y, 0.2) == pytest.approx(100 * accuracy_score(y, s >= 0.2))


def test_fold_with_scores_of_its_own_picks_a_threshold_from_the_other_folds():
    # Fold 2's scores (0.75, 0.72) lie between fold 1's; the threshold must come from fold 1 (0.8),
    # not from fold 2's own scores, which would score fold 2 perfectly.
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.75, 0.72])
    y = np.array([1, 1, 0, 0, 1, 1])
    folds = np.array([1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(metrics.fold_accuracy(s, y, folds), 100 * naive_fold_accuracy(s, y, folds))
    assert metrics.fold_accuracy(s, y, folds).tolist() == [100.0, 0.0]


@pytest.mark.parametrize("scores,labels,match", [
    ([0.1, 0.2, 0.3], [1, 2, 0], "0 or 1"),
    ([0.1, 0.2], [1, -1], "0 or 1"),
    ([0.1, 0.2], [1, 1], "only one class"),
    ([0.1, 0.2], [0, 0], "only one class"),
    ([np.nan, 0.2], [1, 0], "NaN"),
    ([np.inf, 0.2], [1, 0], "infinite"),
    ([0.1, 0.2], [1, 0, 1], "equal length"),
    ([], [], "no pairs"),
])
def test_bad_inputs(scores, labels, match):
    with pytest.raises(FacerecError, match=match):
        metrics.compute_all(scores, labels)


def test_jsonable_and_table():
    m = metrics.compute_all([0.5, 0.5, 0.5], [1, 0, 0])  # all tied: the EER point is thr = +inf
    assert m["eer_threshold"] == np.inf
    j = metrics.jsonable(m)
    assert j["eer_threshold"] is None and json.loads(json.dumps(j, allow_nan=False))["tar_far_1e-2"] == 0
    table = metrics.format_table(metrics.compute_all(HAND_SCORES * 2, HAND_LABELS * 2, [1] * 6 + [2] * 6))
    assert "EER" in table and "33.33%" in table and "2-fold accuracy" in table and "TAR @ FAR=1e-3" in table


def _scores_file(path, folds=None):
    write_scores(path, HAND_SCORES, HAND_LABELS, [f"a{i}.jpg" for i in range(6)], [f"b{i}.jpg" for i in range(6)],
                 folds)
    return path


def test_score_command_json_and_plot(tmp_path, capsys):
    path = _scores_file(tmp_path / "scores.csv", [1, 1, 1, 2, 2, 2])
    plot = tmp_path / "out" / "roc.png"
    assert main(["score", str(path), "--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {**metrics.jsonable(metrics.compute_all(HAND_SCORES, HAND_LABELS, [1, 1, 1, 2, 2, 2])),
                   "file": str(path), "plot": str(plot)}
    assert out["eer"] == pytest.approx(100 / 3) and out["n_folds"] == 2
    assert plot.read_bytes()[:8] == PNG


def test_score_command_table_bare_plot_and_several_files(tmp_path, capsys):
    a = _scores_file(tmp_path / "a.csv")
    b = tmp_path / "b.csv"
    write_scores(b, [0.9, 0.2, 0.8, 0.1], [1, 0, 1, 0], list("wxyz"), list("wxyz"))
    assert main(["score", str(a)]) == 0
    assert "EER" in capsys.readouterr().out and not list(tmp_path.glob("*.png"))  # no plot unless asked
    assert main(["score", str(a), str(b), "--plot"]) == 0
    out = capsys.readouterr().out
    assert str(a) in out and str(b) in out and "0.00%" in out
    assert (tmp_path / "a_score_roc_det.png").read_bytes()[:8] == PNG
    assert main(["score", str(a), str(b), "--json"]) == 0
    assert [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()] == [str(a), str(b)]


def test_score_command_names_lines_with_unknown_labels(tmp_path, capsys):
    path = tmp_path / "submission.csv"
    path.write_text("0.5,1,a,b\n0.4,-1,c,d\n0.3,0,e,f\n0.2,-1,g,h\n")
    assert main(["score", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: label must be" in err and f"{path}:4: label must be" in err and "cannot be scored" in err


def test_plot_overlays_curves_and_thins_large_ones(tmp_path):
    from facerec.evaluation import plots

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200_000)
    s = rng.normal(size=len(y)) + y
    fpr, tpr, _ = metrics.roc(s, y)
    keep = plots._thin(fpr, tpr, 1e-5)
    assert len(keep) <= 6002 < len(fpr) and keep[0] == 0 and keep[-1] == len(fpr) - 1
    out = tmp_path / "cmp.png"
    plots.plot_roc_det({"big": (s, y), "hand": (HAND_SCORES, HAND_LABELS)}, out, title="compare")
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.png"]  # no temporary left behind
