"""What every list file shares: the `# root:` comment, reading, and reporting all problems at once."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, ValidationError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
UNKNOWN_LABEL = -1


def root_comment(lines: list[str]) -> str | None:
    if lines and lines[0].startswith("# root:"):
        return lines[0].split(":", 1)[1].strip()
    return None


def resolve_root(list_path: Path, lines: list[str], root) -> Path:
    if root is not None:
        return Path(root)
    declared = root_comment(lines)
    if declared is not None:
        declared_path = Path(declared)
        return declared_path if declared_path.is_absolute() else (list_path.parent / declared_path)
    return list_path.parent


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a spreadsheet's BOM is not a label
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc})") from None


def entries(lines: list[str]):
    """(line number, line) for every line that is not blank or a `#` comment."""
    return ((n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#"))


def raise_problems(what: str, path: Path, root: Path, rows, problems: list[str], check_files: bool, n: int) -> None:
    """Every problem of a list, missing images included, in one error; then refuse an empty list."""
    if check_files:
        problems = problems + missing_files(root, rows, path)
    if problems:
        raise ValidationError(f"{what} {path}", problems)
    if not n:
        raise DataError(f"{path}: {what} is empty")


def missing_files(root: Path, rel_with_line: list[tuple[int, str]], source: Path) -> list[str]:
    problems = []
    seen = set()
    for lineno, rel in rel_with_line:
        if rel in seen:
            continue
        seen.add(rel)
        full = root / rel
        if not full.is_file():
            problems.append(f"{source}:{lineno}: image not found: {full}")
        elif full.stat().st_size == 0:
            problems.append(f"{source}:{lineno}: empty (zero-byte) image: {full}")
    return problems
