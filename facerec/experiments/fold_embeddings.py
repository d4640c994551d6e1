"""A benchmark fold's embeddings, kept beside its checkpoint so that scoring it again (another
back-end, a re-summary) embeds nothing new: `embeddings-tta.npz` or `embeddings-plain.npz` in the
fold's folder (`-crops5` before `.npz` for five test crops). The file is keyed by the checkpoint's
SHA-256, the preprocessing and the TTA choice; a retrained fold's stale file is ignored and replaced. Images the file lacks are embedded and added.
Loaded with allow_pickle=False: only arrays of numbers and fixed-width strings."""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from facerec.util.fileio import atomic_path

log = logging.getLogger(__name__)


def cache_path(fold_dir: Path, tta: bool, test_crops: int = 1) -> Path:
    crops = "" if test_crops == 1 else f"-crops{test_crops}"
    return Path(fold_dir) / f"embeddings-{'tta' if tta else 'plain'}{crops}.npz"


def model_key(ckpt: Path, model, tta: bool) -> str:
    """What the embeddings depend on: the checkpoint's bytes, the preprocessing, the TTA choice."""
    h = hashlib.sha256()
    with open(ckpt, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return json.dumps({"checkpoint_sha256": h.hexdigest(), "preprocess": model.pre.to_dict(), "tta": bool(tta)},
                      sort_keys=True)


def _read(path: Path, key: str) -> tuple[list[str], np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                log.info("%s: made by another checkpoint or preprocessing; embedding again", path)
                return None
            return [str(p) for p in z["paths"]], np.asarray(z["embeddings"], dtype=np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a damaged file is only a lost cache
        log.warning("%s: unreadable (%s); embedding again", path, exc)
        return None


def embed_cached(model, paths: list[str], ckpt: Path, cache: Path, tta: bool, progress: bool) -> np.ndarray:
    """(len(paths), D) embeddings of `paths` by `model` with `tta`, from `cache` where it holds them."""
    key = model_key(ckpt, model, tta)
    have = _read(cache, key)
    known, emb = have if have is not None else ([], np.zeros((0, model.embedding_dim), np.float32))
    row = {p: i for i, p in enumerate(known)}
    missing = list(dict.fromkeys(p for p in paths if p not in row))
    if missing:
        new = model.embed(missing, tta, progress=progress)
        for p in missing:
            row[p] = len(row)
        known, emb = known + missing, np.concatenate([emb, new.astype(np.float32)])
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, key=np.array(key), paths=np.array(known), embeddings=emb)
    return emb[[row[p] for p in paths]]
