"""Atomic writes: a reader never sees a half-written file, and a write that fails (full disk,
file-size limit, permissions) raises one WriteError naming the file and why."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from facerec.errors import WriteError

# Errors of writing, not of reading something else inside the `with` (an unreadable image keeps its own error).
_WRITE_ERRNOS = {errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}
# torch's own writer drops the OSError and raises these instead ("[enforce fail at inline_container.cc:...]
# unexpected pos 704 vs 598").
_TORCH_WRITE_FAILURES = ("inline_container", "PytorchStreamWriter", "unexpected pos", "file write failed")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make results private
    except OSError as exc:
        raise WriteError(path, exc) from exc
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        failed = _write_errno(exc, tmp, path)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if failed is not None:
            raise WriteError(path, exc, errno_=failed or None) from exc
        raise


@contextlib.contextmanager
def binary_writer(tmp):
    """A file to hand torch.save / torch.jit.save / torch.onnx.export: torch turns a failed write into
    a RuntimeError without its errno, or, writing to a path itself, may abort the process (TorchScript
    under a file-size limit); through this file the OSError comes out, errno and all."""
    with open(tmp, "wb") as raw:
        fh = _Recording(raw)
        try:
            yield fh
        except RuntimeError as exc:
            if fh.error is not None:
                raise fh.error from exc
            raise


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class _Recording:
    def __init__(self, raw):
        self.raw, self.error = raw, None

    def write(self, data) -> int:
        try:
            return self.raw.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self.raw, name)


def _write_errno(exc: BaseException, tmp, path) -> int | None:
    """The errno of a failed write (0 when it cannot be told), or None when `exc` is no write failure."""
    if isinstance(exc, OSError):
        if exc.errno not in _WRITE_ERRNOS:
            return None
        names = {None, str(tmp), str(path), str(Path(path).parent)}
        return exc.errno if (exc.filename is None or str(exc.filename) in names) else None
    if isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILURES):
        return _diagnose(tmp)
    return None


def _diagnose(tmp) -> int:
    """Why torch could not write `tmp`, from what can be seen afterwards: the file reached the
    file-size limit, or the disk is full."""
    import shutil

    with contextlib.suppress(ImportError, OSError, ValueError):  # no `resource` module on Windows
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and os.path.getsize(tmp) >= limit:
            return errno.EFBIG
    with contextlib.suppress(OSError):
        if shutil.disk_usage(Path(tmp).parent).free < 2**20:
            return errno.ENOSPC
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
