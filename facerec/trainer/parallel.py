"""A training step across ranks (torchrun): DDP, the loss over the global batch, sharded classifier
state in checkpoints. One process never enters this module's code paths.

Two ways to compute the loss, both equal to one process on the global batch:
  local   pure classifiers with a replicated classifier (softmax, ArcFace, CosFace): each rank's
          mean over its share is weighted by share / global batch before DDP averages gradients.
  gather  losses that compare images (triplet, combinations) and the sharded classifier: the
          embeddings and labels of the whole global batch are all-gathered (with gradient) and
          every rank computes the same global loss (see distributed.gather_with_grad).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import distributed as D
from ..errors import FacerecError


class Joint(nn.Module):
    """Model + (replicated) loss as one module, so DDP averages the classifier's gradient too."""

    def __init__(self, model: nn.Module, loss: nn.Module | None, outside_loss: nn.Module | None, gather: bool):
        super().__init__()
        self.model, self.loss, self.gather = model, loss, gather
        self.__dict__["outside_loss"] = outside_loss  # a sharded classifier: its rows differ per rank, not DDP's

    def forward(self, x: torch.Tensor, y: torch.Tensor, counts: list[int]) -> torch.Tensor:
        emb = self.model(x).float()
        loss = self.loss if self.loss is not None else self.outside_loss
        if self.gather:
            emb, y = D.gather_with_grad(emb, counts), D.gather_rows(y, counts)
        return loss(emb, y)


def setup(t) -> None:
    """Before the optimiser is built: global BatchNorm, the sharded classifier."""
    cfg, world = t.cfg, t.world
    if not world.enabled:
        if cfg.sync_bn or cfg.sharded_classifier:
            t.note("--sync-bn/--sharded-classifier act only with several processes (torchrun); ignored")
        return
    if cfg.freeze_trunk_epochs:
        raise FacerecError("freeze_trunk_epochs is not supported with several processes yet (DDP needs a fixed "
                           "set of trained parameters)")
    if cfg.mix != "none":
        raise FacerecError(f"mix={cfg.mix} with several processes would mix within each rank's share, not the "
                           "global batch: not supported yet")
    if cfg.batch_classes < world.size:
        raise FacerecError(f"batch_classes (P={cfg.batch_classes}) must be at least the number of processes "
                           f"({world.size}): each rank takes P/N identities of every batch")
    if cfg.sync_bn:
        from .. import sync_bn

        t.model = sync_bn.convert(t.model, t.device).to(t.device, memory_format=torch.channels_last)
        t.train_model = t.model
    if cfg.sharded_classifier:
        from facerec.losses.sharded import ShardedClassifier

        lo, hi = D.split_range(t.loss.num_classes, world)
        t.loss = ShardedClassifier(t.loss, lo, hi, world.size).to(t.device)
    t.log(f"{world.size} processes: global batch {cfg.batch_classes} x {cfg.per_class} (each rank "
          f"~{cfg.batch_classes // world.size} identities x {cfg.per_class}); the learning rate is not rescaled"
          + ("; BatchNorm over the global batch" if cfg.sync_bn else "; BatchNorm per rank (--sync-bn: global)")
          + (f"; classifier sharded ({t.loss.hi - t.loss.lo} of {t.loss.num_classes} classes here)"
             if cfg.sharded_classifier else ""))


def wrap(t) -> None:
    """DDP around the model (and a replicated loss), just before the first step."""
    t.ddp = None
    if not t.world.enabled:
        return
    from torch.nn.parallel import DistributedDataParallel as DDP

    sharded = bool(t.cfg.sharded_classifier)
    gather = sharded or getattr(t.loss, "min_per_class", 1) > 1
    joint = Joint(t.train_model, None if sharded else t.loss, t.loss if sharded else None, gather)
    ids = [t.device.index] if t.device.type == "cuda" else None
    t.ddp = DDP(joint, device_ids=ids)  # broadcast_buffers: every rank uses rank 0's BatchNorm running stats
    t.ddp_gather = gather


def step_loss(t, x, y, n_global: int) -> tuple[torch.Tensor, float, dict]:
    """(loss to back-propagate, the global batch's loss, its stats) for one step on this rank."""
    counts = D.share_counts(n_global, t.cfg.per_class, t.world)
    loss = t.ddp(x, y, counts)
    stats = dict(t.loss.stats)
    if t.ddp_gather:  # every rank holds the global loss already
        return loss, float(loss.detach()), stats
    n = len(y)
    keys = sorted(stats)
    sums = D.all_sum([float(loss.detach()) * n, *(stats[k] * n for k in keys)], t.device)
    return loss * (n * t.world.size / n_global), sums[0] / n_global, {k: v / n_global for k, v in zip(keys, sums[1:])}


# --- checkpoints: a sharded classifier is saved whole and dealt again on load ------------------------

def _sharded(t) -> bool:
    return t.world.enabled and bool(t.cfg.sharded_classifier)


def _rows(t) -> list[int]:
    return [hi - lo for lo, hi in (D.split_range(t.loss.num_classes, D.World(r, t.world.size))
                                   for r in range(t.world.size))]


def full_loss_state(t) -> dict:
    """The loss's state dict with the whole class matrix (a collective when sharded)."""
    if not _sharded(t):
        return t.loss.state_dict()
    return {"weight": t.loss.full_weight(_rows(t)).cpu()}


def full_optimizer_state(t) -> dict:
    sd = t.optimizer.state_dict()
    if not _sharded(t):
        return sd
    k, idx = t.loss.inner.subcenters, _param_index(t)
    rows = [r * k for r in _rows(t)]
    st = sd["state"][idx] = dict(sd["state"].get(idx, {}))  # a copy: state_dict() shares the live state's dicts
    for name, v in list(st.items()):
        if torch.is_tensor(v) and v.dim() and v.shape[0] == t.loss.weight.shape[0]:
            st[name] = D.gather_rows(v, rows).cpu()
    return sd


def load_loss_state(t, state: dict, source: str) -> None:
    from .. import checkpoint

    if not _sharded(t):
        checkpoint.load_model_weights(t.loss, state, source)
        return
    k = t.loss.inner.subcenters
    with torch.no_grad():
        t.loss.weight.copy_(state["weight"][t.loss.lo * k : t.loss.hi * k])


def load_optimizer_state(t, sd: dict) -> None:
    if _sharded(t):
        k, idx = t.loss.inner.subcenters, _param_index(t)
        full = t.loss.num_classes * k
        for name, v in list(sd["state"].get(idx, {}).items()):
            if torch.is_tensor(v) and v.dim() and v.shape[0] == full:
                sd["state"][idx][name] = v[t.loss.lo * k : t.loss.hi * k]
    t.optimizer.load_state_dict(sd)


def _param_index(t) -> int:
    params = [p for g in t.optimizer.param_groups for p in g["params"]]
    return next(i for i, p in enumerate(params) if p is t.loss.weight)
