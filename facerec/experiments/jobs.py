"""Run many training jobs at once, one process each, dealt over devices.

A small model (ResNet18 at 64-112 px, a batch of 128) leaves most of a modern GPU idle, so a phase
of runs finishes sooner when several run side by side. Each job is its own process: its own CUDA
context, its own CPU threads (the cores divided between the jobs running), its own DataLoader
workers, and its own crash. Jobs start in queue order as slots free up; a job that needs another
starts only after that one succeeded (and is skipped if it failed). A job that runs out of GPU
memory goes back to the head of the queue and its device takes one job fewer from then on.
Ctrl-C or SIGTERM stops every job cleanly (each saves its last finished epoch), and the same
command run again resumes them.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facerec.errors import FacerecError

OOM_MARKERS = ("out of memory", "outofmemoryerror")
STOP_GRACE_S = 300  # how long stopped jobs get to save their epoch before they are killed


@dataclass
class Job:
    key: str
    # argv for a device string ("cpu", "cuda:0") and a DataLoader worker count (None: the job's own);
    # built when the job starts, so a job re-queued after running out of memory resumes.
    command: Callable[[str, int | None], list[str]]
    log: Path
    needs: str | None = None  # key of a job that must have succeeded first
    before_start: Callable[[], None] | None = None


@dataclass
class Outcome:
    key: str
    rc: int | None  # None: skipped (its `needs` failed) or never started (stopped first)
    seconds: float = 0.0
    device: str = ""
    note: str = ""


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    device: str
    t0: float
    log_fh: object = None


@dataclass
class Slots:
    """How many jobs each device runs at once, e.g. {"cuda:0": 4, "cuda:1": 4} or {"cpu": 2}."""

    capacity: dict[str, int]
    threads: int | None = None  # CPU threads per job (OMP_NUM_THREADS); None: cores / jobs
    workers: int | None = None  # DataLoader workers per job; None: the job's own setting
    how: str = ""  # how the numbers were chosen, for the log
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.workers is None and self.total > 1:  # streamed data: the cores' worth of workers, shared
            self.workers = max(1, cpu_cores() // self.total)

    @property
    def total(self) -> int:
        return sum(self.capacity.values())


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def parse_devices(spec: str | None) -> list[str]:
    """`cuda:0,cuda:1`, `cuda` (every visible GPU), `cpu`; default: every GPU, else the CPU."""
    import torch

    if spec in (None, "", "auto"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part == "cuda":
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if not n:
                raise FacerecError("--devices cuda: CUDA is not available on this machine (use cpu)")
            out += [f"cuda:{i}" for i in range(n)]
        elif part == "cpu":
            out.append("cpu")
        elif part.startswith("cuda:") and part[5:].isdigit():
            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if int(part[5:]) >= n:
                raise FacerecError(f"--devices {spec}: {part} does not exist here ({n} CUDA device(s) visible)")
            out.append(part)
        else:
            raise FacerecError(f"--devices: expected cpu, cuda or cuda:N separated by commas, got {part!r}")
    if len(set(out)) != len(out):
        raise FacerecError(f"--devices {spec}: a device is named twice")
    return out


def spread(n: int, devices: list[str]) -> dict[str, int]:
    """n slots dealt over the devices in order: 5 over two GPUs -> 3 + 2."""
    if n < 1:
        raise FacerecError(f"--jobs must be >= 1 or auto, got {n}")
    return {d: n // len(devices) + (i < n % len(devices)) for i, d in enumerate(devices)}


def threads_per_job(slots: Slots) -> int | None:
    """CPU threads per job: the cores divided between the jobs; None (torch's own default) for one job."""
    if slots.threads:
        return slots.threads
    return None if slots.total == 1 else max(1, cpu_cores() // slots.total)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the job gets SIGTERM (a clean stop) if the scheduler itself is killed, even by kill -9."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def job_env(device: str, threads: int | None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if device.startswith("cuda:"):
        # One visible GPU per job: its CUDA context (and any library that picks "the" GPU) stays on it.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        index = int(device[5:])
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[index] if visible else str(index)
    return env


def job_device(device: str) -> str:
    """The --device a job is given: its one visible GPU is cuda:0 inside it."""
    return "cuda:0" if device.startswith("cuda:") else device


def slot_workers(workers: int | None, own_workers: int | None) -> int | None:
    """The DataLoader workers a job is told to use: its slot's, unless the recipe (presets and overrides
    resolved) sets its own, which wins; None: leave the recipe's setting alone."""
    return workers if own_workers is None else None


def train_slot_flags(device: str, workers: int | None, own_workers: int | None) -> list[str]:
    """The `facerec train` flags that put a run on its slot: the slot's device ("config": the one the
    run's config names) and the slot's DataLoader workers (`slot_workers`)."""
    flags = [] if device == "config" else ["--device", device]
    workers = slot_workers(workers, own_workers)
    return flags + (["--workers", str(workers)] if workers is not None else [])


def ran_out_of_memory(log_path: Path) -> bool:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(log_path) - 8192))
            tail = fh.read().decode(errors="replace").lower()
    except OSError:
        return False
    return any(m in tail for m in OOM_MARKERS)


class Scheduler:
    def __init__(self, slots: Slots, *, log=print, on_done: Callable[[Job, Outcome], None] | None = None,
                 progress: bool = False, poll_s: float = 0.2):
        self.slots = slots
        self.capacity = dict(slots.capacity)
        self.log = log
        self.on_done = on_done or (lambda job, outcome: None)
        self.progress = progress
        self.poll_s = poll_s
        self.stop_signal: int | None = None

    def _free_device(self, running: list[_Running]) -> str | None:
        load = collections.Counter(r.device for r in running)
        free = [d for d in self.capacity if load[d] < self.capacity[d]]
        return min(free, key=lambda d: load[d] / self.capacity[d]) if free else None

    def _start(self, job: Job, device: str, threads: int) -> _Running:
        if job.before_start is not None:
            job.before_start()
        cmd = job.command(job_device(device), self.slots.workers)
        job.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(job.log, "a")  # closed when the job ends
        fh.write(f"$ {' '.join(cmd)}\n" if threads is None else f"$ {' '.join(cmd)}  # {threads} thread(s)\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=job_env(device, threads), start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        return _Running(job, proc, device, time.time(), fh)

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Every job's outcome in queue order. Raises Interrupted after a stop signal, once every
        started job has stopped."""
        from tqdm import tqdm

        from facerec.trainer.state import Interrupted

        keys = [j.key for j in jobs]
        if len(set(keys)) != len(keys):
            raise ValueError("job keys must be unique")
        queue = collections.deque(jobs)
        running: list[_Running] = []
        outcomes: dict[str, Outcome] = {}
        threads = threads_per_job(self.slots)
        previous = self._catch_signals()
        bar = tqdm(total=len(jobs), unit="run", desc="jobs", disable=not self.progress)
        stop_sent_at = None
        try:
            while queue or running:
                if self.stop_signal is None:
                    self._launch(queue, running, outcomes, threads, bar)
                elif stop_sent_at is None:
                    stop_sent_at = time.time()
                    for r in running:
                        _signal(r.proc, signal.SIGTERM)
                    if running:
                        self.log(f"stopping: {len(running)} running job(s) save their last finished epoch ...")
                elif time.time() - stop_sent_at > STOP_GRACE_S:
                    for r in running:
                        _signal(r.proc, signal.SIGKILL)
                if not running and (self.stop_signal is not None or not queue):
                    break
                if not running and queue:  # only jobs whose `needs` can never be met are left
                    continue
                time.sleep(self.poll_s)
                for r in [r for r in running if r.proc.poll() is not None]:
                    running.remove(r)
                    self._finished(r, queue, running, outcomes, bar)
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.stop_signal is not None:
            done = sum(1 for o in outcomes.values() if o.rc == 0)
            raise Interrupted(f"stopped by signal {self.stop_signal}: {done} of {len(jobs)} job(s) finished; the "
                              "same command resumes the others")
        return [outcomes[k] for k in keys]

    def _launch(self, queue, running, outcomes, threads, bar) -> None:
        blocked = collections.deque()
        while queue:
            job = queue.popleft()
            need = outcomes.get(job.needs) if job.needs else None
            if job.needs and need is None:
                if job.needs not in {j.key for j in queue} | {r.job.key for r in running} | {j.key for j in blocked}:
                    raise ValueError(f"job {job.key} needs {job.needs}, which is not queued")
                blocked.append(job)  # waits for the job it needs
                continue
            if need is not None and need.rc != 0:
                out = Outcome(job.key, None, note=f"skipped: {job.needs} did not finish")
                outcomes[job.key] = out
                self.on_done(job, out)
                bar.update()
                continue
            device = self._free_device(running)
            if device is None:
                blocked.append(job)
                blocked.extend(queue)
                queue.clear()
                break
            running.append(self._start(job, device, threads))
        queue.extend(blocked)

    def _finished(self, r: _Running, queue, running, outcomes, bar) -> None:
        r.log_fh.close()
        rc = r.proc.returncode
        seconds = time.time() - r.t0
        if rc != 0 and self.stop_signal is None and r.device != "cpu" and ran_out_of_memory(r.job.log):
            alongside = 1 + sum(1 for o in running if o.device == r.device)
            if alongside > 1:
                self.capacity[r.device] = max(1, min(self.capacity[r.device], alongside) - 1)
                self.log(f"{r.job.key}: out of GPU memory on {r.device} beside {alongside - 1} other job(s): "
                         f"re-queued; {r.device} runs at most {self.capacity[r.device]} job(s) at once from now")
                queue.appendleft(r.job)
                return
        out = Outcome(r.job.key, rc, seconds, r.device)
        if rc != 0 and self.stop_signal is not None:
            out.note = "stopped"
        outcomes[r.job.key] = out
        self.on_done(r.job, out)
        bar.update()

    def _catch_signals(self) -> dict:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self.stop_signal is None:
                self.stop_signal = signum

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
