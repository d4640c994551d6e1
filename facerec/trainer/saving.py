"""Weights in and out of a run: --initial-model / --finetune-from, --resume, the checkpoint payload
(a sharded classifier is saved whole), and the atomic writes (rank 0 only)."""

from __future__ import annotations

from pathlib import Path

from facerec import checkpoint
from facerec.errors import DataError, FacerecError, WriteError
from facerec.losses.base import FaceLoss
from facerec.trainer import state
from facerec.trainer.prepare import model_kwargs
from facerec.trainer.state import RESUME_ONLY, TRAINED, set_rng_state


def load_weights(t) -> None:
    cfg = t.cfg
    if cfg.resume:
        if cfg.initial_model or cfg.finetune_from:
            t.log(f"--resume wins: ignoring --initial-model/--finetune-from ({cfg.initial_model or cfg.finetune_from}); "
                     "the resumed checkpoint restores weights, optimiser and epoch")
        return
    src = cfg.finetune_from or cfg.initial_model
    if cfg.finetune_from and cfg.initial_model:
        t.log(f"--finetune-from wins over --initial-model: loading {cfg.finetune_from}")
    if src:
        ckpt = checkpoint.load(src)
        checkpoint.load_model_weights(t.model, ckpt["model"]["state_dict"], src)
        loss_state = (ckpt.get("loss") or {}).get("state_dict") or {}
        if cfg.initial_model and not cfg.finetune_from and loss_state:
            # face_trainer's --initial_model restores the classifier too when it fits.
            try:
                checkpoint.load_model_weights(t.loss, loss_state, src)
            except FacerecError as exc:
                t.log(f"classifier not restored, it starts fresh: {exc}")
            for part in t.loss.modules():  # a combination's parts too
                if isinstance(part, FaceLoss):
                    part.start_new_run()
        t.log(f"loaded weights from {src}" + (" (new classifier for the new identities)" if cfg.finetune_from else ""))

def resume(t) -> None:
    path = Path(t.cfg.resume)
    path = path / "last.pt" if path.is_dir() else path
    ckpt = checkpoint.load(path)
    if ckpt.get("format") != checkpoint.FORMAT or "optimizer" not in ckpt:
        raise FacerecError(f"{path}: not a facerec training checkpoint (use --initial-model for weights only)")
    checkpoint.load_model_weights(t.model, ckpt.get(TRAINED, ckpt["model"]["state_dict"]), str(path))
    if t.ema is not None:  # the average as saved (the weights themselves in a checkpoint without one)
        checkpoint.load_model_weights(t.ema.module, ckpt["model"]["state_dict"], str(path))
    t.strategy.load_loss_state(t.loss, ckpt["loss"]["state_dict"], str(path))
    t.strategy.load_optimizer_state(t.optimizer, t.loss, ckpt["optimizer"])
    ranks = int(ckpt.get("world_size", 1))
    if ranks != t.strategy.size:
        t.note(f"{path} was written by {ranks} process(es), this run has {t.strategy.size}: the global "
                 "batches are the same, so it continues the same run (up to float rounding)")
    t.scheduler.load_state_dict(ckpt["scheduler"])
    t.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    t.state.load_state_dict(ckpt)
    t.log(f"resumed {path} at epoch {t.state.epoch}")


def payload(t) -> dict:
    from facerec import losses

    return {
        "model": {"name": t.cfg.model, "kwargs": model_kwargs(t.cfg), "state_dict": t.eval_model.state_dict()},
        **({} if t.ema is None else {TRAINED: t.model.state_dict()}),
        "loss": {"name": t.cfg.loss, "kwargs": dict(t.cfg.loss_options),
                 "state_dict": t.strategy.loss_state(t.loss)},
        "preprocess": t.pre.to_dict(),
        "config": t.cfg.to_dict(),
        "classes": list(t.data.train.classes),
        "optimizer": t.strategy.optimizer_state(t.optimizer, t.loss),
        "world_size": t.strategy.size,
        "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict(),
        "rng": state.rng_state(),
        **t.state.state_dict(),
        "loss_description": losses.describe(t.loss),
    }


def save(t, name: str, payload: dict) -> None:
    if not t.strategy.is_main:
        return
    checkpoint.save(t.run_dir / name, payload)  # a failed write raises WriteError; the previous file is intact


def save_epoch(t) -> None:
    """best.pt (when this epoch is the best) and its scores, then last.pt; a stop signal waits for both.
    best.pt goes first: when a write fails (full disk), last.pt still holds the epoch before, so
    --resume redoes this one, best.pt and its scores included."""
    from facerec.trainer import records

    st = t.state
    with state.finish_writing():
        data = payload(t)
        if st.best["epoch"] == st.epoch:
            # Weights, preprocessing and config only: best.pt is for eval and fine-tuning, last.pt resumes.
            save(t, "best.pt", {**{k: v for k, v in data.items() if k not in RESUME_ONLY},
                                **records.deployment(st.best.get("metrics"), t.last_scores, t.data.val)})
            st.saved_best = st.epoch
            if t.last_scores is not None and t.strategy.is_main:
                records.write_scores(t, t.last_scores)
        save(t, "last.pt", data)
        st.saved_epoch = st.epoch


def what_is_saved(t) -> str:
    """The stop message's account of the files on disk, from what was really written."""
    st = t.state
    if not st.saved_epoch:
        return "Nothing was saved (no epoch finished cleanly): start again"
    text = f"The last good checkpoint is {t.run_dir / 'last.pt'} (epoch {st.saved_epoch})"
    if st.saved_best:
        text += f"; best.pt holds epoch {st.saved_best}"
    return text


def write_failed(t, exc: WriteError) -> DataError:
    """A file of the run could not be written: the error, then what survives and how to go on."""
    run, st = t.run_dir, t.state
    if st.saved_epoch and run is not None:
        return DataError(f"{exc}. {what_is_saved(t)}: {exc.hint}, then `facerec train --resume {run}`")
    best = st.saved_best
    kept = f" (best.pt holds epoch {best})" if best else ""
    return DataError(f"{exc}. No epoch was saved to resume from{kept}: {exc.hint}, then start again")
