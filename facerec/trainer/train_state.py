"""Where a run stands: epochs done, the best validation so far, patience, the per-epoch history,
and what is on disk. Saved in every checkpoint (`state_dict`) and restored by --resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from facerec.evaluation.metric_keys import upgrade_row


def _no_best() -> dict:
    return {"eer": math.inf, "epoch": -1}


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best: dict = field(default_factory=_no_best)  # {"eer", "epoch", "metrics"} of the best validation
    stale: int = 0  # epochs since the validation EER last improved (early stopping's count)
    history: list[dict] = field(default_factory=list)  # one row per finished epoch
    saved_epoch: int = 0  # the epoch last.pt holds: what stop messages name
    saved_best: int = 0  # the epoch best.pt holds
    collapsed: bool = False  # the last validation's embeddings were one point

    def validated(self, metrics: dict, *, min_delta: float, interval: int) -> bool:
        """Count a validation of this epoch; True when it is the new best (by more than min_delta)."""
        if metrics["eer"] < self.best["eer"] - min_delta:
            self.best = {"eer": metrics["eer"], "epoch": self.epoch, "metrics": metrics}
            self.stale = 0
            return True
        self.stale += interval
        return False

    def embeddings_collapsed(self, collapsed: bool, *, final: bool) -> bool:
        """Count a validation whose embeddings were (or were not) one point; True when the run must
        stop: a collapse that lasts two validations, or one of the run's final model."""
        stop = collapsed and (self.collapsed or final)
        self.collapsed = collapsed
        return stop

    def out_of_patience(self, patience: int) -> bool:
        return bool(patience) and self.stale >= patience

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "best": dict(self.best), "stale": self.stale, "history": list(self.history)}

    def load_state_dict(self, saved: dict) -> None:
        self.epoch = int(saved["epoch"])
        self.best = dict(saved["best"])
        self.stale = int(saved["stale"])
        self.history = [upgrade_row(r) for r in saved["history"]]  # a run from before metric_keys
        self.saved_epoch = self.epoch
        self.saved_best = max(0, int(self.best.get("epoch", 0)))
