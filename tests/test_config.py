"""Typed config: presets, overrides, face_trainer aliases, and clear errors for typos."""

from __future__ import annotations

import re

import pytest

from facerec import config
from facerec.cli import build_parser
from facerec.commands.train import build_config
from facerec.errors import FacerecError


def parse(argv):
    return build_config(build_parser().parse_args(["train", *argv]))


def test_baseline_preset_is_the_course_baseline():
    cfg = config.load(["baseline"])
    assert (cfg.model, cfg.loss, cfg.optimizer, cfg.lr, cfg.scheduler, cfg.lr_decay) == (
        "resnet18", "softmax", "adam", 1e-3, "steplr", 0.90)
    assert (cfg.embedding_dim, cfg.batch_classes, cfg.epochs, cfg.input_size, cfg.resize) == (512, 100, 10, 224, 256)


def test_face_trainer_flags_are_aliases():
    cfg = parse(["--nOut", "256", "--batch_size", "50", "--nPerClass", "2", "--trainfunc", "triplet",
                 "--max_epoch", "3", "--save_path", "exps/x", "--mixedprec", "--margin", "0.3", "--hard_rank", "5",
                 "--train_path", "t", "--test_list", "v.csv", "--gpu", "0", "--nClasses", "10"])
    assert (cfg.embedding_dim, cfg.batch_classes, cfg.per_class, cfg.loss, cfg.epochs, cfg.out, cfg.amp) == (
        256, 50, 2, "triplet", 3, "exps/x", "fp16")
    assert cfg.loss_options == {"margin": 0.3, "hard_rank": 5}
    assert (cfg.train, cfg.test_list, cfg.device, cfg.num_classes) == ("t", "v.csv", "0", 10)


def test_namespaced_loss_options_and_presets_compose(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("loss: arcface+triplet\nloss_weights: [0.5, 0.5]\nloss_options: {arcface.margin: 0.3}\n")
    cfg = parse(["--preset", "baseline", "--preset", str(extra), "--loss-opt", "triplet.margin=0.2", "--lr", "5e-4"])
    assert cfg.loss == "arcface+triplet" and cfg.loss_weights == [0.5, 0.5]
    assert cfg.loss_options == {"arcface.margin": 0.3, "triplet.margin": 0.2}
    assert cfg.lr == 5e-4 and cfg.model == "resnet18"


def test_unknown_key_names_the_nearest(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("lerning_rate: 0.1\nepochs: 2\n")
    with pytest.raises(FacerecError, match=r"typo.yaml: unknown key 'lerning_rate'"):
        config.load([str(bad)])
    with pytest.raises(FacerecError, match=r"did you mean 'epochs'"):
        config.load([], {"epoch": 3})


def test_bad_values_are_named():
    with pytest.raises(FacerecError, match="epochs expects int"):
        config.load([], {"epochs": "ten"})
    with pytest.raises(FacerecError, match="optimizer must be one of"):
        config.load([], {"optimizer": "adagrad"})
    with pytest.raises(FacerecError, match=r"unknown preset 'baselin'.*did you mean 'baseline'"):
        config.load(["baselin"])


def test_a_numeric_choice_is_checked_as_a_number_from_yaml_and_flags():
    assert config.load([], {"test_crops": "5"}).test_crops == 5 and config.load([], {"test_crops": 1}).test_crops == 1
    with pytest.raises(FacerecError, match="test_crops must be one of 1, 5, got 3"):
        config.load([], {"test_crops": 3})
    assert build_parser().parse_args(["train", "--test-crops", "5"]).test_crops == "5"  # typed by config.load
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--test-crops", "4"])


def test_unknown_flag_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--lerning-rate", "0.1"])


def test_values_take_the_declared_types_and_typos_are_refused():
    cfg = config.load([], {"epochs": "3", "lr": "0.01", "hflip": "no", "face_crop": "auto", "mean": "0.5,0.4,0.3",
                           "max_steps": "7", "tag": 5})
    assert (cfg.epochs, cfg.lr, cfg.hflip, cfg.face_crop, cfg.mean, cfg.max_steps, cfg.tag) == \
        (3, 0.01, False, "auto", [0.5, 0.4, 0.3], 7, "5")
    assert config.load([], {"face_crop": "0.7"}).face_crop == 0.7
    for key, bad, expected in (("epochs", "3.5", "int"), ("epochs", True, "int"), ("face_crop", "tight", "float | str"),
                               ("hflip", "maybe", "bool"), ("lr", "fast", "float"), ("model_options", "x", "dict")):
        with pytest.raises(FacerecError, match=f"{key} expects {re.escape(expected)}, got {re.escape(repr(bad))}"):
            config.load([], {key: bad})


def test_set_values_keep_on_off_as_words():
    """YAML 1.1 reads `off` as False; `--set cache=off` / `--loss-opt x=off` mean the word."""
    from facerec.commands.train import _scalar

    assert _scalar("off") == "off" and _scalar("On") == "On" and _scalar("3") == 3 and _scalar("true") is True
    cfg = config.load([], {"cache": _scalar("off"), "tta": _scalar("off"), "amp": _scalar("off")})
    assert (cfg.cache, cfg.tta, cfg.amp) == ("off", False, "off")


def test_one_list_of_run_only_keys_decides_what_is_the_same_recipe():
    from facerec.config import RESUME_OVERRIDES, RUN_ONLY_KEYS, TrainConfig, recipe_changes, same_recipe
    from facerec.experiments.compare import NOT_THE_EXPERIMENT

    a = TrainConfig()
    b = TrainConfig(workers=3, device="cpu", cache="off", tag="x", run_dir="r", out="o", data_root="d")
    assert same_recipe(a, b) and same_recipe(a.to_dict(), b)
    c = TrainConfig(epochs=11, lr=0.01, workers=2)
    assert recipe_changes(a.to_dict(), c.to_dict()) == ["epochs", "lr"] and not same_recipe(a, c)
    assert recipe_changes(a.to_dict(), TrainConfig(train="t.txt").to_dict(), ignore={"train"}) == []
    # A config saved before a key existed lacks it: it trained with that key's default.
    old = {k: v for k, v in a.to_dict().items() if k != "ema_decay"}
    assert recipe_changes(old, a.to_dict()) == [] and recipe_changes(old, TrainConfig(ema_decay=0.9).to_dict()) == [
        "ema_decay"]
    # K left unset is chosen at start from the loss and saved as chosen: the same recipe.
    assert same_recipe(TrainConfig(per_class=None), TrainConfig(per_class=2))
    assert not same_recipe(TrainConfig(per_class=3), TrainConfig(per_class=2))
    # Resume and reports take the run-only keys from the same list.
    assert RUN_ONLY_KEYS <= RESUME_OVERRIDES and RUN_ONLY_KEYS <= NOT_THE_EXPERIMENT
    assert {"cache", "cache_budget_mb"} <= NOT_THE_EXPERIMENT
    assert set(RUN_ONLY_KEYS) <= set(TrainConfig().to_dict())


def test_resume_takes_run_only_keys_and_a_longer_schedule_and_refuses_a_new_recipe(tmp_path):
    from facerec import checkpoint
    from facerec.config import TrainConfig, resume_config

    stored = TrainConfig(epochs=5, lr=0.01, per_class=2, workers=4)
    checkpoint.save(tmp_path / "last.pt", {"config": stored.to_dict()})
    cfg = resume_config({"resume": str(tmp_path), "epochs": 8, "workers": 1, "device": "cpu", "lr": 0.01})
    assert (cfg.epochs, cfg.workers, cfg.device, cfg.lr, cfg.per_class) == (8, 1, "cpu", 0.01, 2)
    with pytest.raises(FacerecError, match=r"these flags would change it: lr, per_class \(allowed: cache, "):
        resume_config({"resume": str(tmp_path), "lr": 0.1, "per_class": 3, "epochs": 8})
