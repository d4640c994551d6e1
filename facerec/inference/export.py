"""`facerec export`: a checkpoint as ONNX (dynamic batch) or TorchScript, checked against PyTorch.

The exported graph is the network alone: it takes the float batch `FaceModel.preprocess` returns
and gives raw embeddings. The preprocessing (input size, face crop, resize, mean/std), the run's
TTA choice, its validation thresholds and its verification back-end (if any) travel in the file's
metadata (ONNX `metadata_props`, TorchScript `_extra_files`, both under the key "facerec"), so
`facerec.load("m.onnx")`, `facerec embed --onnx` and `facerec verify --onnx` need no PyTorch weights.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from facerec.errors import DataError
from facerec.inference.facemodel import META_KEY, FaceModel
from facerec.util.fileio import atomic_path, binary_writer

log = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.9999


@dataclass
class Check:
    images: int
    max_abs_diff: float
    min_cosine: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= MAX_ABS_DIFF and self.min_cosine >= MIN_COSINE

    def __str__(self) -> str:
        return (f"{self.images} real faces: max |embedding difference| {self.max_abs_diff:.2e} (limit {MAX_ABS_DIFF:g}), "
                f"min cosine {self.min_cosine:.7f} (limit {MIN_COSINE})")


def thresholds(m: FaceModel) -> dict:
    """The thresholds the file carries, each as `FaceModel.threshold` gives it: from the validation scores
    where the checkpoint holds them (so a FAR the pairs cannot measure follows the same rule, never +inf),
    else as stored; a non-finite one is left out (JSON has no inf; asking for it names what is there)."""
    import math

    out = {}
    for key, value in (m.thresholds or {}).items():
        if m.val_scores is not None and key != "eer":
            from facerec.evaluation.metrics import threshold_at_far

            value = threshold_at_far(*m.val_scores, float(key))
        if math.isfinite(float(value)):
            out[key] = float(value)
    return out


def metadata(m: FaceModel) -> dict:
    meta = {"format": 1, "preprocess": m.pre.to_dict(), "tta": m.tta, "thresholds": thresholds(m),
            "info": {k: m.info.get(k) for k in ("model", "embedding_dim", "source")},
            "input": "float32 (batch, 3, S, S): face crop, resize, centre crop S, (x/255 - mean) / std"}
    if m.val_scores is not None:  # so a FAR below what these pairs measure is noted at use time too
        labels = np.asarray(m.val_scores[1])
        meta["val_pairs"] = {"same": int((labels == 1).sum()), "different": int((labels == 0).sum())}
    if m.backend is not None:  # the thresholds are its scores: it travels with them
        from facerec.evaluation.backend import to_json

        meta["backend"] = to_json(m.backend.state_dict())
    return meta


def to_onnx(m: FaceModel, path, opset: int = 17) -> None:
    import onnx

    s = m.pre.input_size
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) needs no onnxscript; torch 2.14 announces its removal.
        warnings.simplefilter("ignore")
        with binary_writer(path) as fh:
            torch.onnx.export(m.net, (torch.zeros(2, 3, s, s),), fh, input_names=["input"],
                              output_names=["embedding"], opset_version=opset,
                              dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, dynamo=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(metadata(m))
    onnx.save(model, str(path))


def to_torchscript(m: FaceModel, path) -> None:
    s = m.pre.input_size
    with torch.no_grad(), warnings.catch_warnings():
        # TracerWarnings of shape-dependent Python branches (same shape at run time); torch 2.14 also
        # announces TorchScript's deprecation, while it still serves C++/mobile deployments.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m.net, torch.zeros(2, 3, s, s))
        with binary_writer(path) as fh:
            torch.jit.save(traced, fh, _extra_files={META_KEY: json.dumps(metadata(m))})


def _runner(fmt: str, path):
    if fmt == "onnx":
        from facerec.inference.facemodel import load_onnx

        return load_onnx(path)._forward
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(str(path), map_location="cpu").eval()

    def forward(x):
        with torch.no_grad():
            return net(x).float().numpy()
    return forward


def check(m: FaceModel, fmt: str, path, images: list) -> Check:
    """Both runtimes on the same preprocessed real faces, embeddings L2-normalised."""
    x = m.preprocess(images)
    x = x.flatten(0, 1) if x.dim() == 5 else x  # test crops: every view is an input of its own
    ref = m._forward(x)
    got = _runner(fmt, path)(x)
    a = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    b = got / np.linalg.norm(got, axis=1, keepdims=True)
    return Check(len(x), float(np.abs(a - b).max()), float((a * b).sum(1).min()))


def default_check_images(ckpt: dict, n: int = 32) -> list[str]:
    """Faces the run validated on (its val list), so the check needs no argument after training."""
    from facerec.data.pairs import read_pairs

    val = (ckpt.get("config") or {}).get("val")
    if not val:
        raise DataError("this checkpoint names no validation list to check with: pass --check-images")
    try:
        pairs = read_pairs(val, (ckpt.get("config") or {}).get("val_root"), check_files=True)
    except DataError as exc:
        raise DataError(f"cannot read the run's validation list for the check ({exc}): pass --check-images") from None
    uniq = pairs.unique_paths()[0][:n]
    return [str(pairs.root / p) for p in uniq]


def export(m: FaceModel, fmt: str, output, *, opset: int = 17, check_images=None) -> Check:
    if m.net is None:
        raise DataError(f"{m.info.get('source')}: export needs a PyTorch checkpoint, not an exported model")
    if fmt not in ("onnx", "torchscript"):
        raise DataError(f"unknown export format {fmt!r} (onnx, torchscript)")
    m.device = torch.device("cpu")
    m.net.to("cpu").eval()
    with atomic_path(output) as tmp:  # checked before it takes the output's name: no bad file is left
        if fmt == "onnx":
            to_onnx(m, tmp, opset)
        else:
            to_torchscript(m, tmp)
        result = check(m, fmt, tmp, check_images)
        if not result.ok:
            raise DataError(f"{output}: the exported model disagrees with PyTorch: {result}")
    return result
