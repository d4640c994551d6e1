"""Losses against hand computation; gradients; autocast stability; registry errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import losses
from facerec.errors import FacerecError


def two_class(loss, a: float, b: float):
    """One embedding e = (1, 0), class rows at angles a and b, true class 0."""
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[math.cos(a), math.sin(a)], [math.cos(b), math.sin(b)]]))
    return loss(torch.tensor([[3.0, 0.0]]), torch.tensor([0]))


def ce(l0: float, l1: float) -> float:
    return -l0 + math.log(math.exp(l0) + math.exp(l1))


def test_arcface_value_and_fallback_by_hand():
    loss = losses.create("arcface", embedding_dim=2, num_classes=2, scale=16.0, margin=0.5)
    got = two_class(loss, 0.6, 1.2).item()
    assert got == pytest.approx(ce(16 * math.cos(0.6 + 0.5), 16 * math.cos(1.2)), rel=1e-4)
    # theta + m > pi: insightface continues with cos(theta) - m * sin(m)
    got = two_class(loss, 2.9, 1.2).item()
    assert got == pytest.approx(ce(16 * (math.cos(2.9) - 0.5 * math.sin(0.5)), 16 * math.cos(1.2)), rel=1e-4)
    assert losses.create("aamsoftmax", embedding_dim=2, num_classes=2).margin == 0.5  # alias


def test_cosface_and_softmax_by_hand():
    loss = losses.create("cosface", embedding_dim=2, num_classes=2, scale=30.0, margin=0.35)
    assert two_class(loss, 0.6, 1.2).item() == pytest.approx(ce(30 * (math.cos(0.6) - 0.35), 30 * math.cos(1.2)), rel=1e-5)
    sm = losses.create("softmax", embedding_dim=2, num_classes=2)
    # raw logits: e = (3, 0) . rows + bias
    assert two_class(sm, 0.6, 1.2).item() == pytest.approx(ce(3 * math.cos(0.6), 3 * math.cos(1.2)), rel=1e-5)


def test_subcenter_takes_the_nearest_subcentre():
    loss = losses.create("subcenter_arcface", embedding_dim=2, num_classes=2, subcenters=2, scale=10.0, margin=0.2)
    assert loss.weight.shape == (4, 2)
    with torch.no_grad():  # class 0: rows 0, 1 (angles 2.0 and 0.3); class 1: rows 2, 3 (1.0, 2.5)
        loss.weight.copy_(torch.tensor([[math.cos(t), math.sin(t)] for t in (2.0, 0.3, 1.0, 2.5)]))
    got = loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).item()
    assert got == pytest.approx(ce(10 * math.cos(0.3 + 0.2), 10 * math.cos(1.0)), rel=1e-5)


def test_arcface_margin_changes_the_gradient():
    torch.manual_seed(0)
    e = torch.randn(4, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    arc = losses.create("arcface", embedding_dim=8, num_classes=3, scale=16.0, margin=0.5)
    plain = losses.create("cosface", embedding_dim=8, num_classes=3, scale=16.0, margin=0.0)
    plain.weight.data.copy_(arc.weight.data)
    (g1,) = torch.autograd.grad(arc(e, y), e)
    (g2,) = torch.autograd.grad(plain(e, y), e)
    assert torch.isfinite(g1).all() and g1.abs().sum() > 0 and not torch.allclose(g1, g2)
    arc(e, y).backward()
    assert arc.weight.grad.abs().sum() > 0


def test_triplet_batch_hard_by_hand():
    # Unit vectors at angles (deg): a0=0, a1=60 (class 0); b0=20, b1=170 (class 1).
    ang = np.radians([0, 60, 20, 170])
    e = torch.tensor(np.c_[np.cos(ang), np.sin(ang)], dtype=torch.float32)
    y = torch.tensor([0, 0, 1, 1])
    loss = losses.create("triplet", embedding_dim=2, num_classes=2, margin=0.2, mining="batch_hard")
    d = lambda i, j: 2 - 2 * math.cos(ang[i] - ang[j])  # noqa: E731  squared distance of unit vectors
    expected = np.mean([
        max(0, d(0, 1) - d(0, 2) + 0.2),  # anchor 0: positive 1, hardest negative 2 (20 deg away)
        max(0, d(1, 0) - d(1, 2) + 0.2),  # anchor 1: hardest negative 2 (40 deg)
        max(0, d(2, 3) - d(2, 0) + 0.2),  # anchor 2: positive 3, hardest negative 0
        max(0, d(3, 2) - d(3, 1) + 0.2),  # anchor 3: hardest negative 1 (110 deg vs 170)
    ])
    assert loss(e, y).item() == pytest.approx(expected, rel=1e-5)
    assert 0 <= loss.stats["active_triplets"] <= 1


def test_combined_keeps_namespaced_options():
    loss = losses.create("softmax+triplet", embedding_dim=4, num_classes=3, weights=(0.7, 0.3),
                         **{"softmax.label_smoothing": 0.1, "triplet.margin": 0.3})
    assert loss.parts["triplet"].margin == 0.3 and loss.parts["softmax"].label_smoothing == 0.1
    assert loss.min_per_class == 2 and loss.weight.shape == (3, 4)
    torch.manual_seed(0)
    e, y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    total = loss(e, y)
    assert total.item() == pytest.approx(0.7 * loss.stats["softmax_loss"] + 0.3 * loss.stats["triplet_loss"], rel=1e-5)
    a = losses.create("arcface+triplet", embedding_dim=4, num_classes=3, **{"arcface.margin": 0.3, "triplet.margin": 0.1})
    assert a.parts["arcface"].margin == 0.3 and a.parts["triplet"].margin == 0.1


def test_errors_are_clear():
    with pytest.raises(FacerecError, match="must be namespaced"):
        losses.create("arcface+triplet", embedding_dim=4, num_classes=3, margin=0.3)
    with pytest.raises(FacerecError, match="does not accept 'margn'.*did you mean 'margin'"):
        losses.create("arcface", embedding_dim=4, num_classes=3, margn=0.3)
    with pytest.raises(FacerecError, match="unknown loss 'arcfase'.*did you mean 'arcface'"):
        losses.create("arcfase", embedding_dim=4, num_classes=3)
    with pytest.raises(FacerecError, match="2 parts but 3 weights"):
        losses.create("softmax+triplet", embedding_dim=4, num_classes=3, weights=(1, 1, 1))
    with pytest.raises(FacerecError, match="mining"):
        losses.create("triplet", embedding_dim=4, num_classes=3, mining="hardest")


@pytest.mark.parametrize("name", ["arcface", "cosface", "subcenter_arcface", "softmax", "softmax+triplet"])
def test_low_precision_gives_finite_loss_on_large_logits(name):
    torch.manual_seed(0)
    loss = losses.create(name, embedding_dim=16, num_classes=5)
    e = (torch.randn(10, 16) * 1e3).requires_grad_()
    y = torch.arange(5).repeat(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = loss(e, y)
    assert torch.isfinite(v)
    v.backward()
    assert torch.isfinite(e.grad).all()
    assert torch.isfinite(loss(e.detach().half().float(), y))
