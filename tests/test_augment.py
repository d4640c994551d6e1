"""Augmentation levels and mixup/cutmix: reproducible from the generator, the right geometry,
label weights that match what was pasted, and a real ORL run with the heaviest setting."""

from __future__ import annotations

import pytest
import torch

from facerec import config
from facerec.data.augment import mix_batch
from facerec.data.transforms import BatchTransform, Preprocess
from facerec.errors import FacerecError
from facerec.trainer import Trainer


def _batch(n=6, r=40):
    return torch.randint(0, 256, (n, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("level", ["none", "crop", "conservative", "medium", "aggressive"])
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


def test_aggressive_cutmix_trains_on_orl(orl_dir, tmp_path, one_thread):
    cfg = config.load([], {"train": str(orl_dir), "model": "resnet18", "input_size": 32, "embedding_dim": 64,
                           "batch_classes": 10, "epochs": 1, "max_steps": 4, "workers": 0, "loss": "cosface",
                           "augment": "aggressive", "mix": "cutmix", "out": str(tmp_path)})
    summary = Trainer(cfg, progress=False, log=lambda *_: None).fit()
    import csv

    rows = list(csv.DictReader(open(f"{summary['run_dir']}/metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0
