"""One writer per folder: an exclusive OS file lock on `<folder>/.lock`.

The kernel drops a `flock` when its process dies, however it dies (kill -9 included), so a lock
is never stale. The lock file holds the holder's pid and command line, read back to name it when
a second process is refused. Where `fcntl` does not exist (Windows), folders are not locked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from facerec.errors import DataError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"
_held: dict[str, FolderLock] = {}


class FolderLock:
    def __init__(self, folder: Path, fd: int | None):
        self.folder, self.fd = folder, fd

    def release(self) -> None:
        _held.pop(str(self.folder.resolve()), None)
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def holder(folder) -> str:
    """'pid N (command)' of the process that holds the folder's lock, as it wrote itself."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text().strip()
    except OSError:
        return "another process"
    return text or "another process"


def lock(folder, what: str = "run directory") -> FolderLock:
    """Take `folder`'s lock (the folder must exist) or fail with one line naming the holder. Taking
    a lock this process already holds returns the held one."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _held:
        return _held[key]
    if fcntl is None:  # pragma: no cover
        return FolderLock(folder, None)
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DataError(f"cannot lock the {what} {folder} ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DataError(f"{folder}: this {what} is in use by {holder(folder)}; wait for it to end, or choose "
                        "another folder") from None
    os.set_inheritable(fd, False)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:300]})\n".encode())
    held = FolderLock(folder, fd)
    _held[key] = held
    return held


def is_locked(folder) -> bool:
    """True while another process holds the folder's lock (this process's own locks excluded)."""
    folder = Path(folder)
    if fcntl is None or str(folder.resolve()) in _held or not (folder / LOCK_NAME).is_file():
        return False
    fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def new_folder(parent, name: str) -> Path:
    """Create `parent/name` exclusively; runs started in the same second get `name-2`, `name-3`, ..."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = parent / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise DataError(f"{parent}: 999 folders named {name}[-N] already exist; choose another --tag")
