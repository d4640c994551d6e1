"""AdaFace against the official formula by hand (numpy, float64): value, EMA buffers, eval mode,
clipping, gradients at cos = +-1, fp32 under bf16 autocast, refusals, training on ORL faces."""

from __future__ import annotations

import copy
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

# 3 embeddings x 4 classes: class rows are the unit axes, so the cosines are the embedding's unit
# vector (3-4-5 triangles: exact decimals), and the norms are set apart (the margin adapts to them).
UNIT = np.array([[0.6, 0.8, 0.0, 0.0],    # true class 0 at cos 0.6; class 1 nearer (0.8)
                 [0.0, 0.36, 0.48, 0.8],  # true class 2 at cos 0.48; class 3 nearer (0.8)
                 [0.28, 0.0, 0.96, 0.0]])  # true class 2 at cos 0.96
NORMS = np.array([5.0, 25.0, 60.0])
LABELS = np.array([0, 2, 2])


def make(**kw):
    loss = losses.create("adaface", embedding_dim=4, num_classes=4, **kw)
    with torch.no_grad():
        loss.weight.copy_(torch.eye(4) * 3.0)  # any length: the classifier is normalised
    return loss


def run(loss, unit=UNIT, norms=NORMS, labels=LABELS):
    e = torch.tensor(unit * norms[:, None], dtype=torch.float32)
    return loss(e, torch.tensor(labels))


def by_hand(unit, norms, labels, mean, std, *, s=64.0, m=0.4, h=0.333, t_alpha=0.01, eps=1e-3, train=True):
    """The official head.py, step by step: (loss, batch_mean, batch_std) after the call."""
    safe = np.clip(norms, 0.001, 100.0)
    if train:  # the EMA moves before it is used; a batch of one has no std and keeps the old one
        mean = safe.mean() * t_alpha + (1 - t_alpha) * mean
        if len(safe) > 1:
            std = safe.std(ddof=1) * t_alpha + (1 - t_alpha) * std
    scaler = np.clip((safe - mean) / (std + eps) * h, -1, 1)
    cos = np.clip(unit / np.linalg.norm(unit, axis=1, keepdims=True), -1 + eps, 1 - eps)
    logits = cos.copy()
    for i, y in enumerate(labels):
        theta = np.clip(math.acos(cos[i, y]) + (-m * scaler[i]), eps, math.pi - eps)  # g_angular
        logits[i, y] = math.cos(theta) - (m + m * scaler[i])  # g_additive
    logits *= s
    ce = [np.logaddexp.reduce(row) - row[y] for row, y in zip(logits, labels)]
    return float(np.mean(ce)), mean, std


def test_defaults_value_and_ema_by_hand():
    loss = make()
    assert (loss.scale, loss.margin, loss.h, loss.t_alpha, loss.eps) == (64.0, 0.4, 0.333, 0.01, 1e-3)
    assert (loss.batch_mean.item(), loss.batch_std.item()) == (20.0, 100.0)  # the official start
    expected, mean, std = by_hand(UNIT, NORMS, LABELS, 20.0, 100.0)
    assert run(loss).item() == pytest.approx(expected, abs=1e-5)
    # mean 30, unbiased std 27.839: one EMA step from (20, 100)
    assert loss.batch_mean.item() == pytest.approx(0.01 * 30 + 0.99 * 20, abs=1e-5) == pytest.approx(mean)
    assert loss.batch_std.item() == pytest.approx(0.01 * np.std(NORMS, ddof=1) + 0.99 * 100, abs=1e-5)
    assert loss.batch_std.item() == pytest.approx(std)
    assert loss.stats["acc"] == pytest.approx(100 / 3)  # samples 0 and 1 lie nearer another class
    assert loss.stats["feat_norm"] == pytest.approx(30.0, rel=1e-6)
    # a second step continues the EMA from the stored values
    expected2, mean2, std2 = by_hand(UNIT, NORMS * 2, LABELS, mean, std)
    assert run(loss, norms=NORMS * 2).item() == pytest.approx(expected2, abs=1e-5)
    assert (loss.batch_mean.item(), loss.batch_std.item()) == (pytest.approx(mean2), pytest.approx(std2))
    # buffers: saved in checkpoints, restored by load_state_dict
    state = loss.state_dict()
    assert set(state) == {"weight", "batch_mean", "batch_std"}
    fresh = make()
    fresh.load_state_dict(state)
    assert fresh.batch_mean.item() == pytest.approx(mean2)


def test_eval_mode_uses_the_stored_statistics_and_keeps_them():
    loss = make()
    loss.batch_mean.fill_(28.0)
    loss.batch_std.fill_(12.0)
    loss.eval()
    expected, _, _ = by_hand(UNIT, NORMS, LABELS, 28.0, 12.0, train=False)
    for _ in range(2):
        assert run(loss).item() == pytest.approx(expected, abs=1e-5)
    assert (loss.batch_mean.item(), loss.batch_std.item()) == (28.0, 12.0)
    loss.train()
    run(loss)
    assert loss.batch_mean.item() != 28.0


def test_clipping_of_scaler_theta_and_norms():
    # t_alpha = 1: this batch's statistics only; h = 3 sends the outer samples to scaler -1 and +1;
    # the sample with cos_y = 1 and the largest norm (clipped to 100) has theta - m < eps: clipped to eps.
    unit = np.array([[0.6, 0.8, 0.0, 0.0], [0.0, 0.36, 0.48, 0.8], [0.0, 0.0, 1.0, 0.0], [0.8, 0.0, 0.0, 0.6]])
    norms = np.array([0.0001, 25.0, 400.0, 30.0])
    labels = np.array([0, 2, 2, 3])
    loss = make(h=3.0, t_alpha=1.0, margin=0.5, scale=16.0)
    expected, mean, std = by_hand(unit, norms, labels, 20.0, 100.0, s=16.0, m=0.5, h=3.0, t_alpha=1.0)
    assert run(loss, unit, norms, labels).item() == pytest.approx(expected, abs=1e-5)
    safe = np.clip(norms, 0.001, 100)
    assert loss.batch_mean.item() == pytest.approx(safe.mean(), rel=1e-6)
    assert loss.batch_std.item() == pytest.approx(safe.std(ddof=1), rel=1e-6)
    scaler = (safe - mean) / (std + 1e-3) * 3.0
    assert scaler[0] < -1 and scaler[2] > 1  # both ends of the clip are exercised
    assert math.acos(1 - 1e-3) - 0.5 * 1 < 1e-3  # sample 2: theta - m * scaler is clipped up to eps


def test_batch_of_one_updates_the_mean_only():
    loss = make()
    v = run(loss, UNIT[:1], NORMS[:1], LABELS[:1])
    assert torch.isfinite(v)
    assert loss.batch_mean.item() == pytest.approx(0.01 * 5 + 0.99 * 20)
    assert loss.batch_std.item() == 100.0
    expected, _, _ = by_hand(UNIT[:1], NORMS[:1], LABELS[:1], 20.0, 100.0)
    assert v.item() == pytest.approx(expected, abs=1e-5)


def test_gradients_finite_at_cos_plus_minus_one():
    loss = make()
    e = torch.tensor([[7.0, 0.0, 0.0, 0.0], [0.0, -3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 40.0]], requires_grad=True)
    y = torch.tensor([0, 1, 3])  # cos_y = 1, -1, 1
    v = loss(e, y)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(e.grad).all() and torch.isfinite(loss.weight.grad).all()
    # away from the clamp the margin does shape the gradient (it is not a constant shift)
    e2 = torch.tensor(UNIT * NORMS[:, None], dtype=torch.float32, requires_grad=True)
    make()(e2, torch.tensor(LABELS)).backward()
    assert torch.isfinite(e2.grad).all() and e2.grad.abs().sum() > 0


def test_logits_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    base = losses.create("adaface", embedding_dim=16, num_classes=5)
    e = (torch.randn(10, 16) * 30).requires_grad_()
    y = torch.arange(5).repeat(2)
    exact = copy.deepcopy(base)(e, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = copy.deepcopy(base)
        v = low(e, y)
    assert v.dtype == torch.float32 and v.item() == pytest.approx(exact, rel=1e-5)
    assert low.batch_mean.dtype == torch.float32
    v.backward()
    assert torch.isfinite(e.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 embeddings in, fp32 loss out
        v16 = copy.deepcopy(base)(e.detach().bfloat16(), y)
    assert v16.dtype == torch.float32 and torch.isfinite(v16)


@pytest.mark.parametrize("key,value,allowed", [
    ("margin", -0.1, r"in \[0, 1\)"), ("margin", 1.0, r"in \[0, 1\)"), ("h", -0.5, ">= 0"),
    ("t_alpha", 0.0, r"in \(0, 1\]"), ("t_alpha", 1.5, r"in \(0, 1\]"), ("eps", 0.0, r"in \(0, 0.1\]"),
    ("scale", 0.0, "> 0"), ("scale", float("nan"), "> 0"), ("h", "big", ">= 0"),
])
def test_invalid_hyperparameters_are_refused(key, value, allowed):
    with pytest.raises(FacerecError, match=f"^adaface {key} must be .*{allowed}.*, got ") as info:
        losses.create("adaface", embedding_dim=4, num_classes=3, **{key: value})
    assert "\n" not in str(info.value)


def test_registry_describe_and_no_sharding():
    loss = losses.create("adaface", embedding_dim=4, num_classes=3, margin=0.3)
    d = losses.describe(loss)
    assert d == {"name": "adaface", "embedding_dim": 4, "num_classes": 3, "scale": 64.0, "margin": 0.3,
                 "h": 0.333, "t_alpha": 0.01, "eps": 1e-3}
    assert losses.describe(losses.create(**d)) == d
    with pytest.raises(FacerecError, match=r"does not accept 'm'.*accepted: .*margin, h, t_alpha, eps"):
        losses.create("adaface", embedding_dim=4, num_classes=3, m=0.4)
    assert (loss.min_per_class, loss.num_classes) == (1, 3)
    with pytest.raises(FacerecError, match="--sharded-classifier needs a margin classifier"):
        ShardedClassifier.split(loss, 0, 2, 2)  # the margin reads the whole batch's norms: not split by class
    combo = losses.create("adaface+triplet", embedding_dim=4, num_classes=3, **{"adaface.h": 0.5})
    assert combo.parts["adaface"].h == 0.5


def test_trains_on_orl(orl):
    x, y = orl
    torch.manual_seed(0)
    loss = losses.create("adaface", embedding_dim=DIM, num_classes=IDS)
    history = train_on_orl(x, y, loss, "adaface")
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < first, f"adaface: loss went from {first:.4f} to {last:.4f}"
    assert loss.batch_mean.item() != 20.0 and loss.batch_std.item() < 100.0  # the EMA followed the batches


def test_facerec_train_accepts_adaface(tmp_path, orl_dir):
    lists = tmp_path / "lists"
    assert main(["lists", "orl", "--data-root", str(orl_dir.parent), "--out", str(lists)]) == 0
    assert main(["train", "--loss", "adaface", "--margin", "0.3", "--loss-opt", "h=0.5", "--model", "resnet18_w050",
                 "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10", "--per-class", "2",
                 "--epochs", "1", "--max-steps", "2", "--workers", "0", "--train", str(lists / "orl_train.txt"),
                 "--val", str(lists / "orl_val_pairs.csv"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["loss"]["name"] == "adaface" and ckpt["loss"]["kwargs"] == {"margin": 0.3, "h": 0.5}
    state = ckpt["loss"]["state_dict"]
    assert state["batch_mean"].item() != 20.0 and state["batch_std"].item() != 100.0  # trained EMA, checkpointed
