"""`facerec score SCORES.csv`: every metric from a scores file alone."""

from __future__ import annotations

import json

from ..errors import FacerecError


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="metrics (EER, AUC, TAR@FAR, accuracy, 10-fold) from a scores file")
    p.add_argument("scores", help="score,label,path1,path2[,fold] per line (face_trainer's output)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", default=None, help="also write a ROC/DET PNG here")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..metrics import compute_all, format_table
    from ..plots import plot_roc_det
    from ..scores import read_scores

    s = read_scores(args.scores)
    if len(s.scores) == 0:
        raise FacerecError(f"{args.scores}: no scores")
    m = compute_all(s.scores, s.labels, s.folds)
    if args.plot:
        plot_roc_det({str(args.scores): (s.scores, s.labels)}, args.plot)
        m["plot"] = args.plot
    print(json.dumps(m) if args.json else format_table(m))
    return 0
