"""`facerec verify IMG1 IMG2`: same person or not, at the run's threshold. Exit 0 SAME, 1 DIFFERENT,
2 on any error (so scripts can tell "different" from "could not tell")."""

from __future__ import annotations

import json

from facerec.commands.common import add_device, false_accept_rate, score_threshold
from facerec.commands.embed import add_model_source, load_model
from facerec.errors import FacerecError


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="compare two face images: score, threshold, SAME/DIFFERENT (exit 0/1)",
                       description="Cosine score of two images and the decision at a threshold: the run's EER "
                                   "threshold by default, the one at --far on its validation scores, or "
                                   "--threshold. Exit code 0 SAME, 1 DIFFERENT, 2 error.")
    p.add_argument("image1", help="first image")
    p.add_argument("image2", help="second image")
    add_model_source(p)
    thr = p.add_mutually_exclusive_group()
    thr.add_argument("--far", type=false_accept_rate, default=None,
                     help="threshold at this false accept rate on the run's validation pairs, e.g. 1e-3; where they "
                          "cannot measure it, a note says which threshold is used (default: the EER threshold)")
    thr.add_argument("--threshold", type=score_threshold, default=None,
                     help="threshold to use: a cosine in [-1, 1], or with a back-end (facerec backend fit) a "
                          "finite number on its scale, for PLDA a log-likelihood ratio (default: the EER one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_device(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from facerec.inference.images import expand

    try:
        a, b = expand(args.image1), expand(args.image2)
        if len(a) != 1 or len(b) != 1:
            raise FacerecError("verify compares two image files, not folders")
        v = load_model(args).verify(a, b, threshold=args.threshold, far=args.far)
    except FacerecError as exc:
        exc.exit_code = 2  # 1 means DIFFERENT here
        raise
    if args.json:
        print(json.dumps({"image1": args.image1, "image2": args.image2, "score": v.score, "threshold": v.threshold,
                          "same": v.same}))
    else:
        print(f"{'SAME' if v.same else 'DIFFERENT'}  score {v.score:.4f}  threshold {v.threshold:.4f}")
    return 0 if v.same else 1
