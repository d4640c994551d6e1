"""--ema-decay: the average against a hand-written exponential moving average with timm's warm-up
(decay min(D, 1 - s^-3/4) after step s), and a real ORL run that validates and saves the average and
resumes it exactly."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from facerec import config
from facerec.cli import main
from facerec.errors import FacerecError
from facerec.evaluation.scores import read_scores
from facerec.trainer import Trainer
from facerec.trainer.ema import WeightAverage


def test_the_average_is_an_exponential_moving_average_with_a_warm_up():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    avg = WeightAverage(net, decay=0.6)
    by_hand = {k: v.clone() for k, v in net.state_dict().items()}
    for step in range(1, 8):
        with torch.no_grad():  # a "step": new weights, and BatchNorm statistics from a batch
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net.train()(torch.randn(5, 3) * step)
        # Hand-written: decay 0 at step 1, then 1 - s^-0.75 (0.405 at s=2, 0.561 at s=3), at most 0.6.
        d = 0.0 if step == 1 else min(0.6, 1 - step ** -0.75)
        for k, v in net.state_dict().items():
            by_hand[k] = v.clone() if not v.is_floating_point() else d * by_hand[k] + (1 - d) * v
        avg.on_step_end(SimpleNamespace(model=net, scheduler=SimpleNamespace(last_epoch=step)))
        for k, v in avg.module.state_dict().items():
            torch.testing.assert_close(v, by_hand[k], rtol=1e-6, atol=1e-6, msg=f"{k} at step {step}")
    assert avg.module.state_dict()["1.num_batches_tracked"] == 7  # counters are copied, not averaged
    w = net.state_dict()["0.weight"]
    assert not torch.allclose(avg.module.state_dict()["0.weight"], w)  # it lags behind the weights


SMALL = {"model": "resnet18", "input_size": 32, "embedding_dim": 64, "batch_classes": 10, "per_class": 2,
         "lr": 0.002, "workers": 0, "seed": 11, "loss": "cosface", "ema_decay": 0.9, "t_max": 2, "max_steps": 5}


def _cfg(orl_lists, out, **kw):
    return config.load([], {**SMALL, "train": str(orl_lists / "orl_train.txt"),
                            "val": str(orl_lists / "orl_val_pairs.csv"), "out": str(out), **kw})


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_a_run_validates_saves_and_resumes_the_average(orl_lists, tmp_path):
    quiet = {"progress": False, "log": lambda *_: None}
    whole = Path(Trainer(_cfg(orl_lists, tmp_path / "whole", epochs=2), **quiet).fit()["run_dir"])
    last = torch.load(whole / "last.pt", weights_only=True)
    best = torch.load(whole / "best.pt", weights_only=True)
    avg, trained = last["model"]["state_dict"], last["trained_model"]
    assert "trained_model" not in best and set(avg) == set(trained)
    assert not torch.allclose(avg["trunk.conv1.weight"], trained["trunk.conv1.weight"])  # the average is saved
    # The epoch's validation scored the saved (averaged) weights: `facerec eval` of best.pt gives its scores.
    out = tmp_path / "again.csv"
    assert main(["eval", "--checkpoint", str(whole / "best.pt"), "--pairs", str(orl_lists / "orl_val_pairs.csv"),
                 "--output", str(out), "--workers", "0"]) == 0
    torch.testing.assert_close(torch.as_tensor(read_scores(out).scores),
                               torch.as_tensor(read_scores(whole / "scores.txt").scores), rtol=1e-4, atol=1e-5)
    # One epoch, then --resume to two: the same weights, average and records as the uninterrupted run.
    cut = Path(Trainer(_cfg(orl_lists, tmp_path / "cut", epochs=1), **quiet).fit()["run_dir"])
    assert main(["-q", "train", "--resume", str(cut), "--epochs", "2", "--no-progress"]) == 0
    resumed = torch.load(cut / "last.pt", weights_only=True)
    for key in ("trunk.conv1.weight", "trunk.bn1.running_var", "head.fc.weight"):
        torch.testing.assert_close(resumed["model"]["state_dict"][key], avg[key], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(resumed["trained_model"][key], trained[key], rtol=1e-5, atol=1e-6)
    keys = ("epoch", "loss", "train_acc", "lr", "val_eer", "val_auc")
    assert [[r[k] for k in keys] for r in _rows(cut)] == [[r[k] for k in keys] for r in _rows(whole)]


@pytest.mark.parametrize("bad", [1.0, -0.1])
def test_a_decay_outside_0_1_is_refused(bad):
    with pytest.raises(FacerecError, match=r"ema_decay must be in \[0, 1\)"):
        config.load([], {"ema_decay": bad})
