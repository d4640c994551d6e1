"""The sharded classifier in one process equals the replicated margin classifier, for any margin callable."""

from __future__ import annotations

import math

import pytest
import torch

from facerec.errors import FacerecError
from facerec.losses.margin import AngularMargin, ArcFace, CosFace, CosineMargin
from facerec.losses.sharded import ShardedClassifier


def test_margin_callables_match_the_paper_formulas():
    cos = torch.tensor([0.9, 0.2, -0.95])
    torch.testing.assert_close(CosineMargin(0.35)(cos), torch.tensor([0.55, -0.15, -1.30]))
    m = 0.5
    th = math.cos(math.pi - m)  # past it cos(theta + m) would rise again: the curve goes on as cos - m sin m
    want = [math.cos(math.acos(c) + m) if c > th else c - math.sin(math.pi - m) * m for c in cos.tolist()]
    torch.testing.assert_close(AngularMargin(m)(cos), torch.tensor(want), rtol=1e-5, atol=1e-6)
    easy = AngularMargin(m, easy_margin=True)(cos)  # the margin only where cos > 0
    torch.testing.assert_close(easy, torch.tensor([math.cos(math.acos(0.9) + m), math.cos(math.acos(0.2) + m), -0.95]))
    with pytest.raises(FacerecError, match=r"radians in \[0, pi/2\)"):
        AngularMargin(2.0)


@pytest.mark.parametrize("make", [lambda: CosFace(8, 5, scale=16.0, margin=0.2),
                                  lambda: ArcFace(8, 5, scale=16.0, margin=0.3, subcenters=2)], ids=["cosface", "subcenter"])
def test_one_shard_equals_the_whole_classifier(make):
    torch.manual_seed(0)
    full = make()
    emb, y = torch.randn(10, 8, requires_grad=True), torch.randint(0, 5, (10,))
    shard = ShardedClassifier.split(full, 0, 5, 1)
    e2 = emb.detach().clone().requires_grad_()
    a, b = full(emb, y), shard(e2, y)
    a.backward()
    b.backward()
    torch.testing.assert_close(b, a)
    torch.testing.assert_close(e2.grad, emb.grad)
    torch.testing.assert_close(shard.weight.grad, full.weight.grad)
    assert shard.stats["acc"] == pytest.approx(full.stats["acc"])


def test_any_callable_is_a_margin():
    torch.manual_seed(0)
    cosface = CosFace(8, 5, scale=16.0, margin=0.25)
    emb, y = torch.randn(6, 8), torch.randint(0, 5, (6,))
    mine = ShardedClassifier(lambda c: c - 0.25, scale=16.0, weight=cosface.weight, num_classes=5, lo=0, hi=5,
                             world_size=1)
    torch.testing.assert_close(mine(emb, y), cosface(emb, y))
    with pytest.raises(FacerecError, match=r"3 rows for classes \[0, 5\)"):
        ShardedClassifier(lambda c: c, scale=1.0, weight=torch.zeros(3, 8), num_classes=5, lo=0, hi=5, world_size=1)
