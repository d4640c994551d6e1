"""The training loop: guard, data, model, loss, epochs, validation, checkpoints.

Order of work (nothing heavy before the cheap checks pass):
  config validated -> parameter budget -> train list / val pairs validated -> leakage check
  -> run directory -> decoded image store -> model, loss, optimiser -> epochs.
Resume is exact: a checkpoint is written after every epoch with every RNG state, the
sampler and the augmentation draw from (seed, epoch), so a resumed run repeats the same steps.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import budget, checkpoint, config as config_mod, device as devices
from .data import leakage
from .data import cache as store_cache
from .data.datasets import default_workers
from .data.stream import Batches, FileFaces, Plan, StoredFaces, make_loader, sequential_plan, step_generator
from .data.lists import PairList, TrainList, load_train, read_pairs
from .data.transforms import BatchTransform, Preprocess, geometry_note
from .errors import DataError, FacerecError
from .fileio import atomic_path, write_text
from .optim import build_optimizer, build_scheduler


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


def preprocess_of(cfg) -> Preprocess:
    return Preprocess(input_size=cfg.input_size, face_crop=cfg.face_crop, resize=cfg.resize,
                      mean=tuple(cfg.mean), std=tuple(cfg.std), hflip=cfg.hflip)


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


def model_kwargs(cfg) -> dict:
    return {"embedding_dim": cfg.embedding_dim, "input_size": cfg.input_size, **cfg.model_options}


@dataclass
class Data:
    train: TrainList
    val: PairList | None


def default_lfw_lists(cfg) -> None:
    """No --train given: LFW View 1 (train: peopleDevTrain; val: pairsDevTest) from the data root."""
    from . import dataroot
    from .data import lfw

    out = Path("data_lists/lfw")
    if not (out / "view1_train.txt").is_file() or not (out / "view1_val_pairs.csv").is_file():
        try:
            root = dataroot.resolve(cfg.data_root, dataroot.LFW_DIRS)
        except FacerecError:
            if cfg.data_root or os.environ.get(dataroot.ENV):
                raise  # the user named a root: never download somewhere else behind their back
            root = Path(dataroot.FALLBACKS[0])
            print(f"LFW not found locally: fetching it with scikit-learn into {root}/ (one-off, ~250 MB)")
            lfw.fetch(root)
        lfw.write_lists(root, out)
    cfg.train = str(out / "view1_train.txt")
    if cfg.val is None:
        cfg.val = str(out / "view1_val_pairs.csv")


def load_data(cfg, log=print) -> Data:
    if cfg.val is None and cfg.test_list and not cfg.eval_only:
        # face_trainer scores --test_list every --test_interval epochs while training: its validation list.
        cfg.val = cfg.test_list
        log(f"validation: --test_list {cfg.test_list} (scored every {cfg.test_interval} epoch(s), as face_trainer does)")
    if cfg.train is None:
        default_lfw_lists(cfg)
    train = load_train(cfg.train, cfg.root)
    if cfg.max_classes is not None and cfg.max_classes < train.num_classes:
        train = largest_identities(train, cfg.max_classes)
    val = read_pairs(cfg.val, cfg.val_root, allow_unknown=True, allow_duplicates=False) if cfg.val else None
    if val is not None and not val.has_labels:
        raise DataError(f"{cfg.val}: the pairs have no 0/1 labels, so no validation EER can be measured; give a "
                        "labelled --val (and score this list after training with `facerec eval --output`)")
    if cfg.num_classes is not None and cfg.num_classes != train.num_classes:
        raise DataError(f"nClasses/num_classes is {cfg.num_classes} but {cfg.train} has {train.num_classes} identities")
    if val is not None and cfg.check_leakage:
        report = leakage.check(train, val)
        if not report.clean:
            raise DataError(f"train {cfg.train} and val {cfg.val} leak:\n{report.describe()}\n"
                               "(fix the split, or pass --no-check-leakage if this is intended)")
    return Data(train, val)


def largest_identities(train: TrainList, n: int) -> TrainList:
    """The n identities with the most images (ties by name): quick runs keep the learnable ones."""
    counts = np.bincount(train.labels, minlength=train.num_classes)
    keep = sorted(range(train.num_classes), key=lambda c: (-counts[c], train.classes[c]))[:n]
    return train.subset([train.classes[c] for c in keep])


def is_classifier(loss) -> bool:
    parts = list(loss.parts.values()) if hasattr(loss, "parts") else [loss]
    return all(getattr(p, "num_classes", None) is not None for p in parts)


class Trainer:
    """`on_epoch(row)` is called after every epoch's row (validation included); it may raise to
    stop the run (Optuna's pruning does)."""

    def __init__(self, cfg, *, progress: bool = True, log=print, on_epoch=None):
        self.cfg = cfg
        self.progress = progress
        self.log = log
        self.on_epoch = on_epoch

    # --- setup ---------------------------------------------------------------------------
    def prepare(self) -> None:
        cfg = self.cfg
        config_mod.validate(cfg)
        budget.check_budget(cfg.model, budget=cfg.param_budget, scope=cfg.budget_scope, **model_kwargs(cfg))
        import losses

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
        import losses
        import models

        cfg = self.cfg
        seed_everything(cfg.seed)
        self.pre = preprocess_of(cfg)
        self.model = models.create(cfg.model, **model_kwargs(cfg))
        self.loss = losses.create(cfg.loss, **self._loss_kwargs(num_classes=self.data.train.num_classes))
        self.model.to(self.device, memory_format=torch.channels_last)
        self.loss.to(self.device)
        # Training steps may run compiled; checkpoints and validation use the eager module (same weights).
        self.train_model = self.model if cfg.compile == "off" else torch.compile(self.model, backend=cfg.compile)

        from .sampling import PKSampler

        self.sampler = PKSampler(self.data.train.labels, per_class=cfg.per_class, classes_per_batch=cfg.batch_classes,
                                 seed=cfg.seed, max_img_per_cls=cfg.max_img_per_cls, min_images=cfg.min_images,
                                 oversample_to=cfg.oversample_to, fill=cfg.batch_fill)
        self.steps_per_epoch = len(self.sampler) if cfg.max_steps is None else min(len(self.sampler), cfg.max_steps)
        self._explain_batches()
        if self.steps_per_epoch == 0:
            raise FacerecError(f"{cfg.train}: no full batch can be formed (P={cfg.batch_classes}, K={cfg.per_class})")
        self.optimizer = build_optimizer(cfg, self.model, self.loss)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.epoch = 0
        self.best = {"eer": math.inf, "epoch": -1}
        self.history: list[dict] = []
        self.stale = 0

    def _explain_batches(self) -> None:
        """Say in the log when batches are not P distinct identities of K images, and why."""
        cfg, s = self.cfg, self.sampler
        n_ids = len(s.members)
        if n_ids < cfg.batch_classes:
            self.log(f"note: {n_ids} identities, fewer than --batch-classes {cfg.batch_classes}: a batch holds at most "
                     f"{n_ids} identities ({n_ids * cfg.per_class} images)")
        elif s.group_cap is not None:
            groups = s.n_images // s.k
            over = groups > s.group_cap
            top = int(np.argmax(groups))
            self.log(f"note: to keep batches at {cfg.batch_classes} identities, an identity gives at most "
                     f"{s.group_cap * s.k} images an epoch; {int((groups - s.n_groups).sum()) * s.k} images of "
                     f"{int(over.sum())} identities (e.g. {self.data.train.classes[s.classes[top]]}, "
                     f"{int(s.n_images[top])}) sit out each epoch, different ones every epoch. "
                     "--batch-fill spread uses every image in smaller batches")
        elif not s.full and len(s):
            self.log(f"note: batches shrink to ~{int(s.n_groups.sum()) // len(s)} identities so that every image is used "
                     "(--batch-fill spread) while one identity holds a large share of the images; --batch-fill full "
                     "or --max-img-per-cls keeps them full")

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

    def open_run_dir(self) -> Path:
        cfg = self.cfg
        if cfg.resume:
            self.run_dir = Path(cfg.resume)
            if self.run_dir.is_file():
                self.run_dir = self.run_dir.parent
        elif cfg.run_dir:
            self.run_dir = Path(cfg.run_dir)
        else:
            self.run_dir = Path(cfg.out) / run_name(cfg)
        if not cfg.resume:
            done = [n for n in RUN_PRODUCTS if (self.run_dir / n).exists()]
            if done:
                raise FacerecError(f"{self.run_dir} already holds a run ({', '.join(done)}): `--resume {self.run_dir}` "
                                   "continues it; choose another --run-dir (or --tag) to start afresh")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.run_dir / "config.yaml", config_mod.dump(cfg))
            write_text(self.run_dir / "env.json", json.dumps(environment(self.device), indent=2))
        except OSError as exc:
            raise DataError(f"cannot write the run directory {self.run_dir} ({exc.strerror or exc})") from None
        return self.run_dir

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
        self.history = list(ckpt["history"])
        self.log(f"resumed {path} at epoch {self.epoch}")

    # --- checkpoints -----------------------------------------------------------------------
    def payload(self) -> dict:
        import losses

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
            "rng": rng_state(),
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
                from .data.augment import mix_batch

                x, perm, lam = mix_batch(x, cfg.mix, cfg.mix_alpha, step_generator(cfg.seed, self.epoch, step, stream=1))
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                emb = self.train_model(x)
                loss = self.loss(emb.float(), y)
                if perm is not None:
                    loss = lam * loss + (1 - lam) * self.loss(emb.float(), y[perm])
            if _fault("NAN_AT_STEP", self.scheduler.last_epoch + 1):
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
            _fault_injection(self.scheduler.last_epoch)
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
        from .evaluate import cosine_scores, embed_batches
        from .metrics import compute_all

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
        self.open_run_dir()
        if cfg.resume:
            self.resume()
        self.log(f"run: {self.run_dir}")
        self.log(budget.describe_model(self.model, self.loss))
        train = self.data.train
        note = geometry_note(train.root, train.paths, self.pre, seed=cfg.seed)
        if note:
            self.log(f"note: {note}")
        faces, self.train_workers = self._faces("train", train.root, train.paths, train.stats)
        self.train_batches = Batches(faces, BatchTransform(self.pre, train=True, augment=cfg.augment), train.labels,
                                     seed=cfg.seed)
        i1 = i2 = None
        if self.data.val is not None:
            uniq, i1, i2 = self.data.val.unique_paths()
            faces, self.val_workers = self._faces("val", self.data.val.root, uniq, None)
            self.val_batches = Batches(faces, BatchTransform(self.pre, train=False))
        tb = _tensorboard(self.run_dir)
        last_scores = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t_start = time.perf_counter()
        self.seconds_before = sum(r.get("seconds", 0.0) for r in self.history)
        restore = _sigterm_as_interrupt()
        try:
            while self.epoch < cfg.epochs:
                row = self.train_epoch()
                self.epoch += 1
                if i1 is not None and (self.epoch % cfg.test_interval == 0 or self.epoch == cfg.epochs):
                    m, last_scores = self.validate(i1, i2)
                    row.update({"val_eer": m["eer"], "val_auc": m["auc"],
                                **{f"val_tar@far{k}": v for k, v in m["tar_at_far"].items()}})
                    improved = m["eer"] < self.best["eer"] - cfg.min_delta
                    if improved:
                        self.best = {"eer": m["eer"], "epoch": self.epoch}
                        self.stale = 0
                    else:
                        self.stale += cfg.test_interval
                self.history.append(row)
                self._log_epoch(row, tb)
                if self.on_epoch is not None:
                    self.on_epoch(row)
                payload = self.payload()
                self._save("last.pt", payload)
                if self.best["epoch"] == self.epoch:
                    # Weights, preprocessing and config only: best.pt is for eval and fine-tuning, last.pt resumes.
                    self._save("best.pt", {k: v for k, v in payload.items() if k not in RESUME_ONLY})
                    if last_scores is not None:
                        self._write_scores(last_scores)
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
        return self.finish()

    def _save(self, name: str, payload: dict) -> None:
        try:
            checkpoint.save(self.run_dir / name, payload)
        except OSError as exc:  # written to a temporary name first: the previous file is intact
            raise DataError(f"cannot write {self.run_dir / name} ({exc.strerror or exc}); the previous {name}, if "
                            "any, is kept") from None

    def _faces(self, what: str, root, paths, stats):
        """Decoded store or image files, by --cache; and the DataLoader workers that suit it."""
        cfg = self.cfg
        mode, why = store_cache.choose(cfg.cache, len(paths), self.pre, cfg.cache_budget_mb)
        workers = default_workers() if cfg.workers is None else cfg.workers
        if mode == "off":
            self.log(f"data ({what}): {len(paths)} images streamed from files by {workers} worker(s): {why}")
            return FileFaces(root, paths, self.pre), workers
        store = store_cache.load_store(paths, self.pre, root=str(root), in_ram=mode == "ram", stats=stats,
                                       workers=cfg.workers, progress=self.progress)
        where = "in RAM" if mode == "ram" else "memory-mapped from the disk cache"
        self.log(f"data ({what}): {len(paths)} images decoded once, {where}: {why}")
        return StoredFaces(store), 0  # indexing the store costs less than shipping batches from workers

    def _log_epoch(self, row: dict, tb) -> None:
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        with atomic_path(self.run_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)
        if tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    tb.add_scalar(k.replace("@", "_at_"), v, row["epoch"])
            tb.flush()
        parts = [f"epoch {row['epoch']}", f"loss {row['loss']:.4f}"]
        if "train_accuracy" in row:
            parts.append(f"acc {row['train_accuracy'] * 100:.1f}%")
        if "val_eer" in row:
            parts.append(f"val EER {row['val_eer']:.2f}%")
        parts += [f"lr {row['lr']:.2e}", f"{row['images_per_s']:.0f} img/s", f"{row['seconds']:.0f}s"]
        self.log(" | ".join(parts))

    def _write_scores(self, scores: np.ndarray) -> None:
        from .scores import write_scores

        v = self.data.val
        write_scores(self.run_dir / "scores.txt", scores, v.label_text, v.path1, v.path2, v.folds)

    def finish(self) -> dict:
        from .plots import plot_curves

        summary = {"run_dir": str(self.run_dir), "epochs": self.epoch, "best_eer": self.best["eer"],
                   "best_epoch": self.best["epoch"], "hypothesis": self.cfg.hypothesis,
                   "train_seconds": sum(r.get("seconds", 0.0) for r in self.history),
                   "wall_seconds": self.seconds_before + time.perf_counter() - self.t_start,
                   "peak_memory_mb": peak_memory_mb(self.device), "first_step_seconds": self.first_step_seconds,
                   **self.costs()}
        if self.history:
            plot_curves(self.history, self.run_dir / "curves.png")
        if (self.run_dir / "scores.txt").is_file():
            from .metrics import compute_all
            from .plots import plot_roc_det
            from .scores import read_scores

            s = read_scores(self.run_dir / "scores.txt")
            plot_roc_det({f"{self.cfg.model} {self.cfg.loss}": (s.scores, s.labels)}, self.run_dir / "roc_det.png")
            summary["best_metrics"] = compute_all(s.scores, s.labels, s.folds)
        from .metrics import jsonable

        write_text(self.run_dir / "summary.json", json.dumps(jsonable(summary), indent=2))
        return summary


    def costs(self) -> dict:
        """Params, FLOPs, size and CPU latency of the trained model, for the experiment records."""
        import copy

        m = copy.deepcopy(self.model).cpu().float()
        c = budget.counts(m, self.loss)
        return {**c, "flops": budget.flops(m, self.cfg.input_size), "size_mb": budget.size_mb(m),
                "ms_per_image_cpu": budget.latency_ms(m, self.cfg.input_size, batch=8, repeats=3)}


def peak_memory_mb(dev: torch.device) -> float:
    """Peak GPU memory on CUDA; else the process's peak resident set (one run per process under
    `facerec experiment`, so it is the run's)."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


RESUME_ONLY = ("optimizer", "scheduler", "scaler", "rng")
RUN_PRODUCTS = ("last.pt", "best.pt", "summary.json")  # a directory holding any of these is a run


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(FacerecError):
    """Ctrl-C or SIGTERM during training: a clean stop that says how to resume."""

    exit_code = 130


def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's stop, `kill`) stops like Ctrl-C; returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _fault(name: str, global_step: int) -> bool:
    """Fault tests (kill -9 mid-epoch, a NaN loss) pick their step with FACEREC_FAULT_<NAME>."""
    at = os.environ.get(f"FACEREC_FAULT_{name}")
    return bool(at) and global_step == int(at)


def _fault_injection(global_step: int) -> None:
    if _fault("KILL_AFTER_STEPS", global_step):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a pinned dependency; keep training if a user removed it
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"))


def evaluate_only(cfg) -> int:
    """face_trainer's `--eval`: score `test_list` with `initial_model`, write `output`."""
    from .evaluate import report_pairs

    if not cfg.initial_model or not cfg.test_list:
        raise FacerecError("--eval needs --initial_model CKPT and --test_list PAIRS.csv (and --output FILE)")
    pairs = read_pairs(cfg.test_list, cfg.val_root, allow_unknown=True)
    ckpt = checkpoint.load(cfg.initial_model)
    model = checkpoint.build_model(ckpt, cfg.initial_model, cfg.model, **model_kwargs(cfg))
    pre = Preprocess.from_dict(ckpt["preprocess"]) if ckpt.get("preprocess") else preprocess_of(cfg)
    dev = devices.resolve(cfg.device)
    return report_pairs([(model.to(dev), pre)], pairs, output=cfg.output, device=dev, workers=cfg.workers, tta=cfg.tta)
