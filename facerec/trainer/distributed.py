"""Several processes, one run: `torchrun --nproc_per_node=N -m facerec train ...`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and the rendezvous); `init` joins the group with
nccl on CUDA and gloo on CPU, with a timeout so a lost rank ends the job instead of hanging it.
Without those variables everything here is a no-op and a run is one plain process.

One global batch: the P x K batch one process would take is dealt across the ranks, each taking
a contiguous run of P/N identity groups (K images each). Random crops and flips are drawn for the
whole global batch and sliced, so N ranks see exactly the images and augmentation one process
would, and every image is still used once per epoch.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from facerec.errors import FacerecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = World()


def from_env() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: torch.device, timeout_s: float) -> None:
    if not world.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), rank=world.rank,
                            world_size=world.size)
    log.debug("rank %d/%d joined (%s)", world.rank, world.size, backend)


def share(batch: np.ndarray, k: int, world: World) -> tuple[np.ndarray, int, int]:
    """This rank's slice of a global batch of `k`-image identity groups: (indices, offset, total).
    Groups are dealt as evenly as they go (the first `groups % N` ranks take one more)."""
    total = len(batch)
    if not world.enabled:
        return batch, 0, total
    groups = total // k
    if groups < world.size:
        raise FacerecError(f"a batch of {groups} identity groups cannot be dealt to {world.size} ranks")
    lo, hi = split_range(groups, world)
    return batch[lo * k : hi * k], lo * k, total


def share_counts(total: int, k: int, world: World) -> list[int]:
    """Every rank's image count of a global batch of `total` images (no communication needed)."""
    groups = total // k
    return [(hi - lo) * k for lo, hi in (split_range(groups, World(r, world.size)) for r in range(world.size))]


def all_sum(values, device) -> list[float]:
    """Sum small float statistics over the ranks (float64, one collective)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def gather_rows(t: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Concatenate every rank's rows (rank order); `counts` are the ranks' row counts."""
    if not dist.is_initialized():
        return t
    width = max(counts)
    padded = t.new_zeros((width, *t.shape[1:]))
    padded[: len(t)] = t
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, counts)])


def split_range(n: int, world: World) -> tuple[int, int]:
    """This rank's contiguous share [lo, hi) of n items (the first n % N ranks take one more)."""
    base, extra = divmod(n, world.size)
    lo = world.rank * base + min(world.rank, extra)
    return lo, lo + base + (world.rank < extra)


def broadcast(obj, world: World):
    """Rank 0's value of a picklable object, on every rank."""
    if not world.enabled:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(module: torch.nn.Module, world: World) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    if world.enabled:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()


def gather_with_grad(t: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """All ranks' rows, concatenated, differentiable: the backward pass sums every rank's gradient
    for this rank's rows (torch.distributed.nn's all_gather), so a loss computed identically on
    every rank over the whole global batch back-propagates N times its gradient to each share;
    DDP's average over the N ranks brings the parameters' gradient back to the global one."""
    if not dist.is_initialized():
        return t
    width = max(counts)
    padded = torch.nn.functional.pad(t, (0, 0) * (t.dim() - 1) + (0, width - len(t)))
    with _quiet():
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, counts)])


def all_reduce_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Sum over the ranks, differentiable (its backward sums the ranks' gradients)."""
    if not dist.is_initialized():
        return t
    with _quiet():
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(t)


@contextlib.contextmanager
def _quiet():
    """torch 2.14 points torch.distributed.nn's collectives to a private successor; these still work."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def counts_of(n: int, world: World, device) -> list[int]:
    """Every rank's row count (one small collective)."""
    if not world.enabled:
        return [n]
    t = torch.zeros(world.size, dtype=torch.int64, device=device)
    t[world.rank] = n
    dist.all_reduce(t)
    return t.tolist()
