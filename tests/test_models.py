"""Every registered backbone: two input sizes, forward + backward, shapes, seeding, registry errors."""

from __future__ import annotations

import pytest
import torch

import models
from facerec.errors import FacerecError

SIZES = {"tinyvit_11m": (64, 96)}


@pytest.mark.parametrize("name", models.list_models())
def test_forward_backward_two_sizes(name):
    for size in SIZES.get(name, (64, 112)):
        torch.manual_seed(0)
        m = models.create(name, embedding_dim=32, input_size=size)
        assert isinstance(m.trunk, torch.nn.Module) and isinstance(m.head, torch.nn.Module)
        x = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)
        m = m.to(memory_format=torch.channels_last)
        out = m(x)
        assert out.shape == (2, 32) and torch.isfinite(out).all()
        out.square().mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.trunk.parameters())


def test_same_seed_same_weights():
    a = models.create("se_resnet18", embedding_dim=16, input_size=64, width=0.25)
    torch.manual_seed(3)
    a = models.create("se_resnet18", embedding_dim=16, input_size=64, width=0.25)
    torch.manual_seed(3)
    b = models.create("se_resnet18", embedding_dim=16, input_size=64, width=0.25)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_registry_refuses_unknown_names_and_keywords():
    with pytest.raises(FacerecError, match="unknown model 'resnet19'.*known: .*resnet18"):
        models.create("resnet19")
    with pytest.raises(FacerecError, match="does not accept 'widht'.*did you mean 'width'"):
        models.create("resnet18", widht=0.5)


def test_stems():
    # auto: no max-pool below 128 px (64 px ends on 4x4), the ImageNet stem from 128 px up.
    assert isinstance(models.create("resnet18", input_size=64).trunk.maxpool, torch.nn.Identity)
    assert isinstance(models.create("resnet18", input_size=224).trunk.maxpool, torch.nn.MaxPool2d)
    assert isinstance(models.create("resnet18", input_size=64, stem="imagenet").trunk.maxpool, torch.nn.MaxPool2d)


def test_resnet18_has_no_graph_break():
    m = models.create("resnet18", embedding_dim=32, input_size=64, width=0.25).eval()
    explain = torch._dynamo.explain(m)(torch.randn(1, 3, 64, 64))
    assert explain.graph_break_count == 0
