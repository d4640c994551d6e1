"""How far a recipe's threshold on seen people sits above the one its strangers need, measured on
LFW View 1: the value of `facerec benchmark lfw --threshold-shift`.

    python scripts/probe_threshold_shift.py [--preset demo] [--seeds 42,123,456] [--backends none,plda]
                                            [--test-crops 1|5] [--jobs N] [--runs DIR]

On LFW View 2 a fold's threshold is chosen on the other nine folds' pairs, whose people its model was
trained on; their genuine pairs score higher than a stranger's, so that threshold runs high and
rejects too many of the test fold's genuine pairs. View 1 is LFW's development view, which exists to
fix such a choice beforehand: for each seed, the recipe is trained on peopleDevTrain (a finished run
is reused), and its last.pt scores pairsDevTrain (2,200 pairs of those seen people) and pairsDevTest
(1,000 pairs of people it never saw). The shift is the best-accuracy threshold on the seen pairs minus
the best on the unseen ones. Printed per back-end and seed: both thresholds, the shift, and DevTest
accuracy at the seen threshold, at the seen threshold minus the other seeds' mean shift (does a shift
measured on other models carry over?) and at DevTest's own best threshold (the ceiling). The figures
are appended to docs/benchmarks.md, and the mean shift per back-end is written to <out>/shift.json.
With --runs, a phase's finished View 1 runs are measured instead (`facerec experiment run
--keep-last` keeps their last.pt): nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import benchlog  # noqa: E402


def _ints(text: str) -> list[int]:
    try:
        return list(dict.fromkeys(int(x) for x in text.split(",") if x.strip()))  # a repeated seed counts once
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _backends(text: str) -> list[str]:
    from facerec.evaluation.backend import KINDS

    kinds = [x.strip() for x in text.split(",") if x.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"expected back-ends from {', '.join(KINDS)}, got {text!r}")
    return kinds


def train_command(run_dir: Path, presets: list[str], seed: int) -> list[str] | None:
    """The `facerec train` argv that trains the recipe on View 1 into run_dir (an interrupted run
    resumes); None when a finished run is there already."""
    from facerec.util.rundir import status

    state = status(run_dir)
    if state == "done":
        print(f"seed {seed}: reusing {run_dir}")
        return None
    return [sys.executable, "-m", "facerec", "train", "--no-progress",
            *(["--resume", str(run_dir)] if state == "resume" else [
                *(a for p in presets for a in ("--preset", p)), "--seed", str(seed), "--run-dir", str(run_dir)])]


def train_all(out: Path, presets: list[str], seeds: list[int], slots, preset_workers: int | None = None) -> None:
    """Each seed's run trained, one after another (slots None) or `slots` at a time, one process each;
    the slots' DataLoader workers apply unless the presets set their own (as for a phase's runs)."""
    from facerec.experiments.jobs import Job, Scheduler, train_slot_flags

    todo = {seed: cmd for seed in seeds if (cmd := train_command(out / f"seed{seed}" / "run", presets, seed))}
    if slots is None:
        for seed, cmd in todo.items():
            print(f"seed {seed}: {' '.join(cmd[1:])}", flush=True)
            subprocess.run(cmd, check=True)
        return

    def command(cmd: list[str]):
        return lambda device, workers: cmd + train_slot_flags(device, workers, preset_workers)

    if slots.how:
        print(slots.how)
    jobs = [Job(f"seed {seed}", command(cmd), out / f"seed{seed}" / "log.txt") for seed, cmd in todo.items()]
    failed = [o for o in Scheduler(slots).run(jobs) if o.rc != 0]
    if failed:
        raise SystemExit(f"training failed: {', '.join(o.key for o in failed)}; see their log.txt under {out}")


def link_runs(runs: Path, out: Path, seeds: list[int]) -> None:
    """out/seed<S>/run made a link to runs/seed<S>, a finished View 1 run with its last.pt, so that
    each seed's embeddings are kept beside it under out/ as for a run trained here."""
    from facerec.util.rundir import is_finished

    for seed in seeds:
        src = (runs / f"seed{seed}").resolve()
        if not is_finished(src) or not (src / "last.pt").is_file():
            raise SystemExit(f"{src}: expected a finished run with its last.pt (run the phase with --keep-last)")
        link = out / f"seed{seed}" / "run"
        if link.exists() and not link.is_symlink():
            raise SystemExit(f"{link}: a run trained here is in the way of --runs; pick another --out")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(src, target_is_directory=True)
        print(f"seed {seed}: measuring {src}")


def view1_pairs() -> tuple:
    """(pairsDevTrain: seen people, pairsDevTest: unseen people) as pair lists."""
    from facerec.data import root as dataroot
    from facerec.data.pairs import read_pairs

    lists = dataroot.lists_dir("lfw")
    seen_pairs = lists / "view1_train_pairs.csv"
    if not seen_pairs.is_file():
        raise SystemExit(f"{seen_pairs}: missing; it is written with the View 1 lists from LFW's pairsDevTrain.txt, "
                         "so the LFW copy lacks that file")
    return read_pairs(seen_pairs), read_pairs(lists / "view1_val_pairs.csv")


def measure(run_dir: Path, backend: str, seen, unseen, test_crops: int | None = None) -> dict:
    """Seen and unseen best-accuracy thresholds of one View 1 run, and DevTest's scores."""
    import yaml

    from facerec.data.lists import load_train
    from facerec.evaluation import metrics
    from facerec.experiments.benchmark_lfw import fold_scores

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    people = load_train(cfg["train"]) if backend != "none" else None
    s_seen = fold_scores(run_dir, seen, progress=False, backend=backend, train=people, test_crops=test_crops)
    s_unseen = fold_scores(run_dir, unseen, progress=False, backend=backend, train=people, test_crops=test_crops)
    _, t_seen = metrics.best_accuracy(s_seen, seen.labels)
    best, t_unseen = metrics.best_accuracy(s_unseen, unseen.labels)
    return {"t_seen": t_seen, "t_unseen": t_unseen, "shift": t_seen - t_unseen, "best": best,
            "scores": s_unseen, "labels": unseen.labels}


def view2_command(presets: list[str], args: str) -> str:
    """The View 2 command of these presets with these benchmark arguments (make takes one preset)."""
    if len(presets) > 1:
        return f"facerec benchmark lfw {' '.join(f'--preset {p}' for p in presets)} {args}"
    preset = "" if presets == ["demo"] else f" PRESET={presets[0]}"
    return f'make lfw-view2{preset} ARGS="{args}"'


def main() -> None:
    from facerec import config as config_mod
    from facerec.commands.experiment import add_jobs
    from facerec.config import CHOICES
    from facerec.experiments.probe import slots_for

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", action="append", default=[], help="training preset(s), in order (default: demo)")
    ap.add_argument("--seeds", type=_ints, default=None,
                    help="training seeds, comma-separated (default 42,123,456; with --runs, the seeds found there)")
    ap.add_argument("--backends", type=_backends, default=["none", "plda"],
                    help="scorings to measure, comma-separated (none: cosine; lda, plda: fit on the training people; default none,plda)")
    ap.add_argument("--test-crops", type=int, choices=CHOICES["test_crops"], default=None,
                    help="crops of each face embedded and summed, 1 (the centre) or 5 (and the four corners); "
                         "default: as each run used them")
    ap.add_argument("--out", default=None, help="folder of the runs (default runs/threshold-shift-<presets>)")
    ap.add_argument("--runs", default=None, metavar="DIR",
                    help="measure finished View 1 runs instead of training: DIR/seed<S>, each with its last.pt, as "
                         "`facerec experiment run --keep-last` leaves them in <out>/<phase>/<preset> (default: train)")
    add_jobs(ap)
    args = ap.parse_args()
    from facerec.evaluation import metrics

    runs = Path(args.runs).resolve() if args.runs else None  # from where the user stands, before the chdir
    if runs is not None and not runs.is_dir():
        ap.error(f"--runs {args.runs}: no such folder")
    os.chdir(ROOT)  # the runs record their lists relative to the repository, as `make` runs them
    found = sorted(int(d.name[4:]) for d in runs.glob("seed*") if d.name[4:].isdigit()) if runs else []
    args.seeds = args.seeds or found or [42, 123, 456]
    if len(args.seeds) < 2:
        ap.error("--seeds: at least two different seeds, so that each seed's check uses a shift measured on the others")
    presets = args.preset or ["demo"]
    out = ROOT / (args.out or f"runs/threshold-shift-{'+'.join(Path(p).stem for p in presets)}")
    cfgs = [config_mod.load(presets, {"seed": seed}) for seed in args.seeds]  # a bad preset fails before any work
    if runs is not None:
        link_runs(runs, out, args.seeds)
    else:
        train_all(out, presets, args.seeds, slots_for(args.jobs, args.devices, cfgs, len(args.seeds),
                                                      args.threads_per_job), cfgs[0].workers)

    lines = [f"- preset {'+'.join(presets)}, trained on View 1 (peopleDevTrain) with seeds "
             f"{', '.join(map(str, args.seeds))}; seen: pairsDevTrain, unseen: pairsDevTest; each run's last.pt "
             "with its own TTA" + (f", {args.test_crops} test crop(s)" if args.test_crops else ""), ""]
    seen, unseen = view1_pairs()
    crops = f" --test-crops {args.test_crops}" if args.test_crops else ""
    record = {"presets": presets, "seeds": args.seeds, "test_crops": args.test_crops, "shift": {}, "per_seed": {}}
    for backend in args.backends:
        m = {seed: measure(out / f"seed{seed}" / "run", backend, seen, unseen, args.test_crops) for seed in args.seeds}
        rows, plain, moved, ceiling = [], [], [], []
        for seed, r in m.items():
            others = statistics.mean(m[s]["shift"] for s in m if s != seed)
            a0 = metrics.accuracy_at(r["scores"], r["labels"], r["t_seen"])
            a1 = metrics.accuracy_at(r["scores"], r["labels"], r["t_seen"] - others)
            plain.append(a0)
            moved.append(a1)
            ceiling.append(r["best"])
            rows.append(f"| {seed} | {r['t_seen']:.4f} | {r['t_unseen']:.4f} | {r['shift']:.4f} | {a0:.2f} | "
                        f"{others:.4f} | {a1:.2f} | {r['best']:.2f} |")
        shifts = [r["shift"] for r in m.values()]
        shift = round(statistics.mean(shifts), 4)
        view2_args = f"--backend {backend}{crops} --threshold-shift {shift:.4f}"
        record["shift"][backend] = shift
        record["per_seed"][backend] = {str(seed): r["shift"] for seed, r in m.items()}

        def ms(xs: list[float], digits: int = 2) -> str:
            return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f}"

        lines += [f"Back-end **{backend}**: shift {ms(shifts, 4)} (mean ± std over seeds); DevTest accuracy at the "
                  f"seen threshold {ms(plain)}, shifted by the other seeds' mean {ms(moved)}, at its own best "
                  f"{ms(ceiling)}", "",
                  "| seed | threshold, seen | threshold, unseen | shift | DevTest acc. at seen thr. (%) | "
                  "others' mean shift | DevTest acc. shifted (%) | DevTest best (%) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, "",
                  f"For View 2: `{view2_command(presets, view2_args)}` (with the recipe's own TTA, as measured here)",
                  ""]
    text = "\n".join(lines)
    print(text)
    tmp = out / "shift.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out / "shift.json")  # what scripts read: {"shift": {backend: mean shift}, ...}
    benchlog.append("Threshold shift on LFW View 1", lines[:-1])


if __name__ == "__main__":
    main()
