"""Parameter budget: the trunk counts (the course rule: <= 11.5M, final FC excluded); the head
(final projection to the embedding) and the loss's classifier are reported apart.

The guard builds the model on the meta device from its name alone (shapes only: no memory, no
init, ~0.1 s), so it runs before any data is read, any optimiser exists or any GPU is touched.

Cost helpers, all on a copy so the caller's model is never touched:
- `flops`: FLOPs = 2 x the multiply-accumulates thop counts for one 1 x 3 x S x S image. thop
  counts nn.Module layers only, so functional ops (TinyViT's attention matmuls, the SE/CBAM
  poolings) are missing and attention models read low.
- `size_mb`: fp32 bytes of parameters and buffers, MB = 10^6 bytes.
- `latency_ms`: median CPU ms per image, eval mode, inference_mode, channels_last, current
  thread count; no fusion, so it times the model as trained.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings

import torch
from torch import nn

from facerec.config import BUDGET_SCOPES as SCOPES
from facerec.config import DEFAULT_PARAM_BUDGET as DEFAULT_BUDGET
from facerec.errors import FacerecError

WIDTH_KNOBS = ("width", "width_mult")
WIDTH_GRID = 0.01
WIDTH_MAX = 4.0


def count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def counts(model: nn.Module, loss: nn.Module | None = None) -> dict:
    """trunk/head/total of the model; the loss's own parameters (its classifier) apart."""
    return {"trunk_params": count(model.trunk), "head_params": count(model.head), "total_params": count(model),
            "classifier_params": count(loss)}


def budgeted(c: dict, scope: str) -> int:
    if scope not in SCOPES:
        raise FacerecError(f"budget scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return c["trunk_params"] + (c["head_params"] if scope == "trunk+head" else 0)


def _build(name: str, **kw) -> nn.Module:
    from facerec import models

    with torch.device("meta"):
        return models.create(name, **kw)


def width_knob(name: str) -> str | None:
    from facerec import models

    accepted = models.MODELS.accepted_keywords(name)
    return next((k for k in WIDTH_KNOBS if k in accepted), None)


def largest_fitting_width(name: str, budget: int, scope: str = "trunk", **kw) -> float | None:
    """Largest multiple of 0.01 (up to 4.0) for the family's width keyword that fits, by binary
    search (channel counts only grow with width); None when even 0.01 is over. Raises
    LookupError when the family has no width keyword."""
    knob = width_knob(name)
    if knob is None:
        raise LookupError(name)
    kw = {k: v for k, v in kw.items() if k != knob}

    def fits(step: int) -> bool:
        return budgeted(counts(_build(name, **kw, **{knob: round(step * WIDTH_GRID, 2)})), scope) <= budget

    lo, hi = 0, round(WIDTH_MAX / WIDTH_GRID)  # invariant: lo fits (0 stands for "none"), above hi untested
    if fits(hi):
        return WIDTH_MAX
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return round(lo * WIDTH_GRID, 2) if lo else None


def check_budget(name: str, embedding_dim: int = 512, input_size: int = 112, budget: int = DEFAULT_BUDGET,
                 scope: str = "trunk", **model_kw) -> dict:
    """The counts when `name` fits the budget; otherwise a FacerecError with the counts, the
    budget and the widest setting of the family's width keyword that would fit."""
    kw = {"embedding_dim": embedding_dim, "input_size": input_size, **model_kw}
    c = counts(_build(name, **kw))
    used = budgeted(c, scope)
    if used <= budget:
        return c
    try:
        width = largest_fitting_width(name, budget, scope, **kw)
        knob = width_knob(name)
        hint = (f"; the largest width multiplier of this family that fits is {width} ({knob}={width})" if width
                else f"; no {knob} of this family fits")
    except LookupError:
        hint = "; this family has no width multiplier: choose a smaller model (`facerec params` lists them)"
    raise FacerecError(
        f"model {name} has {used:,} parameters in scope '{scope}' (trunk {c['trunk_params']:,}, head "
        f"{c['head_params']:,}), over the budget of {budget:,}{hint}")


def describe_model(model: nn.Module, loss: nn.Module | None = None) -> str:
    c = counts(model, loss)
    return (f"model {getattr(model, 'name', type(model).__name__)}: trunk {c['trunk_params']:,} params (budgeted), "
            f"head {c['head_params']:,}, loss classifier {c['classifier_params']:,} (not budgeted)")


def flops(model: nn.Module, input_size: int) -> int:
    """FLOPs (2 x multiply-accumulates, as counted by thop) of one image at batch 1."""
    m = copy.deepcopy(model).eval()  # thop leaves total_ops/total_params buffers on what it profiles
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # thop's own deprecation notices (at import too), not the user's concern
        from thop import profile

        macs, _ = profile(m, inputs=(torch.zeros(1, 3, input_size, input_size),), verbose=False)
    return int(2 * macs)


def size_mb(model: nn.Module) -> float:
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    return sum(t.numel() for t in tensors) * 4 / 1e6


def latency_ms(model: nn.Module, input_size: int, batch: int, repeats: int = 5) -> float:
    m = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, input_size, input_size).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        m(x)  # warm-up: oneDNN picks its kernels on the first call
        for _ in range(repeats):
            t = time.perf_counter()
            m(x)
            times.append((time.perf_counter() - t) * 1000 / batch)
    return statistics.median(times)
