"""The package layout: old import paths of moved modules still work (with a warning naming the new
one), and facerec/'s top level holds the subpackages and only a handful of modules."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import facerec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old", sorted(facerec.MOVED))
def test_an_old_import_path_gives_the_moved_module(old):
    new = importlib.import_module(facerec.MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {facerec.MOVED[old]}"):
        mod = importlib.import_module(old)
    assert mod is new and mod.__name__ == facerec.MOVED[old]


def test_from_facerec_import_an_old_name_and_the_old_model_class_name():
    out = subprocess.run([sys.executable, "-W", "always", "-c",
                          "from facerec import metrics; from facerec.models.base import FaceModel, EmbeddingNet\n"
                          "print(metrics.__name__, FaceModel is EmbeddingNet)"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["facerec.evaluation.metrics", "True"]
    assert "facerec.metrics moved to facerec.evaluation.metrics" in out.stderr and "now EmbeddingNet" in out.stderr


def test_the_top_level_is_subpackages_and_a_few_modules():
    top = sorted(p.stem for p in (ROOT / "facerec").glob("*.py"))
    assert top == ["__init__", "__main__", "checkpoint", "cli", "errors"]
    assert not any((ROOT / "facerec" / f"{name.split('.')[1]}.py").exists() for name in facerec.MOVED
                   if name.count(".") == 1)


def test_image_decoding_names_still_resolve_from_transforms():
    from facerec.data import decode, transforms

    with pytest.warns(DeprecationWarning, match="moved to facerec.data.decode"):
        assert transforms.load_faces is decode.load_faces
    with pytest.raises(AttributeError):
        transforms.no_such_name  # noqa: B018
