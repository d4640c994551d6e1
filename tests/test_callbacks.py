"""Callbacks on real ORL faces: when each hook runs, a callback that stops the run, one that changes
the loss, and a plain run that never loads the multi-process strategy."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import facerec
from facerec import config
from facerec.trainer import Callback

ROOT = Path(__file__).resolve().parents[1]


def cfg_of(orl_lists, out, **kw):
    return config.load([], {"model": "resnet18", "input_size": 32, "embedding_dim": 32, "batch_classes": 10,
                            "per_class": 2, "workers": 0, "seed": 5, "epochs": 2, "max_steps": 3,
                            "train": str(orl_lists / "orl_train.txt"), "val": str(orl_lists / "orl_val_pairs.csv"),
                            "out": str(out), **kw})


class Recorder(Callback):
    def __init__(self):
        self.calls, self.rows = [], []

    def on_fit_start(self, t):
        self.calls.append("fit_start")

    def on_epoch_start(self, t):
        self.calls.append(f"epoch_start {t.state.epoch + 1}")

    def on_step_end(self, t):
        self.calls.append(f"step {t.scheduler.last_epoch}")

    def on_epoch_end(self, t, row):
        # Validated, in the history and already in metrics.csv when the callback sees it.
        assert "val_eer" in row and t.state.history[-1] is row
        with open(t.run_dir / "metrics.csv") as fh:
            assert len(list(csv.DictReader(fh))) == row["epoch"]
        self.calls.append(f"epoch_end {row['epoch']}")
        self.rows.append(dict(row))

    def on_fit_end(self, t):
        self.calls.append("fit_end")


def test_hooks_run_in_order_around_steps_and_epochs(orl_lists, tmp_path):
    rec = Recorder()
    summary = facerec.train(cfg_of(orl_lists, tmp_path), callbacks=[rec])
    assert rec.calls == ["fit_start", "epoch_start 1", "step 1", "step 2", "step 3", "epoch_end 1",
                         "epoch_start 2", "step 4", "step 5", "step 6", "epoch_end 2", "fit_end"]
    assert [r["epoch"] for r in rec.rows] == [1, 2]
    assert summary["best_eer"] == pytest.approx(min(r["val_eer"] for r in rec.rows))


class StopAfterFirst(Callback):
    def on_epoch_end(self, t, row):
        t.stop = True


def test_a_callback_stops_the_run_after_the_epoch_is_saved(orl_lists, tmp_path):
    facerec.train(cfg_of(orl_lists, tmp_path, epochs=4), callbacks=[StopAfterFirst()])
    run = next(tmp_path.iterdir())
    with open(run / "metrics.csv") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1"]
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1


class NoGradient(Callback):
    """The loss times zero: SGD without momentum or weight decay leaves every weight where it was."""

    def on_loss(self, t, loss):
        return loss * 0.0

    def on_fit_start(self, t):
        self.before = {k: v.clone() for k, v in t.model.state_dict().items() if v.is_floating_point()}

    def on_fit_end(self, t):
        after = t.model.state_dict()
        self.same = all(torch.equal(v, after[k]) for k, v in self.before.items() if "running" not in k)


def test_on_loss_is_what_is_back_propagated(orl_lists, tmp_path):
    cb = NoGradient()
    facerec.train(cfg_of(orl_lists, tmp_path, epochs=1, optimizer="sgd", momentum=0.0, weight_decay=0.0),
                  callbacks=[cb])
    assert cb.same


def test_a_plain_run_never_loads_the_multi_process_strategy(orl_lists, tmp_path):
    code = (f"import sys, facerec\n"
            f"facerec.train(train={str(orl_lists / 'orl_train.txt')!r}, val={str(orl_lists / 'orl_val_pairs.csv')!r},"
            f" out={str(tmp_path)!r}, model='resnet18', input_size=32, embedding_dim=32, batch_classes=10,"
            f" per_class=2, workers=0, epochs=1, max_steps=2)\n"
            "assert 'facerec.trainer.strategy' in sys.modules\n"
            "print(sorted(m for m in sys.modules if m in ('facerec.trainer.parallel', 'facerec.trainer.sync_bn',"
            " 'facerec.losses.sharded')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_callbacks_are_refused_where_there_is_no_single_run(orl_lists, tmp_path):
    with pytest.raises(TypeError, match="not to --eval-only or --folds"):
        facerec.train(cfg_of(orl_lists, tmp_path, folds=3), callbacks=[Recorder()])
