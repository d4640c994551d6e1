"""Image files to faces: bytes read once, baseline JPEGs through torchvision's batched
libjpeg-turbo decoder, every other format (and any JPEG it refuses) through PIL, then the same
crop + resize for all (transforms.crop_resize); and the notes about image sizes and modes a run
prints before it starts."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from facerec.data.transforms import Preprocess, crop_resize
from facerec.errors import DataError, cannot_read

try:  # torchvision 0.29 (pinned) deprecates its decoders for TorchCodec, which needs system FFmpeg libraries
    from torchvision.io import ImageReadMode, decode_jpeg

    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)
except ImportError:  # a torchvision without them: every format goes through PIL
    decode_jpeg = None

JPEG_EXTS = (".jpg", ".jpeg")

MIN_SIDE = 32  # px: a face image smaller than this on a side is noted (it is upscaled, with little detail)
USUAL_MODES = ("L", "RGB")  # 8-bit grey and colour; every other mode is converted (see `to_rgb`) and noted
DECODE_VERSION = 3  # part of the decoded store's key: bump when a file decodes to other pixels


def to_rgb(img: Image.Image) -> torch.Tensor:
    """(3, H, W) uint8 of any PIL image, as an image viewer shows it (never clipped to white):

    - 16-bit grey (`I;16*`, and `I`, as which Pillow opens 16-bit PGMs, scaled to 0-65535): the
      high byte (v >> 8); `I` values outside 0-65535 are clipped first;
    - `F` (float): values within [0, 1] are scaled by 255, others taken as 0-255; rounded, clipped;
    - alpha (`RGBA`, `LA`, `PA`, a palette with transparency): dropped, i.e. the colour channels as
      they are (no compositing onto a background);
    - `CMYK`, `P`, `1`, `YCbCr`, ...: Pillow's own conversion to RGB."""
    mode = img.mode
    if mode in ("RGB", "L", "1", "CMYK", "YCbCr", "LAB", "HSV") or (mode == "P" and "transparency" not in img.info):
        return F.pil_to_tensor(img.convert("RGB"))
    if mode.startswith("I;16") or mode == "I":
        v = np.asarray(img)
        grey = (np.clip(v, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8) if v.dtype != np.uint8 else v
    elif mode == "F":
        v = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if v.size and v.min() >= 0 and v.max() <= 1:
            v = v * 255
        grey = np.clip(np.rint(v), 0, 255).astype(np.uint8)
    else:  # alpha modes (RGBA, RGBa, LA, PA, P with transparency) and the rest: RGBA, then drop the alpha
        return F.pil_to_tensor(img.convert("RGBA"))[:3].contiguous()
    return torch.from_numpy(np.ascontiguousarray(grey)).unsqueeze(0).expand(3, -1, -1).contiguous()


def read_image_bytes(path: str) -> bytes:
    """The file's bytes; an unreadable file (permissions, a directory, a dangling link, I/O) is one
    `cannot read image` error, as everywhere else (leakage digests, decoding, embed, verify)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise cannot_read(path, exc) from None


def _decode_pil(path: str, data: bytes | None = None) -> torch.Tensor:
    import io

    data = read_image_bytes(path) if data is None else data
    try:
        with Image.open(io.BytesIO(data)) as img:
            return to_rgb(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None


def _has_jpeg_end(data: torch.Tensor) -> bool:
    """An end-of-image marker (FF D9) among the last bytes (some writers append a few after it)."""
    tail = data[-64:]
    return bool(((tail[:-1] == 0xFF) & (tail[1:] == 0xD9)).any()) if len(tail) > 1 else False


def jpeg_components(data: bytes) -> int | None:
    """The number of colour components in a JPEG's frame header (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK),
    found by walking the marker segments; None when there is no readable frame header."""
    i, n = 2, len(data)
    if data[:2] != b"\xff\xd8":
        return None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            return data[i + 9] if i + 9 < n else None
        if marker == 0xDA:  # scan data before any frame header
            return None
        i += 2 + length
    return None


def load_faces(paths, pre: Preprocess) -> torch.Tensor:
    """(B, 3, R, R) uint8 faces. Baseline grey and colour JPEGs go through torchvision's batched
    libjpeg-turbo decoder (1.7x PIL's decode + resize per core at 112 px, 1.9x at 224 px, on a par
    at 64 px: `scripts/bench_decode.py`); other formats, CMYK JPEGs and any JPEG it refuses through
    PIL and `to_rgb`; then one tensor crop + resize for all, so a face looks the same whatever its format."""
    r = pre.resize_to
    out = torch.empty((len(paths), 3, r, r), dtype=torch.uint8)
    data = {i: read_image_bytes(str(p)) for i, p in enumerate(paths)}
    jpeg = [i for i, p in enumerate(paths) if str(p).lower().endswith(JPEG_EXTS)]
    decoded: dict[int, torch.Tensor] = {}
    if jpeg and decode_jpeg is not None:
        buf = {i: torch.frombuffer(bytearray(data[i]), dtype=torch.uint8) for i in jpeg if data[i]}
        # libjpeg-turbo fills a truncated file with grey and only warns: those go to PIL, which refuses.
        # CMYK/YCCK (4 components) go to PIL too, whose conversion is the one every other path uses.
        whole = [i for i, d in buf.items() if _has_jpeg_end(d) and jpeg_components(data[i]) in (1, 3)]
        try:
            decoded = dict(zip(whole, decode_jpeg([buf[i] for i in whole], mode=ImageReadMode.RGB))) if whole else {}
        except RuntimeError:  # one mislabelled or unsupported file: decode each alone below (PIL names it)
            decoded = {}
    for i, p in enumerate(paths):
        img = decoded.get(i)
        out[i] = crop_resize(img if img is not None else _decode_pil(str(p), data[i]), pre)
    return out


def load_face(path: str, pre: Preprocess) -> torch.Tensor:
    """One face as (3, R, R) uint8 (see `load_faces`)."""
    return load_faces([path], pre)[0]


def image_header(path) -> tuple[tuple[int, int], str] | None:
    """(size, mode) from the file's header (no pixels decoded); None when unreadable (named when decoded)."""
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (OSError, ValueError, SyntaxError):
        return None


def image_notes(seen, total: int, pre: Preprocess, sampled: bool = False) -> list[str]:
    """Notes about images smaller than MIN_SIDE on a side or in a mode other than 8-bit grey/RGB,
    each with a count and an example. `seen`: (name, (w, h), mode) per image looked at."""
    from collections import Counter

    small, unusual, modes = [], [], Counter()
    for name, (w, h), mode in seen:
        if min(w, h) < MIN_SIDE:
            small.append((name, w, h))
        if mode not in USUAL_MODES:
            unusual.append((name, mode))
            modes[mode] += 1
    of = f"{total} sampled" if sampled else str(total)
    notes = []
    if small:
        name, w, h = small[0]
        notes.append(f"{len(small)} of {of} images are smaller than {MIN_SIDE} px on a side (e.g. {name}: {w}x{h}): "
                     f"each is upscaled to {pre.resize_to} px, with little face detail to learn from or match")
    if unusual:
        name, mode = unusual[0]
        kinds = ", ".join(f"{m}: {n}" for m, n in modes.most_common())
        notes.append(f"{len(unusual)} of {of} images are not 8-bit grey or RGB ({kinds}; e.g. {name}: {mode}): "
                     "each is decoded as a viewer shows it (16-bit scaled to 8-bit, alpha dropped, CMYK, palette "
                     "and 1-bit converted to RGB)")
    return notes


def geometry_note(root, paths, pre: Preprocess, sample: int = 200, seed: int = 0) -> str | None:
    """A warning when a sample of the images comes in several sizes: each is centre-cropped to a
    square of its own and resized, which a set of mixed frames and crops may not expect; and, from
    the same sample, images smaller than MIN_SIDE or in unusual modes (`image_notes`), each note on
    a line of its own (`note: ` before the later ones). Reads image headers only."""
    import os
    from collections import Counter

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(paths), size=min(sample, len(paths)), replace=False)
    sizes = Counter()
    seen = []
    for i in sorted(int(i) for i in picks):
        path = os.path.join(root, paths[i])
        header = image_header(path)
        if header is None:
            continue  # named when it is decoded
        sizes[header[0]] += 1
        seen.append((path, *header))
    notes = image_notes(seen, len(seen), pre, sampled=len(seen) < len(paths))
    if len(sizes) >= 2:
        shown = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sizes.most_common(4))
        crops = sorted({pre.crop_fraction(sz) for sz in sizes})
        notes.insert(0, f"images come in {len(sizes)} sizes ({shown}{', ...' if len(sizes) > 4 else ''} of "
                        f"{sum(sizes.values())} sampled): each is centre-cropped to a square "
                        f"({'/'.join(f'{c:g}' for c in crops)} of its shorter side, --face-crop {pre.face_crop}) and "
                        f"resized to {pre.resize_to} px; crop or align frames first if their faces are not centred")
    return "\nnote: ".join(notes) or None
