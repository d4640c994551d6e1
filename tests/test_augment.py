"""Augmentation levels and mixup/cutmix: reproducible from the generator, the right geometry,
label weights that match what was pasted, and a real ORL run with the heaviest setting."""

from __future__ import annotations

import pytest
import torch

from facerec import config
from facerec.config.fields import TrainConfig
from facerec.data.augment import LEVELS, KeepBox, LowResolution, mix_batch
from facerec.data.transforms import BatchTransform, Preprocess
from facerec.errors import FacerecError
from facerec.trainer import Trainer


def _batch(n=6, r=40):
    return torch.randint(0, 256, (n, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_the_config_offers_every_level():
    import dataclasses

    choices = next(f for f in dataclasses.fields(TrainConfig) if f.name == "augment").metadata["choices"]
    assert tuple(choices) == LEVELS


@pytest.mark.parametrize("level", LEVELS)
def test_levels_are_reproducible_and_shaped(level):
    pre = Preprocess(input_size=32, hflip=False)
    t = BatchTransform(pre, train=True, augment=level)
    a = t(_batch(), torch.Generator().manual_seed(1))
    b = t(_batch(), torch.Generator().manual_seed(1))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32 and torch.equal(a, b)
    if level != "none":
        assert not torch.equal(a, t(_batch(), torch.Generator().manual_seed(2)))


def test_none_is_the_centre_crop_and_leaves_global_rng_alone():
    pre = Preprocess(input_size=32, mean=(0, 0, 0), std=(1, 1, 1))
    x = _batch()
    out = BatchTransform(pre, train=True, augment="none")(x, torch.Generator().manual_seed(1))
    assert torch.allclose(out, x[:, :, 4:36, 4:36].float() / 255)
    state = torch.get_rng_state()
    BatchTransform(pre, train=True, augment="aggressive")(x, torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())  # v2's draws are forked, so resume stays exact


def test_keep_box_keeps_one_box_in_place_and_zeroes_the_rest():
    x = torch.randint(1, 256, (3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    areas = []
    for seed in range(200):
        torch.manual_seed(seed)
        out = KeepBox()(x)
        kept = (out != 0).all(0)
        rows, cols = kept.any(1).nonzero().flatten(), kept.any(0).nonzero().flatten()
        i, h = int(rows[0]), int(rows[-1] - rows[0] + 1)
        j, w = int(cols[0]), int(cols[-1] - cols[0] + 1)
        assert int(kept.sum()) == h * w  # one filled rectangle
        assert torch.equal(out[:, i : i + h, j : j + w], x[:, i : i + h, j : j + w])  # in place, unscaled
        areas.append(h * w / 1600)
        assert 0.19 <= h * w / 1600 <= 1.0 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1  # RandomResizedCrop's box
    assert min(areas) < 0.3 and max(areas) > 0.9  # the whole 0.2-1 range is drawn


def test_low_resolution_leaves_only_the_small_image_detail():
    # Resizing is separable: out = A @ small @ B.T per channel, so a 32-pixel image that went through
    # an 8-pixel one has rank <= 8; uint8 rounding adds only a small remainder beyond the 8th value.
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    full = torch.linalg.svdvals(x.float())
    for seed in range(6):  # several draws of the two interpolations
        torch.manual_seed(seed)
        out = LowResolution(side=(0.25, 0.25))(x)
        assert out.shape == x.shape and out.dtype == torch.uint8
        sv = torch.linalg.svdvals(out.float())  # (3, 32) per channel
        assert (sv[:, 8] < 0.1 * full[:, 8]).all()


def test_adaface_applies_each_augmentation_to_a_fifth_of_the_images():
    pre = Preprocess(input_size=16, hflip=False, mean=(0, 0, 0), std=(1, 1, 1))
    x = torch.randint(100, 200, (1000, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = BatchTransform(pre, train=True, augment="adaface")(x, torch.Generator().manual_seed(1))
    boxed = (out == 0).flatten(1).any(1).float().mean().item()  # only the box zeroes a 100-199 image
    assert 0.15 < boxed < 0.25
    y = out * 255
    changed = torch.minimum((y - x.float()).abs().flatten(1).amax(1),  # the level mirrors, too
                            (y - x.flip(-1).float()).abs().flatten(1).amax(1)).gt(1).float().mean().item()
    assert 0.4 < changed < 0.6  # 1 - 0.8^3 = 0.49 of the images get at least one of the three


def test_mixup_is_a_convex_combination():
    x = torch.randn(8, 3, 16, 16)
    mixed, perm, lam = mix_batch(x, "mixup", 0.4, torch.Generator().manual_seed(3))
    assert 0 <= lam <= 1 and sorted(perm.tolist()) == list(range(8))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm], atol=1e-6)


def test_cutmix_weight_is_the_kept_area():
    x = torch.zeros(4, 1, 20, 20)
    x[1:] = 1.0
    for seed in range(10):
        mixed, perm, lam = mix_batch(x, "cutmix", 1.0, torch.Generator().manual_seed(seed))
        pasted = (mixed[0] != x[0]).float().mean().item()  # image 0 is all 0, every other all 1
        expected = 0.0 if perm[0] == 0 else 1 - lam
        assert pasted == pytest.approx(expected)


def test_mix_needs_a_classifier_loss(tmp_path):
    cfg = config.load([], {"loss": "triplet", "per_class": 2, "mix": "mixup", "train": str(tmp_path),
                           "out": str(tmp_path)})
    with pytest.raises(FacerecError, match="mix=mixup needs a classifier loss"):
        Trainer(cfg, progress=False).prepare()


@pytest.mark.parametrize("augment, mix, loss, steps", [("aggressive", "cutmix", "cosface", 4),
                                                      ("adaface", "none", "arcface", 3)])
def test_augmentation_trains_on_orl(orl_dir, tmp_path, one_thread, augment, mix, loss, steps):
    cfg = config.load([], {"train": str(orl_dir), "model": "resnet18", "input_size": 32, "embedding_dim": 64,
                           "batch_classes": 10, "epochs": 1, "max_steps": steps, "workers": 0, "loss": loss,
                           "augment": augment, "mix": mix, "out": str(tmp_path)})
    summary = Trainer(cfg, progress=False, log=lambda *_: None).fit()
    import csv

    rows = list(csv.DictReader(open(f"{summary['run_dir']}/metrics.csv")))
    assert len(rows) == 1 and 0 < float(rows[0]["loss"]) < float("inf")
