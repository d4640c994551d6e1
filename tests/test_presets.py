"""Every experiment preset builds its config, its loss and its model under the parameter
budget; every phase names presets that exist; a typo in a preset is named."""

from __future__ import annotations

import pytest
import torch

from facerec import config, losses, models
from facerec.errors import FacerecError
from facerec.experiments import plan
from facerec.trainer import budget

PHASES = plan.load_phases()
EXPERIMENTS = sorted({e.preset for ph in PHASES.values() for e in ph.entries} - {plan.BASELINE})
BASE = {e.preset: ph.base for ph in PHASES.values() for e in ph.entries}


def test_every_phase_preset_exists_and_states_a_hypothesis():
    names = set(config.preset_names())
    for ph in PHASES.values():
        assert ph.base == ph.entries[0].preset  # the base runs first; the loop below checks it exists
        for e in ph.entries:
            assert e.preset in names, f"phase {ph.name}: no preset {e.preset}"
            data, _ = config.read_preset(e.preset)
            assert len(data.get("hypothesis", "")) > 20, f"{e.preset}: hypothesis missing"


def test_phases_cover_the_plan():
    assert len(PHASES["loss"].entries) == 15 and len(PHASES["models"].entries) == 10
    assert {"aug_none", "aug_conservative", "aug_medium", "aug_aggressive", "aug_mixup", "aug_cutmix"} <= set(
        PHASES["augmentation"].presets)
    ft = PHASES["finetune"]
    assert [e.data for e in ft.entries[:2]] == ["train2", "train1"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_preset_builds_config_loss_and_model_under_budget(name):
    cfg = config.load([BASE[name], name] if BASE[name] != name else [name])
    counts = budget.check_budget(cfg.model, embedding_dim=cfg.embedding_dim, input_size=cfg.input_size,
                                 budget=cfg.param_budget, scope=cfg.budget_scope, **cfg.model_options)
    assert counts["trunk_params"] <= config.DEFAULT_PARAM_BUDGET
    kw = {"weights": tuple(cfg.loss_weights)} if cfg.loss_weights else {}
    loss = losses.create(cfg.loss, embedding_dim=cfg.embedding_dim, num_classes=50, **cfg.loss_options, **kw)
    losses.check_per_class(loss, cfg.per_class)
    if cfg.mix != "none":
        from facerec.trainer import is_classifier

        assert is_classifier(loss)


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.startswith("model_")] + [plan.BASELINE])
def test_model_presets_run_at_quick_scale(name, one_thread):
    """--quick trains every backbone at 64 px: each must take that input."""
    cfg = config.load([plan.BASELINE, name, "quick"])
    torch.manual_seed(0)
    m = models.create(cfg.model, embedding_dim=cfg.embedding_dim, input_size=cfg.input_size, **cfg.model_options).eval()
    with torch.inference_mode():
        out = m(torch.randn(2, 3, cfg.input_size, cfg.input_size))
    assert out.shape == (2, cfg.embedding_dim) and torch.isfinite(out).all()


def test_preset_typo_names_the_key(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("hypothesis: x\nlerning_rate: 0.1\n")
    with pytest.raises(FacerecError, match=r"typo.yaml: unknown key 'lerning_rate'"):
        config.load([plan.BASELINE, str(bad)])


def test_unknown_phase_and_preset_are_named():
    with pytest.raises(FacerecError, match=r"unknown phase 'los'.*loss"):
        plan.get_phase("los")
    with pytest.raises(FacerecError, match=r"unknown preset 'arcface_s64_m5'.*arcface_s64_m05"):
        config.load(["arcface_s64_m5"])


def test_a_phase_applies_its_experiments_on_its_own_baseline(tmp_path):
    runs = plan.plan_phase(plan.get_phase("recipe"), seeds=[42], data={"train": "t.txt", "val": "v.csv"}, out=tmp_path,
                           only=["recipe_k2_drop_e15"])
    assert [r.preset for r in runs] == ["demo_e6", "recipe_k2_drop_e15"]
    base, winner = (r.cfg.to_dict() for r in runs)
    assert base["loss"] == winner["loss"] == "arcface" and base["input_size"] == winner["input_size"] == 64
    assert (base["epochs"], winner["epochs"], winner["per_class"], winner["min_images"]) == (6, 15, 2, "drop")
    # `make demo` is the winner of that phase, key for key (run bookkeeping aside).
    demo = config.load(["demo"]).to_dict()
    keys = set(demo) - {"train", "val", "seed", "run_dir", "tag", "hypothesis"}
    assert {k: demo[k] for k in keys} == {k: winner[k] for k in keys}
