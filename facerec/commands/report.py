"""`facerec report`: compare a phase's experiments, or any runs, against a baseline."""

from __future__ import annotations

from pathlib import Path

from facerec.errors import FacerecError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="Markdown + HTML comparison of experiments against a baseline",
                       description="Either --phase P (runs from the results index) or RUN_DIR... (any finished runs; "
                                   "runs with the same tag are seeds of one experiment).")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--phase", default=None, help="a phase of the results index")
    p.add_argument("--results", default="experiments/lfw", help="results folder holding index.jsonl (default experiments/lfw)")
    p.add_argument("--baseline", default=None,
                   help="experiment to compare against: a preset of the phase (default baseline) or a run tag / folder "
                        "name (default: the first RUN_DIR's)")
    p.add_argument("--out", default=None, help="report folder (default RESULTS/report, or reports/ for RUN_DIRs)")
    p.add_argument("--name", default="runs", help="report file name for RUN_DIRs (default runs)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.set_defaults(func=run)


def run(args) -> int:
    from facerec.experiments.compare import groups_from_dirs
    from facerec.experiments.index import Index
    from facerec.experiments.report import write_index_page, write_phase_report, write_report

    if bool(args.phase) == bool(args.runs):
        raise FacerecError("give either --phase P or RUN_DIR... (not both)")
    if args.phase:
        index = Index(args.results)
        if not index.path.is_file():
            raise FacerecError(f"{index.path}: no results index (run `facerec experiment run {args.phase}` first, "
                               "or point --results at its folder)")
        page = write_phase_report(index, args.phase, baseline=args.baseline or "baseline", out_dir=args.out,
                                  n_boot=args.bootstrap)
    else:
        groups = groups_from_dirs(args.runs)
        out = Path(args.out or "reports")
        page = write_report(groups, args.baseline or next(iter(groups)), out, args.name, title=f"Runs: {args.name}",
                            description=f"{len(args.runs)} runs in {len(groups)} groups", n_boot=args.bootstrap)
        write_index_page(out)
    print(f"report: {page} (and {page.with_suffix('.md')})")
    return 0
