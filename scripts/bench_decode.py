"""Face decoding per CPU core on LFW JPEGs: PIL (draft-mode decode, crop, bilinear resize: the
loader facerec used before) vs torchvision.io.decode_jpeg (per image and batched) + tensor crop and
antialiased resize (facerec's `load_faces`). One thread, median of repeats, one run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import append, median_seconds  # noqa: E402

from facerec.data.decode import load_face, load_faces  # noqa: E402
from facerec.data.transforms import Preprocess  # noqa: E402


def pil_face(path: str, pre: Preprocess) -> torch.Tensor:
    """The PIL reference: libjpeg's reduced-scale draft when the crop allows, then crop + resize."""
    with Image.open(path) as img:
        size = img.size
        side = min(size) * pre.crop_fraction(size)
        scale = side / pre.resize_to
        img.draft("RGB", (max(1, int(size[0] / scale)), max(1, int(size[1] / scale))))
        ratio = img.size[0] / size[0]
        size, side = img.size, side * ratio
        img = img.convert("RGB")
        left, top = (size[0] - side) / 2, (size[1] - side) / 2
        out = img.resize((pre.resize_to,) * 2, Image.BILINEAR, box=(left, top, left + side, top + side))
        return torch.from_numpy(__import__("numpy").asarray(out).copy()).permute(2, 0, 1)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", default=None, help="folder holding lfw/ (default: $FACEREC_DATA, else ./data)")
    ap.add_argument("--images", type=int, default=512, help="LFW images decoded per repeat")
    ap.add_argument("--sizes", default="64,112,224", help="input sizes (the decode resizes to size x 256/224)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args()
    from facerec.data import lfw
    from facerec.data import root as dataroot

    images = lfw.find(dataroot.resolve(args.data_root, dataroot.LFW_DIRS)).images
    paths = [str(images / n / f) for n in sorted(os.listdir(images))[:1000] for f in sorted(os.listdir(images / n))]
    paths = paths[: args.images]
    torch.set_num_threads(1)
    lines = ["| input px | PIL draft + resize | decode_jpeg per image | decode_jpeg batched (64) | batched / PIL |",
             "|---:|---:|---:|---:|---:|"]
    for size in map(int, args.sizes.split(",")):
        pre = Preprocess(input_size=size)
        rates = [len(paths) / median_seconds(fn, args.repeats) for fn in (
            lambda pre=pre: [pil_face(p, pre) for p in paths],
            lambda pre=pre: [load_face(p, pre) for p in paths],
            lambda pre=pre: [load_faces(paths[i : i + 64], pre) for i in range(0, len(paths), 64)])]
        lines.append(f"| {size} | {rates[0]:.0f} img/s | {rates[1]:.0f} img/s | {rates[2]:.0f} img/s | "
                     f"{rates[2] / rates[0]:.2f}x |")
    print("\n".join(lines))
    if not args.no_record:
        append("Face decoding per CPU core (LFW JPEGs, one thread)", lines)


if __name__ == "__main__":
    main()
