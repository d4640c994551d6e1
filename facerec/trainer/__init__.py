"""Training: `Trainer(cfg).fit()` (the loop), with run state, data preparation and records in
their own modules. The names below are the package's public surface."""

from ..rundir import RUN_PRODUCTS
from .callbacks import Callback
from .data import Data, default_lfw_lists, is_classifier, largest_identities, load_data, model_kwargs, preprocess_of
from .eval_only import evaluate_only
from .loop import Trainer
from .records import peak_memory_mb
from .state import RESUME_ONLY, Diverged, Interrupted, NonFiniteLoss, run_name, seed_everything

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
