"""Verification back-ends (facerec.evaluation.backend): LDA/WCCN whitening and two-covariance PLDA against
independent computations (scikit-learn's LDA, a known generating model, scipy's Gaussian densities),
storage in weights_only checkpoints, and on real faces (ORL) through facerec.load and the CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from scipy import linalg, stats

import facerec
from facerec.cli import main
from facerec.errors import DataError, FacerecError
from facerec.evaluation.backend import KINDS, backend_scores, fit_backend, from_state, to_checkpoint, to_json
from tests.test_metrics import face_trainer_eer


def _spd(rng, d: int, floor: float) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + floor * np.eye(d)


def _two_covariance(rng, B, W, mu, sizes) -> tuple[np.ndarray, np.ndarray]:
    """x = mu + y_identity + e, y ~ N(0, B), e ~ N(0, W); `sizes` images per identity."""
    d = len(mu)
    y = rng.multivariate_normal(np.zeros(d), B, size=len(sizes))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return mu + y[labels] + rng.multivariate_normal(np.zeros(d), W, size=len(labels)), labels


def _within_cov(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Pooled scatter about each identity's mean over the number of images, by a plain loop."""
    s = np.zeros((z.shape[1], z.shape[1]))
    for c in np.unique(labels):
        r = z[labels == c] - z[labels == c].mean(0)
        s += r.T @ r
    return s / len(z)


def test_lda_whitens_the_within_class_covariance_and_spans_fishers_subspace():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(0)
    d = 10
    x, labels = _two_covariance(rng, _spd(rng, d, 0.2), _spd(rng, d, 0.1), rng.normal(size=d), [6] * 60)
    lone = rng.normal(size=(8, d)) * 3  # identities with one image: no within-class statistics
    x_all, labels_all = np.r_[x, lone], np.r_[labels, 100 + np.arange(8)]
    full = fit_backend(x_all, labels_all, "lda")
    assert full.proj.shape == (d, d) and full.info["identities_2plus"] == 60
    np.testing.assert_allclose(_within_cov(full.project(x), labels), np.eye(d), atol=1e-6)
    three = fit_backend(x_all, labels_all, "lda", d_lda=3)
    np.testing.assert_allclose(_within_cov(three.project(x), labels), np.eye(3), atol=1e-6)
    # Fisher's directions: scikit-learn's generalized eigenvectors of (Sb, Sw) span the same subspace
    # (equal class sizes, so its prior-weighted Sb is the unweighted one used here).
    sk = LinearDiscriminantAnalysis(solver="eigen").fit(x, labels)
    assert linalg.subspace_angles(three.proj, sk.scalings_[:, :3]).max() < 1e-6
    # The one-image identities moved the mean and the PCA, not the within/between statistics.
    alone = fit_backend(x, labels, "lda", d_lda=3)
    assert linalg.subspace_angles(three.proj, alone.proj).max() < 1e-6
    # Scores are cosines in the projected space.
    a, b = x_all[:5], x_all[-5:]
    za, zb = three.project(a), three.project(b)
    want = (za * zb).sum(1) / np.linalg.norm(za, axis=1) / np.linalg.norm(zb, axis=1)
    np.testing.assert_allclose(three.score(a, b), want, atol=1e-12)


def test_plda_em_recovers_a_known_two_covariance_model():
    rng = np.random.default_rng(1)
    d = 4
    B, W = _spd(rng, d, 0.5), _spd(rng, d, 0.3)
    x, labels = _two_covariance(rng, B, W, rng.normal(size=d), rng.integers(2, 7, size=3000))
    em = fit_backend(x, labels, "plda", whiten=False, length_norm=False)
    moments = fit_backend(x, labels, "plda", whiten=False, length_norm=False, iters=0)
    P = em.pre_proj  # without whitening: an orthonormal rotation of the centred input
    np.testing.assert_allclose(P.T @ P, np.eye(d), atol=1e-10)
    B_true, W_true = P.T @ B @ P, P.T @ W @ P

    def err(a, b):
        return np.linalg.norm(a - b) / np.linalg.norm(b)

    # 3,000 identities of 2-6 images: EM is within a few percent (measured: 4.1% for B, 1.8% for W);
    # the moment estimate it starts from is biased (W by the (n-1)/n of class means fit to few images).
    assert err(em.between, B_true) < 0.1 and err(em.within, W_true) < 0.05
    assert err(em.between, B_true) < err(moments.between, B_true)
    assert err(em.within, W_true) < err(moments.within, W_true) / 3


@pytest.mark.parametrize("preprocess", [False, True])
def test_plda_llr_equals_the_gaussian_likelihood_ratio(preprocess):
    rng = np.random.default_rng(2)
    d = 12
    x, labels = _two_covariance(rng, _spd(rng, d, 0.3), _spd(rng, d, 0.3), rng.normal(size=d),
                                rng.integers(2, 6, size=200))
    opts = {"d_pca": 8} if preprocess else {"whiten": False, "length_norm": False}
    plda = fit_backend(x, labels, "plda", **opts)
    a, b = x[:40], x[rng.permutation(len(x))[:40]]
    a[::2] = x[1:80:4]  # some pairs of one identity's images too
    za, zb = plda.transform(a), plda.transform(b)
    if preprocess:
        assert za.shape[1] == 8
        np.testing.assert_allclose(np.linalg.norm(za, axis=1), 1, atol=1e-12)
    T, Bf, mu = plda.between + plda.within, plda.between, plda.mean
    joint = np.block([[T, Bf], [Bf, T]])
    want = [stats.multivariate_normal.logpdf(np.r_[p, q], np.r_[mu, mu], joint)
            - stats.multivariate_normal.logpdf(p, mu, T) - stats.multivariate_normal.logpdf(q, mu, T)
            for p, q in zip(za, zb)]
    np.testing.assert_allclose(plda.score(a, b), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(plda.score(b, a), plda.score(a, b), rtol=1e-12, atol=1e-12)


def test_every_kind_round_trips_through_weights_only_checkpoints_and_json(tmp_path):
    rng = np.random.default_rng(3)
    x, labels = _two_covariance(rng, _spd(rng, 6, 0.3), _spd(rng, 6, 0.3), np.zeros(6), [4] * 30)
    a, b = x[:20], x[20:40]
    for kind in KINDS:
        fitted = fit_backend(x, labels, kind)
        path = tmp_path / f"{kind}.pt"
        torch.save({"backend": to_checkpoint(fitted.state_dict())}, path)
        loaded = from_state(torch.load(path, weights_only=True)["backend"])
        assert type(loaded) is type(fitted) and loaded.info == fitted.info
        assert np.array_equal(loaded.score(a, b), fitted.score(a, b))
        via_json = from_state(json.loads(json.dumps(to_json(fitted.state_dict()))))
        assert np.array_equal(via_json.score(a, b), fitted.score(a, b))
    cos = fit_backend(x, labels, "none").score(a, b)
    want = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cos, want, atol=1e-12)


def test_backend_scores_fits_on_the_training_embeddings_only():
    rng = np.random.default_rng(4)
    x, labels = _two_covariance(rng, _spd(rng, 6, 0.3), _spd(rng, 6, 0.3), np.zeros(6), [3] * 40)
    emb = rng.normal(size=(50, 6))
    i1, i2 = rng.integers(0, 50, 30), rng.integers(0, 50, 30)
    for kind in KINDS:
        want = fit_backend(x, labels, kind).score(emb[i1], emb[i2])
        assert np.array_equal(backend_scores(x, labels, emb, i1, i2, kind), want)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(backend_scores(x, labels, emb, i1, i2, "none"), (e[i1] * e[i2]).sum(1), atol=1e-12)


def test_bad_input_names_the_problem():
    x, labels = np.random.default_rng(5).normal(size=(12, 4)), np.repeat(np.arange(4), 3)
    with pytest.raises(FacerecError, match=r"unknown back-end kind 'pdla' \(did you mean 'plda'\?\)"):
        fit_backend(x, labels, "pdla")
    with pytest.raises(FacerecError, match=r"back-end lda: unknown option.*iters"):
        fit_backend(x, labels, "lda", iters=3)
    with pytest.raises(DataError, match="at least 2 identities with 2\\+ images each, got 0"):
        fit_backend(x, np.arange(12), "plda")
    with pytest.raises(FacerecError, match="labels: expected one per embedding"):
        fit_backend(x, labels[:5], "plda")
    state = fit_backend(x, labels, "plda").state_dict()
    del state["within"]
    with pytest.raises(DataError, match=r"back-end state \(plda\): missing key\(s\) within"):
        from_state(state)


# --- real faces ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def orl(orl_dir, tmp_path_factory):
    """A random-init resnet18 (32 px, 128-d) as a facerec checkpoint, ORL's s1-s20 as the back-end's
    training people and every pair of s21-s40's images as validation pairs."""
    from facerec import checkpoint, models
    from facerec.data.lists import write_pairs, write_train_list
    from facerec.data.transforms import Preprocess
    from facerec.inference.facemodel import FaceModel

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("backend")
    torch.manual_seed(0)
    net = models.create("resnet18", input_size=32, embedding_dim=128).eval()
    pre = Preprocess(input_size=32)
    people = [f"s{i}" for i in range(1, 41)]
    rel = [f"{p}/{j}.pgm" for p in people for j in range(1, 11)]
    ident = np.repeat(np.arange(40), 10)
    emb = FaceModel(net, pre).embed([str(orl_dir / r) for r in rel], workers=0)
    train = ident < 20
    write_train_list(work / "train.txt", orl_dir, [r for r, t in zip(rel, train) if t],
                     [people[i] for i in ident[train]])
    test = np.flatnonzero(~train)
    i1, i2 = np.triu_indices(len(test), 1)
    i1, i2 = test[i1], test[i2]
    y = (ident[i1] == ident[i2]).astype(int)
    write_pairs(work / "val.csv", orl_dir, y, [rel[i] for i in i1], [rel[i] for i in i2])
    cos = (emb[i1].astype(np.float64) * emb[i2]).sum(1)
    _, thr = face_trainer_eer(y, cos)
    payload = {"model": {"name": "resnet18", "kwargs": {"input_size": 32, "embedding_dim": 128},
                         "state_dict": net.state_dict()},
               "preprocess": pre.to_dict(), "config": {"tta": False, "val": str(work / "val.csv")},
               "thresholds": {"eer": float(thr)}, "val_scores": {"scores": torch.as_tensor(cos), "labels": torch.as_tensor(y)}}
    checkpoint.save(work / "best.pt", payload)
    yield {"work": work, "ckpt": work / "best.pt", "emb": emb, "ident": ident, "train": train, "i1": i1, "i2": i2,
           "y": y, "rel": rel, "orl_dir": orl_dir}
    torch.set_num_threads(before)


def test_on_orl_plda_is_no_worse_than_cosine_on_unseen_people(orl):
    from facerec.evaluation.metrics import eer

    e, ident, tr = orl["emb"], orl["ident"], orl["train"]
    held_out = {k: eer(backend_scores(e[tr], ident[tr], e, orl["i1"], orl["i2"], k), orl["y"])[0] for k in KINDS}
    # Measured (random init, 20 training people, 900 same / 18,000 different pairs of 20 others):
    # seed 0 cosine 20.22%, lda 21.14%, plda 19.72%; over init seeds 0-4, plda - cosine ranged from
    # -0.5 to +4.2 points (20 people move EER by points). Fit on the training people, both back-ends
    # separate those far better than cosine does: they did learn their within-class variation.
    assert held_out["plda"] <= held_out["none"] + 5 and held_out["lda"] <= held_out["none"] + 6
    assert held_out["plda"] < 30
    j1, j2 = np.triu_indices(int(tr.sum()), 1)
    y = (ident[j1] == ident[j2]).astype(int)
    seen = {k: eer(backend_scores(e[tr], ident[tr], e[tr], j1, j2, k), y)[0] for k in KINDS}
    assert seen["plda"] < seen["none"] / 2 and seen["lda"] < seen["none"] * 0.75  # measured: 5.8, 11.1 vs 18.6


def _lowest_threshold_within_far(scores, labels, far) -> float:
    neg = scores[labels == 0]
    return float(min(t for t in np.unique(scores) if np.mean(neg >= t) <= far))


def _val_images(orl, n: int) -> tuple[list[str], list[str]]:
    from facerec.data.lists import read_pairs

    pairs = read_pairs(orl["work"] / "val.csv")
    return [str(pairs.root / p) for p in pairs.path1[:n]], [str(pairs.root / p) for p in pairs.path2[:n]]


def test_backend_fit_cli_recalibrates_and_facerec_load_uses_it(orl, tmp_path, capsys):
    out = tmp_path / "best_plda.pt"
    assert main(["backend", "fit", "--checkpoint", str(orl["ckpt"]), "--train", str(orl["work"] / "train.txt"),
                 "--kind", "plda", "--output", str(out), "--workers", "0", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "backend plda: fit on 200 images of 20 identities (20 with 2+ images), 19 dimensions" in text
    assert "validation: 19900 pairs of" in text and "thresholds recomputed on plda scores" in text
    assert [p.name for p in tmp_path.iterdir()] == ["best_plda.pt"]  # the temporary name is gone
    m = facerec.load(out, device="cpu")
    assert m.backend.kind == "plda" and "backend=plda" in repr(m)
    e, tr, y = orl["emb"], orl["train"], orl["y"]
    want = backend_scores(e[tr], orl["ident"][tr], e, orl["i1"], orl["i2"], "plda")
    eer, thr = face_trainer_eer(y, want)
    assert f"-> plda {eer:.2f}%" in text
    # Thresholds on PLDA scores of float32 embeddings: the CLI's and this reference agree to ~1e-6 relative.
    assert m.threshold() == pytest.approx(thr, rel=1e-5)
    assert m.threshold(far=0.05) == pytest.approx(_lowest_threshold_within_far(want, y, 0.05), rel=1e-5)
    a, b = _val_images(orl, 3)
    np.testing.assert_allclose(m.score(a, b, workers=0), want[:3], atol=1e-5)
    v = m.verify(a[0], b[0])
    assert v.score == pytest.approx(want[0], abs=1e-5) and v.threshold == pytest.approx(thr, rel=1e-5)
    assert v.same is (v.score >= v.threshold)
    assert m.verify(a[0], b[0], threshold=v.score - 1).same  # any finite threshold on the LLR's scale
    # the CLI too: a PLDA threshold outside [-1, 1] is a threshold, not a usage error
    below = min(v.score, -1.0) - 1.0
    assert main(["verify", a[0], b[0], "--checkpoint", str(out), f"--threshold={below:.6f}"]) == 0
    assert capsys.readouterr().out.startswith("SAME  score ")
    # identify ranks by cosine: the model's LLR thresholds mark no match unknown, and the note says why
    assert main(["identify", "--gallery", str(orl["orl_dir"]), "--probe", str(orl["orl_dir"] / "s1"), "--checkpoint",
                 str(out), "--json", "--workers", "0", "--no-progress"]) == 0
    got = capsys.readouterr()
    r = json.loads(got.out)
    assert r["threshold"] is None and r["unknown"] == 0 and "plda back-end scores" in got.err
    from facerec.inference.export import metadata

    carried = from_state(json.loads(json.dumps(metadata(m)))["backend"])  # what an ONNX export holds
    np.testing.assert_allclose(carried.score(e[:5], e[5:10]), m.backend.score(e[:5], e[5:10]), rtol=1e-12)


def test_fit_backend_api_save_and_no_validation_pairs(orl, tmp_path, capsys):
    m = facerec.load(orl["ckpt"], device="cpu")
    report = m.fit_backend(orl["work"] / "train.txt", kind="lda", workers=0)
    assert report["val_pairs"] == 19900 and report["eer_cosine"] == pytest.approx(face_trainer_eer(
        orl["y"], (orl["emb"][orl["i1"]].astype(np.float64) * orl["emb"][orl["i2"]]).sum(1))[0], abs=1e-6)
    m.save(tmp_path / "lda.pt")
    again = facerec.load(tmp_path / "lda.pt", device="cpu")
    a, b = _val_images(orl, 4)
    assert again.backend.kind == "lda" and again.threshold() == m.threshold()
    np.testing.assert_allclose(again.score(a, b, workers=0), m.score(a, b, workers=0), atol=1e-12)
    # The run's validation list is gone: the cosine thresholds are dropped, and the output says so.
    from facerec import checkpoint

    ckpt = checkpoint.load(orl["ckpt"])
    ckpt["config"]["val"] = str(tmp_path / "gone.csv")
    checkpoint.save(tmp_path / "noval.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    assert main(["backend", "fit", "--checkpoint", str(tmp_path / "noval.pt"), "--train",
                 str(orl["work"] / "train.txt"), "--output", str(tmp_path / "p.pt"), "--workers", "0"]) == 0
    assert "they must be recalibrated" in capsys.readouterr().out
    m = facerec.load(tmp_path / "p.pt")
    assert m.thresholds == {} and m.val_scores is None
    with pytest.raises(DataError, match="fit without validation pairs to set thresholds on; pass threshold="):
        m.verify(a[0], b[0])
    assert m.verify(a[0], b[0], threshold=-1e9).same


def test_backend_fit_cli_refuses_bad_input_in_one_line(orl, tmp_path, capsys):
    ckpt, train = str(orl["ckpt"]), str(orl["work"] / "train.txt")
    base = ["backend", "fit", "--checkpoint", ckpt, "--workers", "0"]
    cases = [
        ([*base, "--train", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "o.pt")], "nope.txt"),
        ([*base, "--train", train, "--output", ckpt], "is the --checkpoint itself"),
        ([*base, "--train", train, "--output", str(tmp_path / "o.pt"), "--kind", "lda", "--iters", "3"],
         "--iters applies to --kind plda, not lda"),
        ([*base, "--train", train, "--output", str(tmp_path / "o.pt"), "--val", str(orl["work"] / "leak.csv")],
         "leak.csv: 1 identities (e.g. s1) of these validation pairs are also in the back-end's training list"),
    ]
    from facerec.data.lists import write_pairs

    rel = orl["rel"]
    write_pairs(orl["work"] / "leak.csv", orl["orl_dir"], [1, 0], [rel[0], rel[0]], [rel[1], rel[-1]])
    for argv, needle in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o.pt").exists()
    with pytest.raises(SystemExit):
        main([*base, "--train", train, "--output", str(tmp_path / "o.pt"), "--kind", "pdla"])
    capsys.readouterr()


def test_every_backend_fit_flag_has_help_and_a_default():
    from facerec.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    backend = sub.choices["backend"]
    fit = next(a for a in backend._actions if isinstance(a, argparse._SubParsersAction)).choices["fit"]
    for action in fit._actions:
        if action.dest == "help":
            continue
        text = action.help or ""
        told = "default" in text or "required" in text or text.startswith("=")
        assert text and told, f"backend fit {action.option_strings}: {text!r}"
