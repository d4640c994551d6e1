"""`facerec embed` into a file, resumable: a big folder is embedded in chunks kept beside the output
(`<output>.partial/`), so an interrupted job continues where it stopped and the output appears only
when every image is done (written to a temporary name, then renamed). Each chunk records its images
(path, size, mtime), so a rerun reuses every embedding whose file is unchanged, even after images
were removed from or added to the job. `skip_bad` leaves out images that cannot be read or decoded
and lists them in `<output>.skipped.txt`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from facerec.errors import DataError, WriteError
from facerec.util.fileio import atomic_path, write_text
from facerec.util.locks import LOCK_NAME, lock

log = logging.getLogger(__name__)
FORMATS = (".npz", ".npy")


def _key(model) -> str:
    """What makes an embedding: the model, its preprocessing and TTA (the images are per chunk)."""
    h = hashlib.sha256()
    h.update(repr((model.info.get("source"), model.tta, model.pre.to_dict(), "per-chunk images")).encode())
    return h.hexdigest()[:20]


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _saved(partial: Path) -> tuple[dict, int]:
    """path -> (embedding, [size, mtime_ns]) of every complete chunk; and the next free chunk number."""
    done, last = {}, -1
    for f in sorted(partial.glob("*.npy")):
        try:
            last = max(last, int(f.stem))
            rows = json.loads(f.with_suffix(".json").read_text())
            e = np.load(f)
        except (OSError, ValueError):  # a chunk cut short by a kill: embedded again
            continue
        if len(rows) != len(e):
            continue
        for (path, size, mtime), v in zip(rows, e):
            done[path] = (v, [size, mtime])
    return done, last + 1


def _embed_chunk(model, part: list[str], skip_bad: bool, **kw) -> tuple[np.ndarray, list[tuple[str, str]]]:
    try:
        return model.embed(part, notes=False, **kw), []
    except DataError:
        if not skip_bad:
            raise
    from facerec.inference.images import faces

    bad = []
    for path in part:  # only a failing chunk pays for decoding its images one by one
        try:
            faces([path], model.pre)
        except DataError as exc:
            bad.append((path, str(exc)))
    if not bad:  # not an image's fault (e.g. a diverged model): say what it is
        return model.embed(part, notes=False, **kw), []
    names = {b for b, _ in bad}
    good = [x for x in part if x not in names]
    return (model.embed(good, notes=False, **kw) if good else np.zeros((0, model.embedding_dim), np.float32)), bad


def check_output(output) -> Path:
    output = Path(output)
    if output.suffix not in FORMATS:
        raise DataError(f"{output}: the output must end in .npz (paths + embeddings) or .npy (embeddings; "
                        "paths in <name>.paths.txt)")
    return output


def embed_to_file(model, items: list[str], output, *, chunk: int = 2048, batch_size: int = 64,
                  workers: int | None = None, progress: bool | None = None, skip_bad: bool = False) -> np.ndarray:
    """The embeddings written to `output` (without skipped images; see `embed_files`)."""
    return embed_files(model, items, output, chunk=chunk, batch_size=batch_size, workers=workers, progress=progress,
                       skip_bad=skip_bad)[0]


def embed_files(model, items: list[str], output, *, chunk: int = 2048, batch_size: int = 64,
                workers: int | None = None, progress: bool | None = None,
                skip_bad: bool = False) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """(embeddings, the paths they belong to, [(skipped path, reason)])."""
    output = check_output(output)
    partial = output.with_name(output.name + ".partial")
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {partial} ({exc.strerror or exc})") from None
    try:
        with lock(partial, "embedding job"):  # two jobs writing one output would interleave their chunks
            return _embed_files(model, items, output, partial, chunk, batch_size, workers, progress, skip_bad)
    except WriteError as exc:  # chunks already in `partial` count on the next run
        if any(partial.glob("*.npy")):
            raise DataError(f"{exc}; the finished chunks are kept in {partial}: {exc.hint}, then run the same "
                            "command again to continue") from exc
        raise DataError(f"{exc}; no chunk had finished: {exc.hint}, then run the same command again") from exc


def _embed_files(model, items, output: Path, partial: Path, chunk, batch_size, workers, progress, skip_bad):
    skipped_list = output.with_name(output.name + ".skipped.txt")
    key = _key(model)
    if partial.is_dir() and (partial / "key").is_file() and (partial / "key").read_text() != key:
        log.warning("%s: left by a job with another model, preprocessing or TTA: starting again", partial)
        _clear(partial)
    write_text(partial / "key", key)
    done, next_chunk = _saved(partial)
    stats = {x: _stat(x) for x in items}
    valid = {x for x in stats if x in done and done[x][1] == stats[x]}
    todo = [x for x in dict.fromkeys(items) if x not in valid]
    if valid:
        log.info("resuming: %d of %d images already embedded in %s", len(valid), len(stats), partial)
    if todo:  # one note for the whole job, not one per chunk
        from facerec.inference.images import note_images

        note_images(todo, model.pre)
    skipped: list[tuple[str, str]] = []
    for c in range(0, len(todo), chunk):
        part = todo[c : c + chunk]
        e, bad = _embed_chunk(model, part, skip_bad, batch_size=batch_size, workers=workers, progress=progress)
        skipped += bad
        names = {b for b, _ in bad}
        good = [x for x in part if x not in names]
        f = partial / f"{next_chunk:06d}.npy"
        next_chunk += 1
        write_text(f.with_suffix(".json"), json.dumps([[x, *(stats[x] or [-1, -1])] for x in good]))
        with atomic_path(f) as tmp, open(tmp, "wb") as fh:  # written last: the chunk counts once this exists
            np.save(fh, e)
        done.update({x: (v, stats[x]) for x, v in zip(good, e)})
    gone = {b for b, _ in skipped}
    kept = [x for x in items if x not in gone]
    emb = (np.stack([done[x][0] for x in kept]).astype(np.float32) if kept
           else np.zeros((0, model.embedding_dim), np.float32))
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        if output.suffix == ".npz":
            np.savez(fh, paths=np.array(kept), embeddings=emb)
        else:
            np.save(fh, emb)
    if output.suffix == ".npy":
        write_text(output.with_suffix(".paths.txt"), "".join(p + "\n" for p in kept))
    if skipped:
        write_text(skipped_list, "".join(f"{why}\n" for _, why in skipped))
        for _, why in skipped[:20]:
            log.warning("skipped %s", why)
        if len(skipped) > 20:
            log.warning("... and %d more", len(skipped) - 20)
    elif skipped_list.is_file():
        skipped_list.unlink()  # a list left by an earlier run no longer applies
    _clear(partial)
    (partial / LOCK_NAME).unlink(missing_ok=True)  # the job is done: the lock has nothing left to guard
    partial.rmdir()
    return emb, kept, skipped


def _clear(partial: Path) -> None:
    """Empty `partial` but keep its lock file, which this job holds."""
    for f in partial.iterdir():
        if f.name == LOCK_NAME:
            continue
        shutil.rmtree(f) if f.is_dir() else f.unlink()
