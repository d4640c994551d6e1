"""What a run leaves for people: metrics.csv, TensorBoard, the epoch line, scores, plots, summary.json
with the model's costs."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facerec.errors import WriteError
from facerec.evaluation.metric_keys import VERSION as METRICS_VERSION
from facerec.trainer import budget
from facerec.util.fileio import atomic_path, write_text

LOG = logging.getLogger(__name__)


def tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a pinned dependency; keep training if a user removed it
        return None
    try:
        return _Board(SummaryWriter(log_dir=str(run_dir / "tb")), run_dir / "tb")
    except OSError as exc:
        raise WriteError(run_dir / "tb", exc) from exc


class _Board:
    """The SummaryWriter, its write errors as WriteError like every other file of the run. Its
    event file is appended to, not replaced: TensorBoard skips a torn last record by its checksum."""

    def __init__(self, writer, folder: Path):
        self.writer, self.folder = writer, folder

    def add_scalar(self, *args) -> None:
        self._call(self.writer.add_scalar, *args)

    def flush(self) -> None:
        self._call(self.writer.flush)

    def close(self) -> None:
        # Called while another error may be on its way out, and flush() already raised any failure of
        # an epoch's events: a failing close must not replace that error.
        try:
            self.writer.close()
        except Exception as exc:
            LOG.debug("closing %s: %s", self.folder, exc)

    def _call(self, fn, *args) -> None:
        try:
            fn(*args)
        except OSError as exc:
            raise WriteError(self.folder, exc) from exc


def log_steps(t) -> None:
    """steps.csv (--log-steps): one row per optimiser step. Rows of a step being redone after a
    resume replace the earlier ones, so the file never holds a step twice."""
    if not t.step_log:
        return
    path = t.run_dir / "steps.csv"
    first = t.step_log[0][0]
    old = []
    if path.is_file():
        with open(path) as fh:
            old = [r for r in csv.reader(fh)][1:]
    rows = [r for r in old if int(r[0]) < first] + [list(r) for r in t.step_log]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["global_step", "epoch", "step", "loss", "lr"])
        w.writerows(rows)
    t.step_log.clear()


def log_epoch(t, row: dict, tb) -> None:
    log_steps(t)
    keys = list(dict.fromkeys(k for r in t.state.history for k in r))
    with atomic_path(t.run_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(t.state.history)
    if tb is not None:
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                tb.add_scalar(k, v, row["epoch"])  # the tag is the metrics.csv column (metric_keys)
        tb.flush()
    parts = [f"epoch {row['epoch']}", f"loss {row['loss']:.4f}"]
    if "train_acc" in row:
        parts.append(f"acc {row['train_acc']:.1f}%")
    if "val_eer" in row:
        parts.append(f"val EER {row['val_eer']:.2f}%")
    seconds = f"{row['seconds']:.0f}s" + (f" + val {row['val_seconds']:.0f}s" if "val_seconds" in row else "")
    parts += [f"lr {row['lr']:.2e}", f"{row['images_per_s']:.0f} img/s", seconds]
    t.log(" | ".join(parts))


def deployment(m: dict | None, scores: np.ndarray | None, val) -> dict:
    """What best.pt carries so a model decides without a pair list (`facerec verify`, `FaceModel.threshold`):
    the validation EER threshold, those at FAR 1e-1/1e-2/1e-3, and the scores for any other FAR."""
    if not m or scores is None:
        return {}
    from facerec.evaluation.metric_keys import FARS, tar_key

    return {"thresholds": {"eer": m["eer_threshold"], **{f: m[tar_key(f) + "_threshold"] for f in FARS}},
            "val_scores": {"scores": torch.as_tensor(scores, dtype=torch.float64),
                           "labels": torch.as_tensor(val.labels, dtype=torch.int8)}}


def write_scores(t, scores: np.ndarray) -> None:
    from facerec.evaluation.scores import write_scores

    v = t.data.val
    write_scores(t.run_dir / "scores.txt", scores, v.label_text, v.path1, v.path2, v.folds)


def plots(t):
    """curves.png of the finished epochs and roc_det.png of the best one's scores (returned, if any)."""
    from facerec.evaluation.plots import plot_curves, plot_roc_det
    from facerec.evaluation.scores import read_scores

    if t.state.history:
        plot_curves(t.state.history, t.run_dir / "curves.png")
    if not (t.run_dir / "scores.txt").is_file():
        return None
    s = read_scores(t.run_dir / "scores.txt")
    plot_roc_det({f"{t.cfg.model} {t.cfg.loss}": (s.scores, s.labels)}, t.run_dir / "roc_det.png")
    return s


def finish(t) -> dict:
    summary = {"metrics_version": METRICS_VERSION, "run_dir": str(t.run_dir), "epochs": t.state.epoch, "best_eer": t.state.best["eer"],
               "best_epoch": t.state.best["epoch"], "hypothesis": t.cfg.hypothesis,
               "train_seconds": sum(r.get("seconds", 0.0) for r in t.state.history),
               "wall_seconds": t.seconds_before + time.perf_counter() - t.t_start,
               "peak_memory_mb": peak_memory_mb(t.device), "first_step_seconds": t.first_step_seconds,
               **costs(t)}
    s = plots(t)
    if s is not None:
        from facerec.evaluation.metrics import compute_all

        # A run resumed from a checkpoint of an older version has no metrics in `best`.
        summary["best_metrics"] = t.state.best.get("metrics") or compute_all(s.scores, s.labels, s.folds)
    from facerec.evaluation.metrics import jsonable

    write_text(t.run_dir / "summary.json", json.dumps(jsonable(summary), indent=2))
    return summary


def costs(t) -> dict:
    """Params, FLOPs, size and CPU latency of the trained model, for the experiment records."""
    import copy

    m = copy.deepcopy(t.model).cpu().float()
    c = budget.counts(m, t.loss)
    return {**c, "flops": budget.flops(m, t.cfg.input_size), "size_mb": budget.size_mb(m),
            "ms_per_image_cpu": budget.latency_ms(m, t.cfg.input_size, batch=8, repeats=3)}


def peak_memory_mb(dev: torch.device) -> float:
    """Peak GPU memory on CUDA; else the process's peak resident set (one run per process under
    `facerec experiment`, so it is the run's)."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def plots_so_far(t) -> None:
    """A stopped run's folder still shows the curves and ROC of the epochs it finished."""
    if t.strategy.is_main and t.state.history:
        try:
            plots(t)
        except Exception as exc:  # the stop message matters more than a figure
            LOG.debug("no plots for the stopped run: %s", exc)
