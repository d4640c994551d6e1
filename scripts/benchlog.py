"""Append a benchmark's figures, with its command, commit and machine, to docs/benchmarks.md.

Entries are only ever appended, so the previous commit's figures stay beside the new ones
and a slowdown shows."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nEach `scripts/bench_*.py` appends its measured figures here (newest last), with the command, "
          "commit and machine. Medians of repeats measured in one run; this machine is shared and noisy.\n")


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls of fn, after one untimed warm-up call (first-call
    allocations, lazy initialisation, graph optimisation)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


COURSE_IDENTITIES = 2882  # the course's train1


def deal_symlinks(out: Path, n: int, target, identities: int = COURSE_IDENTITIES) -> None:
    """A course-shaped identity folder set without copying images: n symlinks dealt over
    `identities` folders (out/id0000/00000.jpg ...), link i pointing at target(i)."""
    base, extra = divmod(n, identities)
    pos = 0
    for k in range(identities):
        ident = out / f"id{k:04d}"
        ident.mkdir(parents=True)
        for j in range(base + (k < extra)):
            os.symlink(target(pos + j), ident / f"{j:05d}.jpg")
        pos += base + (k < extra)


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=DOC.parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=DOC.parent).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def machine() -> str:
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({threads} thread{'s' if threads != 1 else ''}), {dev}")


def append(title: str, lines: list[str], command: str | None = None) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    if not DOC.exists():
        DOC.write_text(HEADER)
    command = command or "python " + " ".join([os.path.relpath(sys.argv[0], DOC.parents[1])] + sys.argv[1:])
    entry = [f"\n## {title} — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- command: `{command}`", f"- commit: {commit()}", f"- machine: {machine()}", ""]
    with open(DOC, "a") as fh:
        fh.write("\n".join(entry + lines) + "\n")


if __name__ == "__main__":  # `CMD | python scripts/benchlog.py TITLE CMD` appends CMD's output as a code block
    append(sys.argv[1], ["```", sys.stdin.read().rstrip(), "```"], command=sys.argv[2])
