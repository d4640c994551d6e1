"""Parameter budget: the trunk counts (the course rule: <= 11.5M, final FC excluded); the head
(final projection to the embedding) and the loss's classifier are reported apart.

The guard builds the model on the CPU from its name alone, so it runs before any data is read,
any optimiser exists or any GPU is touched.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

from .errors import FacerecError

DEFAULT_BUDGET = 11_500_000
SCOPES = ("trunk", "trunk+head")


def count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def counts(model: nn.Module, loss: nn.Module | None = None) -> dict:
    return {"trunk_params": count(model.trunk), "head_params": count(model.head), "total_params": count(model),
            "classifier_params": count(loss)}


def budgeted(c: dict, scope: str) -> int:
    if scope not in SCOPES:
        raise FacerecError(f"budget scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return c["trunk_params"] + (c["head_params"] if scope == "trunk+head" else 0)


def _build(name: str, **kw) -> nn.Module:
    import models

    with torch.device("meta"):  # counts need shapes only: no memory, no init time
        return models.create(name, **kw)


def largest_fitting_width(name: str, budget: int, scope: str, **kw) -> float | None:
    """The largest `width` (multiplier keyword of the family) in 0.05 steps that fits, or None
    when the family has no width keyword."""
    import models

    accepted = models.MODELS.accepted_keywords(name)
    knob = next((k for k in ("width", "width_mult") if k in accepted), None)
    if knob is None:
        return None
    kw = {k: v for k, v in kw.items() if k != knob}
    best = None
    for step in range(1, 41):
        w = round(step * 0.05, 2)
        if budgeted(counts(_build(name, **{knob: w}, **kw)), scope) <= budget:
            best = w
        else:
            break
    return best


def check_budget(name: str, *, budget: int = DEFAULT_BUDGET, scope: str = "trunk", **kw) -> dict:
    c = counts(_build(name, **kw))
    used = budgeted(c, scope)
    if used > budget:
        width = largest_fitting_width(name, budget, scope, **kw)
        hint = (f"; the largest width multiplier of this family that fits is {width}" if width
                else "; this family has no width multiplier: choose a smaller model (facerec params lists them)")
        raise FacerecError(
            f"model {name} has {used:,} parameters in scope '{scope}' (trunk {c['trunk_params']:,}, head "
            f"{c['head_params']:,}), over the budget of {budget:,}{hint}")
    return c


def describe_model(model: nn.Module, loss: nn.Module | None = None) -> str:
    c = counts(model, loss)
    return (f"model {getattr(model, 'name', type(model).__name__)}: trunk {c['trunk_params']:,} params (budgeted), "
            f"head {c['head_params']:,}, loss classifier {c['classifier_params']:,} (not budgeted)")


def flops(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward pass at batch 1, counted by thop, times 2 (FLOPs)."""
    from thop import profile

    m = copy.deepcopy(model).eval()  # thop leaves counters on the modules it profiles
    with torch.inference_mode():
        macs, _ = profile(m, inputs=(torch.zeros(1, 3, input_size, input_size),), verbose=False)
    return int(2 * macs)


def latency_ms(model: nn.Module, input_size: int, batch: int, repeats: int = 5) -> float:
    """Median ms per image on the CPU in inference mode, channels_last."""
    m = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, input_size, input_size).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        m(x)  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            m(x)
            times.append((time.perf_counter() - t) * 1000 / batch)
    return statistics.median(times)
