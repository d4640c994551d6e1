"""Optuna search on real ORL faces: trials land in the results index; bad spaces are named."""

from __future__ import annotations

import json
import os

import pytest

from facerec.cli import main
from facerec.errors import FacerecError
from facerec.experiments.index import Index
from facerec.experiments.search import read_space

SPACE = """
presets: [baseline, quick]
fixed: {loss: arcface, input_size: 32, embedding_dim: 64, max_steps: 3, batch_classes: 10, workers: 0}
params:
  lr: {float: [1.0e-4, 1.0e-2], log: true}
  loss_options.margin: {float: [0.2, 0.5]}
  optimizer: {choice: [adam, adamw]}
"""


def test_search_trials_land_in_the_index(data_root_orl, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    argv = ["search", "--space", str(space), "--trials", "3", "--data", "orl", "--data-root", str(data_root_orl),
            "--out", str(tmp_path / "res")]
    assert main(argv) == 0
    rows = Index(tmp_path / "res").rows("search-space")
    assert len(rows) == 3 and {r["preset"] for r in rows} == {"trial0", "trial1", "trial2"}
    for r in rows:
        assert 1e-4 <= r["params"]["lr"] <= 1e-2 and r["params"]["optimizer"] in ("adam", "adamw")
        cfg = (tmp_path / r["run_dir"] / "config.yaml").read_text() if not os.path.isabs(r["run_dir"]) else \
            open(os.path.join(r["run_dir"], "config.yaml")).read()
        assert f"margin: {r['params']['loss_options.margin']}" in cfg
    best = json.loads((tmp_path / "res" / "search-space" / "best.json").read_text())
    done = [r for r in rows if r["status"] == "done"]
    assert best["best_eer"] == pytest.approx(min(r["eer"] for r in done))
    assert main([*argv[:4], "4", *argv[5:]]) == 0  # the study continues: one more trial, not four
    assert len(Index(tmp_path / "res").rows("search-space")) == 4


@pytest.mark.parametrize("text,message", [
    ("params: {lerning_rate: {float: [0.1, 0.2]}}", r"params.lerning_rate: unknown config key"),
    ("params: {lr: {float: [0.2, 0.1]}}", r"params.lr: float expects \[low, high\] with low < high"),
    ("params: {lr: {uniform: [0.1, 0.2]}}", r"params.lr: expected exactly one of float"),
    ("params: {loss_options: {float: [0.1, 0.2]}}", r"loss_options/model_options take a dotted name"),
    ("fixed: {epoch: 3}\nparams: {lr: {float: [0.1, 0.2]}}", r"unknown key 'epoch'"),
])
def test_bad_space_is_named(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(FacerecError, match=message):
        read_space(path)
