"""`facerec score SCORES.csv [MORE.csv ...]`: every metric from scores files alone."""

from __future__ import annotations

import json
from pathlib import Path

BESIDE = "<beside>"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score", help="metrics (EER, AUC, TAR@FAR, accuracy, k-fold accuracy) from scores files",
        description="Compute verification metrics from face_trainer-format scores files "
                    "(score,label,path1,path2[,fold] per line; with the fold column, the LFW k-fold "
                    "accuracy too). Several files are reported one after the other and overlaid in the plot.")
    p.add_argument("scores", nargs="+", help="scores file(s); every label must be 0 or 1")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per file (one line each); a +inf threshold prints as null")
    p.add_argument("--plot", nargs="?", const=BESIDE, default=None, metavar="PNG",
                   help="write a ROC/DET PNG: to PNG, or with no value to <first scores stem>_score_roc_det.png "
                        "beside the first file (never eval's <stem>_roc_det.png). No plot is written without "
                        "--plot, so scoring never touches the folder of the scores file.")
    p.set_defaults(func=run)


def _names(paths: list[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return stems if len(set(stems)) == len(stems) else list(paths)


def run(args) -> int:
    from facerec.errors import ValidationError
    from facerec.evaluation.metrics import compute_all, format_table, jsonable
    from facerec.evaluation.plots import plot_roc_det
    from facerec.evaluation.scores import read_scores

    loaded = {}
    for path in args.scores:
        try:
            loaded[path] = read_scores(path)
        except ValidationError as exc:
            if any("label must be" in p for p in exc.problems):
                raise ValidationError(f"{exc.what} (unknown labels, as in a test-set submission, cannot be scored)",
                                      exc.problems) from None
            raise
    reports = {path: compute_all(s.scores, s.labels, s.folds) for path, s in loaded.items()}
    plot = None
    if args.plot:
        first = Path(args.scores[0])
        plot = str(first.with_name(first.stem + "_score_roc_det.png")) if args.plot == BESIDE else args.plot
        plot_roc_det({name: (s.scores, s.labels) for name, s in zip(_names(args.scores), loaded.values())}, plot)
    for i, (path, m) in enumerate(reports.items()):
        m = {"file": path, **m, **({"plot": plot} if plot else {})}
        if args.json:
            print(json.dumps(jsonable(m), allow_nan=False))
        else:
            print(("\n" if i else "") + (f"{path}\n" if len(reports) > 1 else "") + format_table(m))
    if plot and not args.json:
        print(f"plot: {plot}")
    return 0
