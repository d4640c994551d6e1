"""One place that turns 'auto' / 'cpu' / 'cuda[:N]' / 'mps' / a face_trainer GPU index into a device, and that
knows whether this CPU computes bfloat16 or float16 itself (so --amp pays) or emulates it."""

from __future__ import annotations

import platform

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


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype of an --amp choice; None for "off" (full precision)."""
    return AMP_DTYPES.get(amp)


def cpu_native(dtype: str) -> bool | None:
    """Whether this CPU computes `dtype` ("bf16" or "fp16") in hardware (True), emulates it through
    fp32 (False), or cannot be told (None: not x86, or a torch without the probe). oneDNN runs bf16
    convolutions natively on AVX512-BF16 or AMX, and fp16 ones only on AMX-FP16."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    probes = {"bf16": ("_is_avx512_bf16_supported", "_is_amx_tile_supported"), "fp16": ("_is_amx_fp16_supported",)}
    found = [getattr(torch.cpu, name, None) for name in probes[dtype]]
    if any(f is None for f in found):
        return None
    return any(f() for f in found)


def amp_note(device: torch.device, amp: str) -> str | None:
    """A warning when --amp would make training slower, not faster, on `device`; else None."""
    if device.type != "cpu" or amp == "off" or cpu_native(amp) is not False:
        return None
    lacks = "AVX512-BF16 or AMX" if amp == "bf16" else "AMX-FP16"
    return f"--amp {amp} on this CPU is emulated through fp32 (no {lacks}), so it trains slower than --amp off"
