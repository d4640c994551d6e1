"""Request bytes -> face arrays, within limits. Images are decoded from memory only: no name or path a
client sends is ever opened, and nothing is unpickled."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facerec.errors import DataError
from facerec.serve.gallery import GalleryError

# PIL's names: PGM/PBM files report "PPM"; MPO is a JPEG with extra frames (phone cameras)
FORMATS = ("JPEG", "MPO", "PNG", "PPM", "BMP", "TIFF", "WEBP", "GIF")
CONTENT_TYPES = ("image/", "application/octet-stream")  # a part with no type comes as octet-stream


@dataclass
class Limits:
    max_image_bytes: int = 8 * 2**20
    max_pixels: int = 40_000_000
    max_batch: int = 16

    @property
    def max_body(self) -> int:
        """Bytes one request may send: a full batch of the largest images, plus room for the form fields."""
        return self.max_batch * self.max_image_bytes + 2**20


class UploadError(GalleryError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Face:
    name: str  # the part's field and position, e.g. "images[2]": never a client's file name or path
    data: bytes
    digest: str
    array: np.ndarray


def check_count(n: int, field: str, limits: Limits) -> None:
    if n == 0:
        raise UploadError(f"no image sent in field {field!r}")
    if n > limits.max_batch:
        raise UploadError(f"{n} images in one request; the limit is {limits.max_batch}", 413)


async def read(upload, name: str, limits: Limits) -> bytes:
    """The part's bytes: at most the size limit (one byte more is read to tell a file over it)."""
    ctype = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if not ctype.startswith(CONTENT_TYPES):
        raise UploadError(f"{name}: content type {ctype!r} is not an image (expected image/jpeg, image/png, ...)", 415)
    data = await upload.read(limits.max_image_bytes + 1)
    if len(data) > limits.max_image_bytes:
        raise UploadError(f"{name}: image over the size limit of {limits.max_image_bytes} bytes", 413)
    if not data:
        raise UploadError(f"{name}: empty file")
    return data


def decode(data: bytes, name: str, limits: Limits) -> np.ndarray:
    """HxWx3 uint8, after the header's format and pixel count are checked (a decompression bomb is
    refused from its header, before any pixel is decoded)."""
    from facerec.inference.images import decode_bytes

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (w, h) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"{name}: image has too many pixels (a decompression bomb?); the limit is "
                          f"{limits.max_pixels} pixels", 413) from None
    except (OSError, ValueError, SyntaxError):
        raise UploadError(f"{name}: not an image (expected {', '.join(FORMATS)})", 415) from None
    if fmt not in FORMATS:
        raise UploadError(f"{name}: {fmt} images are not accepted (expected {', '.join(FORMATS)})", 415)
    if w * h > limits.max_pixels:
        raise UploadError(f"{name}: image of {w}x{h} pixels is over the limit of {limits.max_pixels} pixels", 413)
    try:
        return decode_bytes(data, name)
    except DataError as exc:
        raise UploadError(str(exc), 415) from None


async def faces(uploads, field: str, limits: Limits) -> list[Face]:
    uploads = list(uploads or [])
    check_count(len(uploads), field, limits)
    out = []
    for i, up in enumerate(uploads):
        name = f"{field}[{i}]" if len(uploads) > 1 else field
        data = await read(up, name, limits)
        out.append(Face(name, data, hashlib.sha256(data).hexdigest(), decode(data, name, limits)))
    return out


def thumbnail(data: bytes, side: int = 112) -> bytes:
    """A JPEG of at most side x side px of a stored (already checked) image."""
    from facerec.data.decode import to_rgb

    with Image.open(io.BytesIO(data)) as img:
        rgb = Image.fromarray(to_rgb(img).permute(1, 2, 0).numpy())
    rgb.thumbnail((side, side))
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=85)
    return buf.getvalue()
