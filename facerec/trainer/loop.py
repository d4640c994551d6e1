"""The training loop: guard, data, model, loss, epochs, validation, checkpoints.

Order of work (nothing heavy before the cheap checks pass):
  config validated -> parameter budget -> train list / val pairs validated -> leakage check
  -> run directory -> decoded store or streamed files -> model, loss, optimiser -> epochs.
Run state and signals live in `state`, data preparation in `data`, what a run writes in `records`.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import budget, checkpoint
from .. import config as config_mod
from .. import device as devices
from ..data.stream import Batches, Plan, make_loader, sequential_plan, step_generator
from ..data.transforms import BatchTransform, geometry_note
from ..errors import DataError, FacerecError
from ..metric_keys import TAR_KEYS, upgrade_row
from ..optim import build_optimizer, build_scheduler
from . import data as prep
from . import records, state
from .data import is_classifier, load_data, model_kwargs, preprocess_of
from .state import RESUME_ONLY, Interrupted, NonFiniteLoss, fault, fault_injection, seed_everything, set_rng_state

LOG = logging.getLogger("facerec.train")


class Trainer:
    """`on_epoch(row)` is called after every epoch's row (validation included); it may raise to
    stop the run (Optuna's pruning does)."""

    def __init__(self, cfg, *, progress: bool = True, log=None, on_epoch=None):
        self.cfg = cfg
        self.progress = progress
        self.log = log or LOG.info  # through `logging`: a library user quiets or redirects it
        self.on_epoch = on_epoch

    # --- setup ---------------------------------------------------------------------------

    def prepare(self) -> None:
        cfg = self.cfg
        config_mod.validate(cfg)
        budget.check_budget(cfg.model, budget=cfg.param_budget, scope=cfg.budget_scope, **model_kwargs(cfg))
        from facerec import losses

        # Loss options, K and mixing are checked on a 2-class probe, before any data is read.
        self.loss_probe = losses.create(cfg.loss, **self._loss_kwargs(num_classes=2))
        if cfg.per_class is None:
            cfg.per_class = max(1, self.loss_probe.min_per_class)
        losses.check_per_class(self.loss_probe, cfg.per_class)
        if cfg.mix != "none" and not is_classifier(self.loss_probe):
            raise FacerecError(f"mix={cfg.mix} needs a classifier loss (softmax, arcface, cosface, ...): a mixed image "
                               f"has no identity for {cfg.loss} to compare")
        self.data = load_data(cfg, self.log)
        self.device = devices.resolve(cfg.device)

    def _loss_kwargs(self, num_classes: int) -> dict:
        kw = {"embedding_dim": self.cfg.embedding_dim, "num_classes": num_classes, **self.cfg.loss_options}
        if self.cfg.loss_weights is not None:
            kw["weights"] = tuple(self.cfg.loss_weights)
        return kw

    def build(self) -> None:
        from facerec import losses, models

        cfg = self.cfg
        seed_everything(cfg.seed)
        self.pre = preprocess_of(cfg)
        self.model = models.create(cfg.model, **model_kwargs(cfg))
        self.loss = losses.create(cfg.loss, **self._loss_kwargs(num_classes=self.data.train.num_classes))
        self.model.to(self.device, memory_format=torch.channels_last)
        self.loss.to(self.device)
        # Training steps may run compiled; checkpoints and validation use the eager module (same weights).
        self.train_model = self.model if cfg.compile == "off" else torch.compile(self.model, backend=cfg.compile)

        from ..sampling import PKSampler

        self.sampler = PKSampler(self.data.train.labels, per_class=cfg.per_class, classes_per_batch=cfg.batch_classes,
                                 seed=cfg.seed, max_img_per_cls=cfg.max_img_per_cls, min_images=cfg.min_images,
                                 oversample_to=cfg.oversample_to, fill=cfg.batch_fill)
        self.steps_per_epoch = len(self.sampler) if cfg.max_steps is None else min(len(self.sampler), cfg.max_steps)
        prep.explain_batches(self)
        if self.steps_per_epoch == 0:
            raise FacerecError(f"{cfg.train}: no full batch can be formed (P={cfg.batch_classes}, K={cfg.per_class})")
        self.optimizer = build_optimizer(cfg, self.model, self.loss)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.epoch = 0
        self.best = {"eer": math.inf, "epoch": -1}
        self.history: list[dict] = []
        self.stale = 0

    def load_weights(self) -> None:
        cfg = self.cfg
        if cfg.resume:
            if cfg.initial_model or cfg.finetune_from:
                self.log(f"--resume wins: ignoring --initial-model/--finetune-from ({cfg.initial_model or cfg.finetune_from}); "
                         "the resumed checkpoint restores weights, optimiser and epoch")
            return
        src = cfg.finetune_from or cfg.initial_model
        if cfg.finetune_from and cfg.initial_model:
            self.log(f"--finetune-from wins over --initial-model: loading {cfg.finetune_from}")
        if src:
            ckpt = checkpoint.load(src)
            checkpoint.load_model_weights(self.model, ckpt["model"]["state_dict"], src)
            loss_state = (ckpt.get("loss") or {}).get("state_dict") or {}
            if cfg.initial_model and not cfg.finetune_from and loss_state:
                # face_trainer's --initial_model restores the classifier too when it fits.
                try:
                    checkpoint.load_model_weights(self.loss, loss_state, src)
                except FacerecError as exc:
                    self.log(f"classifier not restored, it starts fresh: {exc}")
            self.log(f"loaded weights from {src}" + (" (new classifier for the new identities)" if cfg.finetune_from else ""))

    def resume(self) -> None:
        path = Path(self.cfg.resume)
        path = path / "last.pt" if path.is_dir() else path
        ckpt = checkpoint.load(path)
        if ckpt.get("format") != checkpoint.FORMAT or "optimizer" not in ckpt:
            raise FacerecError(f"{path}: not a facerec training checkpoint (use --initial-model for weights only)")
        checkpoint.load_model_weights(self.model, ckpt["model"]["state_dict"], str(path))
        checkpoint.load_model_weights(self.loss, ckpt["loss"]["state_dict"], str(path))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.best = dict(ckpt["best"])
        self.stale = int(ckpt["stale"])
        self.history = [upgrade_row(r) for r in ckpt["history"]]  # a run from before metric_keys
        self.log(f"resumed {path} at epoch {self.epoch}")

    # --- checkpoints -----------------------------------------------------------------------

    def payload(self) -> dict:
        from facerec import losses

        return {
            "model": {"name": self.cfg.model, "kwargs": model_kwargs(self.cfg), "state_dict": self.model.state_dict()},
            "loss": {"name": self.cfg.loss, "kwargs": dict(self.cfg.loss_options), "state_dict": self.loss.state_dict()},
            "normalize_test": bool(self.loss.normalize_test),
            "preprocess": self.pre.to_dict(),
            "config": self.cfg.to_dict(),
            "classes": list(self.data.train.classes),
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": state.rng_state(),
            "best": dict(self.best),
            "stale": self.stale,
            "history": list(self.history),
            "loss_description": losses.describe(self.loss) if hasattr(losses, "describe") else {},
        }

    # --- the loop --------------------------------------------------------------------------

    def train_epoch(self) -> dict:
        cfg, dev = self.cfg, self.device
        self.sampler.set_epoch(self.epoch)
        plan = Plan(self.sampler.batches(), self.epoch, stop=self.steps_per_epoch)
        loader = make_loader(self.train_batches, plan, workers=self.train_workers, device=dev)
        self.model.train()
        self.loss.train()
        self._apply_freeze()
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        sums = {"loss": 0.0, "n": 0}
        stat_sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(total=len(plan), desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="step",
                   disable=not self.progress, leave=False)
        for step, (x, y) in enumerate(loader):
            x = x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(dev, non_blocking=True)
            perm = None
            if cfg.mix != "none":
                from ..data.augment import mix_batch

                x, perm, lam = mix_batch(x, cfg.mix, cfg.mix_alpha, step_generator(cfg.seed, self.epoch, step, stream=1))
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                emb = self.train_model(x)
                loss = self.loss(emb.float(), y)
                if perm is not None:
                    loss = lam * loss + (1 - lam) * self.loss(emb.float(), y[perm])
            if fault("NAN_AT_STEP", self.scheduler.last_epoch + 1):
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss.item()} at epoch {self.epoch + 1}, step {step + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(list(self.model.parameters()) + list(self.loss.parameters()), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            fault_injection(self.scheduler.last_epoch)
            lv = loss.item()
            sums["loss"] += lv * len(y)
            sums["n"] += len(y)
            for k, v in self.loss.stats.items():
                stat_sums[k] = stat_sums.get(k, 0.0) + float(v) * len(y)
            if step == 0:
                t_after_first, n_first = time.perf_counter(), len(y)
            if self.first_step_seconds is None:
                self.first_step_seconds = time.perf_counter() - self.t_fit
                self.log(f"first step done {self.first_step_seconds:.1f}s after the run started")
            bar.set_postfix(loss=f"{lv:.3f}", img_s=f"{sums['n'] / (time.perf_counter() - t0):.0f}")
            bar.update()
        bar.close()
        seconds = time.perf_counter() - t0
        row = {"epoch": self.epoch + 1, "loss": sums["loss"] / max(1, sums["n"]),
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds, "images_per_s": sums["n"] / seconds}
        if len(plan) > 1:  # without the first step's warm-up (allocator, workers starting): the steady rate
            row["steady_images_per_s"] = (sums["n"] - n_first) / (time.perf_counter() - t_after_first)
        row.update({f"train_{k}": v / max(1, sums["n"]) for k, v in stat_sums.items()})
        return row

    def _apply_freeze(self) -> None:
        cfg = self.cfg
        frozen = self.epoch < cfg.freeze_trunk_epochs
        for p in self.model.trunk.parameters():
            p.requires_grad_(not frozen)
        if cfg.freeze_bn or frozen:
            for m in self.model.trunk.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    @torch.inference_mode()
    def validate(self, i1, i2) -> tuple[dict, np.ndarray]:
        from ..evaluate import cosine_scores, embed_batches
        from ..metrics import compute_all

        loader = make_loader(self.val_batches, sequential_plan(len(self.val_batches.faces), 256),
                             workers=self.val_workers, device=self.device)
        emb = embed_batches(self.model, loader, device=self.device, tta=self.cfg.tta)
        scores = cosine_scores(emb, i1, i2)
        return compute_all(scores, self.data.val.labels, self.data.val.folds), scores

    def fit(self) -> dict:
        cfg = self.cfg
        self.t_fit = time.perf_counter()
        self.first_step_seconds = None
        self.prepare()
        self.build()
        self.load_weights()
        state.open_run_dir(self)
        if cfg.resume:
            self.resume()
        self.log(f"run: {self.run_dir}")
        self.log(budget.describe_model(self.model, self.loss))
        train = self.data.train
        note = geometry_note(train.root, train.paths, self.pre, seed=cfg.seed)
        if note:
            self.log(f"note: {note}")
        faces, self.train_workers = prep.faces(self, "train", train.root, train.paths, train.stats)
        self.train_batches = Batches(faces, BatchTransform(self.pre, train=True, augment=cfg.augment), train.labels,
                                     seed=cfg.seed)
        i1 = i2 = None
        if self.data.val is not None:
            uniq, i1, i2 = self.data.val.unique_paths()
            faces, self.val_workers = prep.faces(self, "val", self.data.val.root, uniq, None)
            self.val_batches = Batches(faces, BatchTransform(self.pre, train=False))
        tb = records.tensorboard(self.run_dir)
        last_scores = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t_start = time.perf_counter()
        self.seconds_before = sum(r.get("seconds", 0.0) for r in self.history)
        restore = state.stop_signals_as_interrupt()
        try:
            while self.epoch < cfg.epochs:
                row = self.train_epoch()
                self.epoch += 1
                if i1 is not None and (self.epoch % cfg.test_interval == 0 or self.epoch == cfg.epochs):
                    m, last_scores = self.validate(i1, i2)
                    row.update({f"val_{k}": m[k] for k in ("eer", "auc", *TAR_KEYS)})
                    improved = m["eer"] < self.best["eer"] - cfg.min_delta
                    if improved:
                        self.best = {"eer": m["eer"], "epoch": self.epoch, "metrics": m}
                        self.stale = 0
                    else:
                        self.stale += cfg.test_interval
                self.history.append(row)
                records.log_epoch(self, row, tb)
                if self.on_epoch is not None:
                    self.on_epoch(row)
                payload = self.payload()
                self._save("last.pt", payload)
                if self.best["epoch"] == self.epoch:
                    # Weights, preprocessing and config only: best.pt is for eval and fine-tuning, last.pt resumes.
                    self._save("best.pt", {**{k: v for k, v in payload.items() if k not in RESUME_ONLY},
                                           **records.deployment(self.best.get("metrics"), last_scores, self.data.val)})
                    if last_scores is not None:
                        records.write_scores(self, last_scores)
                if cfg.patience and self.stale >= cfg.patience:
                    self.log(f"early stop: val EER has not improved by {cfg.min_delta} for {self.stale} epochs")
                    break
        except NonFiniteLoss as exc:
            raise DataError(f"{exc}; stopped. The last good checkpoint is {self.run_dir / 'last.pt'} "
                            "(try a lower --lr, --grad-clip, or --amp off)") from None
        except KeyboardInterrupt:
            saved = (self.run_dir / "last.pt").is_file()
            raise Interrupted(f"interrupted in epoch {self.epoch + 1}; " + (
                f"epochs 1-{self.epoch} are saved: `facerec train --resume {self.run_dir}` continues exactly"
                if saved else "no epoch had finished, so there is nothing to resume: start it again")) from None
        finally:
            restore()
            if tb is not None:
                tb.close()
        return records.finish(self)

    def _save(self, name: str, payload: dict) -> None:
        try:
            checkpoint.save(self.run_dir / name, payload)
        except OSError as exc:  # written to a temporary name first: the previous file is intact
            raise DataError(f"cannot write {self.run_dir / name} ({exc.strerror or exc}); the previous {name}, if "
                            "any, is kept") from None
