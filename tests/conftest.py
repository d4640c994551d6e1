"""Real-face fixtures. The tests find data as the tools do; under CI=true missing data fails."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Decoded-image stores go to a per-session folder, not the user's ~/.cache.
if "FACEREC_CACHE" not in os.environ:
    os.environ["FACEREC_CACHE"] = tempfile.mkdtemp(prefix="facerec-cache-")
    atexit.register(shutil.rmtree, os.environ["FACEREC_CACHE"], ignore_errors=True)
# A relative root is pinned now: tests that change directory must still find the data.
if os.environ.get("FACEREC_DATA"):
    os.environ["FACEREC_DATA"] = str(Path(os.environ["FACEREC_DATA"]).resolve())
# Under pytest-xdist (make test: one worker per core) each worker, and every process its tests
# start, gets its share of the cores: two workers of 2 OpenMP threads each on 2 cores spin against
# each other. Set before torch is imported, so this process and its children agree.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _CORES // _WORKERS)))


def _find(sub: str) -> Path | None:
    for base in [os.environ.get("FACEREC_DATA"), ROOT / "data"]:
        if base and (Path(base) / sub).is_dir():
            return Path(base).resolve()
    return None


def _require(sub: str) -> Path:
    root = _find(sub)
    if root is None:
        msg = f"dataset {sub}/ not found (set FACEREC_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def data_root_orl() -> Path:
    return _require("orl")


@pytest.fixture(scope="session")
def data_root_lfw() -> Path:
    return _require("lfw")


@pytest.fixture(scope="session")
def orl_dir(data_root_orl) -> Path:
    return data_root_orl / "orl"


@pytest.fixture(scope="session")
def lfw_dir(data_root_lfw) -> Path:
    return data_root_lfw / "lfw"


@pytest.fixture
def one_thread():
    """Tiny tensors on a shared 2-core box: a second OpenMP thread only spins."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def orl_lists(tmp_path_factory, orl_dir) -> Path:
    """ORL's train list and validation pairs, written once by `facerec lists orl` (tests only read them)."""
    from facerec.cli import main

    out = tmp_path_factory.mktemp("orl_lists")
    assert main(["lists", "orl", "--data-root", str(orl_dir.parent), "--out", str(out)]) == 0
    return out
