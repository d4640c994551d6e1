"""The strategy for several processes (torchrun): DDP, the loss over the global batch, validation
sharded by image, and the sharded classifier's state gathered for checkpoints. A plain run never
imports this module (see strategy.py).

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

from facerec.errors import FacerecError
from facerec.trainer import distributed as D
from facerec.trainer.strategy import SingleProcess


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


class Distributed(SingleProcess):
    def device(self, device: torch.device) -> torch.device:
        if device.type == "cuda":
            device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(device)
        D.init(self.world, device, self.cfg.dist_timeout)
        self._device = device
        return device

    def prepare(self, model, loss, note, log):
        """Global BatchNorm and the sharded classifier, before the optimiser is built."""
        cfg, world = self.cfg, self.world
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
            from facerec.trainer import sync_bn

            model = sync_bn.convert(model, self._device).to(self._device, memory_format=torch.channels_last)
        self.sharded = bool(cfg.sharded_classifier)
        if self.sharded:
            from facerec.losses.sharded import ShardedClassifier

            lo, hi = D.split_range(loss.num_classes, world)
            loss = ShardedClassifier.split(loss, lo, hi, world.size).to(self._device)
        log(f"{world.size} processes: global batch {cfg.batch_classes} x {cfg.per_class} (each rank "
            f"~{cfg.batch_classes // world.size} identities x {cfg.per_class}); the learning rate is not rescaled"
            + ("; BatchNorm over the global batch" if cfg.sync_bn else "; BatchNorm per rank (--sync-bn: global)")
            + (f"; classifier sharded ({loss.hi - loss.lo} of {loss.num_classes} classes here)" if self.sharded else ""))
        return model, loss

    def wrap(self, train_model, loss) -> None:
        """DDP around the model (and a replicated loss), just before the first step."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        self.loss = loss
        self.gather = self.sharded or getattr(loss, "min_per_class", 1) > 1
        joint = Joint(train_model, None if self.sharded else loss, loss if self.sharded else None, self.gather)
        ids = [self._device.index] if self._device.type == "cuda" else None
        self.ddp = DDP(joint, device_ids=ids)  # broadcast_buffers: every rank uses rank 0's BatchNorm running stats

    def step_loss(self, x, y, n_global: int, mix=None, meter=None) -> tuple[torch.Tensor, float, dict]:
        """(loss to back-propagate, the global batch's loss, its stats) for this rank's share."""
        counts = D.share_counts(n_global, self.cfg.per_class, self.world)
        loss = self.ddp(x, y, counts)
        stats = dict(self.loss.stats)
        if self.gather:  # every rank holds the global loss already
            return loss, float(loss.detach()), stats
        n = len(y)
        keys = sorted(stats)
        sums = D.all_sum([float(loss.detach()) * n, *(stats[k] * n for k in keys)], self._device)
        return (loss * (n * self.world.size / n_global), sums[0] / n_global,
                {k: v / n_global for k, v in zip(keys, sums[1:])})

    def plan_share(self):
        return self.cfg.per_class, self.world

    def before_validation(self, model) -> None:
        D.sync_buffers(model, self.world)  # per-rank BatchNorm stats: every rank embeds with rank 0's

    def validation_range(self, n: int) -> tuple[int, int]:
        return D.split_range(n, self.world)

    def gather_embeddings(self, emb: torch.Tensor, device: torch.device) -> torch.Tensor:
        return D.gather_rows(emb.to(device), D.counts_of(len(emb), self.world, device)).cpu()

    def broadcast(self, obj):
        return D.broadcast(obj, self.world)

    def barrier(self) -> None:
        D.barrier(self.world)

    # --- checkpoints: a sharded classifier is saved whole and dealt again on load --------------------
    def _rows(self, loss) -> list[int]:
        return [hi - lo for lo, hi in (D.split_range(loss.num_classes, D.World(r, self.world.size))
                                       for r in range(self.world.size))]

    def loss_state(self, loss) -> dict:
        """The whole class matrix (a collective when sharded)."""
        if not self.sharded:
            return loss.state_dict()
        return {"weight": loss.full_weight(self._rows(loss)).cpu()}

    def optimizer_state(self, optimizer, loss) -> dict:
        sd = optimizer.state_dict()
        if not self.sharded:
            return sd
        idx = _param_index(optimizer, loss)
        rows = [r * loss.subcenters for r in self._rows(loss)]
        st = sd["state"][idx] = dict(sd["state"].get(idx, {}))  # a copy: state_dict() shares the live state's dicts
        for name, v in list(st.items()):
            if torch.is_tensor(v) and v.dim() and v.shape[0] == loss.weight.shape[0]:
                st[name] = D.gather_rows(v, rows).cpu()
        return sd

    def load_loss_state(self, loss, state: dict, source: str) -> None:
        if not self.sharded:
            return super().load_loss_state(loss, state, source)
        k = loss.subcenters
        with torch.no_grad():
            loss.weight.copy_(state["weight"][loss.lo * k : loss.hi * k])

    def load_optimizer_state(self, optimizer, loss, sd: dict) -> None:
        if self.sharded:
            k, idx = loss.subcenters, _param_index(optimizer, loss)
            full = loss.num_classes * k
            for name, v in list(sd["state"].get(idx, {}).items()):
                if torch.is_tensor(v) and v.dim() and v.shape[0] == full:
                    sd["state"][idx][name] = v[loss.lo * k : loss.hi * k]
        optimizer.load_state_dict(sd)


def _param_index(optimizer, loss) -> int:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return next(i for i, p in enumerate(params) if p is loss.weight)
