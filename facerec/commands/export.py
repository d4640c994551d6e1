"""`facerec export`: ONNX or TorchScript, checked against PyTorch on real faces."""

from __future__ import annotations

from facerec.commands.common import add_device


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX/TorchScript and check it on real faces",
                       description="The network alone (float (batch, 3, S, S) in, raw embedding out; dynamic "
                                   "batch); the preprocessing, TTA and thresholds go into the file's metadata. "
                                   "The export is checked against PyTorch on real faces before it is kept.")
    p.add_argument("--checkpoint", required=True, help="facerec checkpoint (best.pt)")
    p.add_argument("--arch", default=None, help="model name for face_trainer .model files (default: none)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="(default onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--output", required=True, help="file to write (e.g. model.onnx, model.pt)")
    p.add_argument("--check-images", nargs="+", default=None, metavar="PATH",
                   help="faces (files or folders) for the check (default: 32 images of the run's validation list)")
    add_device(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from facerec import checkpoint
    from facerec.inference.export import default_check_images, export
    from facerec.inference.facemodel import from_checkpoint
    from facerec.inference.images import expand

    ckpt = checkpoint.load(args.checkpoint)
    images = expand(args.check_images) if args.check_images else default_check_images(ckpt)
    model = from_checkpoint(ckpt, args.checkpoint, device="cpu", arch=args.arch)
    result = export(model, args.format, args.output, opset=args.opset, check_images=images)
    print(f"{args.format}: {args.output} | checked on {result}")
    return 0
