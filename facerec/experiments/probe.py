"""`--jobs auto`: how many runs fit side by side, from one measured training step.

On a GPU, a probe process (its own CUDA context, gone when it exits) builds each distinct
model/loss/batch of the queue, runs two real training steps (same autocast, channels_last,
optimiser) on a batch of the configured size and reads the allocator's peak. A job then needs
that peak plus its own CUDA context (CONTEXT_MB); the device takes as many as fit in HEADROOM of
the memory free before the probe, never more than the CPU cores can feed or host RAM can hold
(each job keeps its own decoded-image store). On the CPU, jobs run one thread each, one per core:
two 1-thread jobs train more images per second than one 2-thread job (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from facerec.experiments.jobs import Slots, cpu_cores, spread

CONTEXT_MB = 600  # CUDA context + kernels of one process, beyond what torch's allocator reports
HEADROOM = 0.9  # of the free GPU memory that jobs may fill
PROCESS_RAM_MB = 1500  # one training process without its image store (torch, CUDA libraries, workers)


def signature(cfg) -> tuple:
    """What decides a job's GPU memory: two configs with the same signature need the same."""
    return (cfg.model, json.dumps(cfg.model_options, sort_keys=True), cfg.loss,
            json.dumps(cfg.loss_options, sort_keys=True), cfg.embedding_dim, cfg.input_size, cfg.batch_classes,
            cfg.per_class, cfg.amp, cfg.compile, cfg.train, cfg.root, cfg.max_classes, cfg.data_root)


def num_classes(cfg) -> int:
    from facerec.data.lists import load_train
    from facerec.trainer.prepare import default_lfw_lists

    if cfg.train is None:
        default_lfw_lists(cfg)
    n = load_train(cfg.train, cfg.root, check_files=False).num_classes
    return min(n, cfg.max_classes) if cfg.max_classes else n


def step_peak_mb(cfg, device: str) -> float | None:
    """Peak memory (MB) the allocator reserved over two training steps of `cfg` on `device`;
    None on a device without a memory counter (the CPU). Uses random faces: memory does not
    depend on pixel values."""
    import torch

    from facerec import losses, models
    from facerec.trainer.optim import build_optimizer
    from facerec.trainer.prepare import model_kwargs
    from facerec.util.device import amp_dtype

    dev = torch.device(device)
    n_classes = num_classes(cfg)
    loss_kw = {"embedding_dim": cfg.embedding_dim, "num_classes": n_classes, **cfg.loss_options}
    if cfg.loss_weights is not None:
        loss_kw["weights"] = tuple(cfg.loss_weights)
    loss = losses.create(cfg.loss, **loss_kw).to(dev)
    k = cfg.per_class or max(1, loss.min_per_class)
    model = models.create(cfg.model, **model_kwargs(cfg)).to(dev, memory_format=torch.channels_last)
    net = model if cfg.compile == "off" else torch.compile(model, backend=cfg.compile)
    opt = build_optimizer(cfg, model, loss)
    amp = amp_dtype(cfg.amp)
    g = torch.Generator().manual_seed(0)
    b = cfg.batch_classes * k
    x = torch.randn(b, 3, cfg.input_size, cfg.input_size, generator=g).to(dev).contiguous(
        memory_format=torch.channels_last)
    y = torch.arange(cfg.batch_classes).repeat_interleave(k).remainder(n_classes).to(dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(2):  # the second step holds the optimiser state too
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            out = loss(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_reserved(dev) / 2**20
    del model, loss, opt, net, x, y, out
    torch.cuda.empty_cache()
    return peak


def _probe_main(argv: list[str]) -> int:
    """python -m facerec.experiments.probe DEVICE CONFIG.yaml ... -> one JSON line."""
    import torch

    from facerec import config as config_mod

    device, paths = argv[0], argv[1:]
    free = total = None
    if device.startswith("cuda"):
        torch.cuda.init()
        free, total = (v / 2**20 for v in torch.cuda.mem_get_info(torch.device(device)))
    peaks = [step_peak_mb(config_mod.load([p], {}), device) for p in paths]
    print(json.dumps({"free_mb": free, "total_mb": total, "peak_mb": peaks}))
    return 0


def store_mb(cfg) -> float:
    """Host RAM a job's decoded-image store takes (0 when it streams from the files)."""
    from facerec.data import cache as store_cache
    from facerec.data.lists import load_train
    from facerec.trainer.prepare import default_lfw_lists, preprocess_of

    if cfg.train is None:
        default_lfw_lists(cfg)
    n = len(load_train(cfg.train, cfg.root, check_files=False).paths)
    mode, _ = store_cache.choose(cfg.cache, n, preprocess_of(cfg), cfg.cache_budget_mb)
    return store_cache.store_bytes(n, preprocess_of(cfg)) / 2**20 if mode == "ram" else 0.0


def available_ram_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def fit_count(free_mb: float, peak_mb: float) -> int:
    """Jobs that fit on a GPU with `free_mb` free (measured while the probe held its own context)."""
    return max(1, int((free_mb + CONTEXT_MB) * HEADROOM // (peak_mb + CONTEXT_MB)))


def auto_slots(cfgs: list, devices: list[str], n_jobs: int, *, threads: int | None = None) -> Slots:
    """Slots for `--jobs auto`; `how` says what was measured and why the numbers are what they are."""
    distinct = list({signature(c): c for c in cfgs}.values())
    ram = available_ram_mb()
    ram_cap = max(1, int(ram * 0.8 // (PROCESS_RAM_MB + max((store_mb(c) for c in distinct), default=0.0))))
    if devices == ["cpu"]:
        per_core = max(1, cpu_cores() // (threads or 1))
        n = max(1, min(per_core, n_jobs, ram_cap))
        return Slots({"cpu": n}, threads=threads or 1,
                     how=f"jobs auto: {n} job(s) on the CPU, {threads or 1} thread(s) each ({cpu_cores()} cores, "
                         f"room in RAM for {ram_cap}, {n_jobs} queued)")
    if "cpu" in devices:
        from facerec.errors import FacerecError

        raise FacerecError("--jobs auto: give either cpu or CUDA devices in --devices, not both")
    capacity, parts = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        from facerec import config as config_mod

        paths = []
        for i, c in enumerate(distinct):
            p = Path(tmp) / f"probe{i}.yaml"
            p.write_text(config_mod.dump(c))
            paths.append(str(p))
        for d in devices:
            env = {"CUDA_VISIBLE_DEVICES": d[5:]} if d.startswith("cuda:") else {}
            import os

            out = subprocess.run([sys.executable, "-m", "facerec.experiments.probe", "cuda:0", *paths],
                                 capture_output=True, text=True, env={**os.environ, **env})
            if out.returncode != 0:
                from facerec.errors import FacerecError

                tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
                raise FacerecError(f"--jobs auto: the memory probe on {d} failed: {tail[0]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            peak = max(r["peak_mb"])
            capacity[d] = fit_count(r["free_mb"], peak)
            parts.append(f"{d}: {r['free_mb']:.0f} of {r['total_mb']:.0f} MB free, a job's training step peaked "
                         f"at {peak:.0f} MB (+{CONTEXT_MB} MB CUDA context) -> {capacity[d]}")
    cap_total = min(n_jobs, cpu_cores(), ram_cap)
    while sum(capacity.values()) > cap_total and max(capacity.values()) > 1:
        d = max(capacity, key=capacity.get)
        capacity[d] -= 1
    how = (f"jobs auto: {sum(capacity.values())} at once ({'; '.join(parts)}; at most {cpu_cores()} for the CPU "
           f"cores, {ram_cap} for host RAM, {n_jobs} queued; {len(distinct)} distinct config(s) probed)")
    return Slots(capacity, threads=threads, how=how)


def slots_for(jobs_spec: str, devices_spec: str | None, cfgs: list, n_jobs: int,
              threads: int | None = None) -> Slots | None:
    """`--jobs N|auto` and `--devices` -> Slots; None for the plain one-at-a-time run on each
    config's own device (`--jobs 1` without --devices)."""
    from facerec.errors import FacerecError
    from facerec.experiments.jobs import parse_devices

    if threads is not None and threads < 1:
        raise FacerecError(f"--threads-per-job must be >= 1, got {threads}")
    if jobs_spec in (None, "1") and devices_spec is None and threads is None:
        return None
    devices = parse_devices(devices_spec)
    if jobs_spec == "auto":
        return auto_slots(cfgs, devices, max(1, n_jobs), threads=threads)
    try:
        n = int(jobs_spec)
    except ValueError:
        raise FacerecError(f"--jobs expects a whole number or auto, got {jobs_spec!r}") from None
    return Slots(spread(n, devices), threads=threads,
                 how=f"jobs: {n} at once on {', '.join(devices)}" if n > 1 else "")


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
