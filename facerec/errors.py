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
