"""`facerec benchmark lfw`: the LFW View 2 protocol (10 folds, train on the other nine) in one command."""

from __future__ import annotations

from .common import add_data_root, add_progress, progress_on


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="standard protocols: `benchmark lfw` runs LFW View 2 (10 folds)",
                       description="LFW View 2, unrestricted, no outside data: per fold, train on the people of "
                                   "the other nine folds, threshold on their pairs, accuracy on the fold's 600. "
                                   "Finished folds are reused; an interrupted fold resumes.")
    p.add_argument("protocol", choices=("lfw",), help="the protocol (lfw: LFW View 2)")
    p.add_argument("--preset", action="append", default=[], help="training preset(s), in order (default: demo)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training key for every fold (default: none)")
    p.add_argument("--folds", default="1-10", help="folds to run, e.g. 1-10, 1,3 (default 1-10)")
    p.add_argument("--out", default=None, help="results folder (default runs/lfw-view2-<presets>)")
    add_data_root(p)
    add_progress(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from .. import config as config_mod
    from ..benchmark_lfw import lists, parse_folds, run_fold, summarize
    from ..data.pairs import read_pairs
    from .train import _pairs

    folds = parse_folds(args.folds)
    presets = args.preset or ["demo"]
    cfg = config_mod.load(presets, {**_pairs(args.set, "--set"), "data_root": args.data_root})
    out = Path(args.out or f"runs/lfw-view2-{'+'.join(Path(p).stem for p in presets)}")
    pairs_path, train_dir = lists(cfg)
    pairs = read_pairs(pairs_path)
    results = [run_fold(k, cfg, pairs, train_dir, out, progress_on(args)) for k in folds]
    s = summarize(results, out)
    sem = f"{s['accuracy_sem']:.2f}" if len(folds) > 1 else "n/a (1 fold)"
    print(f"LFW View 2, {len(folds)} fold(s): accuracy {s['accuracy_mean']:.2f}% +- {sem} (mean +- s.e.) | pooled "
          f"EER {s['pooled']['eer']:.2f}%, AUC {s['pooled']['auc']:.4f} | {out / 'benchmark.md'}")
    return 0
