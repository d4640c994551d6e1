"""How the model runs: in one process (this module), or across torchrun's ranks (`parallel.Distributed`).

The Trainer asks its strategy for everything that depends on the number of processes: the device,
the model and loss to train, the loss of a step, which validation images this process embeds, the
checkpoint's view of the classifier and optimiser, and who speaks and writes. A plain run never
imports the DDP code.
"""

from __future__ import annotations

import torch

from facerec.trainer import distributed as D


class SingleProcess:
    """One process trains the model and loss as they were built."""

    def __init__(self, cfg, world: D.World | None = None):
        self.cfg, self.world = cfg, world or D.SINGLE

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def size(self) -> int:
        return self.world.size

    def device(self, device: torch.device) -> torch.device:
        return device

    def prepare(self, model, loss, note, log):
        """(model, loss) to train, before the optimiser is built."""
        if self.cfg.sync_bn or self.cfg.sharded_classifier:
            note("--sync-bn/--sharded-classifier act only with several processes (torchrun); ignored")
        return model, loss

    def wrap(self, train_model, loss) -> None:
        """Just before the first step."""
        self.train_model, self.loss = train_model, loss

    def step_loss(self, x, y, n_global: int, mix=None, meter=None) -> tuple[torch.Tensor, float, dict]:
        """(loss to back-propagate, the batch's loss, its stats); `mix` = (perm, lam) for mixup/cutmix."""
        emb = self.train_model(x)
        if meter is not None:
            meter.peak(emb)
        loss = self.loss(emb.float(), y)
        if mix is not None:
            perm, lam = mix
            loss = lam * loss + (1 - lam) * self.loss(emb.float(), y[perm])
        return loss, float(loss.detach()), dict(self.loss.stats)

    def plan_share(self):
        """This process's part of every global batch (None: all of it)."""
        return None

    # --- validation: which images this process embeds, and everyone's embeddings after ------------
    def before_validation(self, model) -> None:
        pass

    def validation_range(self, n: int) -> tuple[int, int]:
        return 0, n

    def gather_embeddings(self, emb: torch.Tensor, device: torch.device) -> torch.Tensor:
        return emb

    # --- checkpoints: the classifier and optimiser state as one process would hold them ----------
    def loss_state(self, loss) -> dict:
        return loss.state_dict()

    def optimizer_state(self, optimizer, loss) -> dict:
        return optimizer.state_dict()

    def load_loss_state(self, loss, state: dict, source: str) -> None:
        from facerec import checkpoint

        checkpoint.load_model_weights(loss, state, source)

    def load_optimizer_state(self, optimizer, loss, sd: dict) -> None:
        optimizer.load_state_dict(sd)

    # --- one process speaks for the job ----------------------------------------------------------
    def broadcast(self, obj):
        return obj

    def barrier(self) -> None:
        pass


def for_world(cfg, world: D.World) -> SingleProcess:
    if not world.enabled:
        return SingleProcess(cfg, world)
    from facerec.trainer.parallel import Distributed

    return Distributed(cfg, world)
