"""The training loop: guard, data, model, loss, epochs; validation, records and checkpoints are
called from it (verification.py, callbacks.py), and how the model runs (one process or DDP) is the
strategy's business (strategy.py).

Order of work (nothing heavy before the cheap checks pass):
  config validated -> parameter budget -> train list / val pairs validated -> leakage check
  -> run directory -> decoded store or streamed files -> model, loss, optimiser -> epochs.
Run state and signals live in `state`, data preparation in `prepare`, what a run writes in `records`.
"""

from __future__ import annotations

import logging
import time

import torch

from facerec import config as config_mod
from facerec.data.decode import geometry_note
from facerec.data.stream import Batches, Plan, make_loader, step_generator
from facerec.data.transforms import BatchTransform
from facerec.errors import DataError, FacerecError, WriteError
from facerec.trainer import budget, ema, hooks, records, saving, state
from facerec.trainer import callbacks as cb
from facerec.trainer import distributed as D
from facerec.trainer import prepare as prep
from facerec.trainer.meter import EpochMeter
from facerec.trainer.optim import build_optimizer, build_scheduler
from facerec.trainer.prepare import load_data, model_kwargs, preprocess_of
from facerec.trainer.state import Diverged, NonFiniteLoss, seed_everything
from facerec.trainer.strategy import for_world
from facerec.trainer.train_state import TrainState
from facerec.trainer.verification import Verification
from facerec.util import device as devices
from facerec.util.progress import progress

LOG = logging.getLogger("facerec.train")


class Trainer:
    """`on_epoch(row)` is called after every epoch's row (validation included); it may raise to
    stop the run (Optuna's pruning does). `callbacks` (see callbacks.Callback) run after the built-in ones."""

    def __init__(self, cfg, *, progress: bool = True, log=None, on_epoch=None, callbacks=()):
        self.cfg = cfg
        self.strategy = for_world(cfg, D.from_env())  # torchrun's ranks; one plain process otherwise
        self.progress = progress and self.strategy.is_main
        self.log = log or LOG.info  # through `logging`: a library user quiets or redirects it
        # Notes (what the user should know about the data or the setup) are warnings, so -q keeps them.
        self.note = LOG.warning if log is None else (lambda msg: log(f"note: {msg}"))
        if not self.strategy.is_main:  # rank 0 speaks and writes for the job
            self.log = self.note = lambda *_a, **_k: None
        self.on_epoch, self.extra_callbacks = on_epoch, list(callbacks)
        # Everything a Trainer holds, by the step that sets it.
        # prepare(): the device and the checked data lists.
        self.device = self.data = self.loss_probe = None
        # build(): what trains and how.
        self.pre = self.model = self.train_model = self.loss = self.sampler = None
        self.optimizer = self.scheduler = self.scaler = self.amp_dtype = None
        self.steps_per_epoch, self.state, self.callbacks = 0, TrainState(), []
        # fit(): where the run writes, its batches, and its clock.
        self.ema = None  # fit(): the average of the weights under --ema-decay
        self.run_dir = self.run_lock = self.train_batches = self.verification = self.last_scores = None
        self.train_workers, self.step_log, self.stop, self.train_emb_peak = 0, None, False, None
        self.t_fit = self.t_start = self.first_step_seconds = None
        self.seconds_before, self.current_epoch = 0.0, 0

    # --- setup ---------------------------------------------------------------------------

    def prepare(self) -> None:
        cfg = self.cfg
        config_mod.ensure_valid(cfg)  # a config from config.load was checked already
        budget.check_budget(cfg.model, budget=cfg.param_budget, scope=cfg.budget_scope, **model_kwargs(cfg))
        # Loss options, K and mixing are checked on a 2-class probe, before any data is read.
        self.loss_probe = prep.check_loss(cfg, self._loss_kwargs(num_classes=2))
        self.device = self.strategy.device(devices.resolve(cfg.device))
        self.data = load_data(cfg, self.log)

    def _loss_kwargs(self, num_classes: int) -> dict:
        kw = {"embedding_dim": self.cfg.embedding_dim, "num_classes": num_classes, **self.cfg.loss_options}
        if self.cfg.loss_weights is not None:
            kw["weights"] = tuple(self.cfg.loss_weights)
        return kw

    def build(self) -> None:
        from facerec import losses, models
        from facerec.data.sampling import PKSampler

        cfg = self.cfg
        seed_everything(cfg.seed)
        self.pre = preprocess_of(cfg)
        model = models.create(cfg.model, **model_kwargs(cfg)).to(self.device, memory_format=torch.channels_last)
        loss = losses.create(cfg.loss, **self._loss_kwargs(num_classes=self.data.train.num_classes)).to(self.device)
        self.model, self.loss = self.strategy.prepare(model, loss, self.note, self.log)
        # Training steps may run compiled; checkpoints and validation use the eager module (same weights).
        self.train_model = self.model if cfg.compile == "off" else torch.compile(self.model, backend=cfg.compile)
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
        self.amp_dtype = devices.amp_dtype(cfg.amp)  # None: full precision
        amp_note = devices.amp_note(self.device, cfg.amp)
        if amp_note:
            self.note(amp_note)
        faults = hooks.current()  # tests only: None in normal use
        self.callbacks = [*cb.defaults(self, self.on_epoch), *([faults] if faults else []), *self.extra_callbacks]

    def _data(self) -> None:
        """The training batches (decoded store or files), the validation pairs, the geometry note."""
        cfg, train = self.cfg, self.data.train
        note = geometry_note(train.root, train.paths, self.pre, seed=cfg.seed)
        if note:
            self.note(note)
        faces, self.train_workers = prep.faces(self, "train", train.root, train.paths, train.stats)
        self.train_batches = Batches(faces, BatchTransform(self.pre, train=True, augment=cfg.augment), train.labels,
                                     seed=cfg.seed, uint8=True)
        self.verification = Verification(self) if self.data.val is not None else None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights a run validates and saves: their average under --ema-decay, else the trained ones."""
        return self.model if self.ema is None else self.ema.module

    # --- the loop --------------------------------------------------------------------------

    def train_epoch(self) -> dict:
        """One epoch of steps over this epoch's P x K batches; returns its metrics row."""
        cfg, epoch = self.cfg, self.state.epoch
        self.sampler.set_epoch(epoch)
        batches = self.sampler.batches()
        plan = Plan(batches, epoch, stop=self.steps_per_epoch, share=self.strategy.plan_share())
        loader = make_loader(self.train_batches, plan, workers=self.train_workers, device=self.device)
        self.model.train()
        self.loss.train()
        for c in self.callbacks:
            c.on_epoch_start(self)
        meter = EpochMeter()
        bar = progress(total=len(plan), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", bar=self.progress,
                       every=None if self.strategy.is_main else float("inf"))
        for step, (x, y) in enumerate(loader):
            lr = self.optimizer.param_groups[0]["lr"]
            loss, lv, stats = self._forward(x, y, step, len(batches[step]), meter)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            self._update(loss)
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
        """(loss, its value, its stats) of the step, under autocast when --amp asks, mixed when --mix asks."""
        cfg, dev = self.cfg, self.device
        x = self.train_batches.transform.normalize(x.to(dev, non_blocking=True))  # uint8 until here
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(dev, non_blocking=True)
        mix = None
        if cfg.mix != "none":
            from facerec.data.augment import mix_batch

            x, perm, lam = mix_batch(x, cfg.mix, cfg.mix_alpha, step_generator(cfg.seed, self.state.epoch, step, stream=1))
            mix = (perm, lam)
        with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss, lv, stats = self.strategy.step_loss(x, y, n_global, mix=mix, meter=meter)
        for c in self.callbacks:
            loss = c.on_loss(self, loss)
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
        for c in self.callbacks:
            c.on_step_end(self)

    def _end_epoch(self, row: dict) -> None:
        """After an epoch's steps: divergence check, validation, history, then the callbacks."""
        self._check_diverged()
        self.state.epoch += 1
        if prep.settle(self, self.train_batches, "train"):
            self.train_workers = 0  # indexing the store costs less than shipping batches from workers
        if self.verification is not None and self.verification.due(self):
            self.last_scores = self.verification(self, row)
        self.state.history.append(row)
        for c in self.callbacks:
            c.on_epoch_end(self, row)

    def _check_diverged(self) -> None:
        """After each epoch's training, before it is validated or saved: a diverged epoch is never saved."""
        params = [*self.model.named_parameters(), *self.loss.named_parameters(prefix="loss")]
        state.check_weights(params)
        if self.train_emb_peak is not None:
            state.check_norm_peak(self.train_emb_peak)

    def fit(self) -> dict:
        self.t_fit = time.perf_counter()
        self.prepare()
        self.build()
        saving.load_weights(self)
        self.ema = ema.for_run(self)
        if self.ema is not None:
            self.callbacks.insert(0, self.ema)  # averaged after each step, before anything reads it
        if self.strategy.is_main:
            self.run_dir, self.run_lock = state.open_run_dir(self.cfg, self.device)
        try:
            self.run_dir = self.strategy.broadcast(self.run_dir)
            if self.cfg.resume:
                saving.resume(self)
            self.log(f"run: {self.run_dir}")
            self.log(budget.describe_model(self.model, self.loss))
            self._data()
            self._epochs()
            summary = records.finish(self) if self.strategy.is_main else {}
            self.strategy.barrier()
            return summary
        except WriteError as exc:  # a full disk or a file-size limit: say what survived and how to go on
            raise saving.write_failed(self, exc) from exc
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

    def _epochs(self) -> None:
        """The epochs from the current one to --epochs (or an early stop); a stop says what is saved."""
        self.step_log = [] if self.cfg.log_steps else None
        self.strategy.wrap(self.train_model, self.loss)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t_start = time.perf_counter()
        self.seconds_before = sum(r.get("seconds", 0.0) for r in self.state.history)
        self.current_epoch = self.state.epoch + 1
        for c in self.callbacks:
            c.on_fit_start(self)
        restore = state.stop_signals_as_interrupt()
        try:
            while self.state.epoch < self.cfg.epochs and not self.stop:
                self.current_epoch = self.state.epoch + 1
                self._end_epoch(self.train_epoch())
        except Diverged as exc:
            records.plots_so_far(self)
            what = exc if isinstance(exc, NonFiniteLoss) else f"training diverged in epoch {self.current_epoch}: {exc}"
            raise DataError(f"{what}; stopped. {saving.what_is_saved(self)} (try a lower --lr, --grad-clip, "
                            "or --amp off)") from None
        except KeyboardInterrupt:
            records.plots_so_far(self)
            raise state.interrupted(self) from None
        finally:
            restore()
            prep.discard_partial(self.train_batches, getattr(self.verification, "batches", None))
            for c in self.callbacks:
                c.on_fit_end(self)
