"""MagFace against the official formula by hand (numpy, float64): value with the clamp of the
magnitude, the margin m(a), the regulariser g(a) and its gradient, no state, gradients at cos = +-1,
fp32 under bf16 autocast, refusals, raw (unnormalised) embeddings from the trainer, ORL faces."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from facerec import losses
from facerec.cli import main
from facerec.errors import FacerecError
from facerec.losses.sharded import ShardedClassifier
from tests import test_losses_orl
from tests.test_losses_orl import DIM, IDS, train_on_orl

orl = test_losses_orl.orl  # the ORL faces fixture (10 identities x 10 images, 32 px)
pytestmark = pytest.mark.usefixtures("one_thread")

# 4 embeddings x 4 classes: class rows are the unit axes, so the cosines are the embedding's unit
# vector. Magnitudes below l_a, inside, at the middle, and above u_a; sample 3 has theta_y = 2.9,
# past pi - m(a): the ArcFace fallback cos - m sin(m).
UNIT = np.array([[0.6, 0.8, 0.0, 0.0],      # true class 0 at cos 0.6; class 1 nearer
                 [0.0, 0.36, 0.48, 0.8],    # true class 2 at cos 0.48
                 [0.28, 0.0, 0.96, 0.0],    # true class 2 at cos 0.96
                 [0.0, 0.0, math.sin(2.9), math.cos(2.9)]])  # true class 3 at theta 2.9
NORMS = np.array([5.0, 35.0, 60.0, 200.0])
LABELS = np.array([0, 2, 2, 3])


def make(**kw):
    loss = losses.create("magface", embedding_dim=4, num_classes=4, **kw)
    with torch.no_grad():
        loss.weight.copy_(torch.eye(4) * 2.0)  # any length: the classifier is normalised
    return loss


def by_hand(unit, norms, labels, *, s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0):
    """The official models/magface.py (MagLinear, non-easy margin) and MagLoss, step by step."""
    a = np.clip(norms, l_a, u_a)
    m = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
    cos = np.clip(unit / np.linalg.norm(unit, axis=1, keepdims=True), -1, 1)
    cos_y = cos[np.arange(len(labels)), labels]
    phi = np.cos(np.arccos(cos_y) + m)
    final = np.where(cos_y > np.cos(math.pi - m), phi, cos_y - np.sin(math.pi - m) * m)
    logits = cos.copy()
    logits[np.arange(len(labels)), labels] = final
    logits *= s
    ce = np.mean([np.logaddexp.reduce(row) - row[y] for row, y in zip(logits, labels)])
    g = np.mean(1 / a + a / u_a**2)
    return float(ce + lambda_g * g)


def run(loss, unit=UNIT, norms=NORMS, labels=LABELS):
    return loss(torch.tensor(unit * np.asarray(norms)[:, None], dtype=torch.float32), torch.tensor(labels))


def test_value_margin_and_regulariser_by_hand():
    loss = make()
    assert (loss.scale, loss.l_a, loss.u_a, loss.l_m, loss.u_m, loss.lambda_g) == (64.0, 10.0, 110.0, 0.45, 0.8, 35.0)
    assert run(loss).item() == pytest.approx(by_hand(UNIT, NORMS, LABELS), abs=1e-5)
    a = torch.tensor([10.0, 60.0, 110.0])
    assert loss.margin_of(a).tolist() == pytest.approx([0.45, 0.625, 0.8])  # linear from l_m to u_m
    assert loss.regulariser(a).tolist() == pytest.approx([0.1 + 10 / 110**2, 1 / 60 + 60 / 110**2, 2 / 110])
    assert loss.stats["acc"] == pytest.approx(25.0)  # samples 0, 1 and 3 lie nearer another class
    assert loss.stats["feat_norm"] == pytest.approx(NORMS.mean(), rel=1e-6)  # the raw norm, before the clamp
    other = make(scale=16.0, l_a=1.0, u_a=50.0, l_m=0.2, u_m=0.6, lambda_g=5.0)
    kw = {"s": 16.0, "l_a": 1.0, "u_a": 50.0, "l_m": 0.2, "u_m": 0.6, "lambda_g": 5.0}
    assert run(other).item() == pytest.approx(by_hand(UNIT, NORMS, LABELS, **kw), abs=1e-5)
    assert set(loss.state_dict()) == {"weight"}  # no running state: train and eval agree
    loss.eval()
    assert run(loss).item() == pytest.approx(by_hand(UNIT, NORMS, LABELS), abs=1e-5)


def test_the_magnitude_matters_unlike_arcface():
    # MagFace reads ||f||: the same directions at other magnitudes give another loss; ArcFace does not.
    mag, arc = make(), losses.create("arcface", embedding_dim=4, num_classes=4)
    arc.weight.data.copy_(mag.weight.data)
    assert run(mag, norms=NORMS).item() != pytest.approx(run(mag, norms=NORMS * 0 + 40.0).item(), abs=1e-3)
    assert run(arc, norms=NORMS).item() == pytest.approx(run(arc, norms=NORMS * 0 + 40.0).item(), rel=1e-5)


def test_gradient_along_the_magnitude_by_hand():
    # e = r * u with r inside [l_a, u_a]: dL/dr comes from m(a) and g(a), as the official code lets it.
    loss = make()
    for r0 in (30.0, 80.0):
        r = torch.tensor(r0, dtype=torch.float64, requires_grad=True)
        e = (torch.tensor(UNIT[:3]) * r).float()
        loss(e, torch.tensor(LABELS[:3])).backward()
        h = 1e-3
        numeric = (by_hand(UNIT[:3], np.full(3, r0 + h), LABELS[:3]) - by_hand(UNIT[:3], np.full(3, r0 - h), LABELS[:3]))
        assert r.grad.item() == pytest.approx(numeric / (2 * h), rel=1e-3, abs=1e-6)
    # outside [l_a, u_a] the magnitude is clamped: no gradient along it (the official behaviour)
    r = torch.tensor(5.0, requires_grad=True)
    loss(torch.tensor(UNIT[:3], dtype=torch.float32) * r, torch.tensor(LABELS[:3])).backward()
    assert abs(r.grad.item()) < 1e-6


def test_gradients_finite_at_cos_plus_minus_one():
    loss = make()
    e = torch.tensor([[50.0, 0.0, 0.0, 0.0], [0.0, -20.0, 0.0, 0.0], [0.0, 0.0, 3.0, 4.0]], requires_grad=True)
    y = torch.tensor([0, 1, 2])  # cos_y = 1, -1, 0.6
    v = loss(e, y)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(e.grad).all() and torch.isfinite(loss.weight.grad).all()
    assert e.grad[0].abs().sum() > 0  # the magnitude still gets g's gradient at cos = 1


def test_logits_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    loss = losses.create("magface", embedding_dim=16, num_classes=5)
    e = (torch.randn(10, 16) * 15).requires_grad_()  # magnitudes around 60
    y = torch.arange(5).repeat(2)
    exact = loss(e, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = loss(e, y)
    assert v.dtype == torch.float32 and v.item() == pytest.approx(exact, rel=1e-5)
    v.backward()
    assert torch.isfinite(e.grad).all()


@pytest.mark.parametrize("kw,key,allowed", [
    ({"l_a": 0.0}, "l_a", "> 0"), ({"u_a": 10.0}, "u_a", r"> l_a \(10.0\)"), ({"l_a": 50.0, "u_a": 20.0}, "u_a", "> l_a"),
    ({"l_m": -0.1}, "l_m", r"\[0, pi/2\)"), ({"u_m": 0.3}, "u_m", r"\[l_m \(0.45\), pi/2\)"),
    ({"u_m": 1.6}, "u_m", r"pi/2\)"), ({"lambda_g": -1.0}, "lambda_g", ">= 0"), ({"scale": 0.0}, "scale", "> 0"),
    ({"u_a": float("inf")}, "u_a", "> l_a"),
])
def test_invalid_hyperparameters_are_refused(kw, key, allowed):
    with pytest.raises(FacerecError, match=f"^magface {key} must be .*{allowed}.*, got ") as info:
        losses.create("magface", embedding_dim=4, num_classes=3, **kw)
    assert "\n" not in str(info.value)


def test_registry_describe_and_no_sharding():
    loss = losses.create("magface", embedding_dim=4, num_classes=3, lambda_g=20.0)
    d = losses.describe(loss)
    assert d == {"name": "magface", "embedding_dim": 4, "num_classes": 3, "scale": 64.0, "l_a": 10.0, "u_a": 110.0,
                 "l_m": 0.45, "u_m": 0.8, "lambda_g": 20.0}
    assert losses.describe(losses.create(**d)) == d
    assert (loss.min_per_class, loss.num_classes) == (1, 3)
    with pytest.raises(FacerecError, match=r"does not accept 'margin'.*accepted: .*l_m, u_m, lambda_g"):
        losses.create("magface", embedding_dim=4, num_classes=3, margin=0.5)
    with pytest.raises(FacerecError, match="--sharded-classifier needs a margin classifier"):
        ShardedClassifier.split(loss, 0, 2, 2)  # the margin reads the feature norm


def test_trains_on_orl(orl):
    x, y = orl
    torch.manual_seed(0)
    loss = losses.create("magface", embedding_dim=DIM, num_classes=IDS)
    norms = []
    # tiny_net's 32-d output has norm ~1; x 20 puts it inside [l_a, u_a] = [10, 110] (as a
    # 512-d BN head's output is), so the adaptive margin and g(a) take part in training.
    history = train_on_orl(x, y, loss, "magface", scale=20.0, each_step=lambda lo: norms.append(lo.stats["feat_norm"]))
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < first, f"magface: loss went from {first:.4f} to {last:.4f}"
    assert 10 < np.mean(norms[:5]) < 110 and all(np.isfinite(norms))


def test_facerec_train_feeds_magface_raw_embeddings(tmp_path, orl_dir):
    lists = tmp_path / "lists"
    assert main(["lists", "orl", "--data-root", str(orl_dir.parent), "--out", str(lists)]) == 0
    assert main(["train", "--loss", "magface", "--loss-opt", "lambda_g=20", "--model", "resnet18_w050",
                 "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10", "--per-class", "2",
                 "--epochs", "1", "--max-steps", "2", "--workers", "0", "--train", str(lists / "orl_train.txt"),
                 "--val", str(lists / "orl_val_pairs.csv"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["loss"]["name"] == "magface" and ckpt["loss"]["kwargs"] == {"lambda_g": 20}
    with open(run_dir / "metrics.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert abs(float(row["train_feat_norm"]) - 1.0) > 0.5  # the loss saw ||f||, not unit vectors
