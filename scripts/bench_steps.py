"""Each step of the training data path and compute, measured one at a time ("keep what helps").

On LFW View 1 (real JPEGs), same model, batch and input size:
  data path alone (no model), images/s:
    per-image    DataLoader workers decode each JPEG (face crop + resize) and run the v2
                 train transform per image, every epoch (the face_trainer way)
    store        the decoded uint8 store (decoded once, memory-mapped) + batched crop/flip/normalise
  training step on in-memory batches, images/s:
    eager NCHW, eager channels_last, torch.compile (inductor) channels_last (+ its compile time)
  end to end (data + step), images/s: per-image DataLoader vs store.
Medians of repeats, all measured in one run. Prints a table and appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import trainer_for
from benchlog import append


class PerImage(torch.utils.data.Dataset):
    def __init__(self, paths, labels, pre):
        from facerec.data.transforms import train_transform

        self.paths, self.labels, self.pre, self.t = paths, labels, pre, train_transform(pre)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from facerec.data.decode import load_face

        return self.t(load_face(self.paths[i], self.pre)), int(self.labels[i])


def median_rate(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up (oneDNN kernel choice, worker start, compilation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_images / statistics.median(times)


def measure(model: str, size: int, batch: int, repeats: int, compile_: bool) -> list[tuple[str, float, str]]:
    from facerec.data.cache import load_store
    from facerec.data.transforms import BatchTransform

    t = trainer_for(model, size, batch, "cpu", "off")
    paths, labels = t.data.train.abspaths(), torch.as_tensor(t.data.train.labels)
    store = load_store(paths, t.pre, progress=False)
    transform = BatchTransform(t.pre, train=True)
    gen = torch.Generator().manual_seed(0)
    workers = os.cpu_count() or 1
    order = torch.randperm(len(paths), generator=gen)
    loader = torch.utils.data.DataLoader(PerImage([paths[i] for i in order], labels[order], t.pre), batch_size=batch,
                                         num_workers=workers, persistent_workers=True, prefetch_factor=2)
    it = iter(loader)

    def next_loader_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    pos = 0

    def next_store_batch():
        nonlocal pos
        idx = order[pos : pos + batch]
        pos = (pos + batch) % (len(order) - batch)
        return transform(store[idx], gen), labels[idx]

    x_mem, y_mem = next_store_batch()

    def step(x, y, model_fn):
        loss = t.loss(model_fn(x).float(), y)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        loss.item()

    eager = t.model
    cl = lambda x: x.contiguous(memory_format=torch.channels_last)  # noqa: E731
    rows = []
    rows.append(("data path: per-image DataLoader", median_rate(lambda: [next_loader_batch() for _ in range(4)], 4 * batch, repeats),
                 f"{workers} workers, JPEG decode + crop/resize (load_face) + v2 transform per image"))
    rows.append(("data path: decoded store + batched transform", median_rate(lambda: [next_store_batch() for _ in range(4)], 4 * batch, repeats),
                 "main process, no workers"))
    eager.to(memory_format=torch.contiguous_format)
    nchw = median_rate(lambda: step(x_mem.contiguous(), y_mem, eager), batch, repeats)
    rows.append(("step: eager, NCHW", nchw, ""))
    eager.to(memory_format=torch.channels_last)
    chl = median_rate(lambda: step(cl(x_mem), y_mem, eager), batch, repeats)
    rows.append(("step: eager, channels_last", chl, f"x{chl / nchw:.2f} vs NCHW"))
    if compile_:
        compiled = torch.compile(eager)
        t0 = time.perf_counter()
        step(cl(x_mem), y_mem, compiled)
        compile_s = time.perf_counter() - t0
        comp = median_rate(lambda: step(cl(x_mem), y_mem, compiled), batch, repeats)
        rows.append(("step: torch.compile, channels_last", comp, f"x{comp / chl:.2f} vs eager; compile {compile_s:.0f} s"))
    e2e_loader = median_rate(lambda: step(cl(next_loader_batch()[0]), y_mem, eager), batch, repeats)
    e2e_store = median_rate(lambda: step(cl(next_store_batch()[0]), y_mem, eager), batch, repeats)
    rows.append(("end to end: per-image DataLoader + eager step", e2e_loader, f"{e2e_loader / chl:.3f} of compute"))
    rows.append(("end to end: store + eager step", e2e_store, f"{e2e_store / chl:.3f} of compute"))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="resnet18,mobilefacenet")
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    args = p.parse_args(argv)
    lines = ["| model | step | images/s | note |", "|---|---|---|---|"]
    for m in args.models.split(","):
        for name, rate, note in measure(m, args.input_size, args.batch, args.repeats, args.compile):
            lines.append(f"| {m} | {name} | {rate:.1f} | {note} |")
            print(lines[-1], flush=True)
    append(f"Data path and step options, {args.input_size} px, batch {args.batch}, CPU (scripts/bench_steps.py)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
