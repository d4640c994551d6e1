"""What each augmentation level costs per training batch, against the step it feeds.

Real LFW faces (decoded once at the recipe's geometry), one uint8 batch augmented by
`BatchTransform` per level (random crop + mirror + the level's per-image ops), medians of
repeats, all in one run; beside it one ResNet18 training step (forward + backward, ArcFace) on
the same batch, so a level's cost reads as a fraction of a step. Also the per-image reseeding the
per-image ops need: torch.manual_seed (every generator) against the CPU generator alone.
Prints a table and appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlog import append, median_seconds


def faces(root: Path, n: int, pre) -> torch.Tensor:
    from facerec.data.decode import load_faces

    paths = sorted((root / "lfw" / "images_deepfunneled").glob("*/*.jpg"))[:n]
    if len(paths) < n:
        raise SystemExit(f"{root}/lfw/images_deepfunneled: expected at least {n} images, found {len(paths)}")
    return load_faces([str(p) for p in paths], pre)


def step_seconds(x: torch.Tensor, pre, repeats: int) -> float:
    from facerec import config, losses, models
    from facerec.data.transforms import BatchTransform
    from facerec.trainer.prepare import model_kwargs

    cfg = config.load(["demo_e20_emb512_flat_c05"], {})
    model = models.create(cfg.model, **model_kwargs(cfg)).to(memory_format=torch.channels_last)  # as the trainer
    loss = losses.create(cfg.loss, embedding_dim=cfg.embedding_dim, num_classes=1000, **cfg.loss_options)
    opt = torch.optim.AdamW([*model.parameters(), *loss.parameters()], lr=1e-3)
    inputs = BatchTransform(pre, train=True)(x, torch.Generator().manual_seed(0))
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(len(x)) % 1000

    def step():
        opt.zero_grad(set_to_none=True)
        loss(model(inputs), labels).backward()
        opt.step()

    return median_seconds(step, repeats)


def main() -> None:
    from facerec.data.augment import LEVELS
    from facerec.data.root import resolve
    from facerec.data.transforms import BatchTransform, Preprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input-size", type=int, default=64,
                    help="network input in pixels (default 64, the CPU recipes); the step is the "
                         "demo_e20_emb512_flat_c05 model at this size")
    ap.add_argument("--face-crop", type=float, default=0.5, help="centred face crop before resizing (default 0.5)")
    ap.add_argument("--batch", type=int, default=128, help="images per batch (default 128: 64 people x 2)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per figure, median kept (default 7)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one data worker's share)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pre = Preprocess(input_size=args.input_size, face_crop=args.face_crop)
    x = faces(resolve(None, "lfw"), args.batch, pre)

    seeds = list(range(args.batch))

    def reseed(fn):
        def run():
            with torch.random.fork_rng(devices=[]):
                for s in seeds:
                    fn(s)
        return run

    all_gens = median_seconds(reseed(torch.manual_seed), args.repeats)
    cpu_gen = median_seconds(reseed(torch.default_generator.manual_seed), args.repeats)
    step = step_seconds(x, pre, max(3, args.repeats // 2))
    rows = []
    for level in LEVELS:
        t = BatchTransform(pre, train=True, augment=level)
        gen = torch.Generator().manual_seed(0)
        sec = median_seconds(lambda t=t, gen=gen: t(x, gen), args.repeats)
        rows.append(f"| {level} | {sec * 1e3:.1f} | {args.batch / sec:,.0f} | {sec / step:.1%} |")
    lines = [f"- LFW faces at face crop {args.face_crop}, {args.input_size} px input, batches of {args.batch}, "
             f"{args.threads} thread(s); medians of {args.repeats} repeats",
             f"- one training step (ResNet18 flatten head, 512-d, ArcFace, AdamW; forward + backward): "
             f"{step * 1e3:.0f} ms",
             f"- reseeding {args.batch} images for the per-image ops: torch.manual_seed {all_gens * 1e3:.1f} ms, "
             f"the CPU generator alone {cpu_gen * 1e3:.2f} ms ({all_gens / cpu_gen:.0f}x)", "",
             "| level | ms a batch | img/s | of a step |", "|---|---:|---:|---:|", *rows]
    print("\n".join(lines))
    append("Augmentation levels: cost per batch", lines)


if __name__ == "__main__":
    main()
