"""CurricularFace against the official formula by hand (numpy, float64): value, the EMA of t, eval
mode, the fallback past pi, gradients at cos = +-1, fp32 under bf16 autocast, refusals, ORL faces."""

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
# vector (exact decimals). With m = 0.5, cos(theta_y + m) is 0.1430 at cos_y 0.6, 0.4144 at cos_y 0.8.
UNIT = np.array([[0.6, 0.64, 0.48, 0.0],   # true class 0 at 0.6: classes 1 (nearer) and 2 hard, 3 not
                 [0.36, 0.8, 0.48, 0.0],   # true class 1 at 0.8: class 2 hard, class 0 (0.36) not
                 [0.0, 0.0, 0.6, 0.8]])    # true class 3 at 0.8: class 2 hard, classes 0 and 1 (0.0) not
NORMS = np.array([2.0, 7.0, 0.5])
LABELS = np.array([0, 1, 3])


def make(**kw):
    loss = losses.create("curricularface", embedding_dim=4, num_classes=4, **kw)
    with torch.no_grad():
        loss.weight.copy_(torch.eye(4) * 0.1)  # any length: the classifier is normalised
    return loss


def run(loss, unit=UNIT, labels=LABELS):
    return loss(torch.tensor(unit * NORMS[: len(unit), None], dtype=torch.float32), torch.tensor(labels))


def by_hand(unit, labels, t, *, s=64.0, m=0.5, train=True, curriculum=True):
    """The official head/metrics.py, step by step: (loss, t after the call)."""
    cos = np.clip(unit / np.linalg.norm(unit, axis=1, keepdims=True), -1, 1)
    cos_y = cos[np.arange(len(labels)), labels]
    cos_ym = np.cos(np.arccos(cos_y) + m)  # cos(theta_y + m)
    final = np.where(cos_y > math.cos(math.pi - m), cos_ym, cos_y - math.sin(math.pi - m) * m)
    if train:
        t = 0.01 * cos_y.mean() + 0.99 * t  # before it is used
    logits = cos.copy()
    hard = cos > cos_ym[:, None]
    if curriculum:
        logits[hard] = cos[hard] * (t + cos[hard])
    logits[np.arange(len(labels)), labels] = final
    logits *= s
    ce = [np.logaddexp.reduce(row) - row[y] for row, y in zip(logits, labels)]
    return float(np.mean(ce)), t


def test_value_and_t_by_hand():
    loss = make()
    assert (loss.scale, loss.margin, loss.t.item()) == (64.0, 0.5, 0.0)
    expected, t1 = by_hand(UNIT, LABELS, 0.0)
    assert run(loss).item() == pytest.approx(expected, abs=1e-5)
    assert loss.t.item() == pytest.approx(0.01 * (0.6 + 0.8 + 0.8) / 3, abs=1e-7) == pytest.approx(t1)
    assert loss.stats["acc"] == pytest.approx(200 / 3)  # sample 0 lies nearer class 1
    assert loss.stats["t"] == pytest.approx(t1, rel=1e-5)
    # the modulation matters: plain ArcFace on the same cosines gives another loss
    assert abs(expected - by_hand(UNIT, LABELS, 0.0, curriculum=False)[0]) > 0.1
    # a second step: t = 0.01 * mean + 0.99 * t, from the stored t
    expected2, t2 = by_hand(UNIT[:2], LABELS[:2], t1)
    assert run(loss, UNIT[:2], LABELS[:2]).item() == pytest.approx(expected2, abs=1e-5)
    assert loss.t.item() == pytest.approx(0.01 * 0.7 + 0.99 * t1, abs=1e-7)
    assert set(loss.state_dict()) == {"weight", "t"}  # t is checkpointed
    fresh = make()
    fresh.load_state_dict(loss.state_dict())
    assert fresh.t.item() == pytest.approx(t2)


def test_eval_mode_keeps_t():
    loss = make()
    loss.t.fill_(0.3)
    loss.eval()
    expected, _ = by_hand(UNIT, LABELS, 0.3, train=False)
    for _ in range(2):
        assert run(loss).item() == pytest.approx(expected, abs=1e-5)
    assert loss.t.item() == pytest.approx(0.3)


def test_fallback_past_pi_and_other_scale():
    # theta_y = 2.9 > pi - m: the true logit continues as cos - m sin(m); every other class is hard
    unit = np.array([[math.cos(2.9), math.sin(2.9), 0.0, 0.0], [0.0, 0.6, 0.0, 0.8]])
    labels = np.array([0, 3])
    loss = make(scale=16.0, margin=0.3)
    loss.t.fill_(0.2)
    expected, t = by_hand(unit, labels, 0.2, s=16.0, m=0.3)
    assert run(loss, unit, labels).item() == pytest.approx(expected, abs=1e-5)
    assert loss.t.item() == pytest.approx(t)


def test_gradients_finite_at_cos_plus_minus_one():
    loss = make()
    e = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, -2.0, 0.0, 0.0], [0.3, 0.0, 0.4, 0.0]], requires_grad=True)
    y = torch.tensor([0, 1, 2])  # cos_y = 1, -1, 0.8
    v = loss(e, y)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(e.grad).all() and torch.isfinite(loss.weight.grad).all()
    assert e.grad[2].abs().sum() > 0


def test_logits_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    base = losses.create("curricularface", embedding_dim=16, num_classes=5)
    e = (torch.randn(10, 16) * 1e3).requires_grad_()
    y = torch.arange(5).repeat(2)
    exact = copy.deepcopy(base)(e, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = copy.deepcopy(base)
        v = low(e, y)
    assert v.dtype == torch.float32 and v.item() == pytest.approx(exact, rel=1e-5)
    assert low.t.dtype == torch.float32
    v.backward()
    assert torch.isfinite(e.grad).all()


@pytest.mark.parametrize("key,value,allowed", [
    ("margin", -0.1, r"\[0, pi/2\)"), ("margin", 1.6, r"\[0, pi/2\)"), ("scale", 0.0, "> 0"),
    ("scale", -64.0, "> 0"), ("margin", "0.5", r"\[0, pi/2\)"),
])
def test_invalid_hyperparameters_are_refused(key, value, allowed):
    with pytest.raises(FacerecError, match=f"^curricularface {key} must be .*{allowed}.*, got ") as info:
        losses.create("curricularface", embedding_dim=4, num_classes=3, **{key: value})
    assert "\n" not in str(info.value)


def test_registry_describe_and_no_sharding():
    loss = losses.create("curricularface", embedding_dim=4, num_classes=3)
    d = losses.describe(loss)
    assert d == {"name": "curricularface", "embedding_dim": 4, "num_classes": 3, "scale": 64.0, "margin": 0.5}
    assert losses.describe(losses.create(**d)) == d
    assert (loss.min_per_class, loss.num_classes) == (1, 3)
    with pytest.raises(FacerecError, match=r"does not accept 't'"):
        losses.create("curricularface", embedding_dim=4, num_classes=3, t=0.1)
    with pytest.raises(FacerecError, match="--sharded-classifier needs a margin classifier"):
        ShardedClassifier.split(loss, 0, 2, 2)  # hard negatives need every class's cosine


def test_trains_on_orl(orl):
    x, y = orl
    torch.manual_seed(0)
    loss = losses.create("curricularface", embedding_dim=DIM, num_classes=IDS)
    history = train_on_orl(x, y, loss, "curricularface")
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < first, f"curricularface: loss went from {first:.4f} to {last:.4f}"
    assert loss.t.item() != 0.0


def test_facerec_train_accepts_curricularface(tmp_path, orl_dir):
    lists = tmp_path / "lists"
    assert main(["lists", "orl", "--data-root", str(orl_dir.parent), "--out", str(lists)]) == 0
    assert main(["train", "--loss", "curricularface", "--scale", "32", "--margin", "0.3", "--model", "resnet18_w050",
                 "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10", "--per-class", "2",
                 "--epochs", "1", "--max-steps", "2", "--workers", "0", "--train", str(lists / "orl_train.txt"),
                 "--val", str(lists / "orl_val_pairs.csv"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["loss"]["name"] == "curricularface" and ckpt["loss"]["kwargs"] == {"scale": 32, "margin": 0.3}
    assert ckpt["loss"]["state_dict"]["t"].item() != 0.0  # trained t, checkpointed
