"""Bad input and faults, as a newcomer meets them: each case asserts the exact outcome.

Errors: one clear message of a few lines naming the file, line or key; exit code 2 for how the
tool was asked (flags, names, keys, budget), 1 for the files given (lists, images, checkpoints);
no traceback; nothing half-written; nothing lost. kill -9 then --resume is in test_train.py
(both data paths).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facerec.cli import main
from facerec.trainer import hooks

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "resnet18", "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10",
        "--per-class", "2", "--workers", "0", "--epochs", "1", "--max-steps", "2", "--loss", "softmax", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, orl_lists):
    run = tmp_path_factory.mktemp("faults_run") / "run"
    assert main(["train", *TINY, "--epochs", "2", "--train", str(orl_lists / "orl_train.txt"),
                 "--val", str(orl_lists / "orl_val_pairs.csv"), "--run-dir", str(run)]) == 0
    return run


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    got = capsys.readouterr()
    return rc, got.out, got.err


def refused(capsys, code: int, needles, *argv) -> str:
    """Run the CLI; assert the exit code, a short error naming what is wrong, no traceback."""
    rc, out, err = cli(capsys, *argv)
    error = [line for line in err.splitlines() if "error:" in line or line.startswith("  ")]
    assert rc == code, err
    assert "Traceback" not in err + out and error, err
    for needle in [needles] if isinstance(needles, str) else needles:
        assert needle in err, err
    return err


def usage_error(*argv) -> int:
    """argparse's own refusals (unknown choice, bad number) exit 2 with a usage line."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code


def identity_folder(tmp_path: Path, orl_dir: Path, people: int = 12) -> Path:
    root = tmp_path / "ids"
    for p in range(1, people + 1):
        shutil.copytree(orl_dir / f"s{p}", root / f"s{p}")
    return root


def train_args(train, val=None, run=None):
    args = ["train", *TINY, "--train", train]
    if val:
        args += ["--val", val]
    return args + (["--run-dir", run] if run else [])


# --- images -------------------------------------------------------------------------------------
def test_missing_image_in_a_train_list(capsys, tmp_path, orl_dir):
    lst = tmp_path / "train.txt"
    lst.write_text(f"# root: {orl_dir}\ns1 s1/1.pgm\ns1 s1/99.pgm\n")
    refused(capsys, 1, [f"{lst}:3: image not found", "s1/99.pgm"], *train_args(lst))


def test_zero_byte_image_in_a_train_list(capsys, tmp_path, orl_dir):
    root = identity_folder(tmp_path, orl_dir, 2)
    (root / "s1" / "1.pgm").write_bytes(b"")
    lst = tmp_path / "train.txt"
    lst.write_text(f"# root: {root}\ns1 s1/1.pgm\ns1 s1/2.pgm\n")
    refused(capsys, 1, f"{lst}:2: empty (zero-byte) image", *train_args(lst))


def test_truncated_jpeg_stops_with_its_name(capsys, tmp_path, lfw_dir):
    root = tmp_path / "ids"
    src = lfw_dir / "images_deepfunneled"
    for name in sorted(os.listdir(src))[:12]:
        shutil.copytree(src / name, root / name)
    victim = next((root / sorted(os.listdir(root))[3]).iterdir())
    victim.write_bytes(victim.read_bytes()[:2000])
    # Streamed from files by two workers: the worker's error reaches the user as one line.
    err = refused(capsys, 1, [str(victim), "cannot decode image", "truncated"],
                  *train_args(root), "--cache", "off", "--workers", "2", "--batch-classes", "12", "--per-class", "1",
                  "--max-steps", "20", "--run-dir", tmp_path / "run")
    assert "Original Traceback" not in err


def test_non_image_file_with_an_image_name(capsys, tmp_path, orl_dir):
    root = identity_folder(tmp_path, orl_dir, 10)
    (root / "s3" / "5.pgm").write_text("this is not a picture\n")
    refused(capsys, 1, [str(root / "s3" / "5.pgm"), "cannot decode image"], *train_args(root, run=tmp_path / "r"))


def test_stray_non_image_files_are_named_not_silently_skipped(capsys, tmp_path, orl_dir):
    root = identity_folder(tmp_path, orl_dir, 10)
    (root / "s2" / "notes.txt").write_text("taken on a Tuesday")
    rc, _, err = cli(capsys, *train_args(root, run=tmp_path / "r"))
    assert rc == 0 and "skipped files that are not" in err and "s2/notes.txt" in err


def test_empty_identity_folder(capsys, tmp_path, orl_dir):
    root = identity_folder(tmp_path, orl_dir, 3)
    (root / "nobody").mkdir()
    refused(capsys, 1, [f"{root / 'nobody'}: empty identity folder"], *train_args(root))


def test_malformed_train_list_line(capsys, tmp_path, orl_dir):
    lst = tmp_path / "train.txt"
    lst.write_text(f"# root: {orl_dir}\ns1 s1/1.pgm\ns1 s1/2.pgm extra\n")
    refused(capsys, 1, f"{lst}:3: expected 'identity relpath'", *train_args(lst))


def test_mixed_geometry_is_said(capsys, tmp_path, orl_dir, lfw_dir):
    root = identity_folder(tmp_path, orl_dir, 10)  # 92x112 crops ...
    src = lfw_dir / "images_deepfunneled"
    for name in sorted(os.listdir(src))[:3]:  # ... and 250x250 frames
        shutil.copytree(src / name, root / name)
    rc, _out, err = cli(capsys, *train_args(root, run=tmp_path / "r"))
    assert rc == 0 and "note: images come in 2 sizes" in err and "92x112" in err and "250x250" in err


# --- pair lists ---------------------------------------------------------------------------------
def _eval(tmp_path, pairs, *extra):
    return ["eval", "--model", "resnet18", "--input-size", "32", "--embedding-dim", "16", "--pairs", pairs,
            "--workers", "0", "--no-progress", *extra]


def test_pair_line_with_wrong_fields(capsys, tmp_path, orl_dir):
    p = tmp_path / "val.csv"
    p.write_text(f"# root: {orl_dir}\n1,s1/1.pgm,s1/2.pgm\n1;s1/1.pgm;s1/3.pgm\n")
    refused(capsys, 1, f"{p}:3: expected 'label,path1,path2[,fold]'", *_eval(tmp_path, p))


def test_pair_label_not_0_or_1(capsys, tmp_path, orl_dir):
    p = tmp_path / "val.csv"
    p.write_text(f"# root: {orl_dir}\n1,s1/1.pgm,s1/2.pgm\nyes,s1/1.pgm,s2/1.pgm\n")
    refused(capsys, 1, f"{p}:3: label must be 0 or 1, got 'yes'", *_eval(tmp_path, p))


def test_bom_crlf_quotes_and_spaces_are_read(capsys, tmp_path, orl_dir):
    p = tmp_path / "val.csv"
    p.write_bytes(("\ufeff1,s1/1.pgm,s1/2.pgm\r\n" '"0", "s1/1.pgm" ,"s2/1.pgm"\r\n').encode())
    rc, out, _ = cli(capsys, *_eval(tmp_path, p, "--root", orl_dir, "--json"))
    assert rc == 0 and '"n_pairs": 2' in out and '"n_positive": 1' in out


def test_unicode_paths(capsys, tmp_path, orl_dir):
    root = tmp_path / "faces"
    for who, src in (("Zoë", "s1"), ("José Ñúñez", "s2")):
        shutil.copytree(orl_dir / src, root / who)
    p = tmp_path / "val.csv"
    p.write_text("1,Zoë/1.pgm,Zoë/2.pgm\n0,Zoë/1.pgm,José Ñúñez/1.pgm\n", encoding="utf-8")
    rc, out, _ = cli(capsys, *_eval(tmp_path, p, "--root", root, "--json"))
    assert rc == 0 and '"n_pairs": 2' in out


def test_a_test_list_with_duplicates_is_scored_line_for_line(capsys, tmp_path, orl_dir):
    p = tmp_path / "test.csv"
    lines = ["s1/1.pgm,s1/2.pgm", "s1/1.pgm,s2/1.pgm", "s1/2.pgm,s1/1.pgm", "s1/1.pgm,s2/1.pgm"]
    p.write_text(f"# root: {orl_dir}\n" + "\n".join(lines) + "\n")
    out = tmp_path / "scores.csv"
    rc, _, err = cli(capsys, *_eval(tmp_path, p, "--output", out))
    assert rc == 0 and "2 duplicate pair(s), each scored on its own line" in err
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert [r[2:] for r in rows] == [line.split(",") for line in lines]
    assert rows[1][0] == rows[3][0]  # the same pair, the same score


def test_a_duplicate_pair_in_a_validation_list(capsys, tmp_path, orl_lists):
    p = tmp_path / "val.csv"
    body = (orl_lists / "orl_val_pairs.csv").read_text().splitlines()
    p.write_text("\n".join(body + [body[1]]) + "\n")
    refused(capsys, 1, "duplicate pair (first on line 2)", *train_args(orl_lists / "orl_train.txt", p))


def test_an_unlabelled_test_list_cannot_validate(capsys, tmp_path, orl_lists):
    p = tmp_path / "test.csv"
    body = [line.split(",", 1)[1] for line in (orl_lists / "orl_val_pairs.csv").read_text().splitlines()[1:]]
    p.write_text((orl_lists / "orl_val_pairs.csv").read_text().splitlines()[0] + "\n" + "\n".join(body) + "\n")
    refused(capsys, 1, [str(p), "no 0/1 labels"], "train", *TINY, "--train_path", orl_lists / "orl_train.txt",
            "--test_list", p)


# --- names, keys, sizes -------------------------------------------------------------------------
def test_unknown_model(capsys, orl_lists):
    refused(capsys, 2, ["resnet81", "resnet18"], *train_args(orl_lists / "orl_train.txt"), "--model", "resnet81")


def test_unknown_loss(capsys, orl_lists):
    refused(capsys, 2, ["arcfase", "arcface"], *train_args(orl_lists / "orl_train.txt"), "--loss", "arcfase")


def test_unknown_optimizer():
    assert usage_error("train", "--optimizer", "adamm") == 2


def test_unknown_preset(capsys):
    refused(capsys, 2, ["unknown preset 'demoo'", "demo"], "train", "--preset", "demoo")


def test_unknown_key_in_a_preset_file(capsys, tmp_path):
    y = tmp_path / "mine.yaml"
    y.write_text("model: resnet18\nlearning_rate: 0.1\n")
    refused(capsys, 2, [str(y), "unknown key 'learning_rate'"], "train", "--preset", y)


def test_unknown_key_to_unset(capsys):
    refused(capsys, 2, "--unset: unknown key 'scal'", "train", "--preset", "demo", "--unset", "scal")


def test_over_budget_model_before_any_data(capsys, tmp_path):
    refused(capsys, 2, ["resnet34", "11,500,000"], "train", "--model", "resnet34", "--train", tmp_path / "none.txt")


def test_nclasses_mismatch(capsys, orl_lists):
    refused(capsys, 1, "nClasses/num_classes is 99 but", *train_args(orl_lists / "orl_train.txt"), "--nClasses", "99")


@pytest.mark.parametrize("flag,value", [("--input-size", "0"), ("--batch-classes", "-4"), ("--epochs", "0")])
def test_zero_or_negative_sizes(capsys, orl_lists, flag, value):
    refused(capsys, 2, f"{flag[2:].replace('-', '_')} must be >= 1", *train_args(orl_lists / "orl_train.txt"),
            flag, value)


def test_a_number_that_is_not_one(capsys, orl_lists):
    refused(capsys, 2, "lr expects float, got 'fast'", *train_args(orl_lists / "orl_train.txt"), "--lr", "fast")


def test_path_traversal_in_tag(capsys, orl_lists, tmp_path):
    refused(capsys, 2, "tag names a run directory", *train_args(orl_lists / "orl_train.txt"), "--out", tmp_path,
            "--tag", "../../escape")
    assert not (tmp_path.parent / "escape").exists()


# --- checkpoints --------------------------------------------------------------------------------
def test_a_non_checkpoint_file(capsys, tmp_path, orl_lists):
    junk = tmp_path / "notes.pt"
    junk.write_text("not weights")
    err = refused(capsys, 1, f"{junk}: not a readable checkpoint", "eval", "--checkpoint", junk, "--pairs",
                  orl_lists / "orl_val_pairs.csv")
    assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1


def test_a_pickle_that_would_run_code_is_refused_not_run(capsys, tmp_path, orl_lists):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, evil)
    refused(capsys, 1, [f"{evil}: refused", "could run code"], *train_args(orl_lists / "orl_train.txt"),
            "--initial-model", evil)
    assert not marker.exists()


def test_corrupt_last_pt_on_resume_leaves_best_pt_alone(capsys, tmp_path, finished_run):
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    best = (run / "best.pt").read_bytes()
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:5000])
    refused(capsys, 1, f"{run / 'last.pt'}: not a readable checkpoint", "train", "--resume", run)
    assert (run / "best.pt").read_bytes() == best


# --- runs ---------------------------------------------------------------------------------------
def test_two_runs_into_one_run_dir(capsys, tmp_path, orl_lists, finished_run):
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    before = (run / "metrics.csv").read_text()
    refused(capsys, 2, ["already holds a run", f"--resume {run}"], *train_args(orl_lists / "orl_train.txt", run=run))
    assert (run / "metrics.csv").read_text() == before


def test_unwritable_output_directory(capsys, tmp_path, orl_lists):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / "runs"  # a directory cannot be made inside a file (root ignores permission bits)
    if os.geteuid() != 0:
        target = tmp_path / "ro" / "runs"
        (tmp_path / "ro").mkdir(mode=0o500)
    refused(capsys, 1, f"cannot write the run directory {target}", *train_args(orl_lists / "orl_train.txt"),
            "--run-dir", target)


def test_a_full_disk_keeps_the_previous_checkpoint(capsys, tmp_path, orl_lists, monkeypatch):
    from facerec import checkpoint

    real, saves = torch.save, []

    def save(obj, path, *a, **k):
        saves.append(path)
        if len(saves) > 1:  # epoch 1 wrote last.pt (no val, so no best.pt); epoch 2 finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, path, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    run = tmp_path / "run"
    refused(capsys, 1, [f"cannot write {run / 'last.pt'}: no space left on device",
                        f"{run / 'last.pt'} (epoch 1): free space, then `facerec train --resume {run}`"],
            *train_args(orl_lists / "orl_train.txt", run=run), "--epochs", "2")
    monkeypatch.undo()
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # nothing half-written


def test_nan_loss_stops_with_the_last_good_checkpoint(capsys, tmp_path, orl_lists):
    run = tmp_path / "run"
    with hooks.install(hooks.Faults(nan_at_step=3)):  # epoch 2, step 1
        refused(capsys, 1, ["loss became nan at epoch 2, step 1", f"{run / 'last.pt'}"],
                *train_args(orl_lists / "orl_train.txt", run=run), "--epochs", "2")
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_epoch_stops_cleanly_and_resumes(tmp_path, orl_lists, sig):
    run = tmp_path / "run"
    args = [*TINY, "--epochs", "2", "--max-steps", "40", "--train", str(orl_lists / "orl_train.txt"),
            "--run-dir", str(run)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # 15 steps an epoch: the signal arrives after step 20, mid-epoch 2, however fast this machine is.
    stopped = subprocess.run([sys.executable, "-m", "facerec.cli", "train", *args], capture_output=True, text=True,
                             env={**env, "FACEREC_FAULT_SIGNAL_AFTER_STEPS": f"20:{int(sig)}"}, timeout=300)
    err = stopped.stderr
    assert stopped.returncode == 130, err
    assert "Traceback" not in err and "interrupted in epoch 2" in err and f"--resume {run}" in err
    resumed = subprocess.run([sys.executable, "-m", "facerec.cli", "train", "--resume", str(run), "--no-progress"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]] == ["1", "2"]


# --- output people read -------------------------------------------------------------------------
def test_eval_json_prints_only_json(capsys, tmp_path, orl_lists):
    import json

    rc, out, _ = cli(capsys, *_eval(tmp_path, orl_lists / "orl_val_pairs.csv", "--json", "--output",
                                    tmp_path / "s.csv"))
    assert rc == 0 and json.loads(out)["n_pairs"] > 0


def test_no_progress_bars_in_a_log_file(tmp_path, orl_lists):
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [a for a in TINY if a != "--no-progress"]
    with open(log, "w") as fh:  # not a terminal: --progress auto draws nothing
        rc = subprocess.call([sys.executable, "-m", "facerec.cli", "train", *args, "--train",
                              str(orl_lists / "orl_train.txt"), "--run-dir", str(tmp_path / "r")],
                             stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=300)
    assert rc == 0 and "\r" not in log.read_text() and "epoch 1 |" in log.read_text()


# --- training that cannot learn -----------------------------------------------------------------
def test_one_identity_is_refused_before_any_work(capsys, tmp_path, orl_dir):
    lst = tmp_path / "train.txt"
    lst.write_text(f"# root: {orl_dir}\n" + "".join(f"s1 s1/{i}.pgm\n" for i in range(1, 11)))
    refused(capsys, 1, [str(lst), "1 identity (s1)", "at least 2 identities"],
            *train_args(lst, run=tmp_path / "r"), "--loss", "arcface")
    assert not (tmp_path / "r").exists()


def test_min_images_drop_leaving_one_identity(capsys, tmp_path, orl_dir):
    lst = tmp_path / "train.txt"
    lst.write_text(f"# root: {orl_dir}\n" + "".join(f"s1 s1/{i}.pgm\n" for i in range(1, 11)) + "s2 s2/1.pgm\n")
    refused(capsys, 1, [str(lst), "1 identity has at least K=2 images", "1 dropped"],
            *train_args(lst, run=tmp_path / "r"), "--min-images", "drop")
    assert not (tmp_path / "r").exists()


def test_batches_of_one_identity_are_refused_for_a_metric_loss(capsys, tmp_path, orl_lists):
    refused(capsys, 2, ["batch_classes (P) is 1", "triplet"], *train_args(orl_lists / "orl_train.txt",
            run=tmp_path / "r"), "--loss", "triplet", "--batch-classes", "1")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("label", ["1", "0"])
def test_validation_pairs_of_one_class_are_refused_before_training(capsys, tmp_path, orl_lists, label):
    src = (orl_lists / "orl_val_pairs.csv").read_text().splitlines()
    body = [line for line in src[1:] if line.split(",")[0] == label]
    p = tmp_path / "val.csv"
    p.write_text("\n".join([src[0], *body]) + "\n")
    refused(capsys, 1, [str(p), f"all {len(body)} pairs are {'same (1)' if label == '1' else 'different (0)'}"],
            *train_args(orl_lists / "orl_train.txt", p, run=tmp_path / "r"))
    assert not (tmp_path / "r").exists()


# --- divergence and what a stop says is saved ----------------------------------------------------
def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_exploding_arcface_is_stopped_naming_what_exists(capsys, tmp_path, orl_lists):
    run = tmp_path / "run"
    err = refused(capsys, 1, "stopped", *train_args(orl_lists / "orl_train.txt", run=run), "--loss", "arcface",
                  "--lr", "1e6", "--epochs", "3")
    line = one_error_line(err)
    assert "diverged" in line or "loss became" in line, line
    if (run / "last.pt").is_file():
        assert f"{run / 'last.pt'} (epoch {torch.load(run / 'last.pt', weights_only=True)['epoch']})" in line
    else:
        assert "Nothing was saved" in line and "last.pt" not in line


def test_validation_embeddings_collapsing_to_one_point_stop_the_run(capsys, tmp_path, orl_lists, monkeypatch):
    import facerec.evaluation.scoring

    real = facerec.evaluation.scoring.embed_batches
    monkeypatch.setattr(facerec.evaluation.scoring, "embed_batches", lambda *a, **k: torch.ones_like(real(*a, **k)))
    run = tmp_path / "run"
    err = refused(capsys, 1, ["training diverged in epoch 1", "collapsed to one point", "Nothing was saved"],
                  *train_args(orl_lists / "orl_train.txt", orl_lists / "orl_val_pairs.csv", run=run))
    assert not (run / "last.pt").exists() and "last.pt" not in one_error_line(err)


def test_a_collapse_that_does_not_last_is_a_warning_one_that_lasts_stops(capsys, tmp_path, orl_lists, monkeypatch):
    import facerec.evaluation.scoring

    real, calls = facerec.evaluation.scoring.embed_batches, []

    def collapsed_at(epochs):
        def embed(*a, **k):
            calls.append(1)
            e = real(*a, **k)
            return torch.ones_like(e) if len(calls) in epochs else e
        return embed

    args = [*train_args(orl_lists / "orl_train.txt", orl_lists / "orl_val_pairs.csv"), "--epochs", "2"]
    monkeypatch.setattr(facerec.evaluation.scoring, "embed_batches", collapsed_at({1}))
    rc, out, err = cli(capsys, *args, "--run-dir", tmp_path / "a")
    assert rc == 0, err
    assert "collapsed to one point (all" in out + err and "after epoch 1; training goes on" in out + err
    assert torch.load(tmp_path / "a" / "last.pt", weights_only=True)["epoch"] == 2
    calls.clear()
    monkeypatch.setattr(facerec.evaluation.scoring, "embed_batches", collapsed_at({1, 2}))
    err = refused(capsys, 1, ["training diverged in epoch 2", "collapsed to one point"],
                  *args, "--run-dir", tmp_path / "b")
    assert f"{tmp_path / 'b' / 'last.pt'} (epoch 1)" in one_error_line(err)


def test_nan_in_epoch_1_names_no_checkpoint(capsys, tmp_path, orl_lists):
    run = tmp_path / "run"
    with hooks.install(hooks.Faults(nan_at_step=1)):
        err = refused(capsys, 1, ["loss became nan at epoch 1, step 1", "Nothing was saved"],
                      *train_args(orl_lists / "orl_train.txt", run=run))
    assert not (run / "last.pt").exists() and "last.pt" not in one_error_line(err)


@pytest.mark.parametrize("how", ["signal", "raised"])
def test_a_stop_while_saving_says_what_last_pt_holds(capsys, tmp_path, orl_lists, monkeypatch, how):
    from facerec import checkpoint

    real, calls = checkpoint.save, []

    def save(path, payload):
        calls.append(path)
        if len(calls) == 2:  # epoch 2's last.pt (no val: no best.pt)
            if how == "raised":  # stopped before the file was replaced
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arriving mid-write: the write completes first
        return real(path, payload)

    monkeypatch.setattr(checkpoint, "save", save)
    run = tmp_path / "run"
    want = (["interrupted after epoch 2", "epochs 1-2 are saved"] if how == "signal"
            else ["interrupted in epoch 2", "epoch 1 is saved"])
    refused(capsys, 130, [*want, f"--resume {run}"], *train_args(orl_lists / "orl_train.txt", run=run),
            "--epochs", "3")
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == (2 if how == "signal" else 1)


def test_a_stopped_run_is_plotted_and_compared_on_its_finished_epochs(capsys, tmp_path, orl_lists, finished_run):
    stopped = tmp_path / "stopped"
    with hooks.install(hooks.Faults(nan_at_step=5)):  # 2 steps an epoch: epoch 3, step 1
        refused(capsys, 1, ["loss became nan at epoch 3", f"{stopped / 'last.pt'} (epoch 2)", "best.pt holds epoch"],
                *train_args(orl_lists / "orl_train.txt", orl_lists / "orl_val_pairs.csv", run=stopped),
                "--epochs", "3")
    assert (stopped / "curves.png").is_file() and (stopped / "roc_det.png").is_file()
    assert not (stopped / "summary.json").exists()
    rc, _, err = cli(capsys, "report", finished_run, stopped, "--out", tmp_path / "rep", "--bootstrap", "50")
    assert rc == 0, err
    md = (tmp_path / "rep" / "runs.md").read_text()
    assert "stopped (interrupted at epoch 2)" in md and f"{stopped} (interrupted at epoch 2)" in md


# --- what the log and --help say ------------------------------------------------------------------
def test_the_log_says_how_many_images_an_epoch_uses_and_validation_time_apart(capsys, tmp_path, orl_lists):
    import re

    lines = [x for x in (orl_lists / "orl_train.txt").read_text().splitlines() if x and not x.startswith("#")]
    n_ids = len({x.split()[0] for x in lines})
    per_id = len(lines) // n_ids  # ORL: the same number of images for everyone
    rc, out, err = cli(capsys, *train_args(orl_lists / "orl_train.txt", orl_lists / "orl_val_pairs.csv",
                                           run=tmp_path / "r"), "--max-img-per-cls", "4", "--per-class", "3")
    assert rc == 0, err
    want = (f"an epoch uses {3 * n_ids} of {len(lines)} training images, left out: {(per_id - 4) * n_ids} by "
            f"max_img_per_cls 4; {n_ids} by per_class K=3")
    assert out.count("an epoch uses") == 1 and want in out, out
    assert "max_steps 2 stops each epoch after 2 of" in out
    assert re.search(r"epoch 1 \|.*\| \d+s \+ val \d+s", out), out


def test_every_train_flag_shows_one_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    entries, text = [], capsys.readouterr().out
    for line in text.splitlines():
        if line.startswith("  -"):
            entries.append(line)
        elif entries:
            entries[-1] += " " + line.strip()
    twice = [e.split()[0] for e in entries if e.count("default:") + e.count("(default ") > 1]
    assert not twice, twice
    assert "(default: LFW View 1)" in " ".join(text.split())


# --- embed --------------------------------------------------------------------------------------
def test_embed_skip_bad_lists_skipped_files_and_a_rerun_keeps_valid_chunks(capsys, tmp_path, orl_dir, finished_run):
    import numpy as np

    import facerec

    root = identity_folder(tmp_path, orl_dir, 3)
    bad = root / "s2" / "5.pgm"
    bad.write_text("not a picture\n")
    ckpt = finished_run / "best.pt"
    out = tmp_path / "e.npz"
    common = ["--checkpoint", ckpt, "--output", out, "--chunk", 8, "--workers", 0, "--no-progress"]
    refused(capsys, 1, [str(bad), "cannot decode image"], "embed", root, *common)
    kept_chunks = len(list((tmp_path / "e.npz.partial").glob("*.npy")))
    assert kept_chunks >= 1
    rc, out_text, err = cli(capsys, "embed", root, *common, "--skip-bad")
    assert rc == 0, err
    assert f"resuming: {8 * kept_chunks} of 30 images already embedded" in out_text
    assert "skipped 1 image(s)" in out_text and str(bad) in err
    assert str(bad) in (tmp_path / "e.npz.skipped.txt").read_text()
    z = np.load(out)
    paths = [str(p) for p in z["paths"]]
    assert len(paths) == 29 and str(bad) not in paths
    np.testing.assert_allclose(z["embeddings"], facerec.load(ckpt).embed(paths), atol=1e-5)
    # Without --skip-bad: the failed job's chunks survive the bad file's removal.
    out2 = tmp_path / "f.npz"
    common[3] = out2
    refused(capsys, 1, "cannot decode image", "embed", root, *common)
    kept_chunks = len(list((tmp_path / "f.npz.partial").glob("*.npy")))
    bad.unlink()
    rc, out_text, err = cli(capsys, "embed", root, *common)
    assert rc == 0 and f"resuming: {8 * kept_chunks} of 29 images" in out_text, err
    assert not (tmp_path / "f.npz.skipped.txt").exists()


def test_two_embed_jobs_into_one_output_exactly_one_runs(capsys, tmp_path, orl_dir, finished_run):
    out = tmp_path / "e.npz"
    partial = tmp_path / "e.npz.partial"
    partial.mkdir()
    code = f"from facerec import locks; import time; locks.lock({str(partial)!r}); print('held', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["embed", orl_dir / "s1", "--checkpoint", finished_run / "best.pt", "--output", out, "--workers", 0,
                "--no-progress"]
        refused(capsys, 1, [str(partial), f"in use by pid {holder.pid}"], *args)
        assert sorted(f.name for f in partial.iterdir()) == [".lock"] and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    rc, _, err = cli(capsys, *args)  # the holder is gone: its lock went with it
    assert rc == 0 and out.is_file() and not partial.exists(), err


# --- writes that fail (file-size limit, full disk) --------------------------------------------------
# The CLI in a process that may write files of at most N bytes. Past RLIMIT_FSIZE the kernel sends
# SIGXFSZ, whose default action kills the process (core dump, no message); ignored, the write fails
# with EFBIG like one to a full disk. The CLI ignores it itself; the child ignores it before its imports
# too (`ignore=False` leaves that to the CLI), and writes no bytecode, which could pass the limit.
LIMITED = """import resource, signal, sys
if {ignore}:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from facerec.cli import main
resource.setrlimit(resource.RLIMIT_FSIZE, ({n}, {n}))
sys.exit(main(sys.argv[1:]))
"""


def limited(n: int, *argv, ignore: bool = True) -> str:
    """Run the CLI with files limited to n bytes; assert exit 1 and one error line without a traceback."""
    p = subprocess.run([sys.executable, "-c", LIMITED.format(n=n, ignore=ignore), *map(str, argv)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    return one_error_line(p.stderr)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*.tmp")]


def test_a_checkpoint_over_the_file_size_limit_stops_in_one_line_and_resumes(capsys, tmp_path, orl_lists):
    run = tmp_path / "run"
    args = [*train_args(orl_lists / "orl_train.txt", orl_lists / "orl_val_pairs.csv", run=run), "--model", "resnet18_w050"]
    assert main([str(a) for a in args]) == 0
    best, last = (run / "best.pt").stat().st_size, (run / "last.pt").stat().st_size
    assert best < last  # last.pt carries the optimiser too: a limit between them lets best.pt through
    line = limited((best + last) // 2, "train", "--resume", run, "--epochs", 2, "--no-progress")
    assert f"cannot write {run / 'last.pt'}: file too large" in line, line
    assert f"{run / 'last.pt'} (epoch 1)" in line and f"then `facerec train --resume {run}`" in line, line
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1 and no_temp_files(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0  # the limit lifted
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
    summary = __import__("json").loads((run / "summary.json").read_text())
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == summary["best_epoch"]


def test_eval_scores_over_the_limit_under_a_plain_ulimit(tmp_path, orl_lists):
    out = tmp_path / "scores.csv"
    line = limited(4096, *_eval(tmp_path, orl_lists / "orl_val_pairs.csv", "--output", out), ignore=False)
    assert f"cannot write {out}: file too large" in line, line
    assert not out.exists() and no_temp_files(tmp_path)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_over_the_limit(tmp_path, finished_run, fmt):
    out = tmp_path / f"model.{fmt}"
    line = limited(2**20, "export", "--checkpoint", finished_run / "best.pt", "--format", fmt, "--output", out)
    assert f"cannot write {out}: file too large" in line, line
    assert not out.exists() and no_temp_files(tmp_path)


def test_embed_output_over_the_limit_keeps_its_chunks(capsys, tmp_path, orl_dir, finished_run):
    out = tmp_path / "e.npz"
    args = ["embed", orl_dir / "s1", "--checkpoint", finished_run / "best.pt", "--output", out, "--chunk", 4,
            "--workers", 0, "--no-progress"]
    line = limited(2000, *args)  # a chunk of 4 embeddings fits, the 10 with their paths do not
    assert f"cannot write {out}: file too large" in line and f"kept in {out}.partial" in line, line
    assert not out.exists() and no_temp_files(tmp_path)
    rc, text, err = cli(capsys, *args)
    assert rc == 0 and "resuming: 10 of 10 images already embedded" in text, err
