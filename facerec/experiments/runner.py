"""Run a planned phase: one subprocess per run (`facerec train`), so each run's memory peak,
crash or NaN stays its own, one or several at a time (facerec/experiments/jobs.py). Finished runs
are skipped; an interrupted one resumes from its last checkpoint; every outcome lands in the
results index."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from facerec import config as config_mod
from facerec.errors import FacerecError
from facerec.experiments.index import Index, row_from_run
from facerec.experiments.jobs import Job, Scheduler, Slots, cpu_cores, train_slot_flags
from facerec.experiments.plan import Run
from facerec.util.fileio import write_text
from facerec.util.rundir import is_finished, status


def state(run: Run) -> str:
    return status(run.run_dir)


def command(run: Run) -> list[str]:
    base = [sys.executable, "-m", "facerec", "train", "--no-progress"]
    if state(run) == "resume":
        return base + ["--resume", str(run.run_dir)]
    return base + ["--preset", str(run.run_dir / "planned.yaml")]


def changed(run: Run) -> list[str]:
    """Recipe keys whose planned value differs from what this run directory was started with."""
    path = run.run_dir / "planned.yaml"
    if not path.is_file():
        return []
    import yaml

    return config_mod.recipe_changes(yaml.safe_load(path.read_text()) or {}, run.cfg.to_dict())


def check_unchanged(runs: list[Run]) -> None:
    """A finished or half-done run is only reused when it was started with the same config."""
    stale = [(r, keys) for r in runs if state(r) != "new" and (keys := changed(r))]
    if stale:
        lines = [f"  {r.run_dir}: {', '.join(keys)}" for r, keys in stale[:10]]
        raise FacerecError(f"{len(stale)} existing run(s) were started with a different config:\n" + "\n".join(lines)
                           + "\nuse --force to redo them, or --out for a new results folder")


def run_phase(runs: list[Run], index: Index, *, quick: bool, data: str, force: bool = False, keep_last: bool = False,
              log=print, progress: bool = False, slots: Slots | None = None) -> int:
    """Every run of the phase, `slots` of them at once (default: one at a time on the config's own
    device). Returns the number of failed runs; an index row lands as each run ends."""
    if not force:
        check_unchanged(runs)
    fields = {r.key: {"phase": r.phase, "preset": r.preset, "seed": r.seed, "data": data, "quick": quick} for r in runs}
    by_key = {r.key: r for r in runs}
    jobs = []
    for run in runs:
        if state(run) == "done" and not force:
            index.upsert({**row_from_run(run.run_dir, **fields[run.key]), "finished": _mtime(run.run_dir / "summary.json")})
            continue
        jobs.append(Job(run.key, _job_command(run), run.run_dir / "log.txt",
                        needs=f"{run.phase}/{run.needs}/seed{run.seed}" if run.needs else None,
                        before_start=_preparer(run, force)))
    done_keys = {r.key for r in runs} - {j.key for j in jobs}
    for j in jobs:  # a run whose `needs` finished earlier waits for nothing
        if j.needs in done_keys:
            j.needs = None
    failed: list[str] = []

    def on_done(job: Job, outcome) -> None:
        run = by_key[job.key]
        if outcome.rc == 0 and is_finished(run.run_dir):
            if not keep_last:  # ~3x the weights with the optimiser state; best.pt keeps the weights
                (run.run_dir / "last.pt").unlink(missing_ok=True)
            row = {**row_from_run(run.run_dir, **fields[run.key]), "finished": _mtime(run.run_dir / "summary.json")}
            index.upsert(row)
            eer = "n/a" if row["eer"] is None else f"{row['eer']:.2f}%"
            log(f"{run.key}: EER {eer} ({outcome.seconds:.0f}s{', ' + outcome.device if slots else ''})")
            return
        failed.append(run.key)
        if outcome.rc is None:
            index.upsert({**fields[run.key], "status": "skipped", "run_dir": str(run.run_dir),
                          "error": f"{run.needs} (seed {run.seed}) failed", "hypothesis": run.cfg.hypothesis})
            return
        tail = (run.run_dir / "log.txt").read_text(errors="replace").splitlines()[-3:]
        index.upsert({**fields[run.key], "status": "failed", "run_dir": str(run.run_dir),
                      "hypothesis": run.cfg.hypothesis, "error": f"exit {outcome.rc}: " + " | ".join(tail)})
        log(f"{run.key}: FAILED (exit {outcome.rc}); see {run.run_dir / 'log.txt'}")

    if jobs:
        if slots is None:  # one at a time, each on the device its config names
            slots = Slots({"config": 1}, threads=cpu_cores())
        if slots.how:
            log(slots.how)
        Scheduler(slots, log=log, on_done=on_done, progress=progress).run(jobs)
    return len(failed)


def _preparer(run: Run, force: bool):
    def prepare() -> None:
        if force and state(run) != "new":
            for name in ("summary.json", "last.pt", "best.pt"):
                (run.run_dir / name).unlink(missing_ok=True)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run.run_dir / "planned.yaml", config_mod.dump(run.cfg))

    return prepare


def _job_command(run: Run):
    return lambda device, workers: command(run) + train_slot_flags(device, workers, run.cfg.workers)


def _mtime(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))
