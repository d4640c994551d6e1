"""Checkpoints: one file, written atomically, loaded with `weights_only=True`.

Layout (plain containers and tensors only, so `weights_only=True` can read it):
  format, version, model {name, kwargs, state_dict}, preprocess {...},
  loss {name, kwargs, state_dict} (optional), config, epoch,
  optimizer, scheduler, scaler, rng, metrics (all optional).
face_trainer's `.model` files (a flat state dict with `__S__.` / `__E__.` model keys and
`__L__.` / `__C__.` loss keys) load too, for the same architecture.
"""

from __future__ import annotations

import torch

from facerec.errors import DataError
from facerec.util.fileio import atomic_path, binary_writer

FORMAT = "facerec-checkpoint"
VERSION = 1
MODEL_PREFIXES = ("__S__.", "__E__.")
LOSS_PREFIXES = ("__L__.", "__C__.")


def save(path, payload: dict) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_path(path) as tmp, binary_writer(tmp) as fh:
        torch.save(payload, fh)


def load(path) -> dict:
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a checkpoint file") from None
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # an object outside torch's allowlist names a callable: the code-running case
            raise DataError(f"{path}: not a readable checkpoint (corrupt, truncated, or not a torch.save file)") from None
        # torch's own text suggests weights_only=False, i.e. running the file's code: never.
        raise DataError(f"{path}: refused: it holds Python objects other than tensors and plain containers, "
                        "and loading those could run code (facerec loads checkpoints with weights_only=True)") from None
    except Exception:  # zip/EOF/pickle-protocol errors from a corrupt, truncated or foreign file
        raise DataError(f"{path}: not a readable checkpoint (corrupt, truncated, or not a torch.save file)") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj
    if isinstance(obj, dict) and any(isinstance(k, str) and k.startswith(MODEL_PREFIXES) for k in obj):
        return from_face_trainer(obj)
    raise DataError(f"{path}: neither a facerec checkpoint nor a face_trainer .model state dict")


def _strip(state: dict, prefixes) -> dict:
    out = {}
    for k, v in state.items():
        for p in prefixes:
            if k.startswith(p):
                out[k[len(p):]] = v
    return out


# What face_trainer's evaluation does to every image: Resize(256) of the shorter side, CenterCrop(224),
# ImageNet mean/std; its ResNets keep the ImageNet stem (7x7/2 conv + max-pool) at 224 px.
FACE_TRAINER_PREPROCESS = {"input_size": 224, "resize": 256, "face_crop": 1.0, "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225], "hflip": False}


def from_face_trainer(state: dict) -> dict:
    """face_trainer saves `self.__model__.state_dict()`: model keys under __S__., loss under __L__.
    Its ResNets name the projection `fc.`; ours keep it in `head.fc.` and the rest in `trunk.`.
    The file records no preprocessing: face_trainer's own (FACE_TRAINER_PREPROCESS) is implied."""
    model_state = {
        (f"head.{k}" if k.startswith("fc.") else f"trunk.{k}"): v for k, v in _strip(state, MODEL_PREFIXES).items()
    }
    kwargs = {"input_size": FACE_TRAINER_PREPROCESS["input_size"]}
    if "head.fc.weight" in model_state:
        kwargs["embedding_dim"] = int(model_state["head.fc.weight"].shape[0])
    return {
        "format": "face_trainer",
        "model": {"name": None, "kwargs": kwargs, "state_dict": model_state},
        "loss": {"name": None, "kwargs": {}, "state_dict": _strip(state, LOSS_PREFIXES)},
        "preprocess": dict(FACE_TRAINER_PREPROCESS),
    }


def load_model_weights(model: torch.nn.Module, state: dict, source: str) -> None:
    """Strict load with a message that names the file and the first mismatching keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
        if shape:
            k = shape[0]
            parts.append(f"shape mismatch at {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise DataError(f"{source}: weights do not fit model {getattr(model, 'name', '?')}: " + "; ".join(parts))
    model.load_state_dict(state)


def build_model(ckpt: dict, source: str, name: str | None = None, **model_kwargs):
    """The model a checkpoint describes, with its weights. A facerec checkpoint records its
    architecture; a face_trainer file does not, so `name` and `model_kwargs` describe it."""
    from facerec import models

    spec = ckpt["model"]
    if ckpt.get("format") != "face_trainer":
        name, model_kwargs = spec["name"], spec.get("kwargs", {})
    else:  # what the file's weights say (embedding size) and face_trainer's input size, unless told otherwise
        model_kwargs = {**spec.get("kwargs", {}), **model_kwargs}
    if not name:
        raise DataError(f"{source}: face_trainer checkpoint does not name its model; pass --model")
    model = models.create(name, **model_kwargs)
    load_model_weights(model, spec["state_dict"], source)
    return model
