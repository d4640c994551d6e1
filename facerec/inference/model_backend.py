"""A model's back-end: `FaceModel.fit_backend` (embed the training faces, fit, recalibrate the
thresholds on the validation pairs) and `FaceModel.save` (the checkpoint with its back-end)."""

from __future__ import annotations

import numpy as np

from facerec.errors import DataError
from facerec.evaluation.backend import check_options, fit_backend, to_checkpoint


def fit_model_backend(model, images, kind: str = "plda", *, labels=None, root=None, val=None, val_root=None,
                      batch_size: int = 64, workers: int | None = None, progress: bool | None = None,
                      **opts) -> dict:
    """`FaceModel.fit_backend`: embed the training faces, fit, set the model's back-end and thresholds."""
    from pathlib import Path

    from facerec.inference import images as image_io

    train = None
    if labels is None:
        from facerec.data.lists import load_train

        if not isinstance(images, (str, Path)):
            raise DataError("fit_backend: pass a train list or a folder of identity folders, or images with labels=")
        train = load_train(images, root)
        paths, labels = train.abspaths(), train.labels
    else:
        paths, labels = image_io.expand(images), np.asarray(labels)
        if len(paths) != len(labels):
            raise DataError(f"fit_backend: {len(paths)} image(s) but {len(labels)} label(s)")
    opts = check_options(kind, opts)  # before any embedding
    pairs = validation_pairs(model, val, val_root)
    if pairs is not None and train is not None:
        check_disjoint(train, pairs)
    kw = {"batch_size": batch_size, "workers": workers, "progress": progress}
    fitted = fit_backend(model.embed(paths, **kw), labels, kind, **opts)
    report = {"kind": kind, **{k: fitted.info[k] for k in ("images", "identities", "identities_2plus", "dim")},
              "val": None, "val_pairs": 0}
    thresholds, val_scores = {}, None
    if pairs is not None:
        from facerec.evaluation.metric_keys import FARS, tar_key
        from facerec.evaluation.metrics import compute_all, eer

        uniq, i1, i2 = pairs.unique_paths()
        e = model.embed([str(Path(pairs.root) / p) for p in uniq], **kw)
        s = fitted.score(e[i1], e[i2])
        m = compute_all(s, pairs.labels)
        thresholds = {"eer": m["eer_threshold"], **{f: m[tar_key(f) + "_threshold"] for f in FARS}}
        val_scores = (s, pairs.labels.astype(np.int64))
        report.update(val=str(pairs.source), val_pairs=len(s), eer_backend=m["eer"],
                      eer_cosine=eer((e[i1].astype(np.float64) * e[i2]).sum(1), pairs.labels)[0])
    fitted.info["calibrated_on"] = report["val"]
    model.backend, model.thresholds, model.val_scores = fitted, thresholds, val_scores
    return report


def validation_pairs(model, val=None, val_root=None):
    """Labelled pairs to recalibrate on: `val`, else the run's own validation list if it still exists."""
    from pathlib import Path

    from facerec.data.lists import read_pairs

    if val is None:
        val, val_root = model.info.get("val"), model.info.get("val_root")
        if not val or not Path(val).is_file():
            return None
    pairs = read_pairs(val, val_root, allow_unknown=True, allow_duplicates=False)
    labelled = (pairs.labels == 0) | (pairs.labels == 1)
    if not labelled.all() or len(np.unique(pairs.labels)) < 2:
        raise DataError(f"{val}: thresholds need labelled pairs, same (1) and different (0), and only those")
    return pairs


def check_disjoint(train, pairs) -> None:
    """Thresholds of a back-end must come from people it did not learn from."""
    from facerec.data import leakage

    report = leakage.check(train, pairs)
    if not report.clean:
        what = (f"{len(report.identities)} identities (e.g. {', '.join(report.identities[:3])})" if report.identities
                else f"{len(report.images)} identical images (e.g. {report.images[0][1]})")
        raise DataError(f"{pairs.source}: {what} of these validation pairs are also in the back-end's training "
                        f"list {train.source or train.root}; recalibrate on pairs of other people")


def save_model(model, path) -> None:
    """`FaceModel.save`: the checkpoint the model came from, with the model's back-end, thresholds and
    validation scores, written atomically."""
    from pathlib import Path

    import torch

    from facerec import checkpoint

    src = model.info.get("source")
    if model.info.get("runtime") == "onnxruntime" or not src or not Path(src).is_file():
        raise DataError(f"{path}: cannot save: the model was not loaded from a facerec checkpoint file (source {src!r})")
    ckpt = checkpoint.load(src)
    if ckpt.get("format") != checkpoint.FORMAT:
        raise DataError(f"{src}: a face_trainer file: a back-end is stored only in a facerec checkpoint")
    payload = {k: v for k, v in ckpt.items() if k not in ("format", "version", "backend", "thresholds", "val_scores")}
    if model.backend is not None:
        payload["backend"] = to_checkpoint(model.backend.state_dict())
    if model.thresholds:
        payload["thresholds"] = {k: float(v) for k, v in model.thresholds.items()}
    if model.val_scores is not None:
        payload["val_scores"] = {"scores": torch.as_tensor(model.val_scores[0], dtype=torch.float64),
                                 "labels": torch.as_tensor(model.val_scores[1], dtype=torch.int8)}
    checkpoint.save(path, payload)
