"""Validation: embed the validation pairs' images with the current model, score the pairs, and
count the epoch for best and patience. Every process embeds its share of the images (strategy)."""

from __future__ import annotations

import time

import numpy as np
import torch

from facerec.data.stream import Batches, Plan, make_loader
from facerec.data.transforms import BatchTransform
from facerec.evaluation.metric_keys import TAR_KEYS
from facerec.trainer import prepare as prep
from facerec.trainer import state


class Verification:
    """Scores the validation pairs every `--test-interval` epochs and after the last one."""

    def __init__(self, t):
        val = t.data.val
        uniq, self.i1, self.i2 = val.unique_paths()
        faces, self.workers = prep.faces(t, "val", val.root, uniq, None)
        self.batches = Batches(faces, BatchTransform(t.pre, train=False), uint8=True)

    def due(self, t) -> bool:
        epoch, cfg = t.state.epoch, t.cfg
        return epoch % cfg.test_interval == 0 or epoch == cfg.epochs

    def __call__(self, t, row: dict) -> np.ndarray:
        """Adds the metrics to the epoch's row, counts them for best/patience; returns the pair scores."""
        t_val = time.perf_counter()
        m, scores = self.validate(t)
        if prep.settle(t, self.batches, "val"):
            self.workers = 0
        # Apart from the training seconds, so an epoch line adds up to the wall time it took.
        row["val_seconds"] = time.perf_counter() - t_val
        row.update({f"val_{k}": m[k] for k in ("eer", "auc", *TAR_KEYS)})
        t.state.validated(m, min_delta=t.cfg.min_delta, interval=t.cfg.test_interval)
        return scores

    @torch.inference_mode()
    def validate(self, t) -> tuple[dict, np.ndarray]:
        from facerec.evaluation.metrics import compute_all
        from facerec.evaluation.scoring import cosine_scores, embed_batches

        t.strategy.before_validation(t.eval_model)
        lo, hi = t.strategy.validation_range(len(self.batches.faces))
        plan = Plan([np.arange(i, min(hi, i + 256)) for i in range(lo, hi, 256)], epoch=0)
        loader = make_loader(self.batches, plan, workers=self.workers, device=t.device)
        norm = self.batches.transform.normalize
        emb = embed_batches(t.eval_model, (norm(x.to(t.device, non_blocking=True)) for x in loader),
                            device=t.device, tta=t.cfg.tta)
        emb = t.strategy.gather_embeddings(emb, t.device)
        final = t.state.epoch >= t.cfg.epochs
        try:
            state.check_embeddings(emb, "validation")
            t.state.embeddings_collapsed(False, final=final)
        except state.Collapsed as exc:
            # A short early epoch can leave BatchNorm's running statistics so far off that every face
            # maps to one point, and the next epoch recovers; a collapse that lasts, or the run's
            # final model, stops the run.
            if t.state.embeddings_collapsed(True, final=final):
                raise
            t.note(f"{exc} after epoch {t.state.epoch}; training goes on, and stops if the next validation "
                   "is collapsed too")
        scores = cosine_scores(emb, self.i1, self.i2)
        return compute_all(scores, t.data.val.labels, t.data.val.folds), scores
