"""BatchNorm over the global batch of a distributed run, on any device.

torch's SyncBatchNorm runs on GPUs only; `GlobalBatchNorm` does the same on the CPU (gloo) from
differentiable all-reduces (per-channel sums and counts, then sums of squared deviations from
the global mean: two passes, since E[x^2] - mean^2 loses digits where the mean is large against
the spread), so N ranks normalise with the statistics one process would compute for the whole
batch and update the running estimates identically (unbiased variance, as BatchNorm does).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        c = x.shape[1]
        shape = (1, c) + (1,) * (x.dim() - 2)
        n_local = torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)
        first = _all_reduce(torch.cat([xf.sum(dims), n_local]))
        n = first[-1]
        mean = first[:c] / n
        d = xf - mean.view(shape)
        var = _all_reduce((d * d).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_((mean.detach() * m).to(self.running_mean.dtype))
                self.running_var.mul_(1 - m).add_((var.detach() * (n / (n - 1)) * m).to(self.running_var.dtype))
        y = d * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    from facerec.trainer.distributed import all_reduce_with_grad

    return all_reduce_with_grad(t)


def convert(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm becomes torch's SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert(child, device))
    return out


__all__ = ["GlobalBatchNorm", "convert"]
