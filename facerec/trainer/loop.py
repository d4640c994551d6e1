"""The training loop: guard, data, model, loss, epochs, validation, checkpoints.

Order of work (nothing heavy before the cheap checks pass):
  config validated -> parameter budget -> train list / val pairs validated -> leakage check
  -> run directory -> decoded store or streamed files -> model, loss, optimiser -> epochs.
Run state and signals live in `state`, data preparation in `data`, what a run writes in `records`.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from .. import budget
from .. import config as config_mod
from .. import device as devices
from .. import distributed as D
from ..data.stream import Batches, Plan, make_loader, step_generator
from ..data.transforms import BatchTransform, geometry_note
from ..errors import DataError, FacerecError, WriteError
from ..metric_keys import TAR_KEYS
from ..optim import build_optimizer, build_scheduler
from ..progress import progress
from . import checkpoints, hooks, parallel, records, state
from . import data as prep
from .data import is_classifier, load_data, model_kwargs, preprocess_of
from .meter import EpochMeter
from .state import RESUME_ONLY, Diverged, Interrupted, NonFiniteLoss, seed_everything
from .train_state import TrainState

LOG = logging.getLogger("facerec.train")


class Trainer:
    """`on_epoch(row)` is called after every epoch's row (validation included); it may raise to
    stop the run (Optuna's pruning does)."""

    def __init__(self, cfg, *, progress: bool = True, log=None, on_epoch=None):
        self.cfg = cfg
        self.world = D.from_env()  # torchrun's ranks; one plain process otherwise
        self.progress = progress and self.world.is_main
        self.log = log or LOG.info  # through `logging`: a library user quiets or redirects it
        # Notes (what the user should know about the data or the setup) are warnings, so -q keeps them.
        self.note = LOG.warning if log is None else (lambda msg: log(f"note: {msg}"))
        if not self.world.is_main:  # rank 0 speaks and writes for the job
            self.log = self.note = lambda *_a, **_k: None
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
        if cfg.batch_classes < 2 and not is_classifier(self.loss_probe):
            raise FacerecError(f"batch_classes (P) is {cfg.batch_classes}: every batch would hold one identity, and "
                               f"{cfg.loss} learns by comparing identities within a batch; use P >= 2")
        if cfg.mix != "none" and not is_classifier(self.loss_probe):
            raise FacerecError(f"mix={cfg.mix} needs a classifier loss (softmax, arcface, cosface, ...): a mixed image "
                               f"has no identity for {cfg.loss} to compare")
        self.device = devices.resolve(cfg.device)
        if self.world.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(self.device)
        D.init(self.world, self.device, cfg.dist_timeout)
        self.data = load_data(cfg, self.log)

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
        parallel.setup(self)

        from ..sampling import PKSampler

        self.sampler = PKSampler(self.data.train.labels, per_class=cfg.per_class, classes_per_batch=cfg.batch_classes,
                                 seed=cfg.seed, max_img_per_cls=cfg.max_img_per_cls, min_images=cfg.min_images,
                                 oversample_to=cfg.oversample_to, fill=cfg.batch_fill)
        self.steps_per_epoch = len(self.sampler) if cfg.max_steps is None else min(len(self.sampler), cfg.max_steps)
        prep.explain_batches(self)
        if self.steps_per_epoch == 0:
            raise FacerecError(f"{cfg.train}: no full batch can be formed (P={cfg.batch_classes}, K={cfg.per_class})")
        prep.check_batches_can_learn(self)
        self.optimizer = build_optimizer(cfg, self.model, self.loss)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)  # None: full precision
        self.state = TrainState()
        self.step_log, self.ddp = None, None
        self.faults = hooks.current()  # tests only: None in normal use

    # --- the loop --------------------------------------------------------------------------

    def train_epoch(self) -> dict:
        """One epoch of steps over this epoch's P x K batches; returns its metrics row."""
        cfg, epoch = self.cfg, self.state.epoch
        self.sampler.set_epoch(epoch)
        batches = self.sampler.batches()
        plan = Plan(batches, epoch, stop=self.steps_per_epoch,
                    share=(cfg.per_class, self.world) if self.world.enabled else None)
        loader = make_loader(self.train_batches, plan, workers=self.train_workers, device=self.device)
        self.model.train()
        self.loss.train()
        self._apply_freeze()
        meter = EpochMeter()
        bar = progress(total=len(plan), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", bar=self.progress,
                       every=None if self.world.is_main else float("inf"))
        for step, (x, y) in enumerate(loader):
            lr = self.optimizer.param_groups[0]["lr"]
            loss, lv, stats = self._forward(x, y, step, len(batches[step]), meter)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            self._update(loss)
            if stats is None:
                lv, stats = loss.item(), self.loss.stats
            meter.add(lv, stats, len(batches[step]))
            if self.step_log is not None:
                self.step_log.append((self.scheduler.last_epoch, epoch + 1, step + 1, lv, lr))
            if self.first_step_seconds is None:
                self.first_step_seconds = time.perf_counter() - self.t_fit
                self.log(f"first step done {self.first_step_seconds:.1f}s after the run started")
            bar.set_postfix(loss=f"{lv:.3f}", img_s=f"{meter.rate():.0f}")
            bar.update()
        bar.close()
        self.train_emb_peak = None if meter.emb_peak is None else meter.emb_peak.reshape(1)
        return meter.row(epoch + 1, self.optimizer.param_groups[0]["lr"], len(plan))

    def _forward(self, x, y, step: int, n_global: int, meter: EpochMeter):
        """The step's loss (under autocast when --amp asks), with mixup/cutmix when --mix asks.
        Returns (loss, its value or None, its stats or None): several processes compute both already."""
        cfg, dev = self.cfg, self.device
        x = self.train_batches.transform.normalize(x.to(dev, non_blocking=True))  # uint8 until here
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(dev, non_blocking=True)
        perm = None
        if cfg.mix != "none":
            from ..data.augment import mix_batch

            x, perm, lam = mix_batch(x, cfg.mix, cfg.mix_alpha, step_generator(cfg.seed, self.state.epoch, step, stream=1))
        lv = stats = None
        with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            if self.ddp is not None:  # several processes: this rank's share of the global batch
                loss, lv, stats = parallel.step_loss(self, x, y, n_global)
            else:
                emb = self.train_model(x)
                meter.peak(emb)
                loss = self.loss(emb.float(), y)
                if perm is not None:
                    loss = lam * loss + (1 - lam) * self.loss(emb.float(), y[perm])
        if self.faults is not None:
            loss = self.faults.loss(loss, self.scheduler.last_epoch + 1)
        return loss, lv, stats

    def _update(self, loss: torch.Tensor) -> None:
        """Backward, --grad-clip, the optimiser and scheduler steps (through the fp16 GradScaler when on)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(list(self.model.parameters()) + list(self.loss.parameters()),
                                           self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.faults is not None:
            self.faults.after_step(self.scheduler.last_epoch)

    def _apply_freeze(self) -> None:
        cfg = self.cfg
        frozen = self.state.epoch < cfg.freeze_trunk_epochs
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

        D.sync_buffers(self.model, self.world)  # per-rank BatchNorm stats: every rank embeds with rank 0's
        lo, hi = D.split_range(len(self.val_batches.faces), self.world)  # each rank embeds its share of the images
        plan = Plan([np.arange(i, min(hi, i + 256)) for i in range(lo, hi, 256)], epoch=0)
        loader = make_loader(self.val_batches, plan, workers=self.val_workers, device=self.device)
        norm = self.val_batches.transform.normalize
        emb = embed_batches(self.model, (norm(x.to(self.device, non_blocking=True)) for x in loader),
                            device=self.device, tta=self.cfg.tta)
        if self.world.enabled:
            emb = D.gather_rows(emb.to(self.device), D.counts_of(len(emb), self.world, self.device)).cpu()
        try:
            state.check_embeddings(emb, "validation")
            self.state.collapsed = False
        except state.Collapsed as exc:
            # A short early epoch can leave BatchNorm's running statistics so far off that every face
            # maps to one point, and the next epoch recovers; a collapse that lasts, or the run's
            # final model, stops the run.
            if self.state.collapsed or self.state.epoch >= self.cfg.epochs:
                raise
            self.state.collapsed = True
            self.note(f"{exc} after epoch {self.state.epoch}; training goes on, and stops if the next validation "
                      "is collapsed too")
        scores = cosine_scores(emb, i1, i2)
        return compute_all(scores, self.data.val.labels, self.data.val.folds), scores

    def _validate_epoch(self, row: dict, i1, i2) -> np.ndarray:
        """Score the validation pairs, add the metrics to the epoch's row and count them for best/patience."""
        t_val = time.perf_counter()
        m, scores = self.validate(i1, i2)
        if prep.settle(self, self.val_batches, "val"):
            self.val_workers = 0
        # Apart from the training seconds, so an epoch line adds up to the wall time it took.
        row["val_seconds"] = time.perf_counter() - t_val
        row.update({f"val_{k}": m[k] for k in ("eer", "auc", *TAR_KEYS)})
        self.state.validated(m, min_delta=self.cfg.min_delta, interval=self.cfg.test_interval)
        return scores

    def _save_epoch(self) -> None:
        """best.pt (when this epoch is the best) and its scores, then last.pt; a stop signal waits for both.
        best.pt goes first: when a write fails (full disk), last.pt still holds the epoch before, so
        --resume redoes this one, best.pt and its scores included."""
        st = self.state
        with state.finish_writing():
            payload = checkpoints.payload(self)
            if st.best["epoch"] == st.epoch:
                # Weights, preprocessing and config only: best.pt is for eval and fine-tuning, last.pt resumes.
                checkpoints.save(self, "best.pt", {**{k: v for k, v in payload.items() if k not in RESUME_ONLY},
                                                   **records.deployment(st.best.get("metrics"), self.last_scores,
                                                                        self.data.val)})
                st.saved_best = st.epoch
                if self.last_scores is not None and self.world.is_main:
                    records.write_scores(self, self.last_scores)
            checkpoints.save(self, "last.pt", payload)
            st.saved_epoch = st.epoch

    def _check_diverged(self) -> None:
        """After each epoch's training, before it is validated or saved: a diverged epoch is never saved."""
        params = [*self.model.named_parameters(), *self.loss.named_parameters(prefix="loss")]
        state.check_weights(params)
        if self.train_emb_peak is not None:
            state.check_norm_peak(self.train_emb_peak)

    def _what_is_saved(self) -> str:
        """The stop message's account of the files on disk, from what was really written."""
        if not self.state.saved_epoch:
            return "Nothing was saved (no epoch finished cleanly): start again"
        text = f"The last good checkpoint is {self.run_dir / 'last.pt'} (epoch {self.state.saved_epoch})"
        if self.state.saved_best:
            text += f"; best.pt holds epoch {self.state.saved_best}"
        return text

    def _plots_so_far(self) -> None:
        """A stopped run's folder still shows the curves and ROC of the epochs it finished."""
        if self.world.is_main and self.state.history:
            try:
                records.plots(self)
            except Exception as exc:  # the stop message matters more than a figure
                LOG.debug("no plots for the stopped run: %s", exc)

    def fit(self) -> dict:
        self.t_fit = time.perf_counter()
        self.first_step_seconds = None
        self.prepare()
        self.build()
        checkpoints.load_weights(self)
        if self.world.is_main:
            state.open_run_dir(self)
        try:
            return self._fit_in_run_dir()
        except WriteError as exc:  # a full disk or a file-size limit: say what survived and how to go on
            raise checkpoints.write_failed(self, exc) from exc
        finally:
            if getattr(self, "run_lock", None) is not None:
                self.run_lock.release()

    def _fit_in_run_dir(self) -> dict:
        cfg = self.cfg
        self.run_dir = D.broadcast(getattr(self, "run_dir", None), self.world)
        if cfg.resume:
            checkpoints.resume(self)
        self.log(f"run: {self.run_dir}")
        self.log(budget.describe_model(self.model, self.loss))
        train = self.data.train
        note = geometry_note(train.root, train.paths, self.pre, seed=cfg.seed)
        if note:
            self.note(note)
        faces, self.train_workers = prep.faces(self, "train", train.root, train.paths, train.stats)
        self.train_batches = Batches(faces, BatchTransform(self.pre, train=True, augment=cfg.augment), train.labels,
                                     seed=cfg.seed, uint8=True)
        i1 = i2 = None
        if self.data.val is not None:
            uniq, i1, i2 = self.data.val.unique_paths()
            faces, self.val_workers = prep.faces(self, "val", self.data.val.root, uniq, None)
            self.val_batches = Batches(faces, BatchTransform(self.pre, train=False), uint8=True)
        tb = records.tensorboard(self.run_dir) if self.world.is_main else None
        self.step_log = [] if cfg.log_steps else None
        parallel.wrap(self)
        self.last_scores = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t_start = time.perf_counter()
        self.seconds_before = sum(r.get("seconds", 0.0) for r in self.state.history)
        restore = state.stop_signals_as_interrupt()
        self.current_epoch = self.state.epoch + 1
        try:
            while self.state.epoch < cfg.epochs:
                self.current_epoch = self.state.epoch + 1
                row = self.train_epoch()
                self._check_diverged()
                self.state.epoch += 1
                if prep.settle(self, self.train_batches, "train"):
                    self.train_workers = 0  # indexing the store costs less than shipping batches from workers
                if i1 is not None and (self.state.epoch % cfg.test_interval == 0 or self.state.epoch == cfg.epochs):
                    self.last_scores = self._validate_epoch(row, i1, i2)
                self.state.history.append(row)
                if self.world.is_main:
                    records.log_epoch(self, row, tb)
                if self.on_epoch is not None:
                    self.on_epoch(row)
                self._save_epoch()
                if self.state.out_of_patience(cfg.patience):
                    self.log(f"early stop: val EER has not improved by {cfg.min_delta} for {self.state.stale} epochs")
                    break
        except Diverged as exc:
            self._plots_so_far()
            what = exc if isinstance(exc, NonFiniteLoss) else f"training diverged in epoch {self.current_epoch}: {exc}"
            raise DataError(f"{what}; stopped. {self._what_is_saved()} (try a lower --lr, --grad-clip, or --amp off)"
                            ) from None
        except KeyboardInterrupt:
            self._plots_so_far()
            done = self.state.saved_epoch
            where = f"after epoch {done}" if done >= self.current_epoch else f"in epoch {self.current_epoch}"
            raise Interrupted(f"interrupted {where}; " + (
                f"{f'epochs 1-{done} are' if done > 1 else 'epoch 1 is'} saved: "
                f"`facerec train --resume {self.run_dir}` continues exactly"
                if done else "no epoch had finished, so there is nothing to resume: start it again")) from None
        finally:
            restore()
            prep.discard_partial(self.train_batches, getattr(self, "val_batches", None))
            if tb is not None:
                tb.close()
        summary = records.finish(self) if self.world.is_main else {}
        D.barrier(self.world)
        return summary
