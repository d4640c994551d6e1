"""Optimisers and learning-rate schedules, stepped once per iteration.

Every schedule is a multiplier of the base lr as a function of the global step, so linear
warm-up composes with any of them and resume only needs the step count.
  steplr         lr_decay ** (epoch // step_size)           (the course: 0.90 every test interval;
                 step_size defaults to test_interval, as face_trainer steps it after each test)
  cosine         eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2, T_max in epochs
  warm_restarts  cosine restarting after T_0, T_0*T_mult, ... epochs (SGDR)
  onecycle       torch's OneCycleLR with its defaults (cosine up from lr/25 over 30% of the
                 steps, down to lr/25e4)
Each is checked step by step against torch's own scheduler in tests/test_optim.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facerec.errors import FacerecError


def param_groups(model: nn.Module, loss: nn.Module, *, weight_decay: float, no_decay_norm_bias: bool,
                 trunk_lr_scale: float) -> list[dict]:
    """Trunk params get `trunk_lr_scale` x lr (fine-tuning); norms/biases optionally skip decay."""
    groups: dict[tuple[float, float], list] = {}
    named = [(f"model.{n}", p) for n, p in model.named_parameters()] + [(f"loss.{n}", p) for n, p in loss.named_parameters()]
    for name, p in named:
        scale = trunk_lr_scale if name.startswith("model.trunk.") else 1.0
        decay = 0.0 if (no_decay_norm_bias and (p.ndim <= 1)) else weight_decay
        groups.setdefault((scale, decay), []).append(p)
    return [{"params": ps, "lr_scale": s, "weight_decay": d} for (s, d), ps in groups.items()]


def build_optimizer(cfg, model: nn.Module, loss: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, loss, weight_decay=cfg.weight_decay, no_decay_norm_bias=cfg.no_decay_norm_bias,
                          trunk_lr_scale=cfg.trunk_lr_scale)
    for g in groups:
        g["lr"] = cfg.lr * g["lr_scale"]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    raise FacerecError(f"unknown optimizer {cfg.optimizer!r}")


def lr_factor(cfg, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    epoch_f = step / steps_per_epoch
    if cfg.scheduler == "steplr":
        f = cfg.lr_decay ** (int(epoch_f) // (cfg.step_size or cfg.test_interval))
    elif cfg.scheduler == "cosine":
        t_max = cfg.t_max or cfg.epochs
        f = _cos(min(epoch_f, t_max) / t_max, cfg.eta_min / cfg.lr)
    elif cfg.scheduler == "warm_restarts":
        t_i, t = float(cfg.t0), epoch_f
        while t >= t_i:
            t -= t_i
            t_i *= cfg.t_mult
        f = _cos(t / t_i, cfg.eta_min / cfg.lr)
    elif cfg.scheduler == "onecycle":
        # torch's phases: lr/25 -> lr at step 0.3 * total - 1, then -> lr/25e4 at the last step.
        up, last = 0.3 * total - 1, total - 1
        if step <= up:
            f = _cos(1 - step / up, 1 / 25)
        else:
            f = _cos((step - up) / max(1e-9, last - up), 1 / 25 / 1e4)
    else:
        f = 1.0
    if warm > 0 and step < warm:
        f *= (step + 1) / warm
    return f


def _cos(progress: float, floor: float) -> float:
    return floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch))
