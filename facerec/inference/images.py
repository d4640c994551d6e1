"""Images as users hand them over: file paths, folders, list files, PIL images, uint8 arrays.

Everything becomes the same uint8 face (the checkpoint's face crop, then resize) that training
and `facerec eval` see, so an embedding does not depend on how its image arrived.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facerec.data.decode import image_header, image_notes, load_faces, to_rgb
from facerec.data.listfile import IMAGE_EXTS
from facerec.data.transforms import Preprocess, crop_resize
from facerec.errors import DataError

log = logging.getLogger(__name__)


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
    """A text file with one image path per line (relative to the file's folder, or its `# root:` line).
    A plain line is a path, spaces and all, or else a train list's `identity relpath`; a tab or quoted
    (CSV) line, or any line of a `.csv`/`.tsv` file, is a train list line whose last field is the path
    (a first line of those naming no image, e.g. `identity,path`, is a header row: skipped, with a note)."""
    from facerec.data.listfile import (
        entries,
        plain_train_line,
        read_lines,
        resolve_root,
        train_line_fields,
        train_list_form,
    )

    path = Path(path)
    lines = read_lines(path)
    root = resolve_root(path, lines, None)
    form = train_list_form(path)
    out = []
    for n, (lineno, line) in enumerate(entries(lines)):
        whole = line.strip()
        if plain_train_line(line, form):
            last = whole.split()[-1]
            if not (root / whole).is_file() and (root / last).is_file():
                whole = last  # `identity relpath`
            # else the line as written: a path with spaces, or the missing path the error will name
        else:
            fields = train_line_fields(line, form)
            whole = fields[-1] if fields else whole
            if n == 0 and not whole.lower().endswith(IMAGE_EXTS) and not (root / whole).is_file():
                log.warning("%s:%d: first line %r names no image: taken as a header row and skipped", path, lineno,
                            line)
                continue
        out.append(str(root / whole))
    if not out:
        raise DataError(f"{path}: no image paths in this list")
    return out


def expand(images) -> list:
    """One item per image: a folder becomes its images; a single image or path becomes a list of one."""
    if isinstance(images, (str, os.PathLike, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)
                                                               and images.dtype in (np.uint8, np.uint16)):
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
    """uint8 (0-255) or uint16 (0-65535, scaled to 8-bit by v >> 8, as 16-bit files are) arrays:
    HxW grey, HxWx1, HxWx3 RGB, or HxWx4 RGBA (the alpha dropped, as for files)."""
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    if a.dtype != np.uint8:
        raise DataError(f"image {i}: expected a uint8 array (0-255) or uint16 (0-65535), got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise DataError(f"image {i}: expected an HxWx3 (RGB) array, got shape {a.shape}")
    return crop_resize(torch.from_numpy(np.array(a[:, :, :3])).permute(2, 0, 1), pre)  # a writable copy


def _array_mode(a: np.ndarray) -> str:
    channels = 1 if a.ndim == 2 else a.shape[2]
    bits = "16-bit " if a.dtype == np.uint16 else ""
    return {1: f"{bits}grey", 3: f"{bits}RGB", 4: f"{bits}RGBA"}.get(channels, f"{channels} channels") + " array"


def note_images(items: list, pre: Preprocess) -> None:
    """Once per call, a note (logged) about images smaller than `MIN_SIDE` px or in unusual modes
    (16-bit, CMYK, palette, alpha, ...), with a count and an example. Reads file headers only."""
    seen = []
    for i, x in enumerate(items):
        if isinstance(x, str):
            header = image_header(x)
            if header is not None:
                seen.append((x, *header))
        elif isinstance(x, Image.Image):
            seen.append((label(x, i), x.size, x.mode))
        elif isinstance(x, np.ndarray):
            mode = "RGB" if x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3 else \
                "L" if x.dtype == np.uint8 and x.ndim == 2 else _array_mode(x)
            seen.append((label(x, i), (x.shape[1], x.shape[0]), mode))
    for note in image_notes(seen, len(seen), pre):
        log.warning("%s", note)


def faces(items: list, pre: Preprocess) -> torch.Tensor:
    """(B, 3, R, R) uint8 faces of `expand`ed items; paths decode in one batch."""
    r = pre.resize_to
    out = torch.empty((len(items), 3, r, r), dtype=torch.uint8)
    paths = [i for i, x in enumerate(items) if isinstance(x, str)]
    if paths:
        out[paths] = load_faces([items[i] for i in paths], pre)
    for i, x in enumerate(items):
        if isinstance(x, Image.Image):
            out[i] = crop_resize(to_rgb(x), pre)
        elif isinstance(x, np.ndarray):
            out[i] = _array_face(x, pre, i)
    return out


def label(item, i: int) -> str:
    """How an item is named in outputs: its path, or `<array 3>` for in-memory images."""
    return item if isinstance(item, str) else f"<{type(item).__name__} {i}>"


def decode_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """HxWx3 uint8 RGB of an encoded image held in memory (no file), decoded as `load_faces` decodes a
    file: a whole baseline grey or colour JPEG by torchvision's libjpeg-turbo, anything else by PIL and
    `to_rgb`; so bytes sent over a network embed exactly as the same file read from disk."""
    import io

    from facerec.data import decode as dec

    img = None
    if dec.decode_jpeg is not None and data[:2] == b"\xff\xd8" and dec.jpeg_components(data) in (1, 3):
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if dec._has_jpeg_end(buf):
            try:
                img = dec.decode_jpeg(buf, mode=dec.ImageReadMode.RGB)
            except RuntimeError:  # refused by libjpeg-turbo: PIL below names the fault
                img = None
    if img is None:
        try:
            with Image.open(io.BytesIO(data)) as pil:
                img = to_rgb(pil)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{name}: cannot decode image ({exc})") from None
    return img.permute(1, 2, 0).numpy()
