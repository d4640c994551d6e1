"""The trainer end to end on real ORL faces: run, kill -9 and resume, fine-tune, refusals."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facerec import config
from facerec.cli import main
from facerec.errors import FacerecError
from facerec.evaluation.metrics import compute_all, jsonable
from facerec.evaluation.scores import read_scores
from facerec.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"model": "resnet18", "input_size": 32, "embedding_dim": 64, "batch_classes": 10, "per_class": 2,
         "lr": 0.002, "workers": 0, "seed": 7}


def small_cfg(orl_lists, out, **kw):
    values = {**SMALL, "train": str(orl_lists / "orl_train.txt"), "val": str(orl_lists / "orl_val_pairs.csv"),
              "out": str(out), "epochs": 2, **kw}
    return config.load([], values)


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_two_epoch_run_on_orl_writes_everything(orl_lists, tmp_path):
    summary = Trainer(small_cfg(orl_lists, tmp_path, loss="arcface"), progress=False, log=lambda *_: None).fit()
    run = Path(summary["run_dir"])
    for name in ("config.yaml", "env.json", "metrics.csv", "last.pt", "best.pt", "scores.txt", "curves.png",
                 "roc_det.png", "summary.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    r = rows(run)
    assert [int(x["epoch"]) for x in r] == [1, 2] and all(0 <= float(x["val_eer"]) <= 100 for x in r)
    # A random-weight net sits near 50% EER on ORL; two epochs must do clearly better.
    assert summary["best_eer"] < 30
    # One vocabulary: TensorBoard tags are the CSV's columns; rates in percent; summary == scores.txt's metrics.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set(EventAccumulator(str(run / "tb")).Reload().Tags()["scalars"])
    assert {"val_eer", "val_auc", "val_tar_far_1e-2", "train_acc", "loss"} <= tags <= set(r[0]) - {"epoch"}
    s = read_scores(run / "scores.txt")
    want = jsonable(compute_all(s.scores, s.labels))
    assert json.loads((run / "summary.json").read_text())["best_metrics"] == pytest.approx(want)
    assert float(r[1]["train_acc"]) > 1  # percent: ORL is learnt past 1% in two epochs
    first = (run / "scores.txt").read_text().splitlines()[0].split(",")
    assert len(first) == 4 and first[1] in ("0", "1")
    ckpt = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["model"]["name"] == "resnet18" and ckpt["loss"]["state_dict"]["weight"].shape == (30, 64)
    assert "optimizer" not in ckpt and "optimizer" in torch.load(run / "last.pt", weights_only=True)  # best.pt: weights
    # The checkpoint scores the val pairs again through `facerec eval` with the same EER.
    out = tmp_path / "eval_scores.csv"
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--pairs", str(orl_lists / "orl_val_pairs.csv"),
                 "--output", str(out), "--workers", "0"]) == 0
    assert main(["score", str(out), "--json"]) == 0


def test_kill_and_resume_matches_uninterrupted(orl_lists, tmp_path):
    """kill -9 mid-epoch 2, then --resume: the same epochs as a run never killed, with the faces served
    from the decoded store and streamed from files by worker processes (which give the same batches)."""
    args = ["--model", "resnet18", "--input-size", "32", "--embedding-dim", "64", "--batch-classes", "10",
            "--per-class", "2", "--seed", "3", "--loss", "cosface", "--epochs", "2",
            "--train", str(orl_lists / "orl_train.txt"), "--val", str(orl_lists / "orl_val_pairs.csv")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store, streamed = ["--cache", "ram", "--workers", "0"], ["--cache", "off", "--workers", "2"]

    def train(out, extra=(), kill_after=None):
        e = dict(env)
        if kill_after:
            e["FACEREC_FAULT_KILL_AFTER_STEPS"] = str(kill_after)
        return subprocess.run([sys.executable, "-m", "facerec.cli", "train", *args, "--out", str(out), *extra],
                              env=e, capture_output=True, text=True, timeout=300)

    full = train(tmp_path / "full", store)
    assert full.returncode == 0, full.stderr
    keys = ["epoch", "loss", "val_eer", "train_acc", "lr"]
    want = [[r[k] for k in keys] for r in rows(next((tmp_path / "full").iterdir()))]
    for name, how in (("store", store), ("streamed", streamed)):
        # 300 ORL train images / 20 per batch = 15 steps an epoch: step 20 is mid-epoch 2.
        killed = train(tmp_path / name, how, kill_after=20)
        assert killed.returncode == -9, killed.stderr
        run_dir = next((tmp_path / name).iterdir())
        assert len(rows(run_dir)) == 1  # only epoch 1 completed
        resumed = subprocess.run([sys.executable, "-m", "facerec.cli", "train", "--resume", str(run_dir)],
                                 env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert [[r[k] for k in keys] for r in rows(run_dir)] == want, name


def test_over_budget_model_refused_before_any_data_is_read(tmp_path):
    cfg = config.load([], {"model": "resnet34", "train": str(tmp_path / "does_not_exist.txt")})
    with pytest.raises(FacerecError, match="resnet34") as exc:
        Trainer(cfg, progress=False).fit()
    assert "does_not_exist" not in str(exc.value)  # the guard spoke first
    assert not any(tmp_path.iterdir())


def test_triplet_needs_two_per_class(orl_lists, tmp_path):
    with pytest.raises(FacerecError, match="needs at least 2 images per identity"):
        Trainer(small_cfg(orl_lists, tmp_path, loss="triplet", per_class=1), progress=False).fit()


def test_nclasses_checked_against_data(orl_lists, tmp_path):
    with pytest.raises(FacerecError, match=r"num_classes is 99 but .* has 30 identities"):
        Trainer(small_cfg(orl_lists, tmp_path, num_classes=99), progress=False).fit()


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(orl_lists, tmp_path):
    cfg = small_cfg(orl_lists, tmp_path, loss="softmax", lr=1e6, optimizer="sgd", momentum=0.0, epochs=20)
    with pytest.raises(FacerecError, match=r"loss became (nan|inf)|training diverged") as exc:
        Trainer(cfg, progress=False, log=lambda *_: None).fit()
    # The message names what is really on disk: last.pt and its epoch, or that nothing was saved.
    last = next(tmp_path.iterdir()) / "last.pt"
    if last.is_file():
        assert f"last good checkpoint is {last} (epoch {torch.load(last, weights_only=True)['epoch']})" in str(exc.value)
    else:
        assert "Nothing was saved" in str(exc.value)


def test_finetune_gets_new_classifier_and_can_freeze_trunk(orl_lists, tmp_path):
    first = Trainer(small_cfg(orl_lists, tmp_path / "a", epochs=1, loss="arcface"), progress=False,
                    log=lambda *_: None).fit()
    best = Path(first["run_dir"]) / "best.pt"
    trunk_before = torch.load(best, weights_only=True)["model"]["state_dict"]
    # Fine-tune on the val identities (a disjoint set: the leakage check is about train vs val, so skip it here).
    ft_train = tmp_path / "ft_train.txt"
    val_ids = sorted({line.split(",")[1].split("/")[0] for line in (orl_lists / "orl_val_pairs.csv").read_text().splitlines()
                      if not line.startswith("#")})
    root = (orl_lists / "orl_train.txt").read_text().splitlines()[0]
    ft_train.write_text(root + "\n" + "".join(f"{i} {i}/{k}.pgm\n" for i in val_ids for k in range(1, 11)))
    cfg = small_cfg(orl_lists, tmp_path / "b", train=str(ft_train), epochs=1, loss="arcface", finetune_from=str(best),
                    freeze_trunk_epochs=1, check_leakage=False)
    t = Trainer(cfg, progress=False, log=lambda *_: None)
    t.fit()
    after = t.model.state_dict()
    assert t.loss.weight.shape == (len(val_ids), 64)
    conv = "trunk.conv1.weight"
    assert torch.equal(after[conv], trunk_before[conv])  # frozen trunk did not move
    assert not torch.equal(after["head.fc.weight"], trunk_before["head.fc.weight"])  # the head trained


def test_eval_only_writes_submission_file(orl_lists, tmp_path):
    first = Trainer(small_cfg(orl_lists, tmp_path / "a", epochs=1), progress=False, log=lambda *_: None).fit()
    test_list = tmp_path / "test.csv"
    lines = [line for line in (orl_lists / "orl_val_pairs.csv").read_text().splitlines() if not line.startswith("#")][:20]
    test_list.write_text("".join("," + ",".join(line.split(",")[1:3]) + "\n" for line in lines))  # no labels
    root = (orl_lists / "orl_val_pairs.csv").read_text().splitlines()[0].split(":", 1)[1].strip()
    out = tmp_path / "submission.csv"
    assert main(["train", "--eval", "--initial_model", str(Path(first["run_dir"]) / "best.pt"),
                 "--test_list", str(test_list), "--test_path", root, "--output", str(out), "--workers", "0"]) == 0
    got = out.read_text().splitlines()
    assert len(got) == 20 and all(len(line.split(",")) == 4 for line in got)
    json.dumps(got)


def test_compiled_steps_train_the_same_weights(orl_lists, tmp_path, one_thread):
    """--compile wraps only the training forward/backward: same losses as eager (aot_eager traces
    the same graph without code generation, so this runs fast) and plain checkpoint keys."""
    kw = {"model": "resnet18_w050", "epochs": 1, "max_steps": 3, "loss": "cosface"}
    eager = Trainer(small_cfg(orl_lists, tmp_path / "e", **kw), progress=False, log=lambda *_: None).fit()
    comp = Trainer(small_cfg(orl_lists, tmp_path / "c", compile="aot_eager", **kw), progress=False,
                   log=lambda *_: None).fit()
    e_rows, c_rows = rows(Path(eager["run_dir"])), rows(Path(comp["run_dir"]))
    assert float(c_rows[0]["loss"]) == pytest.approx(float(e_rows[0]["loss"]), rel=1e-4)
    sd_e = torch.load(Path(eager["run_dir"]) / "last.pt", weights_only=True)["model"]["state_dict"]
    sd_c = torch.load(Path(comp["run_dir"]) / "last.pt", weights_only=True)["model"]["state_dict"]
    assert list(sd_c) == list(sd_e)
    for k in sd_e:
        assert torch.allclose(sd_c[k].float(), sd_e[k].float(), atol=1e-4), k


def test_early_stopping_stops_after_patience_epochs_without_improvement(orl_lists, tmp_path):
    """min_delta far above any possible gain: only epoch 1 counts as an improvement, so with
    patience 2 the run stops after epoch 3 of 6, with best.pt from epoch 1."""
    lines = []
    cfg = small_cfg(orl_lists, tmp_path, loss="cosface", epochs=6, max_steps=2, patience=2, min_delta=100.0)
    summary = Trainer(cfg, progress=False, log=lines.append).fit()
    run = Path(summary["run_dir"])
    assert [int(r["epoch"]) for r in rows(run)] == [1, 2, 3]
    assert any(line.startswith("early stop: val EER has not improved by 100.0 for 2 epochs") for line in lines), lines
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == 1
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3


def test_grad_clip_bounds_every_step_gradient(orl_lists, tmp_path, monkeypatch):
    """--grad-clip c: the gradient the optimiser steps with has global L2 norm <= c, measured here
    on the parameters themselves after the clip, and the clip did cut (the raw norm was above c)."""
    real, seen = torch.nn.utils.clip_grad_norm_, []

    def clip(params, max_norm, *a, **kw):
        params = list(params)
        raw = real(params, max_norm, *a, **kw)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        seen.append((float(raw), float(after), max_norm))
        return raw

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    Trainer(small_cfg(orl_lists, tmp_path / "c", loss="arcface", epochs=1, max_steps=3, val=None, grad_clip=0.5),
            progress=False, log=lambda *_: None).fit()
    assert len(seen) == 3 and all(m == 0.5 and after <= 0.5 * (1 + 1e-4) for _, after, m in seen)
    assert max(raw for raw, _, _ in seen) > 0.5
    seen.clear()
    Trainer(small_cfg(orl_lists, tmp_path / "n", loss="arcface", epochs=1, max_steps=3, val=None),
            progress=False, log=lambda *_: None).fit()
    assert seen == []  # grad_clip 0: never clipped


def test_bf16_autocast_on_cpu_runs_the_trunk_in_bf16(orl_lists, tmp_path):
    """--amp bf16 on the CPU: the trunk's convolutions compute in bfloat16, the loss stays finite
    and close to the fp32 run's first step, and the checkpoint keeps fp32 weights."""
    dtypes = []
    kw = {"loss": "arcface", "epochs": 1, "max_steps": 2, "val": None, "device": "cpu"}

    def hook(module, _inputs, out):
        if isinstance(module, torch.nn.Conv2d) and torch.is_grad_enabled():  # training steps only
            dtypes.append(out.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        summary = Trainer(small_cfg(orl_lists, tmp_path / "b", amp="bf16", **kw), progress=False,
                          log=lambda *_: None).fit()
    finally:
        handle.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    fp32 = Trainer(small_cfg(orl_lists, tmp_path / "f", **kw), progress=False, log=lambda *_: None).fit()
    b, f = rows(Path(summary["run_dir"])), rows(Path(fp32["run_dir"]))
    loss_b, loss_f = float(b[0]["loss"]), float(f[0]["loss"])
    assert torch.isfinite(torch.tensor(loss_b)) and loss_b == pytest.approx(loss_f, rel=0.05)
    sd = torch.load(Path(summary["run_dir"]) / "last.pt", weights_only=True)["model"]["state_dict"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in sd.values())


def test_a_run_validates_its_config_once_and_again_only_when_it_changed(orl_lists, tmp_path, monkeypatch):
    import facerec

    calls = []
    real = config.validate
    monkeypatch.setattr(config, "validate", lambda cfg: (calls.append(1), real(cfg))[1])
    cfg = small_cfg(orl_lists, tmp_path / "a", epochs=1, max_steps=1)
    assert calls == [1] and config.is_valid(cfg)
    facerec.train(cfg)
    assert calls == [1]  # neither facerec.train nor the Trainer checked it again
    cfg = small_cfg(orl_lists, tmp_path / "b", epochs=1, max_steps=1)
    cfg.lr = -1.0  # changed by hand after it was checked
    with pytest.raises(FacerecError, match=r"lr must be > 0, got -1\.0"):
        Trainer(cfg, progress=False).fit()
    assert not (tmp_path / "b").exists()
