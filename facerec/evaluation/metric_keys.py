"""One name and one unit for every metric, wherever it is written.

Rates are in percent everywhere: EER, TAR@FAR, accuracy (face_trainer's and the course's unit).
AUC is an area in [0, 1]; thresholds are cosine scores. The same key names a metric in
`metrics.compute_all`'s dict, summary.json's `best_metrics`, the experiment index, metrics.csv and
TensorBoard; a validation column is the key with a `val_` prefix (`val_eer`, `val_tar_far_1e-2`),
and TensorBoard's tag is the column name itself. Each operating point carries its threshold
(`eer_threshold`, `tar_far_1e-2_threshold`, `acc_threshold`): the cosine score a deployment uses.

Files written before this vocabulary (no `metrics_version`, keys `tar_at_far`, `val_tar@far0.01`,
`best_accuracy`, `train_accuracy` holding fractions) are upgraded when read, so old run directories
still load into reports and resume.
"""

from __future__ import annotations

VERSION = 2
FARS = ("1e-1", "1e-2", "1e-3")


def tar_key(far: str) -> str:
    """`tar_far_1e-2`: TAR (percent) at FAR = 1e-2."""
    return f"tar_far_{far}"


TAR_KEYS = tuple(tar_key(f) for f in FARS)
PERCENT = ("eer", *TAR_KEYS, "acc", "fold_acc_mean", "fold_acc_sem", "train_acc")

LABELS = {"eer": "EER (%)", "auc": "AUC", **{tar_key(f): f"TAR@FAR={f} (%)" for f in FARS},
          "acc": "best accuracy (%)", "fold_acc_mean": "k-fold accuracy (%)", "train_acc": "train accuracy (%)",
          "loss": "loss"}

_OLD_FAR = {"0.1": "1e-1", "0.01": "1e-2", "0.001": "1e-3"}
_OLD_RATES = {"best_accuracy": "acc", "fold_accuracy_mean": "fold_acc_mean", "fold_accuracy_sem": "fold_acc_sem"}
_OLD_NAMES = {"best_threshold": "acc_threshold"}


def _pct(v):
    return None if v is None or v == "" else float(v) * 100


def upgrade_metrics(m: dict) -> dict:
    """A metrics dict in the v1 vocabulary (nested `tar_at_far`, fractions) in today's."""
    if "tar_at_far" not in m and not any(k in m for k in _OLD_RATES):
        return m
    out = {}
    for k, v in m.items():
        if k == "tar_at_far":
            out.update({tar_key(_OLD_FAR.get(f, f)): _pct(x) for f, x in v.items()})
        elif k in _OLD_RATES:
            out[_OLD_RATES[k]] = _pct(v)
        else:
            out[_OLD_NAMES.get(k, k)] = v
    return out


def upgrade_summary(s: dict) -> dict:
    if s.get("metrics_version", 1) >= VERSION:
        return s
    out = dict(s, metrics_version=VERSION)
    if isinstance(s.get("best_metrics"), dict):
        out["best_metrics"] = upgrade_metrics(s["best_metrics"])
    return out


def upgrade_row(row: dict) -> dict:
    """One metrics.csv / history row (values may be strings, as csv reads them)."""
    out = {}
    for k, v in row.items():
        if k.startswith("val_tar@far"):
            f = k[len("val_tar@far"):]
            out["val_" + tar_key(_OLD_FAR.get(f, f))] = _pct(v)
        elif k == "train_accuracy":
            out["train_acc"] = _pct(v)
        else:
            out[k] = v
    return out


def upgrade_index_row(row: dict) -> dict:
    """Index rows before v2 held TAR@FAR as fractions under today's names."""
    if row.get("metrics_version", 1) >= VERSION:
        return row
    return {**row, **{k: _pct(row[k]) for k in TAR_KEYS if row.get(k) is not None}, "metrics_version": VERSION}
