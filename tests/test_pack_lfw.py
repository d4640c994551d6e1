"""scripts/pack_lfw.py: the small LFW copy feeds the network what the originals do, up to JPEG loss."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerec.data.decode import load_face
from facerec.data.transforms import Preprocess

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pack_lfw", ROOT / "scripts" / "pack_lfw.py")
pack_lfw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pack_lfw)

PEOPLE = ["Aaron_Peirsol", "Abdullah_Gul", "Zico"]


@pytest.fixture
def small_root(tmp_path, lfw_dir) -> Path:
    """A data root with three real LFW people (links to their images) and the real protocol files."""
    root = tmp_path / "src"
    images = root / "lfw" / "images_deepfunneled"
    for name in PEOPLE:
        (images / name).mkdir(parents=True)
        for f in sorted((lfw_dir / "images_deepfunneled" / name).glob("*.jpg")):
            (images / name / f.name).symlink_to(f)
    for name in ("pairs.txt", "pairsDevTest.txt", "people.txt", "README.txt"):
        shutil.copy(lfw_dir / name, root / "lfw" / name)
    return root


def test_the_copy_gives_the_network_the_same_faces(small_root, tmp_path, lfw_dir, capsys):
    out = tmp_path / "packed"
    assert pack_lfw.main(["--data-root", str(small_root), "--out", str(out), "--workers", "1"]) == 0
    originals = sorted((small_root / "lfw" / "images_deepfunneled").glob("*/*.jpg"))
    copies = sorted((out / "lfw" / "images_deepfunneled").glob("*/*.jpg"))
    assert [c.relative_to(out) for c in copies] == [o.relative_to(small_root) for o in originals]
    assert all(Image.open(c).size == (150, 150) for c in copies)
    # The protocol files travel unchanged; anything else stays behind.
    for name in ("pairs.txt", "pairsDevTest.txt", "people.txt"):
        assert (out / "lfw" / name).read_bytes() == (lfw_dir / name).read_bytes()
    assert not (out / "lfw" / "README.txt").exists()
    assert not out.with_name("packed.tmp").exists()
    # What the network sees: face_crop auto takes 0.6 of a 250x250 original and all of a 150x150 copy.
    pre = Preprocess(input_size=64)
    for o, c in zip(originals, copies, strict=True):
        a, b = load_face(str(o), pre).float(), load_face(str(c), pre).float()
        assert a.shape == b.shape == (3, 73, 73)
        assert (a - b).abs().mean() < 3.0, f"{c}: differs from {o} by more than JPEG loss"
    # A different face at the same place would differ by far more: the check can fail.
    wrong = load_face(str(copies[0]), pre).float() - load_face(str(originals[-1]), pre).float()
    assert wrong.abs().mean() > 15.0
    assert f"{len(originals)} images" in capsys.readouterr().out


def test_an_existing_output_or_a_foreign_image_is_refused(small_root, tmp_path):
    out = tmp_path / "packed"
    out.mkdir()
    with pytest.raises(SystemExit, match="already exists"):
        pack_lfw.main(["--data-root", str(small_root), "--out", str(out), "--workers", "1"])
    odd = small_root / "lfw" / "images_deepfunneled" / "Zico" / "Zico_0099.jpg"  # a new file, not a link
    assert not odd.exists()
    Image.fromarray(np.zeros((112, 92, 3), np.uint8)).save(odd)
    with pytest.raises(SystemExit, match=re.escape("Zico_0099.jpg: 92x112, expected LFW's 250x250")):
        pack_lfw.main(["--data-root", str(small_root), "--out", str(tmp_path / "again"), "--workers", "1"])
    with pytest.raises(SystemExit, match=r"error: .*LFW"):
        pack_lfw.main(["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "third"), "--workers", "1"])
