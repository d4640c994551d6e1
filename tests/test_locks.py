"""One writer per run directory: two trainings racing for one folder (exactly one runs), a lock
held by another process (refused, naming it, nothing written), kill -9 leaving no stale lock,
and default run names that stay unique for runs started in the same second."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from facerec.errors import DataError
from facerec.util import locks

TINY = ["--input-size", "32", "--embedding-dim", "32", "--max-steps", "3", "--epochs", "1", "--workers", "0",
        "--batch-classes", "8", "--no-progress", "--device", "cpu"]


def _train(orl_dir, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facerec", "train", "--train", str(orl_dir), "--model",
                             "resnet18_w050", *TINY, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_trainings_into_one_run_dir_exactly_one_runs(orl_dir, tmp_path):
    run = tmp_path / "R_same"
    procs = [_train(orl_dir, "--run-dir", str(run)) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    ok = [r for r in results if r[0] == 0]
    refused = [r for r in results if r[0] != 0]
    assert len(ok) == 1 and len(refused) == 1, [r[2][-300:] for r in results]
    err = refused[0][2]
    # Refused while the other ran (lock), or after it finished (the folder then holds a run).
    assert "in use by pid" in err or "already holds a run" in err
    assert "Traceback" not in err
    assert (run / "summary.json").is_file() and not (run / ".lock").read_text() == ""


def test_a_held_run_dir_is_refused_naming_the_holder_and_nothing_is_written(orl_dir, tmp_path):
    run = tmp_path / "held"
    run.mkdir()
    with locks.lock(run):
        p = _train(orl_dir, "--run-dir", str(run))
        rc, _, err = p.wait(timeout=300), *p.communicate()
    assert rc == 1 and f"pid {os.getpid()}" in err and str(run) in err and "Traceback" not in err
    assert sorted(f.name for f in run.iterdir()) == [".lock"]  # no config.yaml, no env.json


def test_kill_9_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    code = f"from facerec import locks; import time; locks.lock({str(folder)!r}); print('held', flush=True); time.sleep(60)"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    assert locks.is_locked(folder)
    with pytest.raises(DataError, match=r"in use by pid \d+"):
        locks.lock(folder)
    p.kill()
    p.wait()
    assert not locks.is_locked(folder)
    with locks.lock(folder):  # the kernel dropped the dead process's lock
        pass


def test_runs_started_in_the_same_second_get_folders_of_their_own(orl_dir, tmp_path):
    procs = [_train(orl_dir, "--out", str(tmp_path / "runs"), "--seed", str(s), "--tag", "same") for s in (1, 2)]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _, _ in outs), [e[-300:] for _, _, e in outs]
    dirs = sorted((tmp_path / "runs").iterdir())
    assert len(dirs) == 2
    import yaml

    assert sorted(yaml.safe_load((d / "config.yaml").read_text())["seed"] for d in dirs) == [1, 2]
    # The same second, forced: the second folder is name-2.
    a = locks.new_folder(tmp_path / "x", "20260101-000000-resnet18")
    b = locks.new_folder(tmp_path / "x", "20260101-000000-resnet18")
    assert a.name + "-2" == b.name


def test_lock_in_this_process_is_reentrant_and_released(tmp_path):
    with locks.lock(tmp_path) as first:
        assert locks.lock(tmp_path) is first
    t0 = time.time()
    with locks.lock(tmp_path):
        pass
    assert time.time() - t0 < 5
