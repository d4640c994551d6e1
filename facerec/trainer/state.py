"""Run state: RNG capture, the run directory, environment, divergence checks and stop signals.

Resume is exact: a checkpoint is written after every epoch with every RNG state, and the sampler
and the augmentation draw from (seed, epoch, step), so a resumed run repeats the same steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facerec import config as config_mod
from facerec.errors import DataError, FacerecError
from facerec.util.fileio import write_text
from facerec.util.locks import lock, new_folder
from facerec.util.rundir import RUN_PRODUCTS


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": list(np.random.get_state()[1].tolist()),
        "numpy_pos": int(np.random.get_state()[2]),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_name(cfg) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return "-".join(p for p in (stamp, cfg.model, cfg.loss.replace("+", "_"), cfg.tag) if p)


def environment(dev: torch.device) -> dict:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu_count": torch.cuda.device_count(),
        "torch_threads": torch.get_num_threads(),
    }


TRAINED = "trained_model"  # under --ema-decay: the trained weights, beside their average as the model
RESUME_ONLY = ("optimizer", "scheduler", "scaler", "rng", TRAINED)


def open_run_dir(cfg, device):
    """(run directory, its lock): created or reused as --resume/--run-dir/--out say, with config.yaml
    and env.json written; the lock is held until the run ends, so a second trainer (or resume) of this
    folder is refused, naming this one."""
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if run_dir.is_file():
            run_dir = run_dir.parent
    elif cfg.run_dir:
        run_dir = Path(cfg.run_dir)
    else:  # created exclusively: seeds launched in the same second get folders of their own
        try:
            run_dir = new_folder(cfg.out, run_name(cfg))
        except OSError as exc:
            raise DataError(f"cannot create a run directory in {cfg.out} ({exc.strerror or exc})") from None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write the run directory {run_dir} ({exc.strerror or exc})") from None
    run_lock = lock(run_dir)
    try:
        if not cfg.resume:
            done = [n for n in RUN_PRODUCTS if (run_dir / n).exists()]
            if done:
                raise FacerecError(f"{run_dir} already holds a run ({', '.join(done)}): `--resume {run_dir}` "
                                   "continues it; choose another --run-dir (or --tag) to start afresh")
        try:
            write_text(run_dir / "config.yaml", config_mod.dump(cfg))
            write_text(run_dir / "env.json", json.dumps(environment(device), indent=2))
        except OSError as exc:
            raise DataError(f"cannot write the run directory {run_dir} ({exc.strerror or exc})") from None
    except BaseException:
        run_lock.release()
        raise
    return run_dir, run_lock


class Diverged(RuntimeError):
    """Training has left any useful range (the message says how); the epoch is not saved."""


class Collapsed(Diverged):
    """Validation embeddings all zero or all one point: fatal when it lasts (see Trainer.validate)."""


class NonFiniteLoss(Diverged):
    pass


# Past these, training has diverged even while the loss stays finite (margin losses normalise weights
# and embeddings, so an exploding network still yields finite logits). Healthy networks stay orders
# of magnitude below both.
# Far beyond healthy training, not at its edge: a softmax-trained embedding's norm grows freely (2.5e5
# after two epochs on ORL with SGD at lr 0.01, a healthy run), while a diverged run (ArcFace at
# lr 1e6) has weights near 1e7 after one epoch and float overflow soon after.
WEIGHT_LIMIT = 1e6  # largest |parameter|
NORM_LIMIT = 1e8  # largest embedding L2 norm
COLLAPSE_SPREAD = 1e-3  # largest distance of a unit validation embedding from their mean: one point


def check_weights(named_params) -> None:
    named = [(n, p) for n, p in named_params if p.numel()]
    if not named:
        return
    peaks = torch.stack([p.detach().abs().max().float() for _, p in named]).cpu()  # one device sync
    bad = (~torch.isfinite(peaks)).nonzero().flatten()
    if len(bad):
        raise Diverged(f"weights became NaN or infinite ({named[int(bad[0])][0]})")
    i = int(peaks.argmax())
    if peaks[i] > WEIGHT_LIMIT:
        raise Diverged(f"weights exploded: |{named[i][0]}| reaches {float(peaks[i]):.1e} (the bound is "
                       f"{WEIGHT_LIMIT:.0e})")


def check_norm_peak(peak: torch.Tensor) -> None:
    """`peak`: the largest training embedding norm of an epoch."""
    v = float(peak.reshape(-1)[0])
    if not np.isfinite(v):
        raise Diverged("training embeddings became NaN or infinite")
    if v > NORM_LIMIT:
        raise Diverged(f"training embedding norms reach {v:.1e} (the bound is {NORM_LIMIT:.0e})")


def check_embeddings(emb: torch.Tensor, what: str) -> None:
    """Embeddings non-finite, exploding, all zero or all one point (every score the same) mean no
    model worth keeping, whatever the loss says."""
    if not len(emb):
        return
    if not torch.isfinite(emb).all():
        raise Diverged(f"{what} embeddings became NaN or infinite")
    norms = emb.float().norm(dim=1)
    if norms.max() > NORM_LIMIT:
        raise Diverged(f"{what} embedding norms reach {float(norms.max()):.1e} (the bound is {NORM_LIMIT:.0e})")
    if norms.max() < 1e-6:
        raise Collapsed(f"{what} embeddings collapsed to zero")
    if len(emb) > 1:
        unit = torch.nn.functional.normalize(emb.float(), dim=1)
        if (unit - unit.mean(0)).norm(dim=1).max() < COLLAPSE_SPREAD:
            raise Collapsed(f"{what} embeddings collapsed to one point (all {len(emb)} within {COLLAPSE_SPREAD:g} "
                           "of their mean: every pair scores the same)")


class Interrupted(FacerecError):
    """Ctrl-C or SIGTERM during training: a clean stop that says how to resume."""

    exit_code = 130


_writing = {"depth": 0, "pending": False}


def interrupted(t) -> Interrupted:
    """Ctrl-C's message: which epochs are saved and the command that continues the run."""
    done = t.state.saved_epoch
    where = f"after epoch {done}" if done >= t.current_epoch else f"in epoch {t.current_epoch}"
    return Interrupted(f"interrupted {where}; " + (
        f"{f'epochs 1-{done} are' if done > 1 else 'epoch 1 is'} saved: "
        f"`facerec train --resume {t.run_dir}` continues exactly"
        if done else "no epoch had finished, so there is nothing to resume: start it again"))


@contextlib.contextmanager
def finish_writing():
    """A stop signal that arrives during these writes waits until they end, so the stop message can
    say exactly which epoch the files on disk hold."""
    _writing["depth"] += 1
    try:
        yield
    finally:
        _writing["depth"] -= 1
    if _writing["depth"] == 0 and _writing["pending"]:
        _writing["pending"] = False
        raise KeyboardInterrupt


def stop_signals_as_interrupt():
    """SIGINT and SIGTERM (Ctrl-C, a scheduler's stop, `kill`) stop training cleanly; returns the
    undo. SIGINT is set too because a job started in the background by a shell inherits it ignored,
    and Python then never turns it into KeyboardInterrupt."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        if _writing["depth"]:
            _writing["pending"] = True
            return
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        _writing["pending"] = False
        for sig, h in previous.items():
            signal.signal(sig, h)

    return restore
