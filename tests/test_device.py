"""Device resolution and the --amp speed warning, checked against the kernel's own CPU flags."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from facerec.errors import FacerecError
from facerec.util import device as devices


def test_resolve_cpu_and_face_trainer_index():
    assert devices.resolve("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(FacerecError, match="--device cuda:0: CUDA is not available"):
            devices.resolve(0)  # face_trainer's --gpu 0


def test_amp_dtype_covers_every_amp_choice():
    from facerec.config import CHOICES

    assert devices.amp_dtype("off") is None
    assert devices.amp_dtype("bf16") is torch.bfloat16 and devices.amp_dtype("fp16") is torch.float16
    assert set(CHOICES["amp"]) == {"off", *devices.AMP_DTYPES}  # a new --amp choice needs its dtype here


def cpu_flags() -> set[str] | None:
    info = Path("/proc/cpuinfo")
    if platform.machine().lower() not in ("x86_64", "amd64") or not info.exists():
        return None
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_native_bf16_agrees_with_proc_cpuinfo():
    flags = cpu_flags()
    if flags is None:
        pytest.skip("needs an x86 Linux /proc/cpuinfo")
    assert devices.cpu_native("bf16") == bool({"avx512_bf16", "amx_tile"} & flags)
    assert devices.cpu_native("fp16") == ("amx_fp16" in flags)


def test_amp_note_only_where_amp_is_emulated(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)
    assert "--amp bf16 on this CPU is emulated" in devices.amp_note(cpu, "bf16")
    assert "AMX-FP16" in devices.amp_note(cpu, "fp16")
    assert devices.amp_note(cpu, "off") is None
    assert devices.amp_note(torch.device("cuda"), "bf16") is None  # only CPUs are judged
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)  # Sapphire Rapids: AMX, no AVX512-BF16 flag needed
    assert devices.amp_note(cpu, "bf16") is None
    monkeypatch.setattr(platform, "machine", lambda: "arm64")  # cannot be told: no warning rather than a wrong one
    assert devices.amp_note(cpu, "fp16") is None


def test_bf16_training_on_orl_learns_as_fp32_does_and_warns_when_emulated(orl_lists, tmp_path, monkeypatch):
    """Two epochs on real ORL faces from one seed in fp32 and under bf16 autocast: both learn (EER
    far below a random net's ~50%) and their losses track each other; the note appears only where
    the CPU is told to lack bfloat16 arithmetic."""
    from facerec.trainer import Trainer
    from tests.test_train import rows, small_cfg

    def trainer(amp: str, native: bool) -> tuple[Trainer, list[str]]:
        monkeypatch.setattr(devices, "cpu_native", lambda dtype: native)
        logs: list[str] = []
        cfg = small_cfg(orl_lists, tmp_path / amp, loss="arcface", amp=amp)
        return Trainer(cfg, progress=False, log=logs.append), logs

    def run(amp: str) -> tuple[list[float], float, list[str]]:
        t, logs = trainer(amp, native=False)
        summary = t.fit()
        losses = [float(r["loss"]) for r in rows(Path(summary["run_dir"]))]
        return losses, summary["best_eer"], [m for m in logs if "emulated" in m]

    fp32, fp32_eer, fp32_notes = run("off")
    bf16, bf16_eer, bf16_notes = run("bf16")
    assert fp32_notes == [] and len(bf16_notes) == 1 and "--amp bf16" in bf16_notes[0]
    assert fp32_eer < 30 and bf16_eer < 30  # a random net sits near 50% on ORL
    # bf16 keeps 8 bits of mantissa: the same seed's epoch losses agree to a few percent, not exactly
    assert bf16 == pytest.approx(fp32, rel=0.05) and bf16 != fp32
    t, logs = trainer("bf16", native=True)  # a CPU with bfloat16 arithmetic: built, no note
    t.prepare()
    t.build()
    assert not [m for m in logs if "emulated" in m]
