"""`facerec embed`: images (files, folders, list files) to L2-normalised embeddings in .npz/.npy."""

from __future__ import annotations

from facerec.commands.common import add_device, add_progress, add_test_crops, progress_on


def add_model_source(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="CKPT", help="facerec checkpoint (best.pt) or face_trainer .model "
                                                          "(with --arch) (default: none; this or --onnx is required)")
    src.add_argument("--onnx", metavar="MODEL", help="ONNX model from `facerec export` (runs on onnxruntime, no "
                                                     "PyTorch weights) (default: none)")
    p.add_argument("--arch", default=None, help="model name for face_trainer .model files (default: none)")


def load_model(args):
    from facerec.inference.facemodel import load, load_onnx

    if args.onnx:
        return load_onnx(args.onnx)
    return load(args.checkpoint, device=args.device, arch=args.arch)


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="embed images with a trained model into .npz/.npy (resumable)",
                       description="Embed image files, folders (recursively) or list files (.txt, one path per "
                                   "line) with the checkpoint's own preprocessing and TTA. An interrupted job "
                                   "resumes from <output>.partial/.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images, folders or .txt list files")
    add_model_source(p)
    p.add_argument("--output", required=True, help=".npz (paths + embeddings) or .npy (embeddings, paths in "
                                                   "<name>.paths.txt)")
    p.add_argument("--tta", action="store_true", default=None, help="force flip TTA on (default: as the run used it)")
    p.add_argument("--no-tta", dest="tta", action="store_false", help="force flip TTA off")
    add_test_crops(p, "as the run used it")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--chunk", type=int, default=2048, help="images per resumable chunk (default 2048)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out images that cannot be read or decoded, listed in <output>.skipped.txt "
                        "(default: stop at the first)")
    add_device(p)
    add_progress(p)
    p.set_defaults(func=run)


def expand_inputs(paths: list[str]) -> list[str]:
    from pathlib import Path

    from facerec.inference.images import expand, list_file_images

    items: list[str] = []
    for x in paths:
        items += list_file_images(x) if x.endswith(".txt") and Path(x).is_file() else expand(x)
    return items


def run(args) -> int:
    from facerec.inference.embed_job import check_output, embed_files

    check_output(args.output)
    items = expand_inputs(args.paths)  # every input is checked before the model loads
    model = load_model(args)
    if args.tta is not None:
        model.tta = args.tta
    if args.test_crops is not None:
        model.test_crops = args.test_crops
    emb, _, skipped = embed_files(model, items, args.output, chunk=args.chunk, batch_size=args.batch_size,
                                  workers=args.workers, progress=progress_on(args), skip_bad=args.skip_bad)
    print(f"embeddings: {args.output} ({emb.shape[0]} images x {emb.shape[1]}, tta={model.tta}, {model!r})")
    if skipped:
        print(f"skipped {len(skipped)} image(s) that cannot be read or decoded: listed in "
              f"{args.output}.skipped.txt")
    return 0
