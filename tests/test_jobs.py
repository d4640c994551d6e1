"""The job scheduler (facerec/experiments/jobs.py): concurrency, dealing over devices, failures,
needs, out-of-memory re-queue, stop signals; a phase folder's lock on real ORL faces (--jobs end to
end, killed and resumed, is in test_experiments.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from facerec.errors import FacerecError
from facerec.experiments.jobs import Job, Scheduler, Slots, parse_devices, spread, train_slot_flags
from facerec.experiments.probe import fit_count, slots_for

# A stand-in job: records its start/end time, device and threads, sleeps, exits with a code.
FAKE = textwrap.dedent("""
    import json, os, sys, time
    out, key, seconds, rc = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    t0 = time.time()
    time.sleep(seconds)
    with open(os.path.join(out, key + ".json"), "w") as fh:
        json.dump({"t0": t0, "t1": time.time(), "argv": sys.argv[5:],
                   "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": os.environ.get("OMP_NUM_THREADS")}, fh)
    sys.exit(rc)
""")


def fake_job(tmp: Path, key: str, seconds: float = 0.3, rc: int = 0, needs: str | None = None) -> Job:
    script = tmp / "fake.py"
    script.write_text(FAKE)

    def build(device, workers):
        return [sys.executable, str(script), str(tmp), key, str(seconds), str(rc), "--device", device,
                "--workers", str(workers)]

    return Job(key, build, tmp / "logs" / f"{key}.txt", needs=needs)


def records(tmp: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in tmp.glob("*.json")}


def max_overlap(recs: dict) -> int:
    events = sorted([(r["t0"], 1) for r in recs.values()] + [(r["t1"], -1) for r in recs.values()])
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return peak


def test_at_most_n_at_once_in_queue_order_and_a_failure_does_not_stop_the_rest(tmp_path):
    jobs = [fake_job(tmp_path, f"j{i}", seconds=0.6, rc=3 if i == 1 else 0) for i in range(5)]
    seen = []
    outcomes = Scheduler(Slots({"cpu": 2}, threads=1, workers=1), log=lambda *_: None, on_done=lambda j, o: seen.append(o.key),
                         poll_s=0.05).run(jobs)
    assert [o.rc for o in outcomes] == [0, 3, 0, 0, 0]
    recs = records(tmp_path)
    assert len(recs) == 5 and max_overlap(recs) == 2
    starts = sorted(recs, key=lambda k: recs[k]["t0"])
    assert starts[:2] == ["j0", "j1"] or starts[:2] == ["j1", "j0"]  # queue order
    assert sorted(seen) == [f"j{i}" for i in range(5)]
    assert all(r["threads"] == "1" and r["argv"][-1] == "1" for r in recs.values())


def test_devices_are_dealt_as_said(tmp_path):
    jobs = [fake_job(tmp_path, f"j{i}", seconds=0.8) for i in range(3)]
    Scheduler(Slots({"cuda:0": 2, "cuda:1": 1}, threads=3), log=lambda *_: None, poll_s=0.05).run(jobs)
    recs = records(tmp_path)
    assert sorted(r["visible"] for r in recs.values()) == ["0", "0", "1"]  # one visible GPU per job
    assert all(r["argv"][1] == "cuda:0" and r["threads"] == "3" for r in recs.values())  # its GPU is cuda:0 inside
    assert spread(5, ["cuda:0", "cuda:1"]) == {"cuda:0": 3, "cuda:1": 2}


def test_a_job_waits_for_what_it_needs_and_is_skipped_when_that_failed(tmp_path):
    jobs = [fake_job(tmp_path, "pre", seconds=0.5), fake_job(tmp_path, "ft", needs="pre"),
            fake_job(tmp_path, "bad", rc=1), fake_job(tmp_path, "after_bad", needs="bad")]
    out = Scheduler(Slots({"cpu": 4}), log=lambda *_: None, poll_s=0.05).run(jobs)
    assert [o.rc for o in out] == [0, 0, 1, None] and "skipped" in out[3].note
    recs = records(tmp_path)
    assert recs["ft"]["t0"] >= recs["pre"]["t1"] and "after_bad" not in recs


def test_out_of_memory_requeues_with_fewer_jobs(tmp_path):
    script = tmp_path / "oom.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        marker = sys.argv[1]
        if sys.argv[2] == "greedy" and not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(0.2)
            print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
            sys.exit(1)
        time.sleep(0.5)
    """))
    jobs = [Job(k, lambda d, w, k=k: [sys.executable, str(script), str(tmp_path / "m"), k], tmp_path / f"{k}.txt")
            for k in ("greedy", "calm", "third")]
    said = []
    sched = Scheduler(Slots({"cuda:0": 3}), log=said.append, poll_s=0.05)
    out = sched.run(jobs)
    assert [o.rc for o in out] == [0, 0, 0]
    assert sched.capacity["cuda:0"] == 2 and any("out of GPU memory" in s and "re-queued" in s for s in said)


def test_stop_signal_stops_every_job_and_says_how_to_resume(tmp_path):
    # The scheduler in a process of its own, so the test can signal it as Ctrl-C would.
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent("""
        import signal, sys, time
        def stop(sig, frame):
            open(sys.argv[1], "w").write("clean stop")
            sys.exit(130)
        signal.signal(signal.SIGTERM, stop)
        time.sleep(60)
    """))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from facerec.experiments.jobs import Job, Scheduler, Slots
        from facerec.errors import FacerecError
        tmp = Path({str(tmp_path)!r})
        jobs = [Job(f"j{{i}}", lambda d, w, i=i: [sys.executable, {str(child)!r}, str(tmp / f"stopped{{i}}")],
                    tmp / f"j{{i}}.txt") for i in range(3)]
        try:
            Scheduler(Slots({{"cpu": 2}}), poll_s=0.05).run(jobs)
        except FacerecError as exc:
            print(exc)
            sys.exit(exc.exit_code)
    """))
    p = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while len(list(tmp_path.glob("j*.txt"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # both jobs have installed their handlers
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 130 and "0 of 3 job(s) finished" in out and "resumes" in out
    assert sorted(f.name for f in tmp_path.glob("stopped*")) == ["stopped0", "stopped1"]  # the third never started


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_jobs_stop_cleanly_when_the_scheduler_is_killed(tmp_path):
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda s, f: (open(sys.argv[1], "w").write("stop"), sys.exit(0)))
        open(sys.argv[1] + ".started", "w").close()
        time.sleep(60)
    """))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from facerec.experiments.jobs import Job, Scheduler, Slots
        tmp = Path({str(tmp_path)!r})
        Scheduler(Slots({{"cpu": 1}})).run([Job("j", lambda d, w: [sys.executable, {str(child)!r}, str(tmp / "s")],
                                                   tmp / "j.txt")])
    """))
    p = subprocess.Popen([sys.executable, str(driver)])
    deadline = time.time() + 30
    while not (tmp_path / "s.started").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    p.kill()
    p.wait()
    deadline = time.time() + 10
    stopped = tmp_path / "s"
    while not (stopped.exists() and stopped.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    assert stopped.read_text() == "stop"


def test_job_counts_and_devices_are_checked():
    assert slots_for("1", None, [], 3) is None  # the plain path: one at a time, each run's own device
    assert slots_for("2", "cpu", [], 3).capacity == {"cpu": 2}
    for bad in ("two", "0", "-1"):
        with pytest.raises(FacerecError, match="--jobs"):
            slots_for(bad, "cpu", [], 3)
    with pytest.raises(FacerecError, match="--devices"):
        parse_devices("gpu0")
    with pytest.raises(FacerecError, match="named twice"):
        parse_devices("cpu,cpu")
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(FacerecError, match="cuda:0 does not exist"):
                parse_devices("cuda:0")


def test_auto_count_from_measured_memory():
    # 80 GB free with the probe's own context, a step peaking at 3.4 GB, 600 MB context per job:
    # (80000 + 600) * 0.9 // (3400 + 600) = 18 jobs.
    assert fit_count(80_000, 3_400) == 18
    assert fit_count(1_000, 3_400) == 1  # never zero: one job always runs (and may still fail alone)
    s = slots_for("auto", "cpu", [], 5)
    assert s.capacity == {"cpu": min(5, os.cpu_count() or 1)} and s.threads == 1 and "jobs auto" in s.how


# --- end to end on ORL ---------------------------------------------------------------------------

TINY = ["--set", "input_size=32", "--set", "embedding_dim=64", "--set", "max_steps=4", "--set", "workers=0"]


def _phase(out: Path, data_root: Path, *extra: str) -> list[str]:
    return ["experiment", "run", "loss", "--data", "orl", "--data-root", str(data_root), "--quick", "--seeds", "1,2",
            "--only", "arcface_s30_m03", "--out", str(out), "--no-report", *TINY, *extra]


def test_a_phase_folder_runs_one_scheduler_at_a_time(data_root_orl, tmp_path, monkeypatch, capsys):
    from facerec.cli import main
    from facerec.util import locks

    monkeypatch.chdir(tmp_path)
    (tmp_path / "res").mkdir()
    with locks.lock(tmp_path / "res", "results folder"):
        # This process holds it; another process is refused, naming the holder.
        r = subprocess.run([sys.executable, "-m", "facerec", *_phase(tmp_path / "res", data_root_orl)],
                           capture_output=True, text=True, env={**os.environ, "FACEREC_DATA": str(data_root_orl)})
    assert r.returncode == 1 and "in use by pid" in r.stderr and str(os.getpid()) in r.stderr
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "res").rglob("log.txt"))  # nothing started
    assert main(_phase(tmp_path / "res", data_root_orl, "--dry-run")) == 0


def test_probe_runs_real_steps_and_reports_no_peak_on_the_cpu(orl_dir, tmp_path, monkeypatch):
    import json
    import subprocess
    import sys

    from facerec import config
    from facerec.experiments.probe import step_peak_mb

    train = tmp_path / "train.txt"
    train.write_text(f"# root: {orl_dir}\n" + "".join(f"s{p} s{p}/{i}.pgm\n" for p in range(1, 6) for i in range(1, 5)))
    cfg = config.load([], {"model": "resnet18", "input_size": 32, "embedding_dim": 32, "loss": "arcface",
                           "batch_classes": 4, "per_class": 2, "train": str(train)})
    from facerec.trainer import optim

    steps, build = [], optim.build_optimizer

    def counting(*a, **kw):
        opt = build(*a, **kw)
        step = opt.step
        opt.step = lambda *sa, **skw: (steps.append(1), step(*sa, **skw))[1]
        return opt

    monkeypatch.setattr(optim, "build_optimizer", counting)
    assert step_peak_mb(cfg, "cpu") is None  # the CPU has no allocator peak to read
    assert len(steps) == 2  # two real optimiser steps (the second holds the optimiser state)
    path = tmp_path / "cfg.yaml"
    path.write_text(config.dump(cfg))
    out = subprocess.run([sys.executable, "-m", "facerec.experiments.probe", "cpu", str(path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"free_mb": None, "total_mb": None, "peak_mb": [None]}


def test_train_slot_flags_give_the_slot_unless_the_recipe_sets_workers():
    # the phase runner's and the threshold probe's rule: the slot's device always, its DataLoader
    # workers only where the recipe leaves them unset; "config" keeps the run's own device
    assert train_slot_flags("cpu", 1, None) == ["--device", "cpu", "--workers", "1"]
    assert train_slot_flags("cuda:0", 2, 4) == ["--device", "cuda:0"]
    assert train_slot_flags("cpu", None, None) == ["--device", "cpu"]
    assert train_slot_flags("config", 3, None) == ["--workers", "3"]
    assert train_slot_flags("config", None, None) == []
