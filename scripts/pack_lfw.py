"""A smaller copy of LFW, for a machine the full set cannot be sent to (a lent GPU machine takes
at most 64 MiB with the code).

Each 250x250 image is cut to its central 150x150, the face region facerec keeps anyway (face_crop
auto keeps 0.6 of the shorter side of 250x250 images, and the whole of any other size), and saved
as JPEG at --quality: about 50 MB for the 13,233 images at 72. The protocol files (pairs*.txt,
people*.txt) are copied unchanged, so View 1 and View 2 read as from the original.

Re-encoding loses detail: a figure measured on the copy is not one of the originals, and the docs
say which copy each GPU figure used. The copy is written under a temporary name and renamed when
complete; an existing --out is refused.

    python scripts/pack_lfw.py --out data            # then FACEREC_DATA=data, or ./data by default
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facerec.data import lfw, root
from facerec.data.transforms import LFW_FACE_CROP, LFW_SIZE
from facerec.errors import DataError

SIDE = round(LFW_FACE_CROP * LFW_SIZE[0])  # 150: what face_crop auto keeps of a 250x250 image


def pack_one(job: tuple[str, str, int]) -> int:
    """Crop one image to its centre SIDE x SIDE and save it as JPEG; returns the bytes written."""
    src, dst, quality = job
    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.size != LFW_SIZE:
            raise ValueError(f"{src}: {im.size[0]}x{im.size[1]}, expected LFW's {LFW_SIZE[0]}x{LFW_SIZE[1]}")
        o = (LFW_SIZE[0] - SIDE) // 2
        im.crop((o, o, o + SIDE, o + SIDE)).save(dst, "JPEG", quality=quality)
    return os.path.getsize(dst)


def pack(data_root: Path, out: Path, quality: int, workers: int) -> tuple[int, int]:
    """Write the copy to `out`/lfw/ (the official layout); returns (images, bytes)."""
    if out.exists():
        raise SystemExit(f"{out}: already exists; choose a new --out")
    layout = lfw.find(data_root)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    images = tmp / "lfw" / "images_deepfunneled"
    jobs = []
    for person in sorted(p for p in layout.images.iterdir() if p.is_dir()):
        (images / person.name).mkdir(parents=True)
        jobs += [(str(f), str(images / person.name / f.name), quality) for f in sorted(person.glob("*.jpg"))]
    for f in sorted(layout.protocol.glob("*.txt")):
        if f.name.startswith(("pairs", "people")):
            shutil.copy2(f, tmp / "lfw" / f.name)
    if workers == 1:
        size = sum(map(pack_one, jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            size = sum(pool.map(pack_one, jobs, chunksize=64))
    tmp.rename(out)
    return len(jobs), size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None, help="folder holding lfw/ (default: $FACEREC_DATA, else ./data)")
    ap.add_argument("--out", required=True, help="new folder for the copy; it gets lfw/ inside (default: none)")
    ap.add_argument("--quality", type=int, default=72, help="JPEG quality, 1-95 (default 72)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: CPU cores)")
    args = ap.parse_args(argv)
    if not 1 <= args.quality <= 95:
        ap.error(f"--quality: {args.quality} is outside 1-95")
    try:
        n, size = pack(root.resolve(args.data_root, need="lfw"), Path(args.out), args.quality, max(1, args.workers))
    except (DataError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"{n} images, {size / 2**20:.1f} MiB of JPEG at quality {args.quality}, {SIDE}x{SIDE} px: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
