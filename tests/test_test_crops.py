"""Test crops (`test_crops`): the views of each face that evaluation embeds and sums, against
torchvision's own centre and five-crop transforms."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from facerec.data.transforms import BatchTransform, Preprocess, crop_views, eval_transform


@pytest.mark.parametrize("r,s", [(73, 64), (128, 112), (37, 32)])
def test_crop_views_are_torchvisions_centre_crop_and_five_crop(r, s):
    x = torch.randint(0, 256, (2, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(r))
    assert torch.equal(crop_views(x, s, 1), v2.CenterCrop(s)(x))
    tl, tr, bl, br, centre = v2.FiveCrop(s)(x)
    five = crop_views(x, s, 5)
    assert five.shape == (2, 5, 3, s, s)
    for i, ref in enumerate((centre, tl, tr, bl, br)):
        assert torch.equal(five[:, i], ref)
    with pytest.raises(ValueError, match="test_crops must be one of 1, 5"):
        crop_views(x, s, 4)


def test_evaluation_paths_agree_and_training_ignores_test_crops():
    pre = Preprocess(input_size=32, test_crops=5)
    x = torch.randint(0, 256, (4, 3, pre.resize_to, pre.resize_to), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    views = eval_transform(pre)(x)  # the inference path (facerec.load, facerec eval)
    assert views.shape == (4, 5, 3, 32, 32) and views.dtype == torch.float32
    assert torch.allclose(BatchTransform(pre, train=False)(x), views, atol=1e-6)  # validation while training
    one = eval_transform(Preprocess(input_size=32))(x)
    assert torch.allclose(views[:, 0], one, atol=1e-6)  # the first view is the centre crop
    trained = BatchTransform(pre, train=True)(x, generator=torch.Generator().manual_seed(0))
    assert trained.shape == (4, 3, 32, 32)
