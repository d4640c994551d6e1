"""Training: `Trainer(cfg).fit()` (the loop), with run state, data preparation and records in
their own modules. The names below are the package's public surface."""

from facerec.trainer.callbacks import Callback
from facerec.trainer.eval_only import evaluate_only
from facerec.trainer.loop import Trainer
from facerec.trainer.prepare import (
    Data,
    default_lfw_lists,
    is_classifier,
    largest_identities,
    load_data,
    model_kwargs,
    preprocess_of,
)
from facerec.trainer.records import peak_memory_mb
from facerec.trainer.state import RESUME_ONLY, Diverged, Interrupted, NonFiniteLoss, run_name, seed_everything
from facerec.util.rundir import RUN_PRODUCTS

__all__ = [
           "RESUME_ONLY",
           "RUN_PRODUCTS",
           "Callback",
           "Data",
           "Diverged",
           "Interrupted",
           "NonFiniteLoss",
           "Trainer",
           "default_lfw_lists",
           "evaluate_only",
           "is_classifier",
           "largest_identities",
           "load_data",
           "model_kwargs",
           "peak_memory_mb",
           "preprocess_of",
           "run_name",
           "seed_everything",
]
