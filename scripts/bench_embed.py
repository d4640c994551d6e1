"""Embedding throughput from image files on CPU: PyTorch (facerec.load) vs onnxruntime (the same
network exported by `facerec export`), same preprocessing, same images, one run, median of repeats.
Also the preprocessing alone (decode, face crop, resize, normalise), which both runtimes share."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import append, median_seconds  # noqa: E402

from facerec import models  # noqa: E402
from facerec.data import lfw  # noqa: E402
from facerec.data.root import resolve  # noqa: E402
from facerec.data.transforms import Preprocess  # noqa: E402
from facerec.inference.export import export  # noqa: E402
from facerec.inference.facemodel import FaceModel, load, load_onnx  # noqa: E402
from facerec.inference.images import folder_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default=None, help="best.pt to measure (default: random-weight --model)")
    ap.add_argument("--model", default="resnet18", help="backbone when no checkpoint (default resnet18)")
    ap.add_argument("--input-size", type=int, default=112, help="input px when no checkpoint (default 112)")
    ap.add_argument("--images", type=int, default=512, help="LFW images embedded (default 512)")
    ap.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    ap.add_argument("--repeats", type=int, default=3, help="(default 3)")
    args = ap.parse_args()
    paths = folder_images(lfw.find(resolve(need="lfw")).images)[: args.images]
    if args.checkpoint:
        m = load(args.checkpoint, device="cpu")
    else:
        torch.manual_seed(0)
        m = FaceModel(models.create(args.model, input_size=args.input_size).eval(), Preprocess(input_size=args.input_size),
                      info={"model": args.model})
    m.tta = False
    with tempfile.TemporaryDirectory() as tmp:
        check = export(m, "onnx", Path(tmp) / "m.onnx", check_images=paths[:16])
        o = load_onnx(Path(tmp) / "m.onnx")
        kw = dict(batch_size=args.batch_size, workers=0, progress=False)
        t_pre = median_seconds(lambda: [m._prepare(paths[i : i + args.batch_size]) for i in range(0, len(paths), args.batch_size)],
                      args.repeats)
        t_torch = median_seconds(lambda: m.embed(paths, **kw), args.repeats)
        t_onnx = median_seconds(lambda: o.embed(paths, **kw), args.repeats)
        diff = float(np.abs(m.embed(paths[:64], **kw) - o.embed(paths[:64], **kw)).max())
    n = len(paths)
    lines = [
        f"- model: {m.info.get('model')} at {m.pre.input_size} px, batch {args.batch_size}, {n} LFW JPEGs, "
        f"torch threads {torch.get_num_threads()}, no TTA; export check: {check}",
        f"- max |PyTorch - onnxruntime| on 64 embeddings: {diff:.1e}",
        "",
        "| path | img/s | vs PyTorch |",
        "|---|---:|---:|",
        f"| preprocessing only (decode, crop, resize, normalise) | {n / t_pre:.0f} | |",
        f"| PyTorch `facerec.load(...).embed` | {n / t_torch:.0f} | 1.00x |",
        f"| onnxruntime `facerec.load('m.onnx').embed` | {n / t_onnx:.0f} | {t_torch / t_onnx:.2f}x |",
    ]
    print("\n".join(lines))
    append("Embedding from files: PyTorch vs onnxruntime (CPU)", lines, "python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
