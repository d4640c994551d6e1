"""Errors users see: one message that names the file, line or key at fault."""

from __future__ import annotations


class FacerecError(Exception):
    """A user-facing error about how the tool was asked (flags, keys, names, budget): the CLI
    prints it without a traceback and exits 2."""

    exit_code = 2


class DataError(FacerecError):
    """A user-facing error about the files given (lists, images, checkpoints): exit code 1."""

    exit_code = 1


class ValidationError(DataError):
    """Several problems found up front, reported together."""

    def __init__(self, what: str, problems: list[str], limit: int = 50):
        self.what = what
        self.problems = list(problems)
        shown = self.problems[:limit]
        more = len(self.problems) - len(shown)
        lines = [f"{what}: {len(self.problems)} problem(s)"] + [f"  - {p}" for p in shown]
        if more > 0:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


def nearest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when none is close."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def cannot_read(path, exc: OSError) -> DataError:
    """The one error for an image file that cannot be opened or read (permissions, a directory, a
    dangling link, an I/O error), whichever step meets it first: `X: cannot read image (permission denied)`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return DataError(f"{path}: cannot read image ({reason[:1].lower()}{reason[1:]})")


# errno -> (what went wrong, what frees the way); the rest name their own strerror.
_WRITE_REASONS = {
    "EFBIG": ("file too large (over the file-size limit, `ulimit -f`)", "raise the file-size limit"),
    "ENOSPC": ("no space left on device", "free space"),
    "EDQUOT": ("disk quota exceeded", "free space"),
    "EACCES": ("permission denied", "make the folder writable"),
    "EPERM": ("operation not permitted", "make the folder writable"),
    "EROFS": ("read-only file system", "write to another folder"),
}


class WriteError(DataError):
    """A file could not be written (full disk, file-size limit, permissions): one line naming the
    file and why. Written under a temporary name first, so the file that was there is intact.
    `hint` says what lets a retry succeed ("free space"), for callers that add what survived."""

    def __init__(self, path, exc: BaseException | None = None, *, errno_: int | None = None):
        import errno as errno_mod
        import os

        self.path = path
        self.errno = errno_ if errno_ is not None else getattr(exc, "errno", None)
        name = errno_mod.errorcode.get(self.errno or -1, "")
        reason, self.hint = _WRITE_REASONS.get(name, (None, "fix that"))
        if reason is None:
            text = (os.strerror(self.errno) if self.errno else None) or str(exc or "") or type(exc).__name__
            reason = text.splitlines()[0] if text.strip() else "write failed"
            reason = reason[:1].lower() + reason[1:]
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")
