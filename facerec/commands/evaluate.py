"""`facerec eval`: score a pair list with one checkpoint, an ensemble, or a random-weight model."""

from __future__ import annotations

from .common import add_device


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="embed the images of a pair list and score the pairs (cosine)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", nargs="+", metavar="CKPT",
                     help="facerec checkpoint(s) or face_trainer .model files; several form an ensemble")
    src.add_argument("--model", dest="random_model", metavar="NAME", help="a registered model with random weights")
    p.add_argument("--arch", default=None, help="model name for face_trainer .model files (they do not record it)")
    p.add_argument("--pairs", required=True, help="pair CSV label,path1,path2[,fold] (labels may be unknown)")
    p.add_argument("--root", default=None, help="image root of the pair paths (default: the list's '# root:' line)")
    p.add_argument("--output", default=None, help="write scores here: score,label,path1,path2 per line")
    p.add_argument("--tta", action="store_true", help="add each image's mirror embedding")
    p.add_argument("--input-size", type=int, default=None, help="with --model/--arch (default 112)")
    p.add_argument("--embedding-dim", type=int, default=None, help="with --model/--arch (default 512)")
    p.add_argument("--face-crop", default=None, help="centred face crop fraction, or 'auto' (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="weights seed for --model")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--plot", default=None, help="ROC/DET PNG (default: beside --output)")
    add_device(p)
    p.set_defaults(func=run)


def _preprocess(args, stored: dict | None):
    from ..data.transforms import Preprocess

    pre = Preprocess.from_dict(stored) if stored else Preprocess()
    if args.input_size:
        pre.input_size = args.input_size
    if args.face_crop:
        pre.face_crop = args.face_crop if args.face_crop == "auto" else float(args.face_crop)
    return pre


def _members(args):
    import torch

    import models

    from .. import checkpoint

    dims = {k: v for k, v in (("input_size", args.input_size), ("embedding_dim", args.embedding_dim)) if v}
    if args.random_model:
        torch.manual_seed(args.seed)
        model = models.create(args.random_model, **dims)
        return [(model, _preprocess(args, None))]
    members = []
    for path in args.checkpoint:
        ckpt = checkpoint.load(path)
        model = checkpoint.build_model(ckpt, path, args.arch, **dims)
        members.append((model, _preprocess(args, ckpt.get("preprocess"))))
    return members


def run(args) -> int:
    from .. import device as devices
    from ..data.lists import read_pairs
    from ..evaluate import report_pairs

    pairs = read_pairs(args.pairs, args.root, allow_unknown=True)  # validated before any model is built
    dev = devices.resolve(args.device)
    members = [(m.to(dev), pre) for m, pre in _members(args)]
    return report_pairs(members, pairs, output=args.output, plot=args.plot, as_json=args.json, device=dev,
                        batch_size=args.batch_size, workers=args.workers, tta=args.tta)
