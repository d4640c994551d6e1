"""`facerec benchmark lfw`: the LFW View 2 protocol (10 folds, train on the other nine) in one command."""

from __future__ import annotations

import argparse

from facerec.commands.common import add_data_root, add_progress, add_test_crops, finite_number, progress_on
from facerec.commands.experiment import add_jobs


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="standard protocols: `benchmark lfw` runs LFW View 2 (10 folds)",
                       description="LFW View 2, unrestricted, no outside data: per fold, train on the people of "
                                   "the other nine folds, threshold on their pairs, accuracy on the fold's 600 "
                                   "(--backend lda|plda: a back-end fit per fold on its training people scores "
                                   "the pairs). "
                                   "Finished folds are reused; an interrupted fold resumes.")
    p.add_argument("protocol", choices=("lfw",), help="the protocol (lfw: LFW View 2)")
    p.add_argument("--preset", action="append", default=[], help="training preset(s), in order (default: demo)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training key for every fold (default: none)")
    p.add_argument("--folds", default="1-10", help="folds to run, e.g. 1-10, 1,3 (default 1-10)")
    p.add_argument("--out", default=None, help="results folder (default runs/lfw-view2-<presets>)")
    p.add_argument("--backend", choices=("none", "lda", "plda"), default="none",
                   help="verification back-end scoring the pairs: none (cosine of the embeddings), lda or plda, "
                        "fit per fold on the embeddings of that fold's training people only (same last.pt, "
                        "preprocessing and TTA); the threshold is still chosen on the other nine folds' pairs. "
                        "Folds scored with another back-end are rescored without retraining (default: none)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="score with mirror test-time augmentation (each image's embedding adds its mirror's), "
                        "or not; a scoring choice only: folds scored the other way are rescored without "
                        "retraining (default: the recipe's tta key)")
    add_test_crops(p, "the recipe's test_crops key", scoring_only=True)
    p.add_argument("--threshold-shift", type=finite_number, default=0.0, metavar="X",
                   help="subtract X from the threshold chosen on the other nine folds' pairs: their people were "
                        "trained on, so that threshold runs high for a test fold's strangers. Fix X beforehand on "
                        "View 1 (scripts/probe_threshold_shift.py), never on a test fold; in the scores' own units "
                        "(a cosine, or a PLDA log-likelihood ratio). A scoring choice only (default: 0)")
    add_data_root(p)
    add_jobs(p)
    p.add_argument("--no-summary", dest="summary", action="store_false",
                   help="train and score the folds only, leaving the summary to a later run (what each --jobs "
                        "process does; default: summarise)")
    add_progress(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from facerec import config as config_mod
    from facerec.commands.train import _pairs
    from facerec.data.pairs import read_pairs
    from facerec.experiments.benchmark_lfw import fold_config, lists, parse_folds, run_fold, summarize
    from facerec.experiments.probe import slots_for
    from facerec.util.locks import lock

    folds = parse_folds(args.folds)
    presets = args.preset or ["demo"]
    cfg = config_mod.load(presets, {**_pairs(args.set, "--set"), "data_root": args.data_root})
    out = Path(args.out or f"runs/lfw-view2-{'+'.join(Path(p).stem for p in presets)}")
    pairs_path, train_dir = lists(cfg)
    fold_cfgs = {k: fold_config(k, cfg, train_dir, out) for k in folds}  # a changed recipe fails before any work
    tta = bool(cfg.tta) if args.tta is None else args.tta
    crops = cfg.test_crops if args.test_crops is None else args.test_crops
    out.mkdir(parents=True, exist_ok=True)
    held = lock(out, "results folder") if args.summary else None  # a --jobs process runs under its parent's lock
    try:
        slots = slots_for(args.jobs, args.devices, list(fold_cfgs.values()), len(folds), args.threads_per_job)
        if slots is not None:
            failed = _run_jobs(args, folds, out, slots, tta, crops, cfg.workers)
            if failed:
                print(f"{len(failed)} fold(s) failed: {', '.join(map(str, failed))}; see their log.txt")
                return 1
        pairs = read_pairs(pairs_path)
        results = [run_fold(k, cfg, pairs, train_dir, out, progress_on(args) and slots is None, args.backend, tta,
                            args.threshold_shift, crops) for k in folds]
        if not args.summary:
            return 0
        s = summarize(results, out)
    finally:
        if held is not None:
            held.release()
    sem = f"{s['accuracy_sem']:.2f}" if len(folds) > 1 else "n/a (1 fold)"
    shifted = f", threshold shift {args.threshold_shift:g}" if args.threshold_shift else ""
    views = f", {crops} test crops" if crops != 1 else ""
    print(f"LFW View 2, {len(folds)} fold(s), back-end {args.backend}, TTA {'on' if tta else 'off'}{views}{shifted}: "
          f"accuracy {s['accuracy_mean']:.2f}% +- {sem} (mean +- s.e.) | pooled "
          f"EER {s['pooled']['eer']:.2f}%, AUC {s['pooled']['auc']:.4f} | {out / 'benchmark.md'}")
    return 0


def _run_jobs(args, folds: list[int], out, slots, tta: bool, crops: int, own_workers: int | None) -> list[int]:
    """Each unfinished fold in a process of its own (`--no-summary`), `slots` at a time, with its slot's
    DataLoader workers unless the recipe sets its own (`own_workers`); the folds that failed."""
    import sys

    from facerec.experiments.benchmark_lfw import fold_done
    from facerec.experiments.jobs import Job, Scheduler, slot_workers

    base = [sys.executable, "-m", "facerec", "benchmark", "lfw", "--out", str(out), "--no-summary", "--no-progress",
            "--backend", args.backend, "--tta" if tta else "--no-tta", "--test-crops", str(crops),
            f"--threshold-shift={args.threshold_shift!r}"]  # one token: argparse takes "-5e-05" alone for an option
    base += [a for p in args.preset for a in ("--preset", p)] + [a for kv in args.set for a in ("--set", kv)]
    if args.data_root:
        base += ["--data-root", args.data_root]

    def command(k: int):
        def build(device: str, workers: int | None) -> list[str]:
            cmd = [*base, "--folds", str(k), "--set", f"device={device}"]
            workers = slot_workers(workers, own_workers)
            return cmd + (["--set", f"workers={workers}"] if workers is not None else [])

        return build

    jobs = [Job(f"fold {k}", command(k), out / f"fold{k:02d}" / "log.txt") for k in folds
            if fold_done(k, out, args.backend, tta, args.threshold_shift, crops) is None]
    if slots.how:
        print(slots.how)
    failed = []

    def on_done(job, outcome) -> None:
        if outcome.rc == 0:
            acc = fold_done(int(job.key.split()[1]), out, args.backend, tta, args.threshold_shift, crops)["accuracy"]
            print(f"{job.key}: accuracy {acc:.2f}% ({outcome.seconds:.0f}s, {outcome.device})")
        else:
            failed.append(int(job.key.split()[1]))
            print(f"{job.key}: FAILED (exit {outcome.rc}); see {job.log}")

    Scheduler(slots, on_done=on_done, progress=progress_on(args)).run(jobs)
    return failed
