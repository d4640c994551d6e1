"""The results index: one row per run (phase, preset, seed), as JSON lines plus a CSV view.

Rows are replaced, never duplicated, when a run is redone; the files are rewritten atomically
so an interrupted phase never leaves a half-written index.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from facerec.errors import FacerecError
from facerec.evaluation.metric_keys import VERSION, upgrade_index_row, upgrade_summary
from facerec.util.fileio import write_text

COLUMNS = ("phase", "preset", "seed", "status", "data", "quick", "hypothesis", "eer", "auc", "tar_far_1e-2",
           "tar_far_1e-3", "best_epoch", "epochs", "trunk_params", "total_params", "flops", "ms_per_image_cpu",
           "size_mb", "peak_memory_mb", "train_seconds", "run_dir", "finished", "error")


def key(row: dict) -> tuple:
    return row["phase"], row["preset"], int(row["seed"])


class Index:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "index.jsonl"

    def rows(self, phase: str | None = None) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FacerecError(f"{self.path}:{n}: not a JSON row ({exc.msg})") from None
            if phase is None or row.get("phase") == phase:
                out.append(upgrade_index_row(row))
        return out

    def upsert(self, row: dict) -> None:
        rows = {key(r): r for r in self.rows()}
        rows[key(row)] = row
        ordered = list(rows.values())
        write_text(self.path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in ordered))
        buf = io.StringIO()
        extra = sorted({k for r in ordered for k in r} - set(COLUMNS))
        w = csv.DictWriter(buf, fieldnames=[*COLUMNS, *extra], extrasaction="ignore")
        w.writeheader()
        w.writerows(ordered)
        write_text(self.folder / "index.csv", buf.getvalue())


def row_from_run(run_dir: Path, **fields) -> dict:
    """An index row from a finished run directory's summary.json (plus the runner's fields)."""
    summary = upgrade_summary(json.loads((Path(run_dir) / "summary.json").read_text()))
    best = summary.get("best_metrics") or {}
    row = {**fields, "status": "done", "hypothesis": summary.get("hypothesis", ""), "metrics_version": VERSION,
           **{k: best.get(k) for k in ("eer", "auc", "tar_far_1e-2", "tar_far_1e-3")},
           "best_epoch": summary.get("best_epoch"), "epochs": summary.get("epochs"), "run_dir": str(run_dir)}
    for k in ("trunk_params", "total_params", "flops", "ms_per_image_cpu", "size_mb", "peak_memory_mb", "train_seconds"):
        row[k] = summary.get(k)
    return row
