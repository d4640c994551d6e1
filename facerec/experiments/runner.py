"""Run a planned phase: one subprocess per run (`facerec train`), so each run's memory peak,
crash or NaN stays its own. Finished runs are skipped; an interrupted one resumes from its
last checkpoint; every outcome lands in the results index."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .. import config as config_mod
from ..errors import FacerecError
from ..fileio import write_text
from ..rundir import is_finished
from .index import Index, row_from_run
from .plan import Run


def state(run: Run) -> str:
    if is_finished(run.run_dir):
        return "done"
    if (run.run_dir / "last.pt").is_file():
        return "resume"
    return "new"


def command(run: Run) -> list[str]:
    base = [sys.executable, "-m", "facerec", "train", "--no-progress"]
    if state(run) == "resume":
        return base + ["--resume", str(run.run_dir)]
    return base + ["--preset", str(run.run_dir / "planned.yaml")]


def changed(run: Run) -> list[str]:
    """Config keys whose planned value differs from what this run directory was started with."""
    path = run.run_dir / "planned.yaml"
    if not path.is_file():
        return []
    import yaml

    before = yaml.safe_load(path.read_text()) or {}
    now = run.cfg.to_dict()
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def check_unchanged(runs: list[Run]) -> None:
    """A finished or half-done run is only reused when it was started with the same config."""
    stale = [(r, keys) for r in runs if state(r) != "new" and (keys := changed(r))]
    if stale:
        lines = [f"  {r.run_dir}: {', '.join(keys)}" for r, keys in stale[:10]]
        raise FacerecError(f"{len(stale)} existing run(s) were started with a different config:\n" + "\n".join(lines)
                           + "\nuse --force to redo them, or --out for a new results folder")


def run_phase(runs: list[Run], index: Index, *, quick: bool, data: str, force: bool = False, keep_last: bool = False,
              log=print, progress: bool = False) -> int:
    """Returns the number of failed runs."""
    if not force:
        check_unchanged(runs)
    failed: set[str] = set()
    bar = tqdm(runs, unit="run", desc=runs[0].phase if runs else "phase", disable=not progress)
    for run in bar:
        bar.set_postfix_str(f"{run.preset} seed {run.seed}")
        fields = {"phase": run.phase, "preset": run.preset, "seed": run.seed, "data": data, "quick": quick}
        st = state(run)
        if st == "done" and not force:
            index.upsert({**row_from_run(run.run_dir, **fields), "finished": _mtime(run.run_dir / "summary.json")})
            continue
        if run.needs and f"{run.needs}/{run.seed}" in failed:
            index.upsert({**fields, "status": "skipped", "run_dir": str(run.run_dir),
                          "error": f"{run.needs} (seed {run.seed}) failed", "hypothesis": run.cfg.hypothesis})
            failed.add(f"{run.preset}/{run.seed}")
            continue
        if force and st != "new":
            for name in ("summary.json", "last.pt", "best.pt"):
                (run.run_dir / name).unlink(missing_ok=True)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run.run_dir / "planned.yaml", config_mod.dump(run.cfg))
        cmd = command(run)
        t0 = time.time()
        with open(run.run_dir / "log.txt", "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if rc == 0 and is_finished(run.run_dir):
            if not keep_last:  # ~3x the weights with the optimiser state; best.pt keeps the weights
                (run.run_dir / "last.pt").unlink(missing_ok=True)
            row = {**row_from_run(run.run_dir, **fields), "finished": _mtime(run.run_dir / "summary.json")}
            index.upsert(row)
            eer = "n/a" if row["eer"] is None else f"{row['eer']:.2f}%"
            log(f"{run.key}: EER {eer} ({time.time() - t0:.0f}s)")
        else:
            tail = (run.run_dir / "log.txt").read_text().splitlines()[-3:]
            index.upsert({**fields, "status": "failed", "run_dir": str(run.run_dir), "hypothesis": run.cfg.hypothesis,
                          "error": f"exit {rc}: " + " | ".join(tail)})
            failed.add(f"{run.preset}/{run.seed}")
            log(f"{run.key}: FAILED (exit {rc}); see {run.run_dir / 'log.txt'}")
    bar.close()
    return len(failed)


def _mtime(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))
