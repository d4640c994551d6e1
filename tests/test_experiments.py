"""The experiment runner end to end on real ORL faces: a quick loss phase (two presets x two
seeds, two jobs at a time) killed mid-run, resumed, skipped when finished, the same as one job at
a time without a kill, and its comparison report."""

from __future__ import annotations

import re

import pytest

from facerec.cli import main
from facerec.experiments.index import Index

TINY = ["--set", "input_size=32", "--set", "embedding_dim=64", "--set", "max_steps=4", "--set", "workers=0"]


def _loss_phase(out, data_root, *extra: str) -> list[str]:
    """`experiment run loss` quick on ORL, baseline and one preset, seeds 1 and 2, into `out`."""
    return ["experiment", "run", "loss", "--data", "orl", "--data-root", str(data_root), "--quick", "--seeds", "1,2",
            "--only", "arcface_s30_m03", "--out", str(out), *TINY, *extra]


def _jobs(n: int) -> list[str]:
    return ["--jobs", str(n), "--devices", "cpu", "--threads-per-job", "1"]


@pytest.fixture(scope="module")
def phase(tmp_path_factory, data_root_orl):
    import os

    work = tmp_path_factory.mktemp("exp")
    old = os.getcwd()
    os.chdir(work)  # data_lists/ and the results land in the scratch folder
    try:
        argv = _loss_phase(work / "res", data_root_orl, *_jobs(2))
        os.environ["FACEREC_FAULT_KILL_AFTER_STEPS"] = "6"  # every run dies in epoch 2, after epoch 1's checkpoint
        try:
            first = main(argv)
        finally:
            del os.environ["FACEREC_FAULT_KILL_AFTER_STEPS"]
        killed = Index(work / "res").rows("loss")
        second = main(argv)
        stamps = {p: p.stat().st_mtime_ns for p in (work / "res").rglob("summary.json")}
        third = main(argv)
        yield {"work": work, "res": work / "res", "rcs": (first, second, third), "killed": killed, "stamps": stamps}
    finally:
        os.chdir(old)


def test_interrupted_phase_resumes_and_finished_runs_are_skipped(phase):
    first, second, third = phase["rcs"]
    assert first == 1 and all(r["status"] == "failed" for r in phase["killed"]) and len(phase["killed"]) == 4
    assert second == 0 and third == 0
    rows = Index(phase["res"]).rows("loss")
    assert sorted((r["preset"], r["seed"], r["status"]) for r in rows) == [
        ("arcface_s30_m03", 1, "done"), ("arcface_s30_m03", 2, "done"), ("baseline", 1, "done"), ("baseline", 2, "done")]
    for r in rows:
        log = (phase["res"] / "loss" / r["preset"] / f"seed{r['seed']}" / "log.txt").read_text()
        assert "--resume" in log and "resumed" in log and "--device cpu" in log  # continued from epoch 1
        assert r["epochs"] == 2 and 0 <= r["eer"] <= 100 and r["trunk_params"] > 1e6 and r["flops"] > 0
        assert r["hypothesis"]
        assert not (phase["res"] / "loss" / r["preset"] / f"seed{r['seed']}" / "last.pt").exists()  # best.pt suffices
    assert {p: p.stat().st_mtime_ns for p in phase["res"].rglob("summary.json")} == phase["stamps"]
    assert (phase["res"] / "index.csv").read_text().count("\n") == 5


def test_one_job_at_a_time_without_a_kill_gives_the_same_runs(phase, data_root_orl):
    """Two jobs at a time, killed and resumed, trained what one job at a time trains uninterrupted."""
    import csv

    one = phase["work"] / "one"
    assert main(_loss_phase(one, data_root_orl, "--no-report", *_jobs(1))) == 0
    a = {(r["preset"], r["seed"]): r for r in Index(one).rows()}
    b = {(r["preset"], r["seed"]): r for r in Index(phase["res"]).rows()}
    assert len(a) == 4 and set(a) == set(b)
    for k in a:
        assert b[k]["status"] == "done" and a[k]["eer"] == b[k]["eer"] and a[k]["auc"] == b[k]["auc"]
        rows = [list(csv.DictReader(open(d / "loss" / k[0] / f"seed{k[1]}" / "metrics.csv")))
                for d in (one, phase["res"])]
        assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]] and len(rows[0]) == 2


def test_phase_report_compares_with_the_baseline(phase):
    md = (phase["res"] / "report" / "loss.md").read_text()
    assert "| experiment | seeds | EER % (mean ± std) | Δ EER vs baseline [95% CI] | Welch p | verdict |" in md
    row = next(line for line in md.splitlines() if line.startswith("| arcface_s30_m03 |"))
    assert re.search(r"\| 2 \| \d+\.\d\d ± \d+\.\d\d \| [+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \| [\d.e-]+ \| "
                     r"(better|worse|not significant) \|", row), row
    assert "*Hypothesis:* ArcFace" in md and "| loss | softmax | arcface |" in md
    page = (phase["res"] / "report" / "loss.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and 'src="http' not in page  # self-contained
    assert "loss.html" in (phase["res"] / "report" / "index.html").read_text()


def test_report_on_run_folders_with_a_named_baseline(phase, tmp_path):
    runs = sorted(str(p.parent) for p in phase["res"].rglob("summary.json"))
    assert main(["report", *runs, "--baseline", "arcface_s30_m03", "--out", str(tmp_path), "--name", "adhoc",
                 "--bootstrap", "200"]) == 0
    md = (tmp_path / "adhoc.md").read_text()
    assert "Baseline: **arcface_s30_m03**" in md and "| baseline | 2 |" in md


def test_bad_override_is_named_before_any_run(phase, capsys):
    rc = main(["experiment", "run", "loss", "--data", "orl", "--quick", "--set", "lerning_rate=0.1",
               "--out", str(phase["work"] / "never")])
    assert rc == 2 and "unknown key 'lerning_rate'" in capsys.readouterr().err
    assert not (phase["work"] / "never").exists()


def test_dry_run_lists_state_without_running(phase, capsys):
    assert main(["experiment", "run", "loss", "--data", "orl", "--quick", "--seeds", "1,2,3", "--only", "cosface",
                 "--out", str(phase["res"]), "--dry-run", *TINY]) == 0
    out = capsys.readouterr().out
    assert "2 presets x 3 seeds = 6 runs" in out
    assert re.search(r"done\s+baseline\s+seed 1 ", out) and re.search(r"new\s+cosface\s+seed 3 ", out)
    assert not (phase["res"] / "loss" / "cosface").exists()


def test_finished_runs_with_another_config_are_not_reused(phase, capsys):
    argv = ["experiment", "run", "loss", "--data", "orl", "--quick", "--seeds", "1,2", "--only", "arcface_s30_m03",
            "--out", str(phase["res"]), *TINY[:-4], "--set", "max_steps=5", "--set", "workers=0"]
    assert main([*argv, "--dry-run"]) == 0
    assert capsys.readouterr().out.count("stale ") == 4
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "4 existing run(s) were started with a different config" in err and "max_steps" in err


def test_finetune_phase_pretrains_on_train1_then_finetunes_on_train2(phase):
    out = phase["work"] / "ft"
    assert main(["experiment", "run", "finetune", "--data", "orl", "--quick", "--seeds", "5", "--only",
                 "ft_pretrain,ft_low_trunk_lr", "--out", str(out), "--no-report", *TINY]) == 0
    import yaml

    cfg = {p: yaml.safe_load((out / "finetune" / p / "seed5" / "config.yaml").read_text())
           for p in ("baseline", "ft_pretrain", "ft_low_trunk_lr")}
    assert cfg["baseline"]["train"].endswith("orl_train_half2.txt") and cfg["baseline"]["finetune_from"] is None
    assert cfg["ft_pretrain"]["train"].endswith("orl_train_half1.txt")
    assert cfg["ft_low_trunk_lr"]["train"].endswith("orl_train_half2.txt")
    assert cfg["ft_low_trunk_lr"]["finetune_from"] == str(out / "finetune" / "ft_pretrain" / "seed5" / "best.pt")
    assert cfg["ft_low_trunk_lr"]["trunk_lr_scale"] == 0.1
    assert "loaded weights from" in (out / "finetune" / "ft_low_trunk_lr" / "seed5" / "log.txt").read_text()
    with pytest.raises(Exception, match="ft_full fine-tunes from ft_pretrain: add it to --only"):
        from facerec.experiments import plan

        plan.plan_phase(plan.get_phase("finetune"), seeds=[5], data=plan.data_sources("orl"), out=out, quick=True,
                        only=["ft_full"])
