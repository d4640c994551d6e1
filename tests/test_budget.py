"""Parameter counts against torchvision/timm built independently; the guard and `facerec params`."""

from __future__ import annotations

import json

import pytest
import timm
import torchvision

import models
from facerec import budget
from facerec.cli import main
from facerec.errors import FacerecError


def n(module):
    return sum(p.numel() for p in module.parameters())


def tv_trunk(fn):
    net = fn()
    return n(net) - n(net.fc)


def test_resnet_trunks_match_torchvision():
    assert budget.counts(models.create("resnet18"))["trunk_params"] == tv_trunk(torchvision.models.resnet18) == 11_176_512
    assert budget.counts(models.create("resnet34"))["trunk_params"] == tv_trunk(torchvision.models.resnet34)
    m = models.create("resnet18", embedding_dim=256)
    assert budget.counts(m)["head_params"] == 512 * 256 + 256


def test_tinyvit_matches_timm():
    c = budget.counts(models.create("tinyvit_11m", embedding_dim=512, input_size=224))
    ref = timm.create_model("tiny_vit_11m_224", pretrained=False, num_classes=512)
    assert c["head_params"] == n(ref.head) == 230_784
    assert c["trunk_params"] == n(ref) - n(ref.head) == 10_547_076


def test_mobilenet_efficientnet_trunks_match_torchvision():
    mb = torchvision.models.mobilenet_v2()
    assert budget.counts(models.create("mobilenetv2"))["trunk_params"] == n(mb.features)
    ef = torchvision.models.efficientnet_b0()
    assert budget.counts(models.create("efficientnet_b0"))["trunk_params"] == n(ef.features)


def test_every_model_but_resnet34_fits_the_budget():
    for name in models.list_models():
        c = budget.counts(models.create(name))
        assert (c["trunk_params"] <= budget.DEFAULT_BUDGET) == (name != "resnet34"), (name, c)


def test_guard_refuses_resnet34_with_counts_and_a_width():
    with pytest.raises(FacerecError) as exc:
        budget.check_budget("resnet34", embedding_dim=512, input_size=112)
    msg = str(exc.value)
    assert "21,284,672" in msg and "11,500,000" in msg and "largest width multiplier of this family that fits is 0.7" in msg
    assert budget.check_budget("resnet34_slim", embedding_dim=512, input_size=112)["trunk_params"] <= 11_500_000
    with pytest.raises(FacerecError, match="trunk\\+head"):
        budget.check_budget("iresnet18", scope="trunk+head", input_size=112)


def test_params_command(capsys):
    assert main(["params", "resnet34", "--check", "--no-latency"]) == 1
    assert "over the budget" in capsys.readouterr().out
    assert main(["params", "resnet34_slim", "mobilefacenet", "--check", "--no-latency", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["resnet34_slim", "mobilefacenet"]
    for r in rows:
        assert {"name", "trunk_params", "head_params", "flops", "size_mb", "fits"} <= set(r) and r["fits"]
    # FLOPs = 2 x thop's multiply-accumulates; resnet18 at 224 px is the well-known 1.82 GMACs.
    assert main(["params", "resnet18", "--input-size", "224", "--no-latency", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["flops"] == pytest.approx(2 * 1.82e9, rel=0.01)
