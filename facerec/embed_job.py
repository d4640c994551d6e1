"""`facerec embed` into a file, resumable: a big folder is embedded in chunks kept beside the output
(`<output>.partial/`), so an interrupted job continues where it stopped and the output appears only
when every image is done (written to a temporary name, then renamed)."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np

from .errors import DataError
from .fileio import atomic_path, write_text

log = logging.getLogger(__name__)
FORMATS = (".npz", ".npy")


def _key(items: list[str], model) -> str:
    h = hashlib.sha256()
    h.update(repr((model.info.get("source"), model.tta, model.pre.to_dict())).encode())
    for p in items:
        h.update(p.encode() + b"\0")
    return h.hexdigest()[:20]


def check_output(output) -> Path:
    output = Path(output)
    if output.suffix not in FORMATS:
        raise DataError(f"{output}: the output must end in .npz (paths + embeddings) or .npy (embeddings; "
                        "paths in <name>.paths.txt)")
    return output


def embed_to_file(model, items: list[str], output, *, chunk: int = 2048, batch_size: int = 64,
                  workers: int | None = None, progress: bool | None = None) -> np.ndarray:
    output = check_output(output)
    partial = output.with_name(output.name + ".partial")
    key = _key(items, model)
    if partial.is_dir() and (partial / "key").is_file() and (partial / "key").read_text() != key:
        log.warning("%s: left by a job with other images or another model: starting again", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    write_text(partial / "key", key)
    n_chunks = (len(items) + chunk - 1) // chunk
    done = sum((partial / f"{c:06d}.npy").is_file() for c in range(n_chunks))
    if done:
        log.info("resuming: %d of %d chunks of %d images already embedded in %s", done, n_chunks, chunk, partial)
    parts = []
    if done < n_chunks:  # one note for the whole job, not one per chunk
        from .images import note_images

        note_images(items, model.pre)
    for c in range(n_chunks):
        f = partial / f"{c:06d}.npy"
        if not f.is_file():
            e = model.embed(items[c * chunk : (c + 1) * chunk], batch_size=batch_size, workers=workers,
                            progress=progress, notes=False)
            with atomic_path(f) as tmp, open(tmp, "wb") as fh:
                np.save(fh, e)
        parts.append(np.load(f))
    emb = np.concatenate(parts) if parts else np.zeros((0, model.embedding_dim), np.float32)
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        if output.suffix == ".npz":
            np.savez(fh, paths=np.array(items), embeddings=emb)
        else:
            np.save(fh, emb)
    if output.suffix == ".npy":
        write_text(output.with_suffix(".paths.txt"), "".join(p + "\n" for p in items))
    shutil.rmtree(partial)
    return emb
