"""What every list file shares: the `# root:` comment, reading, and reporting all problems at once."""

from __future__ import annotations

import csv
from pathlib import Path

from facerec.errors import DataError, ValidationError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
UNKNOWN_LABEL = -1


def train_list_form(path) -> str:
    """How a train list separates its two fields: `csv` (.csv: commas, "quoted" fields), `tsv` (.tsv: tabs,
    quoting too) or `text` (anything else: decided per line, see `train_line_fields`)."""
    return {".csv": "csv", ".tsv": "tsv"}.get(Path(path).suffix.lower(), "text")


def plain_train_line(line: str, form: str = "text") -> bool:
    """face_trainer's `identity relpath` line (fields split on whitespace), as opposed to a tab or CSV line."""
    return form == "text" and "\t" not in line and not line.lstrip().startswith('"')


def _split(line: str, delimiter: str) -> list[str]:
    """CSV fields, strictly quoted (a quote closes a field only before a delimiter); [] when not so."""
    try:
        fields = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True, strict=True), [])
    except csv.Error:
        return []
    fields = [f.strip() for f in fields]
    return [f for f in fields if f] if delimiter == " " else fields


def train_line_fields(line: str, form: str = "text") -> list[str]:
    """The fields of one train list line. `text` lists take each line as it comes:
    `identity<TAB>relpath` when it holds a tab (then names may hold spaces), a CSV line when it starts
    with a quote (`"John Smith","John Smith/1.jpg"`, or the same separated by a space), else
    `identity relpath` split on whitespace (face_trainer's form, unchanged). `csv`/`tsv` lists are
    read with Python's csv module (quotes, commas or tabs inside quotes)."""
    line = line.rstrip("\r\n")
    if form == "csv":
        return _split(line, ",")
    if form == "tsv":
        return _split(line, "\t")
    if "\t" in line:
        return _split(line, "\t") if line.lstrip().startswith('"') else [f.strip() for f in line.split("\t")]
    if line.lstrip().startswith('"'):
        fields = _split(line, ",")
        return fields if len(fields) == 2 else _split(line, " ")
    return line.split()


def train_line(identity: str, relpath: str) -> str:
    """One train list line (no newline) that `train_line_fields` reads back as (identity, relpath) in a
    `text` list: face_trainer's `identity relpath` when neither holds whitespace, else the tab form,
    else (a tab, a newline or a leading quote in a name) a quoted CSV line."""
    def awkward(x: str) -> bool:
        return not x or x != x.strip() or x.startswith('"')

    if not any(c.isspace() for c in identity + relpath) and not awkward(identity):
        return f"{identity} {relpath}"
    if not any(c in "\t\r\n" for c in identity + relpath) and not awkward(identity) and not awkward(relpath):
        return f"{identity}\t{relpath}"
    return ",".join('"' + x.replace('"', '""') + '"' for x in (identity, relpath))


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
