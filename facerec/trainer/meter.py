"""One epoch's running totals: the image-weighted loss and loss statistics, the largest embedding
norm (kept on the device: no extra sync a step), and the timing behind images/s."""

from __future__ import annotations

import time

import torch


class EpochMeter:
    def __init__(self):
        self.t0 = time.perf_counter()
        self.loss, self.n = 0.0, 0
        self.stats: dict[str, float] = {}
        self.emb_peak: torch.Tensor | None = None
        self.t_after_first = self.n_first = None

    def add(self, loss: float, stats: dict, n: int) -> None:
        """One step: its loss and stats, weighted by the images of the global batch."""
        self.loss += loss * n
        self.n += n
        for k, v in stats.items():
            self.stats[k] = self.stats.get(k, 0.0) + float(v) * n
        if self.t_after_first is None:
            self.t_after_first, self.n_first = time.perf_counter(), n

    def peak(self, emb: torch.Tensor) -> None:
        p = emb.detach().float().norm(dim=1).max()
        self.emb_peak = p if self.emb_peak is None else torch.maximum(self.emb_peak, p)

    def rate(self) -> float:
        return self.n / max(1e-9, time.perf_counter() - self.t0)

    def row(self, epoch: int, lr: float, steps: int) -> dict:
        seconds = time.perf_counter() - self.t0
        row = {"epoch": epoch, "loss": self.loss / max(1, self.n), "lr": lr, "seconds": seconds,
               "images_per_s": self.n / seconds}
        if steps > 1:  # without the first step's warm-up (allocator, workers starting): the steady rate
            row["steady_images_per_s"] = (self.n - self.n_first) / (time.perf_counter() - self.t_after_first)
        row.update({f"train_{k}": v / max(1, self.n) for k, v in self.stats.items()})
        return row
