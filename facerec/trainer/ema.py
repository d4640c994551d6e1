"""--ema-decay: an exponential moving average of the model's weights and BatchNorm statistics,
updated after every optimiser step (timm's ModelEmaV3). The average is what the run validates and
what best.pt and last.pt hold as the model, so eval, the View 2 benchmark, export and the API use it;
last.pt also keeps the trained weights, so --resume continues the same run exactly.

After optimiser step s the average keeps a share min(--ema-decay, 1 - s^(-3/4)) of itself (none at
step 1): early on it follows the weights closely, so the random start is soon forgotten, and later
it spans more and more steps, up to about 1 / (1 - --ema-decay).
"""

from __future__ import annotations

import torch

from facerec.trainer.callbacks import Callback

WARMUP_POWER = 0.75  # timm's suggestion for runs shorter than ~10^5 steps


class WeightAverage(Callback):
    def __init__(self, model: torch.nn.Module, decay: float):
        from timm.utils import ModelEmaV3

        self.average = ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=WARMUP_POWER)

    @property
    def module(self) -> torch.nn.Module:
        return self.average.module

    def on_step_end(self, t) -> None:
        self.average.update(t.model, step=t.scheduler.last_epoch)


def for_run(t) -> WeightAverage | None:
    """The run's average, started from the model's weights as they are now (after --initial-model or
    --finetune-from); None unless --ema-decay is set."""
    if not t.cfg.ema_decay:
        return None
    t.log(f"validating and saving a moving average of the weights (--ema-decay {t.cfg.ema_decay:g}, ramped up "
          "from 0 over the first steps)")
    return WeightAverage(t.model, t.cfg.ema_decay)
