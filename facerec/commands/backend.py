"""`facerec backend fit`: a verification back-end (LDA, PLDA) fit on training identities, stored in a checkpoint."""

from __future__ import annotations

import argparse

from facerec.commands.common import add_device, add_progress, progress_on
from facerec.errors import FacerecError


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def add_parser(sub) -> None:
    from facerec.evaluation.backend import KINDS

    p = sub.add_parser("backend", help="verification back-ends (LDA, PLDA) fit on training identities' embeddings",
                       description="A verification back-end scores a pair of embeddings in place of the cosine. "
                                   "It is fit on the embeddings of training identities only and stored in the "
                                   "checkpoint; `facerec verify` and `facerec.load(...).verify/score` then use it.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    f = actions.add_parser("fit", help="embed training faces, fit a back-end, write a checkpoint holding it",
                           description="Embed the --train faces with the checkpoint's model, fit the back-end on "
                                       "them, recompute the thresholds on its scores of validation pairs (--val, "
                                       "else the run's own validation list if still there; otherwise they are "
                                       "removed and must be recalibrated) and write --output. Thresholds of a "
                                       "checkpoint with a back-end are back-end scores (PLDA: a log-likelihood "
                                       "ratio), not cosines.")
    f.add_argument("--checkpoint", required=True, help="facerec checkpoint to start from, e.g. best.pt (required)")
    f.add_argument("--train", required=True, metavar="LIST",
                   help="training faces: a train list (`identity relpath` lines) or a folder of identity folders; "
                        "people the model will not be asked about, e.g. the run's own train list (required)")
    f.add_argument("--root", default=None, help="image root of a --train list without a '# root:' line "
                                                "(default: the list's own)")
    f.add_argument("--kind", choices=KINDS, default="plda",
                   help="none: cosine; lda: PCA, then LDA with the within-class covariance whitened, then cosine; "
                        "plda: two-covariance PLDA on length-normalised embeddings, log-likelihood ratio "
                        "(default plda)")
    f.add_argument("--output", required=True, help="checkpoint to write, e.g. best_plda.pt; written under a "
                                                   "temporary name, then renamed (required)")
    f.add_argument("--val", default=None, metavar="PAIRS",
                   help="labelled pairs (label,path1,path2) of people not in --train, to recompute the thresholds "
                        "on (default: the run's validation list, if it is still there)")
    f.add_argument("--val-root", default=None, help="image root of --val (default: its '# root:' line)")
    f.add_argument("--pca-dim", type=_positive_int, default=None,
                   help="lda/plda: dimensions kept by PCA first (default: what the training statistics support: "
                        "at most images - identities and identities - 1, among identities with 2+ images)")
    f.add_argument("--lda-dim", type=_positive_int, default=None, help="lda: dimensions kept (default: identities - 1)")
    f.add_argument("--iters", type=int, default=None, help="plda: EM iterations after the closed-form start "
                                                           "(default 10)")
    f.add_argument("--batch-size", type=_positive_int, default=64, help="images per forward pass (default 64)")
    add_device(f)
    add_progress(f)
    f.set_defaults(func=run_fit)


def _options(args) -> dict:
    given = {"--pca-dim": ("d_pca", args.pca_dim, ("lda", "plda")), "--lda-dim": ("d_lda", args.lda_dim, ("lda",)),
             "--iters": ("iters", args.iters, ("plda",))}
    opts = {}
    for flag, (key, value, kinds) in given.items():
        if value is None:
            continue
        if args.kind not in kinds:
            raise FacerecError(f"{flag} applies to --kind {' or '.join(kinds)}, not {args.kind}")
        opts[key] = value
    if args.iters is not None and args.iters < 0:
        raise FacerecError(f"--iters must be >= 0, got {args.iters}")
    return opts


def run_fit(args) -> int:
    from pathlib import Path

    from facerec.checkpoint import FORMAT
    from facerec.errors import DataError
    from facerec.inference.facemodel import load

    opts = _options(args)
    if Path(args.output).resolve() == Path(args.checkpoint).resolve():
        raise FacerecError(f"--output {args.output} is the --checkpoint itself; write the back-end to a new file")
    model = load(args.checkpoint, device=args.device)
    if model.info.get("format") != FORMAT:
        raise DataError(f"{args.checkpoint}: a face_trainer file: a back-end is stored only in a facerec checkpoint")
    r = model.fit_backend(args.train, args.kind, root=args.root, val=args.val, val_root=args.val_root,
                          batch_size=args.batch_size, workers=args.workers, progress=progress_on(args), **opts)
    model.save(args.output)
    print(f"backend {r['kind']}: fit on {r['images']} images of {r['identities']} identities "
          f"({r['identities_2plus']} with 2+ images), {r['dim']} dimensions")
    if r["val_pairs"]:
        print(f"validation: {r['val_pairs']} pairs of {r['val']}: EER cosine {r['eer_cosine']:.2f}% -> "
              f"{r['kind']} {r['eer_backend']:.2f}%; thresholds recomputed on {r['kind']} scores "
              f"(EER threshold {model.thresholds['eer']:.4f})")
    else:
        print("thresholds: none stored: they must be recalibrated (no validation pairs to re-score: pass --val "
              "PAIRS of people not in --train), or give verify a --threshold on the back-end's scale")
    print(f"checkpoint: {args.output}")
    return 0
