"""Loading runs and comparing each experiment with the baseline: per-seed metrics, config diff,
mean +- std, the paired bootstrap of the EER delta, Welch's t-test and the verdict (see stats.py).
Rendering them is report.py's work."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from facerec.config import RUN_ONLY_KEYS
from facerec.errors import FacerecError
from facerec.evaluation.metric_keys import upgrade_row, upgrade_summary
from facerec.experiments import stats
from facerec.util.rundir import is_finished

# Keys that differ between any two runs without being the experiment: how they ran, their seed, and
# which validation pairs scored them.
NOT_THE_EXPERIMENT = RUN_ONLY_KEYS | {"seed", "val", "val_root", "eval_only"}


@dataclass
class RunData:
    label: str
    seed: int
    run_dir: Path
    config: dict
    summary: dict
    history: list[dict]
    env: dict
    scores: object = None  # scores.Scores of the best epoch, when written

    @property
    def metrics(self) -> dict:
        return self.summary.get("best_metrics") or {}

    @property
    def interrupted_at(self) -> int | None:
        """The last finished epoch of a run that stopped before its end; None for a finished run."""
        return self.summary.get("interrupted_at")


def load_run(run_dir, label: str | None = None) -> RunData:
    from facerec.evaluation.scores import read_scores

    d = Path(run_dir)
    cfg = yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").is_file() else {}
    history = []
    if (d / "metrics.csv").is_file():
        with open(d / "metrics.csv") as fh:
            history = [{k: float(v) for k, v in upgrade_row(r).items() if v not in ("", None)} for r in csv.DictReader(fh)]
    env = json.loads((d / "env.json").read_text()) if (d / "env.json").is_file() else {}
    scores = read_scores(d / "scores.txt") if (d / "scores.txt").is_file() else None
    if is_finished(d):
        summary = upgrade_summary(json.loads((d / "summary.json").read_text()))
    else:
        summary = _interrupted_summary(d, history, scores)
    return RunData(label or cfg.get("tag") or d.name, int(cfg.get("seed", 0)), d, cfg, summary, history, env, scores)


def _interrupted_summary(d: Path, history: list[dict], scores) -> dict:
    """A stopped run is compared on the epochs it finished: its best validated epoch, whose scores
    scores.txt holds (written whenever the validation EER improved)."""
    from facerec.evaluation.metrics import compute_all

    validated = [r for r in history if "val_eer" in r]
    if not validated:
        raise FacerecError(f"{d}: no summary.json and no validated epoch in metrics.csv, so nothing to compare "
                           f"(`facerec train --resume {d}` continues the run)")
    best = min(validated, key=lambda r: r["val_eer"])
    if scores is not None:
        metrics = compute_all(scores.scores, scores.labels, scores.folds)
    else:
        metrics = {k[len("val_"):]: v for k, v in best.items() if k.startswith("val_") and k != "val_seconds"}
    last = int(history[-1]["epoch"])
    return {"epochs": last, "best_epoch": int(best["epoch"]), "best_eer": metrics["eer"], "best_metrics": metrics,
            "train_seconds": sum(r.get("seconds", 0.0) for r in history), "interrupted_at": last}


def groups_from_index(index, phase: str) -> dict[str, list[RunData]]:
    from facerec.experiments.plan import load_phases

    rows = [r for r in index.rows(phase) if r.get("status") == "done"]
    if not rows:
        raise FacerecError(f"{index.path}: no finished runs of phase {phase!r}")
    phases = load_phases()
    order = phases[phase].presets if phase in phases else []
    rank = {p: i for i, p in enumerate(order)}
    groups: dict[str, list[RunData]] = {}
    for r in sorted(rows, key=lambda r: (rank.get(r["preset"], len(rank)), r["preset"], int(r["seed"]))):
        groups.setdefault(r["preset"], []).append(load_run(r["run_dir"], r["preset"]))
    return groups


def groups_from_dirs(dirs) -> dict[str, list[RunData]]:
    groups: dict[str, list[RunData]] = {}
    for d in dirs:
        run = load_run(d)
        groups.setdefault(run.label, []).append(run)
    return groups


@dataclass
class Comparison:
    label: str
    runs: list[RunData]
    eer: tuple[float, float]
    auc: tuple[float, float]
    tar: tuple[float, float]  # TAR@FAR=1e-2 in percent
    boot: stats.Bootstrap | None = None
    welch: stats.Welch | None = None
    verdict: str = ""
    note: str = ""
    diff: dict = field(default_factory=dict)

    @property
    def hypothesis(self) -> str:
        return self.runs[0].config.get("hypothesis") or self.runs[0].summary.get("hypothesis") or ""

    def cost(self, key: str) -> float | None:
        vals = [r.summary.get(key) for r in self.runs if r.summary.get(key) is not None]
        return float(np.mean(vals)) if vals else None


def _summary(label: str, runs: list[RunData]) -> Comparison:
    m = [r.metrics for r in runs]
    return Comparison(label, runs, stats.mean_std([x["eer"] for x in m]), stats.mean_std([x["auc"] for x in m]),
                      stats.mean_std([x["tar_far_1e-2"] for x in m]))


def config_diff(base: dict, other: dict) -> dict:
    keys = sorted((set(base) | set(other)) - NOT_THE_EXPERIMENT)
    return {k: (base.get(k), other.get(k)) for k in keys if base.get(k) != other.get(k)}


def _aligned(runs: list[RunData], ref) -> bool:
    return all(r.scores is not None and r.scores.path1 == ref.path1 and r.scores.path2 == ref.path2
               and np.array_equal(r.scores.labels, ref.labels) for r in runs)


def compare(groups: dict[str, list[RunData]], baseline: str, n_boot: int = 1000) -> list[Comparison]:
    if baseline not in groups:
        raise FacerecError(f"baseline {baseline!r} has no finished runs here (have: {', '.join(groups)})")
    for label, runs in groups.items():
        missing = [str(r.run_dir) for r in runs if "eer" not in r.metrics]
        if missing:
            raise FacerecError(f"{label}: no validation metrics in {', '.join(missing)} (trained without --val?)")
    base = _summary(baseline, groups[baseline])
    out = [base]
    ref = groups[baseline][0].scores
    for label, runs in groups.items():
        if label == baseline:
            continue
        c = _summary(label, runs)
        c.diff = config_diff(groups[baseline][0].config, runs[0].config)
        if ref is not None and _aligned(runs + groups[baseline], ref):
            c.boot = stats.paired_bootstrap([r.scores.scores for r in runs], [r.scores.scores for r in groups[baseline]],
                                            ref.labels, n_boot=n_boot)
        else:
            c.note = "no shared validation pairs with the baseline: no bootstrap"
        c.welch = stats.welch([r.metrics["eer"] for r in runs], [r.metrics["eer"] for r in groups[baseline]])
        c.verdict = stats.verdict(c.boot, c.welch)
        out.append(c)
    return out
