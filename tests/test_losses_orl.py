"""Every loss trains a few steps on real faces (ORL) without NaN, and its loss falls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from facerec import losses
from facerec.data.sampling import PKSampler

IDS, PER_ID, SIZE, DIM = 10, 10, 32, 32
P, K, STEPS = 5, 4, 25


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions: threads only spin (~10x slower)


@pytest.fixture(scope="module")
def orl(orl_dir):
    x, y = [], []
    for i in range(IDS):
        for j in range(1, PER_ID + 1):
            img = Image.open(orl_dir / f"s{i + 1}" / f"{j}.pgm").convert("L").resize((SIZE, SIZE), Image.BILINEAR)
            x.append(np.asarray(img, np.float32) / 127.5 - 1.0)
            y.append(i)
    x = torch.from_numpy(np.stack(x))[:, None].expand(-1, 3, -1, -1).contiguous()  # grey -> 3 channels
    return x, torch.tensor(y)


def tiny_net() -> nn.Module:
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, DIM))


CASES = [
    ("softmax", {}),
    ("cosface", {}),
    ("arcface", {}),
    ("subcenter_arcface", {}),
    ("triplet", {"mining": "random"}),
    ("triplet", {"mining": "hard"}),
    ("triplet", {"mining": "semihard"}),
    ("triplet", {"mining": "batch_hard"}),
    ("softmax+triplet", {"weights": (0.7, 0.3)}),
    ("arcface+triplet", {"weights": (0.5, 0.5), "triplet.mining": "batch_hard"}),
]


def train_on_orl(x, y, loss, name: str, scale: float = 1.0, each_step=None) -> list[float]:
    """STEPS Adam steps of tiny_net + `loss` on P x K batches of ORL; each loss value finite. Returns
    the loss values. `scale` multiplies the embeddings; `each_step(loss)` runs after every step."""
    net = tiny_net()
    opt = torch.optim.Adam([*net.parameters(), *loss.parameters()], lr=3e-3)
    sampler = PKSampler(y.numpy(), per_class=K, classes_per_batch=P, seed=0)
    history, epoch = [], 0
    while len(history) < STEPS:
        sampler.set_epoch(epoch)
        epoch += 1
        for batch in sampler:
            value = loss(net(x[batch]) * scale, y[batch])
            assert torch.isfinite(value), f"{name}: loss {value.item()} at step {len(history)}"
            opt.zero_grad()
            value.backward()
            opt.step()
            history.append(value.item())
            assert all(np.isfinite(v) for v in loss.stats.values())
            if each_step is not None:
                each_step(loss)
    return history


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{kw.get('mining', '')}".rstrip("-") for n, kw in CASES])
def test_loss_trains_on_orl(orl, name, kw):
    x, y = orl
    torch.manual_seed(0)
    loss = losses.create(name, embedding_dim=DIM, num_classes=IDS, **kw)
    losses.check_per_class(loss, K)
    losses.check_num_classes(loss, int(y.max()) + 1)
    history = train_on_orl(x, y, loss, name)
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < first, f"{name} {kw}: loss went from {first:.4f} to {last:.4f}"
