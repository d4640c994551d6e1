"""What a newcomer with face_trainer habits meets first: each item of the 'first hour' list."""

from __future__ import annotations

import argparse
import json
import math
import shutil

import numpy as np
import pytest

from facerec import config
from facerec.cli import build_parser, main
from facerec.data.lists import read_pairs, read_train_list
from facerec.data.sampling import PKSampler


def _sub(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_a_face_trainer_command_line_validates_every_test_interval(tmp_path, orl_dir, orl_lists, capsys):
    train = tmp_path / "train1"  # face_trainer: identity folders, and a val list relative to --test_path
    for ident in {line.split()[0] for line in (orl_lists / "orl_train.txt").read_text().splitlines()[1:]}:
        shutil.copytree(orl_dir / ident, train / ident)
    val = tmp_path / "val_pairs.csv"
    val.write_text("".join(line + "\n" for line in (orl_lists / "orl_val_pairs.csv").read_text().splitlines()[1:]))
    rc = main(["train", "--train_path", str(train), "--test_path", str(orl_dir), "--test_list", str(val),
               "--save_path", str(tmp_path / "exps"), "--model", "resnet18", "--nOut", "64", "--batch_size", "10",
               "--nPerClass", "1", "--trainfunc", "softmax", "--max_epoch", "2", "--test_interval", "1",
               "--input-size", "32", "--max-steps", "3", "--workers", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"validation: --test_list {val}" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("val EER" in line for line in epochs)


def test_fewer_identities_than_batch_classes_is_named_even_with_q(tmp_path, orl_lists, capsys):
    rc = main(["-q", "train", "--train", str(orl_lists / "orl_train.txt"), "--batch-classes", "128", "--model",
               "resnet18", "--input-size", "32", "--embedding-dim", "32", "--epochs", "1", "--max-steps", "1",
               "--workers", "0", "--run-dir", str(tmp_path / "r"), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0 and "note: 30 identities, fewer than --batch-classes 128" in err
    assert "--max-img-per-cls caps it" not in err
    assert "epoch 1" not in out and "run:" not in out  # -q: notes and errors only


def test_face_trainer_flags_on_lfw_keep_batches_full(data_root_lfw, tmp_path):
    assert main(["lists", "lfw", "--data-root", str(data_root_lfw), "--out", str(tmp_path)]) == 0
    t = read_train_list(tmp_path / "view1_train.txt")  # George_W_Bush: 530 of 9,525 images
    full = PKSampler(t.labels, per_class=1, classes_per_batch=100, seed=1, fill="full")
    batches = full.batches()
    assert [len(b) for b in batches[:-1]] == [100] * (len(batches) - 1)  # face_trainer: 84 batches of 100
    assert 80 <= len(batches) <= 95 and all(len(set(t.labels[b].tolist())) == len(b) for b in batches)
    spread = PKSampler(t.labels, per_class=1, classes_per_batch=100, seed=1, fill="spread")
    assert len(spread) == 530 and sum(map(len, spread.batches())) == len(t)  # every image, batches of ~18


def test_the_cap_is_the_largest_that_keeps_batches_full():
    labels = np.repeat(np.arange(6), [40, 3, 3, 3, 3, 3])  # one identity holds 40 of 55 images
    s = PKSampler(labels, per_class=1, classes_per_batch=4, seed=0, fill="full")
    # c groups per identity fill c batches of 4 while sum(min(n_i, c)) >= 4c: c = 5 (20 >= 20), not 6 (21 < 24).
    assert s.group_cap == 5 and len(s) == 5 and all(len(set(labels[b].tolist())) == 4 for b in s.batches())


def test_every_train_and_split_flag_has_help_and_a_default():
    for name in ("train", "split", "eval", "params"):
        for action in _sub(name)._actions:
            if action.dest == "help" or action.help == argparse.SUPPRESS:
                continue
            text = action.help or ""
            assert text, f"{name} {action.option_strings}: no help"
            told = ("default" in text or text.startswith(("=", "turn ")) or action.required or not action.option_strings
                    or isinstance(action, (argparse._StoreTrueAction, argparse._StoreConstAction,
                                           argparse._AppendAction)))
            assert told, f"{name} {action.option_strings}: no default in {text!r}"


def test_eval_takes_tta_from_the_checkpoint(tmp_path, orl_lists, capsys):
    run = tmp_path / "run"
    assert main(["train", "--train", str(orl_lists / "orl_train.txt"), "--val", str(orl_lists / "orl_val_pairs.csv"),
                 "--model", "resnet18", "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10",
                 "--epochs", "1", "--max-steps", "4", "--tta", "--workers", "0", "--run-dir", str(run),
                 "--no-progress"]) == 0
    best = json.loads((run / "summary.json").read_text())["best_eer"]
    capsys.readouterr()
    pairs = ["--pairs", str(orl_lists / "orl_val_pairs.csv"), "--workers", "0", "--json"]
    assert main(["eval", "--checkpoint", str(run / "best.pt"), *pairs]) == 0
    assert json.loads(capsys.readouterr().out)["eer"] == pytest.approx(best, abs=1e-9)
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--no-tta", *pairs]) == 0
    assert json.loads(capsys.readouterr().out)["eer"] != pytest.approx(best, abs=1e-9)


def test_a_later_preset_with_another_loss_starts_its_options_afresh():
    cfg = config.load(["demo", "triplet_m02_hard"])
    demo = config.load(["demo"])
    assert demo.loss == "arcface" and "scale" in str(demo.loss_options)
    assert cfg.loss == "triplet" and "scale" not in str(cfg.loss_options) and cfg.model == demo.model
    same = config.load(["demo"], {"loss": "arcface", "loss_options": {"margin": 0.4}})
    assert same.loss_options == {**demo.loss_options, "margin": 0.4}  # same loss: options merge
    unset = config.load(["demo"], unset=["epochs", "loss_options.scale"])
    assert unset.epochs == config.TrainConfig().epochs and "scale" not in unset.loss_options


def test_params_follows_the_preset(capsys):
    assert main(["params", "--preset", "demo", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "input 64px, embedding 256" in out and " 0.30 " in out and out.count("\n") == 3


def test_split_holds_out_a_test_list(tmp_path, orl_dir):
    assert main(["split", str(orl_dir), "--out", str(tmp_path), "--val-fraction", "0.2", "--test-fraction", "0.2",
                 "--seed", "1"]) == 0
    train = read_train_list(tmp_path / "orl_train.txt")
    ids = {}
    for part in ("val", "test"):
        p = read_pairs(tmp_path / f"orl_{part}_pairs.csv")
        ids[part] = {x.split("/")[0] for x in p.path1 + p.path2}
        assert len(ids[part]) == 8 and p.labels.sum() > 0
    assert not (ids["val"] & ids["test"]) and not ((ids["val"] | ids["test"]) & set(train.classes))
    assert train.num_classes == 24


def test_one_seed_has_no_spread_and_thin_far_points_are_flagged():
    from facerec.evaluation.metrics import compute_all, format_table
    from facerec.experiments.report import _pm
    from facerec.experiments.stats import mean_std

    assert _pm(mean_std([12.5])) == "12.50 ± n/a (1 seed)" and _pm(mean_std([1.0, 3.0])) == "2.00 ± 1.41"
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(485), np.zeros(515)].astype(int)
    scores = rng.normal(labels, 1.0)
    table = format_table(compute_all(scores, labels))
    line = next(x for x in table.splitlines() if x.startswith("TAR @ FAR=1e-3"))
    assert "unreliable: FAR=1e-3 of 515 different pairs is 0.52 pair" in line
    assert not math.isnan(compute_all(scores, labels)["eer"])


def test_resume_wins_over_initial_model_and_says_so(tmp_path, orl_lists, capsys):
    run = tmp_path / "run"
    common = ["--train", str(orl_lists / "orl_train.txt"), "--model", "resnet18", "--input-size", "32",
              "--embedding-dim", "32", "--batch-classes", "10", "--max-steps", "2", "--workers", "0", "--no-progress"]
    assert main(["train", *common, "--epochs", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--initial-model", str(run / "last.pt"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "--resume wins: ignoring --initial-model/--finetune-from" in out and "epoch 2 |" in out


def test_quiet_hides_progress_lines_and_logging_reaches_library_users(tmp_path, orl_lists, capsys):
    import logging

    common = ["train", "--train", str(orl_lists / "orl_train.txt"), "--model", "resnet18", "--input-size", "32",
              "--embedding-dim", "32", "--batch-classes", "10", "--epochs", "1", "--max-steps", "2", "--workers", "0",
              "--no-progress"]
    assert main(["-q", *common, "--run-dir", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "epoch 1 |" not in out and "done: 1 epochs" in out
    assert main(common + ["--run-dir", str(tmp_path / "n")]) == 0
    assert "epoch 1 |" in capsys.readouterr().out
    # The trainer logs through `logging.getLogger("facerec.train")`: a notebook can raise its level.
    from facerec.trainer import Trainer

    cfg = config.load([], {"train": str(orl_lists / "orl_train.txt"), "model": "resnet18", "input_size": 32,
                           "embedding_dim": 32, "batch_classes": 10, "epochs": 1, "max_steps": 1, "workers": 0,
                           "run_dir": str(tmp_path / "lib")})
    logging.getLogger("facerec").setLevel(logging.WARNING)
    try:
        Trainer(cfg, progress=False).fit()
    finally:
        logging.getLogger("facerec").setLevel(logging.INFO)
    assert "epoch 1 |" not in capsys.readouterr().out
