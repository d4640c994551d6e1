"""Every learning-rate schedule of facerec/optim.py against torch's own scheduler, step by step."""

from __future__ import annotations

import pytest
import torch

from facerec import config
from facerec.trainer.optim import build_optimizer, build_scheduler, lr_factor

SPE = 7  # steps per epoch


def _ours(cfg, steps: int) -> list[float]:
    return [cfg.lr * lr_factor(cfg, s, SPE) for s in range(steps)]


def _torch(make, lr: float, steps: int, step_arg=None) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for s in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(step_arg(s + 1)) if step_arg else sched.step()
    return out


def test_steplr_matches_torch_steplr():
    cfg = config.load([], {"scheduler": "steplr", "lr": 0.1, "lr_decay": 0.9, "step_size": 2, "epochs": 9})
    ref = _torch(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2 * SPE, gamma=0.9), 0.1, 9 * SPE)
    assert _ours(cfg, 9 * SPE) == pytest.approx(ref, rel=1e-12)


def test_steplr_steps_every_test_interval_by_default_as_face_trainer():
    cfg = config.load([], {"scheduler": "steplr", "lr": 0.1, "lr_decay": 0.5, "test_interval": 3, "epochs": 9})
    ref = _torch(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3 * SPE, gamma=0.5), 0.1, 9 * SPE)
    assert _ours(cfg, 9 * SPE) == pytest.approx(ref, rel=1e-12)


def test_cosine_matches_torch_cosine_annealing():
    cfg = config.load([], {"scheduler": "cosine", "lr": 0.1, "eta_min": 0.001, "epochs": 6})
    ref = _torch(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6 * SPE, eta_min=0.001), 0.1, 6 * SPE)
    assert _ours(cfg, 6 * SPE) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_warm_restarts_match_torch_sgdr():
    cfg = config.load([], {"scheduler": "warm_restarts", "lr": 0.1, "eta_min": 0.002, "t0": 2, "t_mult": 2,
                           "epochs": 14})
    ref = _torch(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.002),
                 0.1, 14 * SPE, step_arg=lambda s: s / SPE)
    assert _ours(cfg, 14 * SPE) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_onecycle_matches_torch_onecycle():
    cfg = config.load([], {"scheduler": "onecycle", "lr": 0.1, "epochs": 5})
    total = 5 * SPE
    ref = _torch(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=total, cycle_momentum=False),
                 0.1, total)
    assert _ours(cfg, total) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_linear_warmup_scales_the_first_epochs():
    cfg = config.load([], {"scheduler": "none", "lr": 0.2, "warmup_epochs": 2, "epochs": 4})
    assert _ours(cfg, 4 * SPE) == pytest.approx([0.2 * min(1.0, (s + 1) / (2 * SPE)) for s in range(4 * SPE)])


def test_scheduler_drives_the_optimiser_and_trunk_scale():
    from torch import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.head = nn.Linear(2, 2), nn.Linear(2, 2)

    cfg = config.load([], {"scheduler": "steplr", "lr": 0.1, "lr_decay": 0.5, "epochs": 3, "trunk_lr_scale": 0.1,
                           "optimizer": "sgd"})
    opt = build_optimizer(cfg, M(), nn.Identity())
    sched = build_scheduler(cfg, opt, SPE)
    for _ in range(SPE):
        opt.step()
        sched.step()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([0.1 * 0.1 * 0.5, 0.1 * 0.5])
