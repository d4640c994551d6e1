"""facerec: face-recognition metric learning toolkit (engine package).

    import facerec
    m = facerec.load("runs/.../best.pt")            # a trained model: embed, verify, threshold
    cfg = facerec.TrainConfig(model="se_resnet18", loss="arcface", train="data_lists/orl/orl_train.txt")
    summary = facerec.train(cfg)                      # the CLI's checks, then the run
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"
__all__ = ["FaceModel", "TrainConfig", "Verification", "load", "train"]


def load(path, device="auto", **kwargs):
    """A trained model (facerec checkpoint, face_trainer .model with arch=, or exported .onnx): see
    `facerec.inference.facemodel`."""
    from facerec.inference.facemodel import load as _load

    return _load(path, device, **kwargs)


def train(cfg=None, *, progress: bool = False, callbacks=(), **overrides) -> dict:
    """Run training from a `TrainConfig` (or keyword overrides of the defaults) with the same checks
    as `facerec train`; returns the run's summary (summary.json's content). `callbacks`:
    `facerec.trainer.Callback` objects called around steps and epochs."""
    from facerec.config import TrainConfig
    from facerec.config import load as load_config
    from facerec.trainer.run import run

    if cfg is None:
        cfg = load_config([], overrides)
    elif overrides:
        raise TypeError("pass a TrainConfig or keyword overrides, not both")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"expected a facerec.TrainConfig, got {type(cfg).__name__}")
    return run(cfg, progress=progress, callbacks=callbacks)


def __getattr__(name):  # the heavy classes load on first use: `import facerec` stays instant
    if name == "TrainConfig":
        from facerec.config import TrainConfig

        return TrainConfig
    if name in ("FaceModel", "Verification"):
        from facerec.inference import facemodel as api

        return getattr(api, name)
    if f"facerec.{name}" in MOVED:  # `from facerec import metrics`, an old path
        return importlib.import_module(f"facerec.{name}")
    raise AttributeError(f"module 'facerec' has no attribute {name!r}")


# Modules that moved into subpackages: the old import paths keep working, with a warning naming
# the new one, so scripts and notebooks written against them run unchanged.
MOVED = {
    "facerec.metrics": "facerec.evaluation.metrics",
    "facerec.metric_keys": "facerec.evaluation.metric_keys",
    "facerec.scores": "facerec.evaluation.scores",
    "facerec.evaluate": "facerec.evaluation.scoring",
    "facerec.backend": "facerec.evaluation.backend",
    "facerec.plots": "facerec.evaluation.plots",
    "facerec.api": "facerec.inference.facemodel",
    "facerec.export": "facerec.inference.export",
    "facerec.embed_job": "facerec.inference.embed_job",
    "facerec.identify": "facerec.inference.identify",
    "facerec.images": "facerec.inference.images",
    "facerec.cv": "facerec.experiments.cv",
    "facerec.benchmark_lfw": "facerec.experiments.benchmark_lfw",
    "facerec.search": "facerec.experiments.search",
    "facerec.optim": "facerec.trainer.optim",
    "facerec.distributed": "facerec.trainer.distributed",
    "facerec.sync_bn": "facerec.trainer.sync_bn",
    "facerec.budget": "facerec.trainer.budget",
    "facerec.sampling": "facerec.data.sampling",
    "facerec.dataroot": "facerec.data.root",
    "facerec.trainer.checkpoints": "facerec.trainer.saving",
    "facerec.trainer.data": "facerec.trainer.prepare",
    "facerec.config_fields": "facerec.config.fields",
    "facerec.config_presets": "facerec.config.presets",
    "facerec.fileio": "facerec.util.fileio",
    "facerec.locks": "facerec.util.locks",
    "facerec.progress": "facerec.util.progress",
    "facerec.device": "facerec.util.device",
    "facerec.registry": "facerec.util.registry",
    "facerec.rundir": "facerec.util.rundir",
}


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}", DeprecationWarning, stacklevel=2)
        # The import system hands out what sys.modules holds under the old name: the real module.
        sys.modules[module.__name__] = importlib.import_module(new)


sys.meta_path.append(_MovedModule())
