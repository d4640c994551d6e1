"""Hyperparameter search with Optuna (`facerec search --space SPACE.yaml --trials N`).

TPE proposes each trial's values; the median pruner stops a trial whose validation EER after an
epoch is worse than the median of earlier trials at that epoch. Every trial is an ordinary run
(RESULTS/search-NAME/trialN/seedS) and lands in the results index as phase `search-NAME`, with
its sampled values. The study lives in RESULTS/search-NAME/study.db, so re-running continues it.

SPACE.yaml:
    presets: [baseline]           # applied first (default: baseline)
    fixed: {epochs: 5}            # config values every trial shares
    params:                       # config keys, or loss_options.X / model_options.X
      lr: {float: [1.0e-4, 1.0e-2], log: true}
      batch_classes: {int: [50, 200], step: 50}
      optimizer: {choice: [adam, adamw]}
      loss_options.margin: {float: [0.2, 0.5]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from facerec import config as config_mod
from facerec.errors import FacerecError, nearest

KINDS = ("float", "int", "choice")
NESTED = ("loss_options", "model_options")


@dataclass
class Param:
    key: str
    kind: str
    values: list
    log: bool = False
    step: float | None = None

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, self.values)
        lo, hi = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, int(lo), int(hi), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(lo), float(hi), step=self.step, log=self.log)


@dataclass
class Space:
    presets: list[str]
    fixed: dict
    params: list[Param]


def read_space(path) -> Space:
    path = Path(path)
    if not path.is_file():
        raise FacerecError(f"--space {path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FacerecError(f"{path}: invalid YAML ({exc})") from None
    unknown = set(raw) - {"presets", "fixed", "params"}
    if unknown:
        raise FacerecError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))} (expected presets, fixed, params)")
    if not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise FacerecError(f"{path}: 'params' must map config keys to ranges, e.g. lr: {{float: [1.0e-4, 1.0e-2], log: true}}")
    params = []
    for key, spec in raw["params"].items():
        where = f"{path}: params.{key}"
        top = key.split(".", 1)[0]
        if top not in config_mod.FIELDS or ("." in key) != (top in NESTED):
            raise FacerecError(f"{where}: unknown config key{nearest(top, config_mod.FIELDS)}"
                               + (" (loss_options/model_options take a dotted name)" if top in NESTED else ""))
        kinds = [k for k in KINDS if k in (spec or {})] if isinstance(spec, dict) else []
        extra = set(spec or {}) - set(KINDS) - {"log", "step"} if isinstance(spec, dict) else set()
        if len(kinds) != 1 or extra:
            raise FacerecError(f"{where}: expected exactly one of float: [lo, hi], int: [lo, hi] or choice: [...] "
                               f"(plus log/step), got {spec!r}")
        kind, values = kinds[0], spec[kinds[0]]
        if not isinstance(values, list) or (kind != "choice" and (len(values) != 2 or values[0] >= values[1])):
            raise FacerecError(f"{where}: {kind} expects " + ("a list of values" if kind == "choice" else "[low, high] with low < high"))
        params.append(Param(key, kind, values, bool(spec.get("log", False)), spec.get("step")))
    presets = raw.get("presets", ["baseline"])
    presets = [presets] if isinstance(presets, str) else list(presets)
    fixed = dict(raw.get("fixed") or {})
    config_mod.load(presets, fixed)  # typos in presets or fixed values fail now, before any trial
    return Space(presets, fixed, params)


def overrides_for(space: Space, values: dict) -> dict:
    out = dict(space.fixed)
    for key, v in values.items():
        top, _, sub = key.partition(".")
        if sub:
            out.setdefault(top, {})
            out[top] = {**out[top], sub: v}
        else:
            out[key] = v
    return out


def run_search(space: Space, *, name: str, trials: int, data: dict, results: Path, quick: bool, seed: int,
               overrides: dict, data_name: str, progress: bool = False, log=print) -> dict:
    import optuna

    from facerec.experiments.index import Index, row_from_run
    from facerec.trainer import Trainer

    folder = results / f"search-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}", load_if_exists=True,
                                direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    index = Index(results)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    todo = max(0, trials - len([t for t in study.trials if t.state.is_finished()]))

    def objective(trial) -> float:
        values = {p.key: p.suggest(trial) for p in space.params}
        run_dir = folder / f"trial{trial.number}" / f"seed{seed}"
        base = {"train": data["train"], "val": data["val"], "seed": seed, "run_dir": str(run_dir),
                "tag": f"trial{trial.number}", "hypothesis": f"search {name}: " + json.dumps(values)}
        cfg = config_mod.load(space.presets + (["quick"] if quick else []),
                              {**overrides_for(space, values), **base, **overrides})
        fields = {"phase": f"search-{name}", "preset": f"trial{trial.number}", "seed": seed, "data": data_name,
                  "quick": quick, "params": values}

        def on_epoch(row):
            if "val_eer" in row:
                trial.report(row["val_eer"], int(row["epoch"]))
                if trial.should_prune():
                    index.upsert({**fields, "status": "pruned", "eer": row["val_eer"], "epochs": row["epoch"],
                                  "run_dir": str(run_dir), "hypothesis": base["hypothesis"]})
                    raise optuna.TrialPruned(f"val EER {row['val_eer']:.2f}% at epoch {row['epoch']}")

        summary = Trainer(cfg, progress=progress, log=lambda *_: None, on_epoch=on_epoch).fit()
        index.upsert(row_from_run(run_dir, **fields))
        log(f"trial {trial.number}: EER {summary['best_eer']:.2f}% {values}")
        return float(summary["best_eer"])

    study.optimize(objective, n_trials=todo, catch=(FacerecError,))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise FacerecError(f"search {name}: no trial finished (see {folder})")
    best = study.best_trial
    out = {"best_trial": best.number, "best_eer": best.value, "best_params": best.params,
           "trials": len(study.trials), "complete": len(done),
           "pruned": len([t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED])}
    from facerec.util.fileio import write_text

    write_text(folder / "best.json", json.dumps(out, indent=2))
    return out
