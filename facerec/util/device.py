"""One place that turns 'auto' / 'cpu' / 'cuda[:N]' / 'mps' / a face_trainer GPU index into a device."""

from __future__ import annotations

import torch

from facerec.errors import FacerecError


def resolve(spec: str | int | None = "auto") -> torch.device:
    if spec is None or spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    spec = str(spec)
    if spec.isdigit():  # face_trainer's --gpu N
        spec = f"cuda:{spec}"
    try:
        dev = torch.device(spec)
    except RuntimeError as exc:
        raise FacerecError(f"--device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FacerecError(f"--device {spec}: CUDA is not available on this machine (use cpu or auto)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FacerecError(f"--device {spec}: MPS is not available on this machine")
    return dev
