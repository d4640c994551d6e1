"""Data preparation: the default LFW lists, validated lists, the leakage gate, the decoded store or
streamed files, and what the log says about batches."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.data import cache as store_cache
from facerec.data import leakage
from facerec.data.datasets import default_workers
from facerec.data.filling import FillingFaces
from facerec.data.filling import start as start_filling
from facerec.data.lists import PairList, TrainList, load_train, read_pairs
from facerec.data.stream import FileFaces, StoredFaces
from facerec.data.transforms import Preprocess
from facerec.errors import DataError, FacerecError


def preprocess_of(cfg) -> Preprocess:
    return Preprocess(input_size=cfg.input_size, face_crop=cfg.face_crop, resize=cfg.resize,
                      mean=tuple(cfg.mean), std=tuple(cfg.std), hflip=cfg.hflip,
                      test_crops=cfg.test_crops)


def model_kwargs(cfg) -> dict:
    return {"embedding_dim": cfg.embedding_dim, "input_size": cfg.input_size, **cfg.model_options}


@dataclass
class Data:
    train: TrainList
    val: PairList | None


def default_lfw_lists(cfg) -> None:
    """No --train given: LFW View 1 (train: peopleDevTrain; val: pairsDevTest) from the data root."""
    from facerec.data import lfw
    from facerec.data import root as dataroot

    out = dataroot.lists_dir("lfw")
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


def load_data(cfg, log=None) -> Data:
    log = log or logging.getLogger("facerec.train").info
    if cfg.val is None and cfg.test_list and not cfg.eval_only:
        # face_trainer scores --test_list every --test_interval epochs while training: its validation list.
        cfg.val = cfg.test_list
        log(f"validation: --test_list {cfg.test_list} (scored every {cfg.test_interval} epoch(s), as face_trainer does)")
    if cfg.train is None:
        default_lfw_lists(cfg)
    train = load_train(cfg.train, cfg.root)
    if cfg.max_classes is not None and cfg.max_classes < train.num_classes:
        train = largest_identities(train, cfg.max_classes)
    if train.num_classes < 2:
        # A one-class softmax has no gradient and a metric loss has no different pair: the run would
        # report loss 0 and 100% accuracy for a random network.
        who = f" ({train.classes[0]})" if train.classes else ""
        raise DataError(f"{cfg.train}: {train.num_classes} identit{'y' if train.num_classes == 1 else 'ies'}{who}; "
                        "training needs at least 2 identities to learn anything")
    val = read_pairs(cfg.val, cfg.val_root, allow_unknown=True, allow_duplicates=False) if cfg.val else None
    if val is not None and not val.has_labels:
        raise DataError(f"{cfg.val}: the pairs have no 0/1 labels, so no validation EER can be measured; give a "
                        "labelled --val (and score this list after training with `facerec eval --output`)")
    if val is not None:
        n_same = int(np.count_nonzero(val.labels == 1))
        if n_same in (0, len(val)):  # caught here, not after the first epoch's training
            raise DataError(f"{cfg.val}: all {len(val)} pairs are {'same (1)' if n_same else 'different (0)'}; "
                            "a validation EER needs both same (1) and different (0) pairs")
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


def check_loss(cfg, kwargs: dict):
    """The loss built on a 2-class probe: its options, K and mixing checked before any data is read."""
    from facerec import losses

    probe = losses.create(cfg.loss, **kwargs)
    if cfg.per_class is None:
        cfg.per_class = max(1, probe.min_per_class)
    losses.check_per_class(probe, cfg.per_class)
    if cfg.batch_classes < 2 and not is_classifier(probe):
        raise FacerecError(f"batch_classes (P) is {cfg.batch_classes}: every batch would hold one identity, and "
                           f"{cfg.loss} learns by comparing identities within a batch; use P >= 2")
    if cfg.mix != "none" and not is_classifier(probe):
        raise FacerecError(f"mix={cfg.mix} needs a classifier loss (softmax, arcface, cosface, ...): a mixed image "
                           f"has no identity for {cfg.loss} to compare")
    return probe


def faces(t, what: str, root, paths, stats):
    """Decoded store or image files, by --cache; and the DataLoader workers that suit it."""
    cfg = t.cfg
    mode, why = store_cache.choose(cfg.cache, len(paths), t.pre, cfg.cache_budget_mb)
    workers = default_workers() if cfg.workers is None else cfg.workers
    if mode == "off":
        t.log(f"data ({what}): {len(paths)} images streamed from files by {workers} worker(s): {why}")
        return FileFaces(root, paths, t.pre), workers
    where = "in RAM" if mode == "ram" else "memory-mapped from the disk cache"
    filling = start_filling(root, paths, t.pre, stats)
    if filling is not None:  # the first step comes at once; the first pass decodes into the store
        filling.in_ram = mode == "ram"
        t.log(f"data ({what}): {len(paths)} images streamed from files by {workers} worker(s) on the first pass, "
              f"which fills the decoded store ({where} after it): {why}")
        return filling, workers
    store = store_cache.load_store(paths, t.pre, root=str(root), in_ram=mode == "ram", stats=stats,
                                   workers=cfg.workers, progress=t.progress)
    t.log(f"data ({what}): {len(paths)} images decoded once, {where}: {why}")
    return StoredFaces(store), 0  # indexing the store costs less than shipping batches from workers


def settle(t, batches, what: str) -> bool:
    """After a first pass over `batches`: complete its store and serve from it (True if it did)."""
    if not isinstance(batches.faces, FillingFaces):
        return False
    t0 = time.perf_counter()
    batches.faces = batches.faces.complete(in_ram=batches.faces.in_ram, workers=t.cfg.workers, progress=t.progress)
    t.log(f"data ({what}): decoded store complete ({time.perf_counter() - t0:.1f}s to finish it); served from it now")
    return True


def discard_partial(*batches) -> None:
    for b in batches:
        if b is not None and isinstance(b.faces, FillingFaces):
            b.faces.discard()


def epoch_images(t) -> str:
    """How many of the listed images an epoch uses, and which keys leave the rest out: a preset's
    caps (sized for one data set) would otherwise apply silently to another."""
    cfg, s = t.cfg, t.sampler
    total = len(t.data.train.labels)
    have = np.array([len(m) for m in s.members], dtype=np.int64)
    capped = np.minimum(have, s.n_images)  # after max_img_per_cls
    whole = np.minimum(capped, (s.n_images // s.k) * s.k)  # after dropping what falls short of a group of K
    used = np.minimum(whole, s.n_groups * s.k)  # after batch_fill full's cap on dominant identities
    lost = [(total - int(have.sum()), f"min_images drop ({len(s.dropped)} identities with fewer than K={s.k})"),
            (int((have - capped).sum()), f"max_img_per_cls {cfg.max_img_per_cls}"),
            (int((capped - whole).sum()), f"per_class K={s.k} (short of a whole group; different ones each epoch)"),
            (int((whole - used).sum()), "batch_fill full (dominant identities capped; different ones each epoch)")]
    n_used = int(used.sum())
    text = (f"an epoch uses all {total:,} training images" if n_used == total
            else f"an epoch uses {n_used:,} of {total:,} training images")
    left = [f"{n:,} by {why}" for n, why in lost if n > 0]
    if left:
        text += ", left out: " + "; ".join(left)
    repeats = int(np.maximum(0, s.n_groups * s.k - have).sum())
    if repeats:
        text += f"; plus {repeats:,} repeated draws (min_images pad / oversample_to)"
    if t.steps_per_epoch < len(s):
        text += (f"; max_steps {cfg.max_steps} stops each epoch after {t.steps_per_epoch} of {len(s)} batches "
                 f"(~{t.steps_per_epoch * s.p * s.k:,} images)")
    return text


def explain_batches(t) -> None:
    """Say in the log when batches are not P distinct identities of K images, and why."""
    cfg, s = t.cfg, t.sampler
    t.log(epoch_images(t))
    n_ids = len(s.members)
    if n_ids < cfg.batch_classes:
        t.note(f"{n_ids} identities, fewer than --batch-classes {cfg.batch_classes}: a batch holds at most "
                 f"{n_ids} identities ({n_ids * cfg.per_class} images)")
    elif s.group_cap is not None:
        groups = s.n_images // s.k
        over = groups > s.group_cap
        top = int(np.argmax(groups))
        t.note(f"to keep batches at {cfg.batch_classes} identities, an identity gives at most "
                 f"{s.group_cap * s.k} images an epoch; {int((groups - s.n_groups).sum()) * s.k} images of "
                 f"{int(over.sum())} identities (e.g. {t.data.train.classes[s.classes[top]]}, "
                 f"{int(s.n_images[top])}) sit out each epoch, different ones every epoch. "
                 "--batch-fill spread uses every image in smaller batches")
    elif not s.full and len(s):
        t.note(f"batches shrink to ~{int(s.n_groups.sum()) // len(s)} identities so that every image is used "
                 "(--batch-fill spread) while one identity holds a large share of the images; --batch-fill full "
                 "or --max-img-per-cls keeps them full")


def check_batches_can_learn(t) -> None:
    """Refuse batches that cannot teach the loss anything: after --min-images drop fewer than two
    identities are left, or (losses comparing images within a batch) batches of one identity."""
    cfg, s = t.cfg, t.sampler
    if len(s.members) < 2:
        raise DataError(f"{cfg.train}: {len(s.members)} identit{'y has' if len(s.members) == 1 else 'ies have'} "
                        f"at least K={cfg.per_class} images and min_images is drop ({len(s.dropped)} dropped); "
                        "training needs at least 2 identities (min_images: pad keeps them, or lower --per-class)")
    if not is_classifier(t.loss) and len(s) and int(s.n_groups.sum()) // len(s) < 2:
        raise DataError(f"{cfg.train}: batches would hold ~1 identity each (one identity holds most images), and "
                        f"{cfg.loss} compares identities within a batch; cap it with --max-img-per-cls, or "
                        "use --batch-fill full")
