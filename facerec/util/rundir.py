"""What a run directory holds, in one place (the runner, reports, CV and the trainer ask the same)."""

from __future__ import annotations

from pathlib import Path

RUN_PRODUCTS = ("last.pt", "best.pt", "summary.json")  # a directory holding any of these is a run


def is_finished(run_dir) -> bool:
    """A run is finished once it wrote summary.json (the last thing a run writes)."""
    return (Path(run_dir) / "summary.json").is_file()


def status(run_dir) -> str:
    """"done" (summary.json written), "resume" (an epoch saved in last.pt, not finished) or "new"."""
    if is_finished(run_dir):
        return "done"
    return "resume" if (Path(run_dir) / "last.pt").is_file() else "new"
