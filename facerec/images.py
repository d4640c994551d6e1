"""Images as users hand them over: file paths, folders, list files, PIL images, uint8 arrays.

Everything becomes the same uint8 face (the checkpoint's face crop, then resize) that training
and `facerec eval` see, so an embedding does not depend on how its image arrived.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.listfile import IMAGE_EXTS
from .data.transforms import Preprocess, crop_resize, load_faces
from .errors import DataError


def folder_images(folder) -> list[str]:
    """Every image under `folder` (recursively), sorted, as paths."""
    folder = Path(folder)
    out = []
    for dirpath, dirnames, files in os.walk(folder):
        dirnames.sort()
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTS)]
    if not out:
        raise DataError(f"{folder}: no {'/'.join(IMAGE_EXTS)} images in this folder")
    return out


def list_file_images(path) -> list[str]:
    """A text file with one image path per line (relative to the file's folder, or its `# root:` line)."""
    from .data.listfile import entries, read_lines, resolve_root

    path = Path(path)
    lines = read_lines(path)
    root = resolve_root(path, lines, None)
    out = [str(root / line.strip().split()[-1]) for _, line in entries(lines)]
    if not out:
        raise DataError(f"{path}: no image paths in this list")
    return out


def expand(images) -> list:
    """One item per image: a folder becomes its images; a single image or path becomes a list of one."""
    if isinstance(images, (str, os.PathLike, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)
                                                               and images.dtype == np.uint8):
        images = [images]
    out: list = []
    for item in images:
        if isinstance(item, (str, os.PathLike)):
            p = Path(item)
            if p.is_dir():
                out += folder_images(p)
                continue
            if not p.is_file():
                raise DataError(f"{p}: image not found")
            out.append(str(p))
        elif isinstance(item, (Image.Image, np.ndarray)):
            out.append(item)
        else:
            raise DataError(f"cannot read an image from a {type(item).__name__}: pass a path, a folder, a PIL image "
                            "or a uint8 HxWx3 array")
    return out


def _array_face(a: np.ndarray, pre: Preprocess, i: int) -> torch.Tensor:
    if a.dtype != np.uint8:
        raise DataError(f"image {i}: expected a uint8 array (0-255), got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise DataError(f"image {i}: expected an HxWx3 (RGB) array, got shape {a.shape}")
    return crop_resize(torch.from_numpy(np.array(a[:, :, :3])).permute(2, 0, 1), pre)  # a writable copy


def faces(items: list, pre: Preprocess) -> torch.Tensor:
    """(B, 3, R, R) uint8 faces of `expand`ed items; paths decode in one batch."""
    r = pre.resize_to
    out = torch.empty((len(items), 3, r, r), dtype=torch.uint8)
    paths = [i for i, x in enumerate(items) if isinstance(x, str)]
    if paths:
        out[paths] = load_faces([items[i] for i in paths], pre)
    for i, x in enumerate(items):
        if isinstance(x, Image.Image):
            from torchvision.transforms.v2 import functional as F

            out[i] = crop_resize(F.pil_to_tensor(x.convert("RGB")), pre)
        elif isinstance(x, np.ndarray):
            out[i] = _array_face(x, pre, i)
    return out


def label(item, i: int) -> str:
    """How an item is named in outputs: its path, or `<array 3>` for in-memory images."""
    return item if isinstance(item, str) else f"<{type(item).__name__} {i}>"
