"""Parameter counts against torchvision/timm built independently; the guard and `facerec params`."""

from __future__ import annotations

import json

import pytest
import timm
import torch
import torchvision

from facerec import models
from facerec.cli import main
from facerec.errors import FacerecError
from facerec.trainer import budget

pytestmark = pytest.mark.usefixtures("one_thread")


def n(module):
    return sum(p.numel() for p in module.parameters())


def tv_trunk(fn):
    net = fn()
    return n(net) - n(net.fc)


def test_resnet_trunks_match_torchvision():
    r18 = budget.counts(models.create("resnet18"))["trunk_params"]
    assert r18 == tv_trunk(torchvision.models.resnet18) == 11_176_512
    assert budget.counts(models.create("resnet34"))["trunk_params"] == tv_trunk(torchvision.models.resnet34)
    m = models.create("resnet18", embedding_dim=256)
    assert budget.counts(m)["head_params"] == 512 * 256 + 256


def test_tinyvit_matches_timm():
    c = budget.counts(models.create("tinyvit_11m", embedding_dim=512, input_size=224))
    ref = timm.create_model("tiny_vit_11m_224", pretrained=False, num_classes=512)
    assert c["head_params"] == n(ref.head) == 230_784
    assert c["trunk_params"] == n(ref) - n(ref.head) == 10_547_076
    # Same weights, same output: the trunk/head split (pool moved into the trunk) is timm's arithmetic.
    m = models.create("tinyvit_11m", embedding_dim=512, input_size=64).eval()
    ref = timm.create_model("tiny_vit_11m_224", pretrained=False, num_classes=512, drop_path_rate=0.0).eval()
    rename = {k: k.replace("trunk.net.", "").replace("head.head.", "head.") for k in m.state_dict()}
    ref.load_state_dict({rename[k]: v for k, v in m.state_dict().items()})
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(m(x), ref(x), atol=1e-5)


def test_mobilenet_efficientnet_trunks_match_torchvision():
    mb = torchvision.models.mobilenet_v2()
    assert budget.counts(models.create("mobilenetv2"))["trunk_params"] == n(mb.features)
    ef = torchvision.models.efficientnet_b0()
    assert budget.counts(models.create("efficientnet_b0"))["trunk_params"] == n(ef.features)


def test_every_model_but_resnet34_fits_the_budget():
    for name in models.list_models():
        if name == "resnet34":
            continue
        assert budget.check_budget(name)["trunk_params"] <= budget.DEFAULT_BUDGET, name


def test_guard_refuses_resnet34_with_counts_and_a_width():
    with pytest.raises(FacerecError) as exc:
        budget.check_budget("resnet34", embedding_dim=512, input_size=112)
    msg = str(exc.value)
    assert "21,284,672" in msg and "262,656" in msg and "11,500,000" in msg
    assert "largest width multiplier of this family that fits is 0.73 (width=0.73)" in msg
    # resnet34_slim is that suggestion, registered.
    c = budget.check_budget("resnet34_slim", embedding_dim=512, input_size=112)
    assert c["trunk_params"] == budget.counts(models.create("resnet34", width=0.73))["trunk_params"] == 11_352_752
    with pytest.raises(FacerecError, match=r"width_mult=0\.\d+\)"):
        budget.check_budget("mobilenetv2", budget=1_000_000)


def test_guard_scopes_and_families_without_width():
    # IResNet's arcface head (FC on the 7x7x512 map) fits only when the head is not counted.
    assert budget.check_budget("iresnet18")["head_params"] > 12_000_000
    with pytest.raises(FacerecError, match="scope 'trunk\\+head'"):
        budget.check_budget("iresnet18", scope="trunk+head", input_size=112)
    with pytest.raises(FacerecError, match="has no width multiplier"):
        budget.check_budget("mobilefacenet", budget=500_000)
    with pytest.raises(FacerecError, match="budget scope must be"):
        budget.check_budget("resnet18", scope="all")


def test_classifier_counted_apart():
    c = budget.counts(models.create("resnet18_w050"), loss=torch.nn.Linear(256, 10, bias=False))
    assert c["classifier_params"] == 2560 and c["total_params"] == c["trunk_params"] + c["head_params"]


def test_size_and_latency_helpers():
    m = models.create("resnet18_w050", input_size=64)
    assert budget.size_mb(m) > budget.counts(m)["total_params"] * 4 / 1e6  # BN running stats too
    assert budget.latency_ms(m, 64, batch=4, repeats=1) > 0
    assert m.training  # measured on a copy


def test_params_command(capsys):
    assert main(["params", "resnet34", "--check", "--no-latency"]) == 1
    out, err = capsys.readouterr()
    assert "resnet34" in out and "NO" in out
    assert "over the budget of 11,500,000" in err and "21,284,672" in err and "width=0.73" in err
    assert main(["params", "resnet34_slim", "mobilefacenet", "--check", "--no-latency", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["resnet34_slim", "mobilefacenet"]
    for r in rows:
        assert {"name", "trunk_params", "head_params", "flops", "size_mb", "fits"} <= set(r) and r["fits"]
    # FLOPs = 2 x thop's multiply-accumulates; resnet18 at 224 px is the well-known 1.82 GMACs.
    assert main(["params", "resnet18", "--input-size", "224", "--no-latency", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["flops"] == pytest.approx(2 * 1.82e9, rel=0.01)
    assert main(["params", "resnet19"]) == 2
    assert "did you mean 'resnet18'" in capsys.readouterr().err
