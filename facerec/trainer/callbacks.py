"""What a run does around its steps, one piece each: records, checkpoints, early stopping, the
caller's per-epoch hook, and test faults. The loop calls every callback at the same points:

  on_fit_start(t)        the run directory exists, the data is ready, before the first step
  on_epoch_start(t)      the model is in training mode, before the epoch's first step
  on_loss(t, loss)       each step's loss before backward (returns the loss to use)
  on_step_end(t)         after each optimiser step (t.scheduler.last_epoch is the global step)
  on_epoch_end(t, row)   after an epoch is trained, validated and added to t.state.history
  on_fit_end(t)          always, also when the run stops early or fails

`t.stop = True` in on_epoch_end ends the run after that epoch. Callbacks run in list order;
`Trainer(cfg, callbacks=[...])` appends its own after the built-in ones.
"""

from __future__ import annotations

import torch

from facerec.trainer import records, saving


class Callback:
    def on_fit_start(self, t) -> None:
        pass

    def on_epoch_start(self, t) -> None:
        pass

    def on_loss(self, t, loss):
        return loss

    def on_step_end(self, t) -> None:
        pass

    def on_epoch_end(self, t, row: dict) -> None:
        pass

    def on_fit_end(self, t) -> None:
        pass


class FreezeTrunk(Callback):
    """--freeze-trunk-epochs: the trunk takes no step (and keeps BatchNorm statistics) for the first
    epochs of a fine-tune; --freeze-bn keeps BatchNorm statistics all along."""

    def on_epoch_start(self, t) -> None:
        frozen = t.state.epoch < t.cfg.freeze_trunk_epochs
        for p in t.model.trunk.parameters():
            p.requires_grad_(not frozen)
        if t.cfg.freeze_bn or frozen:
            for m in t.model.trunk.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()


class Records(Callback):
    """metrics.csv, TensorBoard and the epoch's log line (the main process only)."""

    tb = None

    def on_fit_start(self, t) -> None:
        self.tb = records.tensorboard(t.run_dir)

    def on_epoch_end(self, t, row: dict) -> None:
        records.log_epoch(t, row, self.tb)

    def on_fit_end(self, t) -> None:
        if self.tb is not None:
            self.tb.close()


class Checkpoints(Callback):
    """best.pt (and its scores) when the epoch is the best, then last.pt."""

    def on_epoch_end(self, t, row: dict) -> None:
        saving.save_epoch(t)


class EarlyStopping(Callback):
    """Stops after --patience validations without an improvement of --min-delta."""

    def on_epoch_end(self, t, row: dict) -> None:
        if t.state.out_of_patience(t.cfg.patience):
            t.log(f"early stop: val EER has not improved by {t.cfg.min_delta} for {t.state.stale} epochs")
            t.stop = True


class OnEpoch(Callback):
    """A plain function of the epoch's row (Optuna's pruning raises from it to stop the run)."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, t, row: dict) -> None:
        self.fn(row)


def defaults(t, on_epoch=None) -> list[Callback]:
    out: list[Callback] = [FreezeTrunk(), *([Records()] if t.strategy.is_main else [])]
    if on_epoch is not None:
        out.append(OnEpoch(on_epoch))
    return [*out, Checkpoints(), EarlyStopping()]
