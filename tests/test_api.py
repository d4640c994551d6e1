"""Using a trained model: facerec.load / embed / verify / threshold, the embed/verify/identify
commands and facerec.train(cfg), on ORL and LFW faces, against independent computations."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facerec
from facerec.cli import main
from facerec.data.lists import read_pairs
from facerec.errors import DataError, FacerecError
from facerec.evaluation.scores import read_scores
from tests.test_metrics import face_trainer_eer

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--model", "resnet18", "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10",
         "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, orl_dir):
    work = tmp_path_factory.mktemp("api")
    assert main(["lists", "orl", "--data-root", str(orl_dir.parent), "--out", str(work)]) == 0
    run_dir = work / "run"
    assert main(["-q", "train", "--train", str(work / "orl_train.txt"), "--val", str(work / "orl_val_pairs.csv"),
                 *SMALL, "--epochs", "2", "--tta", "--run-dir", str(run_dir)]) == 0
    return {"dir": run_dir, "ckpt": run_dir / "best.pt", "val": work / "orl_val_pairs.csv", "work": work}


@pytest.fixture(scope="module")
def model(run):
    return facerec.load(run["ckpt"], device="cpu")


def _pair_scores(m, pairs, **kw) -> np.ndarray:
    uniq, i1, i2 = pairs.unique_paths()
    e = m.embed([str(pairs.root / p) for p in uniq], **kw)
    return (e[i1] * e[i2]).sum(1)


def test_embed_equals_eval_and_takes_any_image_form(run, model, tmp_path, capsys):
    out = tmp_path / "eval.csv"
    assert main(["eval", "--checkpoint", str(run["ckpt"]), "--pairs", str(run["val"]), "--output", str(out),
                 "--workers", "0", "--no-progress"]) == 0
    capsys.readouterr()
    pairs = read_pairs(run["val"])
    assert model.tta  # the run used TTA, so the API does too, as eval does
    np.testing.assert_allclose(_pair_scores(model, pairs), read_scores(out).scores, atol=1e-5, rtol=0)
    p = str(pairs.root / pairs.path1[0])
    e = model.embed([p, Image.open(p), np.asarray(Image.open(p).convert("RGB"))])
    assert e.dtype == np.float32 and e.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)
    assert np.array_equal(e[0], e[1]) and np.array_equal(e[0], e[2])  # one face, however it arrives
    no_tta = model.embed(p, tta=False)
    assert not np.allclose(no_tta, e[:1])
    x = model.preprocess(p)
    assert x.shape == (1, 3, 32, 32) and x.dtype.is_floating_point and -1.01 <= float(x.min()) < float(x.max()) <= 1.01


def test_test_crops_sum_the_five_crops_and_their_mirrors(run, tmp_path, capsys):
    """By hand: torchvision's FiveCrop of each decoded face, each view and its mirror through the
    network, the raw embeddings summed, then L2-normalised; `facerec eval --test-crops 5` and an
    ONNX export (the crops are preprocessing, not part of the network) score the same."""
    import torch
    from torchvision.transforms import v2

    from facerec.inference import images as image_io
    from facerec.inference.export import export
    from facerec.inference.facemodel import load_onnx

    m = facerec.load(run["ckpt"], device="cpu")
    m.test_crops = 5
    assert m.test_crops == 5 and "test_crops=5" in repr(m) and m.tta
    pairs = read_pairs(run["val"])
    paths = [str(pairs.root / p) for p in pairs.unique_paths()[0][:12]]
    x = image_io.faces(paths, m.pre).float() / 255 * 2 - 1  # mean = std = 0.5
    m.net.eval()
    with torch.no_grad():
        e = sum(m.net(c).double() + m.net(c.flip(-1)).double() for c in v2.FiveCrop(m.pre.input_size)(x)).numpy()
    by_hand = e / np.linalg.norm(e, axis=1, keepdims=True)
    np.testing.assert_allclose(m.embed(paths), by_hand, atol=1e-5)
    assert np.abs(m.embed(paths, tta=False) - by_hand).max() > 1e-3  # the mirrors count
    assert m.preprocess(paths[:2]).shape == (2, 5, 3, 32, 32)

    out = tmp_path / "crops.csv"
    assert main(["eval", "--checkpoint", str(run["ckpt"]), "--pairs", str(run["val"]), "--output", str(out),
                 "--test-crops", "5", "--workers", "0", "--no-progress"]) == 0
    capsys.readouterr()
    np.testing.assert_allclose(read_scores(out).scores, _pair_scores(m, pairs), atol=1e-5, rtol=0)
    assert export(m, "onnx", tmp_path / "m.onnx", check_images=paths[:4]).ok
    onnx_model = load_onnx(tmp_path / "m.onnx")
    assert onnx_model.test_crops == 5
    np.testing.assert_allclose(onnx_model.embed(paths), by_hand, atol=1e-4)
    with pytest.raises(FacerecError, match="test crops: expected one of 1, 5, got 3"):
        m.test_crops = 3


def test_a_run_with_test_crops_validates_as_its_checkpoint_scores(run, tmp_path):
    """Validation while training (BatchTransform's views) and the saved model (eval_transform's)
    embed the same five crops: the run's last scores are the loaded model's."""
    run_dir = tmp_path / "crops"
    assert main(["-q", "train", "--train", str(run["work"] / "orl_train.txt"), "--val", str(run["val"]), *SMALL,
                 "--epochs", "1", "--tta", "--test-crops", "5", "--run-dir", str(run_dir)]) == 0
    m = facerec.load(run_dir / "last.pt", device="cpu")
    assert m.test_crops == 5
    s = read_scores(run_dir / "scores.txt")
    pairs = read_pairs(run["val"])
    root = pairs.root
    e = m.embed([str(root / p) for p in s.path1] + [str(root / p) for p in s.path2])
    np.testing.assert_allclose((e[: len(s.path1)] * e[len(s.path1):]).sum(1), s.scores, atol=1e-5)


def naive_threshold_at_far(scores, labels, far) -> float:
    """Lowest threshold t (accept score >= t) with FPR <= far, by trying every score."""
    neg = scores[labels == 0]
    for t in np.r_[np.unique(scores), np.inf]:
        if np.mean(neg >= t) <= far + 1e-12:
            return float(t)
    raise AssertionError


def test_thresholds_travel_with_the_checkpoint(run, model):
    s = read_scores(run["dir"] / "scores.txt")  # the best epoch's validation scores
    _, eer_thr = face_trainer_eer(s.labels, s.scores)
    assert model.threshold() == pytest.approx(eer_thr)
    for far in (1e-1, 1e-2, 0.05):
        assert model.threshold(far=far) == pytest.approx(naive_threshold_at_far(s.scores, s.labels, far))
    assert set(model.thresholds) == {"eer", "1e-1", "1e-2", "1e-3"}
    with pytest.raises(DataError, match="far must lie in"):
        model.threshold(far=2)


def test_verify_cli_same_and_different(run, model, capsys):
    s = read_scores(run["dir"] / "scores.txt")
    thr = model.threshold()
    same = int(np.argmax(np.where(s.labels == 1, s.scores, -np.inf)))
    diff = int(np.argmin(np.where(s.labels == 0, s.scores, np.inf)))
    assert s.scores[same] > thr > s.scores[diff]
    root = read_pairs(run["val"]).root
    for i, code, word in ((same, 0, "SAME"), (diff, 1, "DIFFERENT")):
        a, b = str(root / s.path1[i]), str(root / s.path2[i])
        assert main(["verify", a, b, "--checkpoint", str(run["ckpt"])]) == code
        assert capsys.readouterr().out.startswith(word)
        assert main(["verify", a, b, "--checkpoint", str(run["ckpt"]), "--json"]) == code
        got = json.loads(capsys.readouterr().out)
        assert got["score"] == pytest.approx(s.scores[i], abs=1e-5) and got["threshold"] == pytest.approx(thr)
        assert got["same"] is (code == 0)
        v = model.verify(a, b, threshold=float(s.scores[i]) - 1e-3)
        assert v.same and v.score == pytest.approx(s.scores[i], abs=1e-5)
    assert main(["verify", a, b, "--checkpoint", str(run["ckpt"]), "--threshold", "-1"]) == 0


def _split(orl_dir: Path, dest: Path) -> tuple[Path, Path]:
    gallery, probe = dest / "gallery", dest / "probe"
    for person in sorted(p for p in orl_dir.iterdir() if p.is_dir()):
        for i in range(1, 11):
            d = (gallery if i <= 3 else probe) / person.name
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i}.pgm").symlink_to(person / f"{i}.pgm")
    return gallery, probe


def test_identify_rank1_equals_a_hand_computed_nearest_neighbour(run, model, orl_dir, tmp_path, capsys):
    gallery, probe = _split(orl_dir, tmp_path)
    people = sorted(p.name for p in gallery.iterdir())
    g_emb = {n: model.embed([str(gallery / n / f"{i}.pgm") for i in range(1, 4)]) for n in people}
    probes = [(n, str(probe / n / f"{i}.pgm")) for n in people for i in range(4, 11)]
    p_emb = model.embed([p for _, p in probes])
    for template in ("mean", "image"):
        want_top = []
        for e in p_emb:
            best, best_s = None, -np.inf
            for n in people:
                if template == "mean":
                    t = g_emb[n].sum(0)
                    s = float(e @ (t / np.linalg.norm(t)))
                else:
                    s = max(float(e @ g) for g in g_emb[n])
                if s > best_s:
                    best, best_s = n, s
            want_top.append(best)
        want_rank1 = 100 * np.mean([w == n for w, (n, _) in zip(want_top, probes)])
        out = tmp_path / template / "matches.csv"
        assert main(["identify", "--gallery", str(gallery), "--probe", str(probe), "--checkpoint", str(run["ckpt"]),
                     "--template", template, "--json", "--output", str(out), "--no-progress"]) == 0
        got = json.loads(capsys.readouterr().out)
        got_top = {os.path.normpath(m["probe"]): m["top"][0][0] for m in got["matches"]}
        assert got_top == {os.path.normpath(p): w for w, (_, p) in zip(want_top, probes)}
        assert got["rank1"] == pytest.approx(want_rank1) and got["rank5"] >= got["rank1"] > 10  # chance is 2.5%
        assert (out.parent / "cmc.png").read_bytes()[:4] == b"\x89PNG"
        with open(out) as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 5 * len(probes) and rows[0]["rank"] == "1"


class Interrupting:
    """A model whose embed stops after `n` calls, as a killed job would."""

    def __init__(self, model, n):
        self.model, self.n, self.calls = model, n, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def embed(self, *a, **kw):
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return self.model.embed(*a, **kw)


def test_embed_cli_writes_npz_and_resumes(run, model, orl_dir, tmp_path, capsys):
    from facerec.inference.embed_job import embed_to_file

    out = tmp_path / "orl.npz"
    assert main(["embed", str(orl_dir), "--checkpoint", str(run["ckpt"]), "--output", str(out), "--chunk", "64",
                 "--workers", "0", "--no-progress"]) == 0
    assert "400 images x 32" in capsys.readouterr().out
    z = np.load(out)
    paths = [str(p) for p in z["paths"]]
    assert len(paths) == 400 and paths == sorted(paths, key=lambda p: (os.path.dirname(p), os.path.basename(p)))
    np.testing.assert_allclose(z["embeddings"], model.embed(paths), atol=1e-6)
    again = tmp_path / "again.npz"
    with pytest.raises(KeyboardInterrupt):
        embed_to_file(Interrupting(model, 3), paths, again, chunk=64)
    assert not again.exists() and len(list((tmp_path / "again.npz.partial").glob("*.npy"))) == 3
    resumed = Interrupting(model, 99)
    embed_to_file(resumed, paths, again, chunk=64)
    assert resumed.calls == 7 - 3 and not (tmp_path / "again.npz.partial").exists()
    np.testing.assert_allclose(np.load(again)["embeddings"], z["embeddings"], atol=1e-6)
    npy = tmp_path / "e.npy"
    assert main(["embed", str(orl_dir / "s1"), "--checkpoint", str(run["ckpt"]), "--output", str(npy),
                 "--no-progress"]) == 0
    assert np.load(npy).shape == (10, 32) and len((tmp_path / "e.paths.txt").read_text().splitlines()) == 10


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("mobilefacenet", 112), ("tinyvit_11m", 112)])
def test_onnx_export_matches_pytorch_on_real_faces(name, size, orl_dir, tmp_path, one_thread):
    import torch

    from facerec import models
    from facerec.data.transforms import Preprocess
    from facerec.inference.export import export
    from facerec.inference.facemodel import FaceModel, load_onnx

    torch.manual_seed(0)
    m = FaceModel(models.create(name, input_size=size).eval(), Preprocess(input_size=size), info={"model": name},
                  thresholds={"eer": 0.3})
    faces = [str(orl_dir / f"s{i}" / "1.pgm") for i in range(1, 9)]
    result = export(m, "onnx", tmp_path / "m.onnx", check_images=faces)
    assert result.ok and result.max_abs_diff <= 1e-4 and result.min_cosine >= 0.9999
    onnx_model = load_onnx(tmp_path / "m.onnx")
    assert onnx_model.pre == m.pre and onnx_model.threshold() == 0.3
    np.testing.assert_allclose(onnx_model.embed(faces), m.embed(faces), atol=1e-4)  # dynamic batch: 8, not 2
    if name == "resnet18":
        result = export(m, "torchscript", tmp_path / "m.ts", check_images=faces)
        assert result.ok


def test_export_cli_and_onnx_cli_paths(run, model, tmp_path, capsys):
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(run["ckpt"]), "--output", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"checked on 32 real faces: max \|embedding difference\| \S+ \(limit 0.0001\), min cosine", out)
    pairs = read_pairs(run["val"])
    a, b = str(pairs.root / pairs.path1[0]), str(pairs.root / pairs.path2[0])
    assert main(["verify", a, b, "--onnx", str(onnx_path), "--json"]) in (0, 1)
    got = json.loads(capsys.readouterr().out)
    assert got["score"] == pytest.approx(model.verify(a, b).score, abs=1e-4)
    assert got["threshold"] == pytest.approx(model.threshold())
    assert main(["embed", a, b, "--onnx", str(onnx_path), "--output", str(tmp_path / "o.npz")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["embeddings"], model.embed([a, b]), atol=1e-4)


def test_bad_inputs_give_one_line(run, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = str(read_pairs(run["val"]).root / read_pairs(run["val"]).path1[0])
    cases = [
        (["embed", str(bad), "--checkpoint", str(run["ckpt"]), "--output", str(tmp_path / "x.npz"), "--workers", "0"],
         1, "broken.jpg: cannot decode image"),
        (["verify", good, str(bad), "--checkpoint", str(run["ckpt"])], 2, "broken.jpg: cannot decode image"),
        (["verify", good, good, "--checkpoint", str(run["val"])], 2, "orl_val_pairs.csv: not a readable checkpoint"),
        (["verify", good, good, "--onnx", str(run["val"])], 2, "orl_val_pairs.csv: not a readable ONNX model"),
        (["embed", good, "--checkpoint", str(run["ckpt"]), "--output", str(tmp_path / "x.csv")], 1,
         "x.csv: the output must end in .npz"),
        (["embed", str(tmp_path / "nope.jpg"), "--checkpoint", str(run["ckpt"]), "--output", str(tmp_path / "y.npz")],
         1, "nope.jpg: image not found"),
    ]
    for argv, code, needle in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    with pytest.raises(DataError, match="checkpoint not found"):
        facerec.load(tmp_path / "missing.pt")
    with pytest.raises(DataError, match="uint8"):
        facerec.load(run["ckpt"]).embed(np.zeros((8, 8, 3), np.float32))


def test_train_entry_point_checks_like_the_cli(run, tmp_path):
    cfg = facerec.TrainConfig(train=str(run["work"] / "orl_train.txt"), val=str(run["val"]), model="resnet18",
                              input_size=32, embedding_dim=32, batch_classes=10, epochs=1, max_steps=2, workers=0,
                              run_dir=str(tmp_path / "r"))
    summary = facerec.train(cfg)
    assert summary["epochs"] == 1 and 0 <= summary["best_eer"] <= 100 and (tmp_path / "r" / "best.pt").is_file()
    with pytest.raises(FacerecError, match="epochs must be >= 1"):
        facerec.train(facerec.TrainConfig(epochs=0))
    with pytest.raises(FacerecError, match="epochs"):
        facerec.train(epochs=3.5)


def test_readme_example_runs_as_written(run, tmp_path, data_root_lfw):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use a trained model", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    demo = tmp_path / "runs" / "20990101-000000-resnet18-arcface-demo"
    demo.mkdir(parents=True)
    (demo / "best.pt").symlink_to(run["ckpt"])  # a stand-in for `make demo`'s best.pt (too slow for a test)
    env = {**os.environ, "FACEREC_DATA": str(data_root_lfw)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "SAME" in r.stdout or "DIFFERENT" in r.stdout
