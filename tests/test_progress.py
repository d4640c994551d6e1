"""Progress in a log file: one line at a steady interval with count, rate and ETA; nothing for short work."""

from __future__ import annotations

import logging

from facerec.cli import main
from facerec.util.progress import Ticker, progress


def test_ticker_lines_count_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="facerec.util.progress")
    t = Ticker(range(4), desc="embed", unit="batch", every=0.0)
    t.set_postfix(loss="1.500")
    assert list(t) == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[1].startswith("embed: 2/4 batch (50%) | ") and " batch/s | ETA " in lines[1]
    assert lines[1].endswith("| loss=1.500")
    assert lines[-1].startswith("embed: 4/4 batch (100%)") and "ETA 0s" in lines[-1]


def test_short_work_prints_nothing_and_a_terminal_gets_a_bar(caplog):
    caplog.set_level(logging.INFO, logger="facerec.util.progress")
    t = progress(range(3), desc="decode", unit="batch", bar=False, every=3600)
    assert list(t) == [0, 1, 2] and caplog.records == []
    assert type(progress(range(3), desc="x", unit="it", bar=True)).__name__ == "tqdm"
    unknown = Ticker(iter(range(2)), desc="embed", unit="batch", every=0.0)
    list(unknown)
    assert caplog.records[-1].getMessage().startswith("embed: 2 batch | ")  # no total: no percentage, no ETA


def test_training_logged_to_a_file_says_where_it_is(capsys, monkeypatch, tmp_path, orl_dir):
    monkeypatch.setenv("FACEREC_PROGRESS_SECONDS", "0")
    train = tmp_path / "train.txt"
    train.write_text(f"# root: {orl_dir}\n" + "".join(f"s{p} s{p}/{i}.pgm\n" for p in range(1, 9) for i in range(1, 5)))
    rc = main(["train", "--train", str(train), "--model", "resnet18", "--input-size", "32", "--embedding-dim", "32",
               "--batch-classes", "4", "--per-class", "2", "--epochs", "1", "--max-steps", "3", "--workers", "0",
               "--loss", "softmax", "--no-progress", "--run-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out  # the CLI logs progress (INFO) on stdout
    assert rc == 0
    lines = [m for m in out.splitlines() if m.startswith("epoch 1/1: 2/3 step (67%) | ")]
    assert lines and "loss=" in lines[0] and "img_s=" in lines[0], out
