"""`facerec eval` on a small LFW slice: scores file, TTA, ensembles, and agreement with `score`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerec import models
from facerec.cli import main
from facerec.data.lists import read_pairs
from facerec.data.transforms import Preprocess
from facerec.errors import FacerecError
from facerec.evaluation.scores import read_scores
from facerec.evaluation.scoring import embed, score_pairs
from tests.test_metrics import face_trainer_eer


@pytest.fixture(scope="module")
def lfw_slice(tmp_path_factory, data_root_lfw):
    out = tmp_path_factory.mktemp("lfw")
    assert main(["lists", "lfw", "--data-root", str(data_root_lfw), "--out", str(out)]) == 0
    lines = (out / "view1_val_pairs.csv").read_text().splitlines()
    # 30 same + 30 different pairs: the file holds the 500 same pairs first.
    sliced = out / "slice.csv"
    sliced.write_text("\n".join([lines[0]] + lines[1:31] + lines[501:531]) + "\n")
    return sliced


def test_eval_random_model_writes_scores_and_metrics(lfw_slice, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    rc = main(["eval", "--model", "mobilefacenet", "--input-size", "64", "--pairs", str(lfw_slice), "--output", str(out),
               "--json", "--workers", "0", "--device", "cpu"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    s = read_scores(out)
    assert len(s.scores) == 60 and np.all(np.abs(s.scores) <= 1 + 1e-6)
    e, _ = face_trainer_eer(s.labels, s.scores)
    assert m["eer"] == pytest.approx(e, abs=1e-6)  # the scores file gives face_trainer's EER
    assert (tmp_path / "scores_roc_det.png").is_file()
    assert main(["score", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eer"] == pytest.approx(m["eer"])


def test_each_unique_image_embedded_once_and_tta(lfw_slice):
    pairs = read_pairs(lfw_slice)
    uniq, _i1, _i2 = pairs.unique_paths()
    assert len(uniq) < 2 * len(pairs)  # images repeat across pairs; they are embedded once
    torch.manual_seed(0)
    m = models.create("resnet18", input_size=64, embedding_dim=16, width=0.25).eval()
    pre = Preprocess(input_size=64)
    paths = [str(pairs.root / p) for p in uniq[:8]]
    plain = embed(m, paths, pre, workers=0, progress=False)
    tta = embed(m, paths, pre, workers=0, progress=False, tta=True)
    assert plain.shape == (8, 16) and not torch.allclose(plain, tta)
    # An ensemble of a model with itself scores exactly like the model alone.
    one = score_pairs([(m, pre)], pairs, workers=0, progress=False).scores
    two = score_pairs([(m, pre), (m, pre)], pairs, workers=0, progress=False).scores
    np.testing.assert_allclose(one, two, atol=1e-6)


def test_unknown_labels_need_output(lfw_slice, tmp_path):
    test_list = tmp_path / "test.csv"
    rows = [line for line in lfw_slice.read_text().splitlines() if not line.startswith("#")][:4]
    test_list.write_text("".join(",".join(r.split(",")[1:]) + "\n" for r in rows))
    root = lfw_slice.read_text().splitlines()[0].split(":", 1)[1].strip()
    args = ["eval", "--model", "mobilefacenet", "--input-size", "64", "--pairs", str(test_list), "--root", root,
            "--workers", "0"]
    assert main(args) == 2  # nothing to measure and nowhere to write
    assert main(args + ["--output", str(tmp_path / "sub.csv")]) == 0
    assert len((tmp_path / "sub.csv").read_text().splitlines()) == 4


def test_bad_pair_list_fails_before_any_model_is_built(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,a.jpg\n3,a.jpg,b.jpg\n")
    assert main(["eval", "--model", "resnet18", "--pairs", str(bad)]) == 1  # a data error (the file), not a usage error
    err = capsys.readouterr().err
    assert "bad.csv:1" in err and "bad.csv:2" in err


def test_ensemble_averages_normalised_embeddings_of_different_models(lfw_slice, one_thread):
    pairs = read_pairs(lfw_slice)
    uniq, i1, i2 = pairs.unique_paths()
    paths = [str(pairs.root / p) for p in uniq]
    torch.manual_seed(1)
    a = models.create("resnet18", input_size=64, embedding_dim=16, width=0.25).eval()
    c = models.create("mobilefacenet", input_size=48, embedding_dim=16).eval()
    pa, pc = Preprocess(input_size=64), Preprocess(input_size=48)
    c.head.register_forward_hook(lambda m, i, o: o * 1000.0)  # a large norm must not dominate the average
    ea = embed(a, paths, pa, workers=0, progress=False)
    ec = embed(c, paths, pc, workers=0, progress=False)
    # By hand: unit-normalise each member, add, cosine of the sums.
    s = ea / ea.norm(dim=1, keepdim=True) + ec / ec.norm(dim=1, keepdim=True)
    s = s / s.norm(dim=1, keepdim=True)
    expected = (s[i1] * s[i2]).sum(1).numpy()
    got = score_pairs([(a, pa), (c, pc)], pairs, workers=0, progress=False).scores
    np.testing.assert_allclose(got, expected, atol=1e-5)
    b = models.create("mobilefacenet", input_size=48, embedding_dim=8).eval()
    with pytest.raises(FacerecError, match="ensemble members must share one embedding size: 16, 8"):
        score_pairs([(a, pa), (b, pc)], pairs, workers=0, progress=False)
