"""facerec: face-recognition metric learning toolkit (engine package).

    import facerec
    m = facerec.load("runs/.../best.pt")            # a trained model: embed, verify, threshold
    cfg = facerec.TrainConfig(model="se_resnet18", loss="arcface", train="data_lists/orl/orl_train.txt")
    summary = facerec.train(cfg)                      # the CLI's checks, then the run
"""

__version__ = "0.1.0"
__all__ = ["FaceModel", "TrainConfig", "Verification", "load", "train"]


def load(path, device="auto", **kwargs):
    """A trained model (facerec checkpoint, face_trainer .model with arch=, or exported .onnx): see `facerec.api`."""
    from .api import load as _load

    return _load(path, device, **kwargs)


def train(cfg=None, *, progress: bool = False, callbacks=(), **overrides) -> dict:
    """Run training from a `TrainConfig` (or keyword overrides of the defaults) with the same checks
    as `facerec train`; returns the run's summary (summary.json's content). `callbacks`:
    `facerec.trainer.Callback` objects called around steps and epochs."""
    from .config import TrainConfig
    from .config import load as load_config
    from .trainer.run import run

    if cfg is None:
        cfg = load_config([], overrides)
    elif overrides:
        raise TypeError("pass a TrainConfig or keyword overrides, not both")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"expected a facerec.TrainConfig, got {type(cfg).__name__}")
    return run(cfg, progress=progress, callbacks=callbacks)


def __getattr__(name):  # the heavy classes load on first use: `import facerec` stays instant
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name in ("FaceModel", "Verification"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'facerec' has no attribute {name!r}")
