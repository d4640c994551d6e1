"""LFW View 2 benchmark: one real fold on LFW, checked against an independent threshold search."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import facerec
from facerec.cli import main
from facerec.data.pairs import read_pairs
from facerec.errors import FacerecError
from facerec.experiments.benchmark_lfw import parse_folds


def test_parse_folds():
    assert parse_folds("1-10") == list(range(1, 11)) and parse_folds("3,1,2-2") == [1, 2, 3]
    for bad in ("0-3", "11", "a", "5-2"):
        with pytest.raises(FacerecError, match="--folds"):
            parse_folds(bad)


def _argv(out, data_root) -> list[str]:
    return ["benchmark", "lfw", "--folds", "3", "--out", str(out), "--data-root", str(data_root), "--no-progress",
            *[x for kv in ("epochs=1", "max_steps=2", "input_size=32", "workers=0", "batch_classes=16",
                           "max_classes=64", "cache=off") for x in ("--set", kv)]]


def _record_jobs(monkeypatch, slot_workers: int | None = None) -> list:
    """The scheduler replaced by one that records each fold job's command on a cpu slot with
    `slot_workers` DataLoader workers and reports it failed (exit 1) without running it; the list of
    commands it fills."""
    import facerec.experiments.jobs

    commands = []

    class Recorder:
        def __init__(self, slots, on_done, progress):
            self.on_done = on_done

        def run(self, jobs):
            for job in jobs:
                commands.append(job.command("cpu", slot_workers))
                self.on_done(job, facerec.experiments.jobs.Outcome(job.key, 1))

    monkeypatch.setattr(facerec.experiments.jobs, "Scheduler", Recorder)
    return commands


def _finished_fold(view2_fold3, tmp_path, monkeypatch) -> tuple:
    """A copy of the module's finished fold 3 (scored with the cosine) in a results folder of this
    test's own, with training forbidden: (results folder, its fold.json record)."""
    import shutil

    import facerec.trainer

    lists, trained, _ = view2_fold3
    monkeypatch.setenv("FACEREC_LISTS", str(lists))
    out = tmp_path / "v2"
    shutil.copytree(trained / "fold03", out / "fold03")

    def no_training(self, *a, **kw):
        raise AssertionError("a finished fold was retrained")

    monkeypatch.setattr(facerec.trainer.Trainer, "fit", no_training)
    return out, json.loads((out / "fold03" / "fold.json").read_text())


@pytest.fixture(scope="module")
def view2_fold3(data_root_lfw, tmp_path_factory):
    """Fold 3 trained (a few steps) and scored with the cosine, once for this module: (lists, out, stdout)."""
    import contextlib
    import io

    base = tmp_path_factory.mktemp("view2")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setenv("FACEREC_LISTS", str(base / "lists"))
        assert main(_argv(base / "v2", data_root_lfw)) == 0
    return base / "lists", base / "v2", printed.getvalue()


def test_one_fold_trains_on_the_other_folds_people_and_thresholds_without_the_fold(
        view2_fold3, data_root_lfw, tmp_path, monkeypatch, capsys):
    lists, out, first = view2_fold3
    monkeypatch.setenv("FACEREC_LISTS", str(lists))
    argv = _argv(out, data_root_lfw)
    fold = json.loads((out / "fold03" / "fold.json").read_text())
    pairs = read_pairs(lists / "lfw" / "view2_pairs.csv")
    # The training list holds no person of fold 3's pairs.
    train = (lists / "lfw" / "view2_train_fold03.txt").read_text().splitlines()[1:]
    people = {line.split(" ", 1)[1].split("/")[0] for line in train}
    test = pairs.subset_folds([3])
    assert len(test) == 600 and not people & {p.split("/")[0] for p in test.path1 + test.path2}
    # Independent: score every pair with the fold's model, search the threshold on the other folds by hand.
    m = facerec.load(fold["run_dir"] + "/last.pt", device="cpu")
    uniq, i1, i2 = pairs.unique_paths()
    e = m.embed([str(pairs.root / p) for p in uniq], progress=False)
    s = (e[i1] * e[i2]).sum(1)
    rest = pairs.folds != 3
    cands = np.r_[np.inf, np.unique(s[rest])[::-1]]
    accs = [np.mean((s[rest] >= t) == (pairs.labels[rest] == 1)) for t in cands]
    thr = cands[int(np.argmax(accs))]
    want = 100 * np.mean((s[~rest] >= thr) == (pairs.labels[~rest] == 1))
    assert fold["threshold"] == pytest.approx(thr, abs=1e-5) and fold["accuracy"] == pytest.approx(want, abs=0.2)
    bench = json.loads((out / "benchmark.json").read_text())
    assert bench["accuracy_mean"] == fold["accuracy"] and (out / "roc_det.png").read_bytes()[:4] == b"\x89PNG"
    # A second call reuses the finished fold: no training, the same figure.
    stamp = (out / "fold03" / "fold.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == first.splitlines()[-1]
    assert (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    # Another recipe into the same folder is refused, naming the key, instead of reusing the fold.
    other = [a.replace("epochs=1", "epochs=2") for a in argv] + ["--set", "workers=1"]
    capsys.readouterr()
    assert main(other) != 0
    assert "fold03/run/config.yaml: this run was started with another recipe (epochs: 1 -> 2)" in capsys.readouterr().err
    assert main(argv + ["--set", "workers=1"]) == 0  # a run-only key changes nothing learnt: reused
    assert (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    # The same fold as a job of its own (--jobs: one process per fold, the parent summarises): the same scores.
    jobs_out = tmp_path / "v2jobs"
    argv_jobs = [a if a != str(out) else str(jobs_out) for a in argv] + ["--jobs", "1", "--devices", "cpu"]
    assert main(argv_jobs) == 0
    assert "fold 3: accuracy" in capsys.readouterr().out
    again = json.loads((jobs_out / "fold03" / "fold.json").read_text())
    assert again["scores"] == fold["scores"] and again["accuracy"] == fold["accuracy"]
    assert "--no-summary" in (jobs_out / "fold03" / "log.txt").read_text()
    assert json.loads((jobs_out / "benchmark.json").read_text())["accuracy_mean"] == bench["accuracy_mean"]


def test_backend_is_fit_per_fold_on_training_people_only_and_switching_rescores_without_training(
        view2_fold3, data_root_lfw, tmp_path, monkeypatch, capsys):
    import shutil

    import facerec.evaluation.backend
    import facerec.inference.facemodel
    import facerec.trainer
    from facerec.data.lists import load_train

    lists, trained, _ = view2_fold3
    monkeypatch.setenv("FACEREC_LISTS", str(lists))
    out = tmp_path / "v2"
    shutil.copytree(trained / "fold03", out / "fold03")  # a finished fold scored with the cosine
    kept = out / "fold03" / "embeddings-tta.npz"
    assert kept.is_file()
    kept.unlink()  # so that the one embedding pass below covers every image
    argv = _argv(out, data_root_lfw)
    cosine = json.loads((out / "fold03" / "fold.json").read_text())
    assert cosine.get("backend", "none") == "none" and "backend_fit" not in cosine

    # Switching to plda: no training, the saved last.pt re-embeds; spy on what is embedded and fit on.
    def no_training(self, *a, **kw):
        raise AssertionError("a finished fold was retrained")

    embedded, fits = [], []
    real_embed, real_fit = facerec.inference.facemodel.FaceModel.embed, facerec.evaluation.backend.fit_backend

    def embed(self, images, *a, **kw):
        e = real_embed(self, images, *a, **kw)
        embedded.append((list(images), e))
        return e

    def fit(x, labels, kind="plda", **opts):
        fits.append((np.array(x), np.array(labels), kind))
        return real_fit(x, labels, kind, **opts)

    monkeypatch.setattr(facerec.trainer.Trainer, "fit", no_training)
    monkeypatch.setattr(facerec.inference.facemodel.FaceModel, "embed", embed)
    monkeypatch.setattr(facerec.evaluation.backend, "fit_backend", fit)
    ckpt = out / "fold03" / "run" / "last.pt"
    ckpt_stamp = ckpt.stat().st_mtime_ns
    assert main(argv + ["--backend", "plda"]) == 0
    assert ckpt.stat().st_mtime_ns == ckpt_stamp
    fold = json.loads((out / "fold03" / "fold.json").read_text())
    bench = json.loads((out / "benchmark.json").read_text())
    assert fold["backend"] == "plda" and bench["backend"] == "plda" and bench["per_fold"][0]["backend"] == "plda"
    assert "Back-end: **plda**" in (out / "benchmark.md").read_text()
    assert fold["scores"] != cosine["scores"] and fold["labels"] == cosine["labels"]

    # One embedding pass (train and pair images together, each once); the fit saw exactly the fold's
    # training list, whose people are not in fold 3's pairs.
    assert len(embedded) == 1 and len(fits) == 1
    paths, e = embedded[0]
    assert len(set(paths)) == len(paths)
    x, labels, kind = fits[0]
    train = load_train(lists / "lfw" / "view2_train_fold03.txt")
    pos = {p: i for i, p in enumerate(paths)}
    fit_paths = [os.path.normpath(p) for p in train.abspaths()]
    assert kind == "plda" and np.array_equal(x, e[[pos[p] for p in fit_paths]]) and np.array_equal(labels, train.labels)
    pairs = read_pairs(lists / "lfw" / "view2_pairs.csv")
    test = pairs.subset_folds([3])
    test_people = {p.split("/")[0] for p in test.path1 + test.path2}
    assert not test_people & {train.classes[j] for j in np.unique(labels)}
    assert fold["backend_fit"]["images"] == len(train) and len(paths) > len(train)
    # Independent: the same back-end's scores of all pairs, threshold searched by hand on the other folds.
    uniq, i1, i2 = pairs.unique_paths()
    pe = e[[pos[os.path.normpath(pairs.root / p)] for p in uniq]]
    s = real_fit(x, labels, "plda").score(pe[i1], pe[i2])
    rest = pairs.folds != 3
    cands = np.r_[np.inf, np.unique(s[rest])[::-1]]
    thr = cands[int(np.argmax([np.mean((s[rest] >= t) == (pairs.labels[rest] == 1)) for t in cands]))]
    want = 100 * np.mean((s[~rest] >= thr) == (pairs.labels[~rest] == 1))
    assert fold["threshold"] == pytest.approx(thr, rel=1e-6) and fold["accuracy"] == pytest.approx(want, abs=0.2)
    assert fold["scores"] == pytest.approx(s[~rest].tolist(), rel=1e-9)

    # The same back-end again: reused, nothing embedded.
    stamp = (out / "fold03" / "fold.json").stat().st_mtime_ns
    assert main(argv + ["--backend", "plda"]) == 0
    assert (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp and len(embedded) == 1

    # Another back-end on the same last.pt: rescored from the embeddings kept beside it, none embedded.
    assert main(argv + ["--backend", "lda"]) == 0
    assert json.loads((out / "fold03" / "fold.json").read_text())["backend"] == "lda" and len(embedded) == 1
    with np.load(kept, allow_pickle=False) as z:
        assert sorted(z["paths"]) == sorted(paths) and np.allclose(z["embeddings"][0], e[0])

    # --jobs: a fold finished with another back-end is a job again, and its process gets --backend; the
    # same back-end makes no job. (Jobs are recorded, not run: the subprocess path is tested above.)
    commands = _record_jobs(monkeypatch)
    assert main(argv + ["--backend", "lda", "--jobs", "1", "--devices", "cpu"]) == 0 and commands == []
    assert main(argv + ["--backend", "plda", "--jobs", "1", "--devices", "cpu"]) == 1 and len(commands) == 1
    cmd = commands[0]
    assert cmd[cmd.index("--backend") + 1] == "plda" and "--no-summary" in cmd and cmd[cmd.index("--folds") + 1] == "3"
    assert ckpt.stat().st_mtime_ns == ckpt_stamp and len(embedded) == 1


def test_fold_jobs_get_their_slots_workers_unless_the_recipe_sets_its_own(view2_fold3, data_root_lfw, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("FACEREC_LISTS", str(view2_fold3[0]))
    argv = _argv(tmp_path / "v2", data_root_lfw)
    i = argv.index("workers=0")
    no_workers = argv[:i - 1] + argv[i + 1:]  # the recipe leaves workers to the slot
    jobs = ["--jobs", "1", "--devices", "cpu"]

    def workers_set(cmd: list[str]) -> list[str]:
        return [cmd[j + 1] for j, a in enumerate(cmd) if a == "--set" and cmd[j + 1].startswith("workers=")]

    commands = _record_jobs(monkeypatch, slot_workers=2)
    assert main(no_workers + jobs) == 1 and workers_set(commands[-1]) == ["workers=2"]
    assert main(argv + jobs) == 1 and workers_set(commands[-1]) == ["workers=0"]  # the user's --set wins
    preset = tmp_path / "own_workers.yaml"  # so does a preset's own key, as for a phase's runs
    preset.write_text("workers: 3\n")
    assert main(no_workers + ["--preset", "demo", "--preset", str(preset)] + jobs) == 1
    assert workers_set(commands[-1]) == [] and commands[-1].count(str(preset)) == 1


def test_tta_is_a_scoring_choice_that_rescores_without_training(view2_fold3, data_root_lfw, tmp_path, monkeypatch):
    import torch

    lists = view2_fold3[0]
    out, mirrored_run = _finished_fold(view2_fold3, tmp_path, monkeypatch)
    argv = _argv(out, data_root_lfw)
    assert mirrored_run["tta"] is True  # the demo recipe's own tta key

    # By hand from the network: with TTA an image's embedding is the normalised sum of the raw
    # embeddings of its preprocessed tensor and that tensor mirrored left-right.
    m = facerec.load(mirrored_run["run_dir"] + "/last.pt", device="cpu")
    test = read_pairs(lists / "lfw" / "view2_pairs.csv").subset_folds([3])
    flat = [str(test.root / p) for pair in zip(test.path1[:12], test.path2[:12]) for p in pair]
    x = m.preprocess(flat)
    m.net.eval()
    with torch.no_grad():
        own, mirror = m.net(x).double().numpy(), m.net(x.flip(-1)).double().numpy()

    def cosines(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        return (e[0::2] * e[1::2]).sum(1).tolist()

    assert mirrored_run["scores"][:12] == pytest.approx(cosines(own + mirror), abs=1e-4)
    assert mirrored_run["scores"][:12] != pytest.approx(cosines(own), abs=1e-4)
    assert main(argv + ["--no-tta"]) == 0
    fold = json.loads((out / "fold03" / "fold.json").read_text())
    bench = json.loads((out / "benchmark.json").read_text())
    assert fold["tta"] is False and bench["tta"] is False and fold["labels"] == mirrored_run["labels"]
    assert "Test-time augmentation: **off**" in (out / "benchmark.md").read_text()
    assert fold["scores"][:12] == pytest.approx(cosines(own), abs=1e-4)

    # Asked again: reused. --jobs hands the choice to each fold's process; --tta goes back.
    stamp = (out / "fold03" / "fold.json").stat().st_mtime_ns
    assert main(argv + ["--no-tta"]) == 0 and (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    commands = _record_jobs(monkeypatch)
    assert main(argv + ["--no-tta", "--jobs", "1", "--devices", "cpu"]) == 0 and commands == []
    assert main(argv + ["--jobs", "1", "--devices", "cpu"]) == 1 and "--tta" in commands[0]
    assert main(argv + ["--tta"]) == 0
    again = json.loads((out / "fold03" / "fold.json").read_text())
    assert again["scores"] == pytest.approx(mirrored_run["scores"], abs=1e-5)


def test_test_crops_are_a_scoring_choice_that_rescores_without_training(view2_fold3, data_root_lfw, tmp_path,
                                                                       monkeypatch):
    lists = view2_fold3[0]
    out, centre_run = _finished_fold(view2_fold3, tmp_path, monkeypatch)
    argv = _argv(out, data_root_lfw)
    assert centre_run["test_crops"] == 1  # the recipe's own key
    assert main(argv + ["--test-crops", "5"]) == 0
    fold = json.loads((out / "fold03" / "fold.json").read_text())
    bench = json.loads((out / "benchmark.json").read_text())
    assert fold["test_crops"] == 5 and bench["test_crops"] == 5 and fold["labels"] == centre_run["labels"]
    assert "test crops: **5 (the centre and the four corners" in (out / "benchmark.md").read_text()
    assert (out / "fold03" / "embeddings-tta-crops5.npz").is_file()  # beside, not over, the centre crop's file
    assert (out / "fold03" / "embeddings-tta.npz").is_file()
    # The scores are the fold model's with five crops (their sum is checked by hand in test_api).
    m = facerec.load(centre_run["run_dir"] + "/last.pt", device="cpu")
    m.test_crops = 5
    test = read_pairs(lists / "lfw" / "view2_pairs.csv").subset_folds([3])
    e = m.embed([str(test.root / p) for pair in zip(test.path1[:12], test.path2[:12]) for p in pair])
    assert fold["scores"][:12] == pytest.approx((e[0::2] * e[1::2]).sum(1).tolist(), abs=1e-4)
    assert fold["scores"][:12] != pytest.approx(centre_run["scores"][:12], abs=1e-4)

    # Asked again: reused. --jobs hands the choice to each fold's process; the recipe's 1 goes back.
    stamp = (out / "fold03" / "fold.json").stat().st_mtime_ns
    assert main(argv + ["--test-crops", "5"]) == 0 and (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    commands = _record_jobs(monkeypatch)
    assert main(argv + ["--test-crops", "5", "--jobs", "1", "--devices", "cpu"]) == 0 and commands == []
    assert main(argv + ["--jobs", "1", "--devices", "cpu"]) == 1
    assert commands[0][commands[0].index("--test-crops") + 1] == "1"
    assert main(argv) == 0
    again = json.loads((out / "fold03" / "fold.json").read_text())
    assert again["test_crops"] == 1 and again["scores"] == pytest.approx(centre_run["scores"], abs=1e-5)


def test_a_record_without_tta_or_shift_fields_reads_its_runs_config(tmp_path):
    from facerec.experiments.benchmark_lfw import fold_done

    for k, saved in ((1, "tta: true\n"), (2, "tta: false\n"), (3, None)):
        (tmp_path / f"fold{k:02d}" / "run").mkdir(parents=True)
        (tmp_path / f"fold{k:02d}" / "fold.json").write_text(json.dumps({"fold": k, "accuracy": 50.0}))
        if saved:
            (tmp_path / f"fold{k:02d}" / "run" / "config.yaml").write_text(saved)
    assert fold_done(1, tmp_path)["tta"] is True and fold_done(1, tmp_path, "none", True) is not None
    assert fold_done(1, tmp_path, "none", False) is None and fold_done(1, tmp_path, "plda", True) is None
    assert fold_done(2, tmp_path)["tta"] is False and fold_done(3, tmp_path)["tta"] is False
    # Nor a threshold shift: it was scored at the threshold chosen on the other folds, unshifted.
    assert fold_done(1, tmp_path)["threshold_shift"] == 0.0 and fold_done(1, tmp_path, "none", True, 0.0) is not None
    assert fold_done(1, tmp_path, "none", True, 0.05) is None
    # Nor test crops: the centre crop alone.
    assert fold_done(1, tmp_path)["test_crops"] == 1 and fold_done(1, tmp_path, "none", True, 0.0, 1) is not None
    assert fold_done(1, tmp_path, "none", True, 0.0, 5) is None


def test_threshold_shift_lowers_the_chosen_threshold_and_rescores_without_training(
        view2_fold3, data_root_lfw, tmp_path, monkeypatch, capsys):
    from facerec.experiments.benchmark_lfw import fold_done

    out, plain = _finished_fold(view2_fold3, tmp_path, monkeypatch)
    argv = _argv(out, data_root_lfw)
    assert fold_done(3, out, "none", True, 0.0) is not None and fold_done(3, out, "none", True, 0.05) is None
    assert main(argv + ["--threshold-shift", "0.05"]) == 0
    fold = json.loads((out / "fold03" / "fold.json").read_text())
    # The same scores; the threshold chosen on the other folds as before, lowered by the shift, and the
    # accuracy recounted by hand from the test pairs' scores at that threshold.
    assert fold["scores"] == pytest.approx(plain["scores"], abs=1e-6) and fold["threshold_shift"] == 0.05
    assert fold["threshold_chosen"] == pytest.approx(plain["threshold"], abs=1e-9)
    assert fold["threshold"] == pytest.approx(plain["threshold"] - 0.05, abs=1e-9)
    s, y = np.array(fold["scores"]), np.array(fold["labels"])
    assert fold["accuracy"] == pytest.approx(100 * np.mean((s >= plain["threshold"] - 0.05) == (y == 1)), abs=1e-9)
    bench = json.loads((out / "benchmark.json").read_text())
    assert bench["threshold_shift"] == 0.05 and bench["accuracy_mean"] == fold["accuracy"]
    assert "minus 0.05 (--threshold-shift)" in (out / "benchmark.md").read_text()
    assert "threshold shift 0.05" in capsys.readouterr().out

    # Asked again: reused; --jobs hands the shift to each fold's process; a shift must be a finite number.
    stamp = (out / "fold03" / "fold.json").stat().st_mtime_ns
    assert main(argv + ["--threshold-shift", "0.05"]) == 0
    assert (out / "fold03" / "fold.json").stat().st_mtime_ns == stamp
    commands = _record_jobs(monkeypatch)
    assert main(argv + ["--threshold-shift", "0.05", "--jobs", "1", "--devices", "cpu"]) == 0 and commands == []
    assert main(argv + ["--threshold-shift=-5e-05", "--jobs", "1", "--devices", "cpu"]) == 1
    assert "--threshold-shift=-5e-05" in commands[0]
    with pytest.raises(SystemExit) as e:
        main(argv + ["--threshold-shift", "nan"])
    assert e.value.code == 2 and "--threshold-shift: expected a finite number, got 'nan'" in capsys.readouterr().err
    assert main(argv) == 0 and json.loads((out / "fold03" / "fold.json").read_text())["accuracy"] == plain["accuracy"]
    assert "minus" not in (out / "benchmark.md").read_text()
