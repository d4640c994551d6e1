"""The served gallery: SQLite holds people, image digests, image bytes and embeddings; a FAISS index
of one mean template per person (inner product of L2-normalised vectors: the cosine) answers searches.

SQLite is the truth: the index is rebuilt from it at start and updated after each write has been
committed, so a write acknowledged to a client survives a crash (WAL, synchronous=FULL). A person's
template is `facerec.inference.identify.templates(..., "mean")` of their embeddings, the rule `facerec identify`
ranks by, so both name the same person for the same images. The gallery records the checksum of the
model that made its embeddings and refuses to be served by another until re-embedded.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from facerec.errors import DataError, FacerecError
from facerec.inference.identify import templates

IVF_MIN = 100_000  # people at which --index auto builds an IVF index (approximate) instead of an exact one
IVF_NPROBE = 32  # IVF lists visited per search

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
                                   created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY AUTOINCREMENT,
                                   person INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
                                   digest TEXT NOT NULL, data BLOB, embedding BLOB NOT NULL,
                                   UNIQUE (person, digest));
CREATE INDEX IF NOT EXISTS images_digest ON images (digest);
"""


class GalleryError(FacerecError):
    """A request the gallery refuses; `status` is its HTTP status."""

    status = 400


class NotFound(GalleryError):
    status = 404


class Conflict(GalleryError):
    status = 409


class Gallery:
    """One process serves a gallery file at a time (an OS lock on `<file>.lock`, dropped when it dies)."""

    def __init__(self, path, *, dim: int, model_checksum: str, index: str = "auto"):
        if index not in ("auto", "exact", "ivf"):
            raise FacerecError(f"index must be auto, exact or ivf, got {index!r}")
        self.path, self.dim, self.checksum, self.index_kind = Path(path), int(dim), model_checksum, index
        self._lock = threading.RLock()
        self._hold_file_lock()
        try:
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self._transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
        except sqlite3.Error as exc:
            self.close()
            raise DataError(f"{self.path}: not a usable SQLite gallery ({exc})") from None
        self.stored_checksum = self._meta("model_checksum")
        self.stored_dim = self._meta("embedding_dim")
        if self.people_count() == 0 or self.stored_checksum is None:
            self._claim()

    # --- opening --------------------------------------------------------------------------------
    def _hold_file_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataError(f"{self.path}: already served by {holder}; one process serves a gallery") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._lock_fd = fd

    @contextlib.contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _claim(self) -> None:
        with self._transaction():
            self._write_meta()

    def _write_meta(self) -> None:
        for key, value in (("model_checksum", self.checksum), ("embedding_dim", str(self.dim))):
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.stored_checksum, self.stored_dim = self.checksum, str(self.dim)

    def check_model(self) -> None:
        """Refuse a model other than the one whose embeddings the gallery holds."""
        if self.stored_checksum != self.checksum:
            raise DataError(f"{self.path}: its {self.people_count()} people were embedded by another model "
                            f"(sha256 {self.stored_checksum[:12]}, this one is {self.checksum[:12]}): serve it with "
                            "that model, or re-embed its stored images with this one (--reembed)")

    def load(self) -> None:
        """Build the FAISS index from SQLite."""
        with self._lock:
            rows = self.db.execute("SELECT id, name FROM people ORDER BY id").fetchall()
            self.names = {pid: name for pid, name in rows}
            ids = np.array([pid for pid, _ in rows], np.int64)
            vecs = self._templates(ids)
            self.index = self._new_index(len(ids), vecs)
            if len(ids):
                self.index.add_with_ids(vecs, ids)

    def _templates(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        pos = {int(p): i for i, p in enumerate(ids)}
        emb, labels = [], []
        for pid, blob in self.db.execute("SELECT person, embedding FROM images ORDER BY id"):
            if pid in pos:
                emb.append(np.frombuffer(blob, np.float32))
                labels.append(pos[pid])
        t, _ = templates(np.stack(emb), np.asarray(labels), len(ids), "mean")
        return np.ascontiguousarray(t, np.float32)

    def _new_index(self, n: int, vecs: np.ndarray):
        import faiss

        if self.index_kind == "ivf" or (self.index_kind == "auto" and n >= IVF_MIN):
            nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), n))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)  # a seeded training sample: the same index for the same gallery
            sample = vecs[rng.choice(n, min(n, 256 * nlist), replace=False)] if n else vecs
            if n:
                index.cp.seed = 0
                index.train(sample)
            index.nprobe = min(IVF_NPROBE, nlist)
            self.ivf = bool(n)
            if not n:  # an IVF index needs vectors to train on: exact until the next start
                return self._exact()
            return index
        return self._exact()

    def _exact(self):
        import faiss

        self.ivf = False
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def close(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
            self.db = None
        if getattr(self, "_lock_fd", None) is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- reads ----------------------------------------------------------------------------------
    # Reads hold the lock too: the connection is shared, and a read must not land inside a write's transaction.
    def people_count(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM people").fetchone()[0]

    def image_count(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def search(self, vecs: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per query, up to k (person, cosine) pairs, best first."""
        with self._lock:
            k = min(k, self.index.ntotal)
            if k == 0:
                return [[] for _ in vecs]
            scores, ids = self.index.search(np.ascontiguousarray(vecs, np.float32), k)
            return [[(self.names[int(i)], float(s)) for s, i in zip(srow, irow) if i >= 0]
                    for srow, irow in zip(scores, ids)]

    def people(self, offset: int = 0, limit: int = 100) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT p.name, COUNT(i.id), p.created FROM people p LEFT JOIN images i ON "
                                   "i.person = p.id GROUP BY p.id ORDER BY p.name LIMIT ? OFFSET ?",
                                   (limit, offset)).fetchall()
        return [{"person": n, "images": c, "created": t} for n, c, t in rows]

    def image_bytes(self, name: str) -> bytes:
        with self._lock:
            row = self.db.execute("SELECT i.data FROM images i JOIN people p ON p.id = i.person WHERE p.name = ? "
                                  "AND i.data IS NOT NULL ORDER BY i.id LIMIT 1", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no stored image of person {name!r}")
        return row[0]

    # --- writes: committed to SQLite, then the index ---------------------------------------------
    def enrol(self, name: str, images: list[tuple[str, bytes | None, np.ndarray]], *, create: bool) -> dict:
        """Store (digest, bytes, embedding) images of a new person (`create`) or of an enrolled one.
        An image already stored for this person is skipped; one stored for another person is refused."""
        with self._lock, self._transaction():
            row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if create and row:
                raise Conflict(f"person {name!r} is already enrolled (add images with POST /people/{{person}}/images)")
            if not create and not row:
                raise NotFound(f"person {name!r} is not enrolled")
            for digest, _, _ in images:
                other = self.db.execute("SELECT p.name FROM images i JOIN people p ON p.id = i.person WHERE i.digest = ? "
                                        "AND p.name != ? LIMIT 1", (digest, name)).fetchone()
                if other:
                    raise Conflict(f"image sha256 {digest[:12]} is already enrolled as person {other[0]!r}")
            pid = row[0] if row else self.db.execute("INSERT INTO people (name, created) VALUES (?, ?)",
                                                     (name, time.time())).lastrowid
            added = 0
            for digest, data, emb in images:
                cur = self.db.execute("INSERT OR IGNORE INTO images (person, digest, data, embedding) VALUES "
                                      "(?, ?, ?, ?)", (pid, digest, data, np.asarray(emb, np.float32).tobytes()))
                added += cur.rowcount
        with self._lock:
            self._refresh(pid, name)
            total = self.db.execute("SELECT COUNT(*) FROM images WHERE person = ?", (pid,)).fetchone()[0]
        return {"person": name, "added": added, "duplicates": len(images) - added, "images": total}

    def _refresh(self, pid: int, name: str) -> None:
        self.index.remove_ids(np.array([pid], np.int64))
        self.names[pid] = name
        self.index.add_with_ids(self._templates(np.array([pid], np.int64)), np.array([pid], np.int64))

    def delete(self, name: str) -> dict:
        with self._lock:
            with self._transaction():
                row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
                if not row:
                    raise NotFound(f"person {name!r} is not enrolled")
                n = self.db.execute("DELETE FROM images WHERE person = ?", (row[0],)).rowcount
                self.db.execute("DELETE FROM people WHERE id = ?", (row[0],))
            self.index.remove_ids(np.array([row[0]], np.int64))
            self.names.pop(row[0], None)
        return {"person": name, "deleted_images": n}

    def add_embeddings(self, names: list[str], vecs: np.ndarray) -> None:
        """One embedding per new person, no image bytes, in one transaction (bulk loads, benchmarks)."""
        vecs = np.asarray(vecs, np.float32)
        with self._lock:
            with self._transaction():
                now = time.time()
                for name, v in zip(names, vecs):
                    pid = self.db.execute("INSERT INTO people (name, created) VALUES (?, ?)", (name, now)).lastrowid
                    self.db.execute("INSERT INTO images (person, digest, data, embedding) VALUES (?, ?, NULL, ?)",
                                    (pid, f"synthetic:{pid}", v.tobytes()))
            self.load()

    def reembed(self, embed) -> int:
        """Replace every embedding by `embed(list of bytes)`'s, claim the gallery for this model, rebuild."""
        with self._lock:
            rows = self.db.execute("SELECT id, data FROM images ORDER BY id").fetchall()
            missing = sum(1 for _, d in rows if d is None)
            if missing:
                raise DataError(f"{self.path}: {missing} of {len(rows)} images have no stored bytes (bulk-loaded "
                                "embeddings): they cannot be re-embedded")
            new = [(np.asarray(e, np.float32).tobytes(), rid)
                   for start in range(0, len(rows), 64)
                   for (rid, _), e in zip(rows[start:start + 64], embed([d for _, d in rows[start:start + 64]]))]
            with self._transaction():
                self.db.executemany("UPDATE images SET embedding = ? WHERE id = ?", new)
                self._write_meta()
            self.load()
            return len(rows)
