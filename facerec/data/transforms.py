"""Image geometry and augmentation.

Geometry first: the face is cropped out of the source image (`face_crop`, a centred fraction of
the shorter side), then resized to `resize` (input_size * 256/224 by default: the course's
Resize 256 -> RandomCrop 224 ratio), then cropped to `input_size` (random when training,
centred when evaluating; `test_crops=5` also embeds the four corner crops, the span training's
random crop covers, and sums the embeddings). LFW's 250x250 images hold the face in roughly the
central 110-150 px, so `face_crop="auto"` keeps the central 150 px (0.6) of 250x250 images and
the whole image otherwise (course 256x256 face crops, ORL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from facerec.config import CHOICES

LFW_SIZE = (250, 250)
LFW_FACE_CROP = 0.6
COURSE_RESIZE_RATIO = 256 / 224
TEST_CROPS = CHOICES["test_crops"]  # declared with the training key


def crop_views(x: torch.Tensor, size: int, n: int = 1) -> torch.Tensor:
    """Evaluation crops of (..., C, R, R) faces. n=1: the centre crop, (..., C, S, S). n=5: the
    centre and the four corners, stacked as (..., 5, C, S, S); those are the extremes of training's
    random crop, so each view is one the network was trained on."""
    if n not in TEST_CROPS:
        raise ValueError(f"test_crops must be one of {', '.join(map(str, TEST_CROPS))}, got {n!r}")
    r = x.shape[-1]
    d = max(r - size, 0)
    c = d // 2
    if n == 1:
        return x[..., c : c + size, c : c + size]
    return torch.stack([x[..., i : i + size, j : j + size] for i, j in ((c, c), (0, 0), (0, d), (d, 0), (d, d))],
                       dim=-4)


@dataclass
class Preprocess:
    input_size: int = 112
    face_crop: float | str = "auto"
    resize: int | None = None  # default: round(input_size * 256 / 224)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    hflip: bool = True
    test_crops: int = 1  # evaluation views whose embeddings are summed (crop_views)

    @property
    def resize_to(self) -> int:
        return self.resize or round(self.input_size * COURSE_RESIZE_RATIO)

    def crop_fraction(self, size: tuple[int, int]) -> float:
        if self.face_crop == "auto":
            return LFW_FACE_CROP if size == LFW_SIZE else 1.0
        return float(self.face_crop)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}  # checkpoints may carry keys of other versions
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)




def crop_resize(img: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """(3, H, W) uint8 -> the face region (`crop_fraction` of the shorter side, centred) resized
    to (3, R, R) with antialiasing."""
    h, w = img.shape[-2:]
    side = min(w, h) * pre.crop_fraction((w, h))
    s = max(1, round(side))
    r = pre.resize_to
    return F.resized_crop(img, round((h - side) / 2), round((w - side) / 2), s, s, [r, r], antialias=True)


def eval_transform(pre: Preprocess):
    """(3, S, S) for one test crop, (5, 3, S, S) for five (see `crop_views`)."""
    return v2.Compose(
        [
            v2.CenterCrop(pre.input_size) if pre.test_crops == 1 else _Views(pre.input_size, pre.test_crops),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(pre.mean, pre.std),
        ]
    )


class _Views(torch.nn.Module):
    def __init__(self, size: int, n: int):
        super().__init__()
        self.size, self.n = size, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return crop_views(x, self.size, self.n)


def train_transform(pre: Preprocess):
    ops = [v2.RandomCrop(pre.input_size)]
    if pre.hflip:
        ops.append(v2.RandomHorizontalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)]
    return v2.Compose(ops)


class BatchTransform:
    """Crop, flip, augment and normalise a whole uint8 batch at once (on any device).

    Training: a random crop and a coin-flip mirror per sample, then the augmentation level's
    per-image ops (see `augment`), all drawn from `generator` so a resumed epoch sees the same
    augmentation. Evaluation: the centre crop, or `pre.test_crops` views stacked as (B, V, C, S, S).
    """

    def __init__(self, pre: Preprocess, train: bool, augment: str = "crop"):
        from facerec.data.augment import LEVELS, mirror, per_image_ops, random_crop

        if augment not in LEVELS:
            raise ValueError(f"augment must be one of {', '.join(LEVELS)}, got {augment!r}")
        self.pre, self.train = pre, train
        self.crop = train and random_crop(augment)
        self.flip = train and mirror(augment, pre.hflip)
        self.ops = per_image_ops(augment) if train else None
        self._mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(pre.std).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, offset: int = 0,
                 total: int | None = None, normalize: bool = True) -> torch.Tensor:
        """`offset`/`total`: x is rows [offset, offset + B) of a global batch of `total` (a distributed
        rank's share); every draw is made for the whole global batch and sliced, so each image gets
        the augmentation it would get in one process."""
        b, _, r, _ = x.shape
        total = b if total is None else total
        sl = slice(offset, offset + b)
        s = self.pre.input_size
        if self.crop and r > s:
            oy = torch.randint(0, r - s + 1, (total,), generator=generator)[sl]
            ox = torch.randint(0, r - s + 1, (total,), generator=generator)[sl]
            base = torch.arange(s)
            rows = (oy[:, None] + base).to(x.device)
            cols = (ox[:, None] + base).to(x.device)
            bi = torch.arange(b, device=x.device)[:, None, None, None]
            ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = x[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
        else:
            x = crop_views(x, s, 1 if self.train else self.pre.test_crops)
        if self.flip:
            flip = (torch.rand(total, generator=generator) < 0.5)[sl].to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.ops is not None:
            seeds = torch.randint(2**62, (total,), generator=generator)[sl].tolist()
            # v2 draws its parameters from the global CPU generator: seed it from ours, per image. Only
            # that generator: torch.manual_seed would also reseed every accelerator's (untouched by the
            # fork) and costs ~0.5 ms an image.
            with torch.random.fork_rng(devices=[]):
                out = []
                for img, seed in zip(x, seeds):
                    torch.default_generator.manual_seed(seed)
                    out.append(self.ops(img))
                x = torch.stack(out)
        return self.normalize(x) if normalize else x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> the network's float input; where it runs (a worker, or the GPU after a uint8 copy:
        a quarter of the bytes between processes and over PCIe) does not change the numbers."""
        x = x.float().div_(255)
        return (x - self._mean.to(x.device)) / self._std.to(x.device)


_DECODE_NAMES = ("load_faces", "load_face", "to_rgb", "read_image_bytes", "jpeg_components", "image_header",
                 "image_notes", "geometry_note", "MIN_SIDE", "USUAL_MODES", "DECODE_VERSION", "JPEG_EXTS")


def __getattr__(name):  # image decoding moved to facerec.data.decode; the old names still resolve
    if name in _DECODE_NAMES:
        import warnings

        from facerec.data import decode

        warnings.warn(f"facerec.data.transforms.{name} moved to facerec.data.decode", DeprecationWarning, stacklevel=2)
        return getattr(decode, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
