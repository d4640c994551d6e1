"""Augmentation levels for the experiment phase, and mixup/cutmix for classifier losses.

Levels (each adds to the one before):
  none          centre crop only, no mirror
  crop          random crop (+ mirror when `hflip`): the trainer's default
  conservative  random crop, mirror, rotation +-5 deg
  medium        rotation +-10 deg, colour jitter 0.2, grayscale p=0.1
  aggressive    + Gaussian blur (p=0.3) and random erasing (p=0.25)
and, apart from that ladder:
  adaface       random crop and mirror, then AdaFace's three (Kim et al., CVPR 2022), each at
                p=0.2: a random box (area 0.2-1, aspect 3/4-4/3) kept in place with the rest zeroed,
                low resolution (down to 0.2-1 of the side and back, random interpolations) and
                colour jitter 0.5 (brightness, contrast, saturation)
The per-image ops are torchvision.transforms.v2 on uint8 tensors, applied one image at a time
(a v2 transform given a batch draws one set of parameters for the whole batch).

Mixing: mixup / cutmix pair each image with another of the batch (a random permutation) and
the loss becomes lam * L(emb, y) + (1 - lam) * L(emb, y[perm]): for cross-entropy this is the
loss against the mixed one-hot target torchvision's v2.MixUp/CutMix produce, and it applies
unchanged to the margin losses, whose targets are class indices.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import RandomResizedCrop, v2
from torchvision.transforms.v2 import functional as F

LEVELS = ("none", "crop", "conservative", "medium", "aggressive", "adaface")
MIXES = ("none", "mixup", "cutmix")
ADAFACE_P = 0.2  # each of AdaFace's three augmentations, as in its published training scripts
_INTERPOLATIONS = (v2.InterpolationMode.NEAREST, v2.InterpolationMode.BILINEAR, v2.InterpolationMode.BICUBIC)


class KeepBox:
    """AdaFace's crop: a RandomResizedCrop box (area `scale`, aspect `ratio`) left where it is, at
    its own scale, and everything outside it zeroed, so the face is partly cut off without moving."""

    def __init__(self, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
        self.scale, self.ratio = scale, ratio

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        i, j, h, w = RandomResizedCrop.get_params(img, list(self.scale), list(self.ratio))
        out = torch.zeros_like(img)
        out[..., i : i + h, j : j + w] = img[..., i : i + h, j : j + w]
        return out


class LowResolution:
    """AdaFace's low-resolution augmentation: resize the side to a uniform `side` fraction (at least
    one pixel), then back, each way with a randomly chosen interpolation."""

    def __init__(self, side=(0.2, 1.0)):
        self.side = side

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        lo, hi = self.side
        r = lo + (hi - lo) * float(torch.rand(()))
        small = [max(1, int(r * h)), max(1, int(r * w))]
        down, up = (_INTERPOLATIONS[int(k)] for k in torch.randint(len(_INTERPOLATIONS), (2,)))
        img = F.resize(img, small, interpolation=down, antialias=True)
        return F.resize(img, [h, w], interpolation=up, antialias=True)


class AdaFaceAugment:
    """AdaFace's crop, low resolution and colour jitter, in that order, each on its own coin at `p`
    (plain coins: v2.RandomApply's per-call overhead tripled the cost on 64-px faces)."""

    def __init__(self, p: float = ADAFACE_P):
        self.p = p
        self.ops = (KeepBox(), LowResolution(), v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        for op, coin in zip(self.ops, torch.rand(len(self.ops)).tolist()):
            if coin < self.p:
                img = op(img)
        return img


def per_image_ops(level: str):
    """The v2 pipeline applied after crop/mirror, or None when the level has none."""
    if level in ("none", "crop"):
        return None
    if level == "conservative":
        return v2.RandomRotation(5)
    if level == "adaface":
        return AdaFaceAugment()
    ops = [v2.RandomRotation(10), v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2), v2.RandomGrayscale(0.1)]
    if level == "aggressive":
        ops += [v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=0.3),
                v2.RandomErasing(p=0.25, scale=(0.02, 0.15), value=0)]
    return v2.Compose(ops)


def random_crop(level: str) -> bool:
    return level != "none"


def mirror(level: str, hflip: bool) -> bool:
    if level == "none":
        return False
    return hflip or level != "crop"  # every level but plain crop mirrors


def mix_batch(x: torch.Tensor, mode: str, alpha: float, generator: torch.Generator | None = None):
    """Mix a float batch; returns (mixed, perm, lam). Draws come from `generator` (resume-exact)."""
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    seed = int(torch.randint(2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))  # torch's Beta takes no generator
    perm = torch.randperm(b, generator=generator).to(x.device)
    if mode == "mixup":
        return x.mul(lam).add_(x[perm], alpha=1 - lam), perm, lam
    cut = (1 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = divmod(int(torch.randint(0, h * w, (1,), generator=generator)), w)
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the pasted area decides the label weight
    return out, perm, lam
