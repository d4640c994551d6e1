"""Losses against hand computation; gradients; declarations; autocast stability; clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerec import losses
from facerec.errors import FacerecError


def two_class(loss, a: float, b: float, emb=(3.0, 0.0)):
    """One embedding (at angle 0 by default), class rows at angles a and b, true class 0."""
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[math.cos(a), math.sin(a)], [math.cos(b), math.sin(b)]]))
    return loss(torch.tensor([emb]), torch.tensor([0]))


def ce(l0: float, l1: float) -> float:
    return -l0 + math.log(math.exp(l0) + math.exp(l1))


def test_arcface_value_and_fallback_by_hand():
    loss = losses.create("arcface", embedding_dim=2, num_classes=2)  # literature defaults s=64, m=0.5
    assert (loss.scale, loss.margin) == (64.0, 0.5)
    # theta_y = 0.6: the margin is added to the angle
    # s = 64 makes these losses small; fp32 holds them to ~1e-5 relative
    assert two_class(loss, 0.6, 1.2).item() == pytest.approx(ce(64 * math.cos(1.1), 64 * math.cos(1.2)), rel=1e-4)
    # theta_y = 2.9 > pi - m: insightface continues with cos(theta) - m * sin(m)
    got = two_class(loss, 2.9, 1.2).item()
    assert got == pytest.approx(ce(64 * (math.cos(2.9) - 0.5 * math.sin(0.5)), 64 * math.cos(1.2)), rel=1e-5)
    assert loss.stats["acc"] == 0.0  # class 1 (1.2 rad) is nearer than class 0 (2.9 rad)
    easy = losses.create("arcface", embedding_dim=2, num_classes=2, scale=10.0, easy_margin=True)
    assert two_class(easy, 2.0, 1.2).item() == pytest.approx(ce(10 * math.cos(2.0), 10 * math.cos(1.2)), rel=1e-5)
    assert two_class(easy, 0.4, 1.2).item() == pytest.approx(ce(10 * math.cos(0.9), 10 * math.cos(1.2)), rel=1e-5)
    assert losses.create("aamsoftmax", embedding_dim=2, num_classes=2).name == "arcface"


def test_cosface_and_softmax_by_hand():
    loss = losses.create("cosface", embedding_dim=2, num_classes=2)
    assert (loss.scale, loss.margin) == (64.0, 0.35)
    assert two_class(loss, 0.6, 1.2).item() == pytest.approx(ce(64 * (math.cos(0.6) - 0.35), 64 * math.cos(1.2)),
                                                             rel=1e-4)
    assert losses.create("amsoftmax", embedding_dim=2, num_classes=2).name == "cosface"
    sm = losses.create("softmax", embedding_dim=2, num_classes=2)
    l0, l1 = 3 * math.cos(0.6), 3 * math.cos(1.2)  # raw logits e . w (bias starts at 0)
    assert two_class(sm, 0.6, 1.2).item() == pytest.approx(ce(l0, l1), rel=1e-5)
    assert sm.stats["acc"] == 100.0
    smooth = losses.create("softmax", embedding_dim=2, num_classes=2, label_smoothing=0.2)
    logp = np.array([l0, l1]) - np.logaddexp(l0, l1)
    expected = -(0.9 * logp[0] + 0.1 * logp[1])  # target mass 1 - 0.2 + 0.2 / 2 on the true class
    assert two_class(smooth, 0.6, 1.2).item() == pytest.approx(expected, rel=1e-5)


def test_subcenter_takes_the_nearest_subcentre():
    assert losses.create("subcenter_arcface", embedding_dim=8, num_classes=5).weight.shape == (15, 8)  # k = 3
    loss = losses.create("subcenter_arcface", embedding_dim=2, num_classes=2, subcenters=2, scale=10.0, margin=0.2)
    with torch.no_grad():  # class 0: rows 0, 1 (angles 2.0 and 0.3); class 1: rows 2, 3 (1.0, 2.5)
        loss.weight.copy_(torch.tensor([[math.cos(t), math.sin(t)] for t in (2.0, 0.3, 1.0, 2.5)]))
    got = loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).item()
    assert got == pytest.approx(ce(10 * math.cos(0.3 + 0.2), 10 * math.cos(1.0)), rel=1e-5)


def test_arcface_gradient_flows_through_the_margin():
    # Embedding at angle phi, class rows at 0 and 1.2: L(phi) = ce(s cos(|phi| + m), s cos(1.2 - phi)).
    s, m, phi = 8.0, 0.5, 0.3
    loss = losses.create("arcface", embedding_dim=2, num_classes=2, scale=s, margin=m)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0], [math.cos(1.2), math.sin(1.2)]]))
    ang = torch.tensor(phi, requires_grad=True)
    loss(torch.stack([torch.cos(ang), torch.sin(ang)])[None], torch.tensor([0])).backward()

    def by_hand(p, margin):
        return ce(s * math.cos(p + margin), s * math.cos(1.2 - p))

    h = 1e-4
    assert ang.grad.item() == pytest.approx((by_hand(phi + h, m) - by_hand(phi - h, m)) / (2 * h), rel=1e-3)
    plain = (by_hand(phi + h, 0.0) - by_hand(phi - h, 0.0)) / (2 * h)
    assert abs(ang.grad.item() - plain) > 0.1  # the margin changes the gradient, not only the value


def test_arcface_margin_changes_the_embedding_gradient():
    torch.manual_seed(0)
    e = torch.randn(4, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    arc = losses.create("arcface", embedding_dim=8, num_classes=3, scale=16.0, margin=0.5)
    plain = losses.create("cosface", embedding_dim=8, num_classes=3, scale=16.0, margin=0.0)
    plain.weight.data.copy_(arc.weight.data)
    (g1,) = torch.autograd.grad(arc(e, y), e)
    (g2,) = torch.autograd.grad(plain(e, y), e)
    assert torch.isfinite(g1).all() and not torch.allclose(g1, g2)
    arc(e, y).backward()
    assert arc.weight.grad.abs().sum() > 0
    # cos = 1 exactly (embedding on its class row): the clamped sqrt keeps the gradient finite
    with torch.no_grad():
        arc.weight[0] = e[0]
    (g,) = torch.autograd.grad(arc(e[:1], y[:1]), e)
    assert torch.isfinite(g).all()


def unit(deg):
    a = np.radians(deg)
    return torch.tensor(np.c_[np.cos(a), np.sin(a)], dtype=torch.float32)


def sq(a, b):
    return 2 - 2 * math.cos(math.radians(a - b))  # squared distance of unit vectors at angles a, b (deg)


def test_triplet_batch_hard_by_hand():
    ang = [0, 60, 20, 170]  # class 0: 0, 60 deg; class 1: 20, 170 deg
    y = torch.tensor([0, 0, 1, 1])
    loss = losses.create("triplet", embedding_dim=2, num_classes=2, margin=0.2, mining="batch_hard")
    d = lambda i, j: sq(ang[i], ang[j])  # noqa: E731
    per = [max(0, d(0, 1) - d(0, 2) + 0.2),  # anchor 0: positive 1, nearest negative 2 (20 deg away)
           max(0, d(1, 0) - d(1, 2) + 0.2),  # anchor 1: nearest negative 2 (40 deg)
           max(0, d(2, 3) - d(2, 0) + 0.2),  # anchor 2: positive 3, nearest negative 0
           max(0, d(3, 2) - d(3, 1) + 0.2)]  # anchor 3: nearest negative 1 (110 deg vs 170)
    assert loss(unit(ang) * 5, y).item() == pytest.approx(np.mean(per), rel=1e-5)  # scale-free: normalised
    assert loss.stats["active_triplets"] == pytest.approx(100 * np.mean([v > 0 for v in per]))
    assert loss.stats["mean_pos_dist"] == pytest.approx(np.mean([math.sqrt(d(0, 1))] * 2 + [math.sqrt(d(2, 3))] * 2),
                                                        rel=1e-5)
    assert loss.stats["mean_neg_dist"] == pytest.approx(
        np.mean([math.sqrt(d(0, 2)), math.sqrt(d(1, 2)), math.sqrt(d(2, 0)), math.sqrt(d(3, 1))]), rel=1e-5)


def test_triplet_hard_rank_one_by_hand():
    ang = [0, 10, 30, 100, 200, 210]  # classes 0 0 1 1 2 2; K = 2 fixes every positive
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = losses.create("triplet", embedding_dim=2, num_classes=3, margin=0.3, mining="hard", hard_rank=1,
                         hard_prob=1.0)
    nearest_neg = {0: 2, 1: 2, 2: 1, 3: 1, 4: 3, 5: 3}
    pos = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4}
    expected = np.mean([max(0, sq(ang[i], ang[pos[i]]) - sq(ang[i], ang[nearest_neg[i]]) + 0.3) for i in range(6)])
    assert loss(unit(ang), y).item() == pytest.approx(expected, rel=1e-5)


def test_triplet_needs_two_images_per_identity():
    loss = losses.create("triplet", embedding_dim=2, num_classes=4)
    with pytest.raises(FacerecError, match=r"per_class \(K\) >= 2"):
        loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(FacerecError, match=r"loss triplet needs at least 2 images per identity.*K\) is 1"):
        losses.check_per_class(loss, 1)
    losses.check_per_class(loss, 2)
    losses.check_per_class(losses.create("softmax", embedding_dim=2, num_classes=4), 1)
    with pytest.raises(FacerecError, match="softmax\\+triplet needs at least 2"):
        losses.check_per_class(losses.create("softmax+triplet", embedding_dim=2, num_classes=4), 1)
    # a batch of one identity has no negative: zero loss, training goes on
    e = torch.randn(4, 2, requires_grad=True)
    v = loss(e, torch.tensor([1, 1, 1, 1]))
    v.backward()
    assert v.item() == 0.0 and loss.stats["active_triplets"] == 0.0


def test_declarations():
    make = lambda name, **kw: losses.create(name, embedding_dim=4, num_classes=3, **kw)  # noqa: E731
    table = {"softmax": (1, 3), "cosface": (1, 3), "arcface": (1, 3), "subcenter_arcface": (1, 3),
             "triplet": (2, None), "softmax+triplet": (2, 3), "arcface+triplet": (2, 3), "softmax+arcface": (1, 3)}
    for name, (k, n) in table.items():
        loss = make(name)
        assert (loss.min_per_class, loss.num_classes) == (k, n), name
    for name in ("softmax", "cosface", "arcface"):
        w = make(name).weight
        assert isinstance(w, torch.nn.Parameter) and w.shape == (3, 4)
    combo = make("arcface+triplet")
    assert combo.weight is combo.parts["arcface"].weight
    assert not hasattr(make("softmax+arcface"), "weight")  # two classifiers: no single weight
    assert sum(p.numel() for p in make("triplet").parameters()) == 0


def test_check_num_classes():
    with pytest.raises(FacerecError, match="loss arcface was built for 3 classes but the data has 5"):
        losses.check_num_classes(losses.create("arcface", embedding_dim=4, num_classes=3), 5)
    with pytest.raises(FacerecError, match="loss softmax\\+triplet was built for 3 classes but the data has 2"):
        losses.check_num_classes(losses.create("softmax+triplet", embedding_dim=4, num_classes=3), 2)
    losses.check_num_classes(losses.create("arcface", embedding_dim=4, num_classes=3), 3)
    losses.check_num_classes(losses.create("triplet", embedding_dim=4, num_classes=3), 99)  # no classifier


def test_describe_gives_every_hyperparameter_and_round_trips():
    d = losses.describe(losses.create("aamsoftmax", embedding_dim=4, num_classes=3, margin=0.4))
    assert d == {"name": "arcface", "embedding_dim": 4, "num_classes": 3, "scale": 64.0, "margin": 0.4,
                 "easy_margin": False}
    combo = losses.create("softmax+triplet", embedding_dim=4, num_classes=3, weights=(0.7, 0.3),
                          **{"softmax.label_smoothing": 0.1, "triplet.margin": 0.3})
    d = losses.describe(combo)
    assert d["name"] == "softmax+triplet" and d["weights"] == [0.7, 0.3]
    assert d["triplet.margin"] == 0.3 and d["triplet.mining"] == "hard" and d["softmax.label_smoothing"] == 0.1
    again = losses.create(**d)
    assert losses.describe(again) == d


def test_combined_keeps_namespaced_options_and_reports_parts():
    loss = losses.create("softmax+triplet", embedding_dim=4, num_classes=3, weights=(0.7, 0.3),
                         **{"softmax.label_smoothing": 0.1, "triplet.margin": 0.3})
    assert loss.parts["triplet"].margin == 0.3 and loss.parts["softmax"].label_smoothing == 0.1
    assert loss.weight.shape == (3, 4)
    torch.manual_seed(0)
    e, y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    total = loss(e, y)
    st = loss.stats
    assert total.item() == pytest.approx(0.7 * st["softmax_loss"] + 0.3 * st["triplet_loss"], rel=1e-5)
    assert st["loss"] == pytest.approx(total.item())
    assert {"softmax_acc", "triplet_active_triplets", "triplet_mean_pos_dist", "triplet_mean_neg_dist",
            "acc"} <= set(st)
    assert all(isinstance(v, float) for v in st.values())
    a = losses.create("aamsoftmax+triplet", embedding_dim=4, num_classes=3,
                      **{"aamsoftmax.margin": 0.3, "triplet.margin": 0.1})
    assert a.parts["arcface"].margin == 0.3 and a.parts["triplet"].margin == 0.1  # never one shared margin
    assert a.weights == (0.5, 0.5)


def test_errors_are_clear():
    with pytest.raises(FacerecError, match="must be namespaced"):
        losses.create("arcface+triplet", embedding_dim=4, num_classes=3, margin=0.3)
    with pytest.raises(FacerecError, match="must be namespaced"):
        losses.create("arcface+triplet", embedding_dim=4, num_classes=3, **{"cosface.margin": 0.3})
    with pytest.raises(FacerecError, match=r"does not accept 'margn'.*did you mean 'margin'"):
        losses.create("arcface+triplet", embedding_dim=4, num_classes=3, **{"triplet.margn": 0.3})
    with pytest.raises(FacerecError, match=r"does not accept 'margn'.*did you mean 'margin'"):
        losses.create("arcface", embedding_dim=4, num_classes=3, margn=0.3)
    with pytest.raises(FacerecError, match=r"unknown loss 'arcfase'.*did you mean 'arcface'"):
        losses.create("arcfase", embedding_dim=4, num_classes=3)
    with pytest.raises(FacerecError, match="2 parts but 3 weights"):
        losses.create("softmax+triplet", embedding_dim=4, num_classes=3, weights=(1, 1, 1))
    with pytest.raises(FacerecError, match="weights apply to combinations"):
        losses.create("softmax", embedding_dim=4, num_classes=3, weights=(1,))
    with pytest.raises(FacerecError, match="names a part twice"):
        losses.create("arcface+aamsoftmax", embedding_dim=4, num_classes=3)
    for bad in ({"mining": "hardest"}, {"hard_rank": 0}, {"hard_prob": 1.5}):
        with pytest.raises(FacerecError):
            losses.create("triplet", embedding_dim=4, num_classes=3, **bad)
    with pytest.raises(FacerecError, match="radians"):
        losses.create("arcface", embedding_dim=4, num_classes=3, margin=28.6)


@pytest.mark.parametrize("name", ["arcface", "cosface", "subcenter_arcface", "softmax", "triplet", "softmax+triplet"])
def test_low_precision_gives_finite_loss_on_large_logits(name):
    torch.manual_seed(0)
    loss = losses.create(name, embedding_dim=16, num_classes=5)  # s = 64 by default
    e = (torch.randn(10, 16) * 1e3).requires_grad_()
    y = torch.arange(5).repeat(2)
    torch.manual_seed(1)  # the same triplets both times
    exact = loss(e, y).item()
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = loss(e, y)
    assert torch.isfinite(v) and v.item() == pytest.approx(exact, rel=1e-5)  # logits stay fp32
    v.backward()
    assert torch.isfinite(e.grad).all()
    half = e.detach().half().requires_grad_()
    v16 = loss(half, y)
    v16.backward()
    assert torch.isfinite(v16) and torch.isfinite(half.grad.float()).all()
