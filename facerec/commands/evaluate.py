"""`facerec eval`: score a pair list with one checkpoint, an ensemble, or a random-weight model."""

from __future__ import annotations

import argparse
import sys

from facerec.commands.common import add_device, add_progress, add_test_crops, progress_on


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="embed the images of a pair list and score the pairs (cosine)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", nargs="+", metavar="CKPT",
                     help="facerec checkpoint(s) or face_trainer .model files; several form an ensemble "
                          "(default: none; this or --model is required)")
    src.add_argument("--model", dest="random_model", metavar="NAME", help="a registered model with random weights (a baseline; default: none)")
    p.add_argument("--arch", default=None, help="model name for face_trainer .model files, which do not record it (default: none)")
    p.add_argument("--pairs", required=True, help="pair CSV label,path1,path2[,fold] (labels may be unknown)")
    p.add_argument("--root", default=None, help="image root of the pair paths (default: the list's '# root:' line)")
    p.add_argument("--output", default=None, help="write scores here: score,label,path1,path2 per line (default: none; needed for unlabelled lists)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="add each image's mirror embedding (default: as the checkpoint's run did; off for --model)")
    add_test_crops(p, "the checkpoint's, 1 for --model")
    p.add_argument("--input-size", type=int, default=None, help="with --model/--arch (default 112)")
    p.add_argument("--embedding-dim", type=int, default=None, help="with --model/--arch (default 512)")
    p.add_argument("--face-crop", default=None, help="centred face crop fraction, or 'auto' (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=128, help="images embedded at once (default 128)")
    p.add_argument("--seed", type=int, default=0, help="weights seed for --model (default 0)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--plot", default=None, help="ROC/DET PNG (default: beside --output)")
    add_device(p)
    add_progress(p)
    p.set_defaults(func=run)


def _preprocess(args, stored: dict | None):
    from facerec.data.transforms import Preprocess

    pre = Preprocess.from_dict(stored) if stored else Preprocess()
    if args.input_size:
        pre.input_size = args.input_size
    if args.face_crop:
        pre.face_crop = args.face_crop if args.face_crop == "auto" else float(args.face_crop)
    if args.test_crops:
        pre.test_crops = args.test_crops
    return pre


def _members(args):
    import torch

    from facerec import checkpoint, models

    dims = {k: v for k, v in (("input_size", args.input_size), ("embedding_dim", args.embedding_dim)) if v}
    if args.random_model:
        args.tta = bool(args.tta)
        torch.manual_seed(args.seed)
        model = models.create(args.random_model, **dims)
        return [(model, _preprocess(args, None))]
    members = []
    loaded = {path: checkpoint.load(path) for path in args.checkpoint}
    if args.tta is None:  # the checkpoint's own run decided; an ensemble uses TTA when any member did
        args.tta = any(bool((c.get("config") or {}).get("tta")) for c in loaded.values())
    for path, ckpt in loaded.items():
        if ckpt.get("format") == "face_trainer" and not (args.input_size or args.face_crop):
            print(f"note: {path}: a face_trainer file, scored with face_trainer's preprocessing (Resize 256, centre "
                  "crop 224, ImageNet mean/std; --input-size/--face-crop change it)", file=sys.stderr)
        model = checkpoint.build_model(ckpt, path, args.arch, **dims)
        members.append((model, _preprocess(args, ckpt.get("preprocess"))))
    return members


def run(args) -> int:
    from facerec.data.lists import read_pairs
    from facerec.evaluation.scoring import report_pairs
    from facerec.util import device as devices

    pairs = read_pairs(args.pairs, args.root, allow_unknown=True)  # validated before any model is built
    dev = devices.resolve(args.device)
    members = [(m.to(dev), pre) for m, pre in _members(args)]
    return report_pairs(members, pairs, output=args.output, plot=args.plot, as_json=args.json, device=dev,
                        batch_size=args.batch_size, workers=args.workers, tta=bool(args.tta),
                        progress=progress_on(args))
