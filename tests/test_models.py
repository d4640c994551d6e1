"""Every registered backbone: two input sizes, forward + backward, shapes, seeding, registry errors."""

from __future__ import annotations

import pytest
import torch

from facerec import models
from facerec.errors import FacerecError
from facerec.trainer import budget

# The range ends for TinyViT (any size works there); 64 and 112 (the face size) elsewhere.
SIZES = {"tinyvit_11m": (64, 224)}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", models.list_models())
def test_forward_backward_two_sizes_channels_last(name):
    for size in SIZES.get(name, (64, 112)):
        torch.manual_seed(0)
        m = models.create(name, embedding_dim=32, input_size=size).to(memory_format=torch.channels_last)
        x = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)
        features = m.trunk(x)
        assert features.ndim == 2 and features.shape[0] == 2, (name, size, features.shape)
        out = m.head(features)
        assert out.shape == (2, 32) and torch.isfinite(out).all()
        out.square().mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.trunk.parameters())
        assert all(p.grad is not None for p in m.head.parameters() if p.requires_grad)


def test_same_seed_same_weights():
    def build():
        torch.manual_seed(3)
        return models.create("se_resnet18", embedding_dim=16, input_size=64, width=0.25)

    a, b = build(), build()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_registry_refuses_unknown_names_and_keywords():
    with pytest.raises(FacerecError, match=r"unknown model 'resnet19'.*known: .*resnet18"):
        models.create("resnet19")
    with pytest.raises(FacerecError, match=r"does not accept 'widht'.*did you mean 'width'"):
        models.create("resnet18", widht=0.5)
    with pytest.raises(FacerecError, match="does not accept 'width'"):
        models.create("mobilefacenet", width=0.5)
    with pytest.raises(FacerecError, match="stem must be"):
        models.create("resnet18", stem="deep")


def test_width_keyword_scales_any_multiplier():
    assert models.create("resnet18", width=0.5).trunk.out_channels == 256
    assert models.create("resnet18", width=1.5).trunk.out_channels == 768
    w075 = budget.counts(models.create("resnet18_w075"))["trunk_params"]
    assert w075 == budget.counts(models.create("resnet18", width=0.75))["trunk_params"]


def test_stems():
    # auto: no max-pool below 128 px (64 px ends on 4x4), the ImageNet stem from 128 px up.
    assert isinstance(models.create("resnet18", input_size=64).trunk.maxpool, torch.nn.Identity)
    assert isinstance(models.create("resnet18", input_size=224).trunk.maxpool, torch.nn.MaxPool2d)
    assert isinstance(models.create("resnet18", input_size=64, stem="imagenet").trunk.maxpool, torch.nn.MaxPool2d)
    # IResNet: stride-1 face stem (arcface_torch's 7x7 map at 112 px), stride 2 from 128 px up.
    assert models.create("iresnet18", input_size=112).head.fc.in_features == 512 * 7 * 7
    assert models.create("iresnet18", input_size=224).head.fc.in_features == 512 * 7 * 7
    assert models.create("iresnet18", input_size=224, stem="face").head.fc.in_features == 512 * 14 * 14


def test_thop_leaves_the_model_alone():
    m = models.create("resnet18_w050", input_size=64)
    before = {k for k, _ in m.named_buffers()}
    assert budget.flops(m, 64) > 0
    assert {k for k, _ in m.named_buffers()} == before


def test_resnet18_has_no_graph_break():
    m = models.create("resnet18", embedding_dim=32, input_size=64, width=0.25).eval()
    explain = torch._dynamo.explain(m)(torch.randn(1, 3, 64, 64))
    assert explain.graph_break_count == 0


@pytest.mark.parametrize("size,stem,spatial", [(64, "imagenet", 2), (64, "auto", 4), (112, "auto", 7), (100, "auto", 7),
                                               (224, "auto", 7)])
def test_resnet_flatten_head_keeps_torchvisions_feature_map(size, stem, spatial):
    """pool="flatten": the trunk's output is torchvision ResNet18's layer4 map, flattened, and the
    head is arcface_torch's output layer sized to that map; the trunk's parameters do not change."""
    from torchvision.models import resnet18 as tv_resnet18

    torch.manual_seed(0)
    m = models.create("resnet18", embedding_dim=32, input_size=size, stem=stem, pool="flatten").eval()
    ref = tv_resnet18().eval()
    missing, unexpected = ref.load_state_dict(m.trunk.state_dict(), strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected
    if stem == "auto" and size < 128:
        ref.maxpool = torch.nn.Identity()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        r = ref.conv1(x)
        r = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(r)))))))
        assert r.shape[-2:] == (spatial, spatial)
        assert torch.allclose(m.trunk(x), r.flatten(1), atol=1e-5)
        assert m(x).shape == (2, 32)
    assert m.head.fc.in_features == 512 * spatial * spatial
    assert budget.counts(m)["trunk_params"] == 11_176_512  # torchvision's resnet18 without fc
    with pytest.raises(FacerecError, match="pool must be one of avg, flatten, got 'max'"):
        models.create("resnet18", pool="max")


@pytest.mark.parametrize("name", ["resnet18", "resnet18_w075", "resnet18_w050", "resnet34", "resnet34_slim",
                                  "resnet18_bottleneck", "se_resnet18", "cbam_resnet18"])
def test_every_resnet_honours_pool(name):
    from facerec.models.base import ArcFaceHead

    m = models.create(name, embedding_dim=16, input_size=64, stem="imagenet", pool="flatten")
    assert isinstance(m.head, ArcFaceHead)
    assert m.head.fc.in_features == m.trunk.out_channels * 2 * 2
    assert not isinstance(models.create(name, embedding_dim=16, input_size=64).head, ArcFaceHead)
