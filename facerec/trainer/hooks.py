"""Test hooks: faults a test injects at a chosen global step (a NaN loss, kill -9, a signal).

The training step never reads the environment: a Trainer takes its hooks once, when it is built,
from those installed in this process (`install`, for tests that train in-process) or, for tests that
run `facerec train` as a subprocess, from FACEREC_FAULT_* variables:
  FACEREC_FAULT_NAN_AT_STEP=N             the loss of global step N becomes NaN
  FACEREC_FAULT_KILL_AFTER_STEPS=N        SIGKILL after step N (kill -9 mid-epoch)
  FACEREC_FAULT_SIGNAL_AFTER_STEPS=N:SIG  send signal SIG (e.g. 2, SIGINT) after step N
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

import torch

from facerec.trainer.callbacks import Callback

PREFIX = "FACEREC_FAULT_"


@dataclass(frozen=True)
class Faults(Callback):
    nan_at_step: int | None = None
    kill_after_step: int | None = None
    signal_after_step: tuple[int, int] | None = None  # (step, signal number)

    def on_loss(self, t, loss: torch.Tensor) -> torch.Tensor:
        return loss * float("nan") if t.scheduler.last_epoch + 1 == self.nan_at_step else loss

    def on_step_end(self, t) -> None:
        global_step = t.scheduler.last_epoch
        if global_step == self.kill_after_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.signal_after_step and global_step == self.signal_after_step[0]:
            os.kill(os.getpid(), self.signal_after_step[1])


_installed: list[Faults] = []


@contextlib.contextmanager
def install(faults: Faults):
    """Trainers built inside this block get `faults`."""
    _installed.append(faults)
    try:
        yield faults
    finally:
        _installed.remove(faults)


def current() -> Faults | None:
    """The faults a Trainer built now gets; None (nothing to do in the step) in normal use."""
    if _installed:
        return _installed[-1]
    env = {k[len(PREFIX):]: v for k, v in os.environ.items() if k.startswith(PREFIX) and v}
    if not env:
        return None
    at, _, sig = env.get("SIGNAL_AFTER_STEPS", "").partition(":")
    return Faults(nan_at_step=int(env["NAN_AT_STEP"]) if "NAN_AT_STEP" in env else None,
                  kill_after_step=int(env["KILL_AFTER_STEPS"]) if "KILL_AFTER_STEPS" in env else None,
                  signal_after_step=(int(at), int(sig)) if at else None)
