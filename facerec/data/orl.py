"""ORL (AT&T) for a machine without it: scikit-learn's `fetch_olivetti_faces` serves the same 40
people x 10 images (as 64x64 floats; the original files are 92x112 PGM). Written out as
`orl/s1..s40/1..10.pgm`, the layout every ORL tool here reads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def write_orl(images: np.ndarray, target: np.ndarray, out: Path) -> Path:
    """(N, H, W) images in [0, 1] with person indices -> `out/s<person+1>/<k>.pgm`, k = 1.. per person.
    Written beside `out` and renamed into place: a half-written folder never looks like ORL."""
    from PIL import Image

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".orl-", dir=out.parent))
    try:
        counts: dict[int, int] = {}
        for img, person in zip(images, np.asarray(target).tolist()):
            counts[person] = counts.get(person, 0) + 1
            folder = tmp / f"s{person + 1}"
            folder.mkdir(exist_ok=True)
            pixels = np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{counts[person]}.pgm")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def fetch(data_root) -> Path:
    from sklearn.datasets import fetch_olivetti_faces

    data_root = Path(data_root)
    faces = fetch_olivetti_faces(data_home=str(data_root / "sklearn"), download_if_missing=True)
    return write_orl(faces.images, faces.target, data_root / "orl")
