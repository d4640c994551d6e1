"""Rewrite the command output shown in README.md and docs/*.md by running the commands again.

    python scripts/docs_outputs.py [--model-dir runs/<time>-resnet18-arcface-demo] [--train-log demo.log] [FILE ...]

A fenced block is real output when the line just before it is a marker:

    <!-- output: shell -->     a shell session: each `$ ` line is a command (a trailing backslash
                               continues it on the next line), the lines after it are its output
    <!-- output: python -->    what the nearest ```python block above the marker prints
    <!-- output: log -->       the epoch and `done:` lines of a `make demo` log (--train-log FILE,
                               e.g. from `make demo | tee demo.log`); left as it is without one

Options follow the kind, separated by `;`: `pending` (the block still shows output of an older
model or code; removed when the block is rewritten) and, last, `first: CMD`, a shell command run
unseen before the session (a list to generate, folders to fill).

Every block runs in a fresh temporary folder holding `runs/<name>-demo/best.pt`, a link to the
model's best.pt, with `$CKPT` set to that path, the project's venv first on PATH and
FACEREC_DATA set (else ./data), so the commands read as a user types them after `make demo`.
Paths of the temporary folder and of the data root are shown as `.` and `$FACEREC_DATA`.
Files are rewritten atomically (a temporary file, then a rename). tests/test_docs_outputs.py
runs the same blocks against a small ORL model and checks that each still has the shape of
what the code prints."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```+)(\S*)\s*$")
SENTINEL = "__facerec_docs_output_{}__"
KINDS = ("shell", "python", "log")


@dataclass
class Block:
    """One fenced block of a markdown file; `kind` is None for an unmarked one."""

    path: Path
    start: int  # index of the opening fence line
    end: int  # index of the closing fence line
    lang: str
    body: list[str]
    kind: str | None = None
    pending: bool = False
    first: str | None = None
    python: str | None = None  # for kind python: the code it prints from
    marker: int | None = None  # index of the marker line

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.start + 1}"


@dataclass
class Marker:
    kind: str
    pending: bool = False
    first: str | None = None


def parse_marker(line: str) -> Marker | None:
    if not line.startswith("<!-- output"):
        return None
    m = re.match(r"^<!-- output: (\w+)(.*) -->$", line)
    if not m or m.group(1) not in KINDS:
        raise ValueError(f"bad output marker {line!r}: expected <!-- output: {'|'.join(KINDS)}[; pending][; first: CMD] -->")
    marker = Marker(m.group(1))
    rest = m.group(2)
    if "; first: " in rest:  # the command may hold `;` itself, so it comes last
        rest, marker.first = rest.split("; first: ", 1)
    for opt in filter(None, (o.strip() for o in rest.split(";"))):
        if opt == "pending":
            marker.pending = True
        else:
            raise ValueError(f"bad output marker {line!r}: unknown option {opt!r}")
    return marker


def blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of a markdown file, with its marker where it has one."""
    lines = (path.read_text() if text is None else text).splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        close = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == m.group(1)), None)
        if close is None:
            raise ValueError(f"{path}:{i + 1}: a fenced block that is never closed")
        b = Block(path, i, close, m.group(2), lines[i + 1:close])
        marker = parse_marker(lines[i - 1]) if i > 0 else None
        if marker:
            b.kind, b.pending, b.first, b.marker = marker.kind, marker.pending, marker.first, i - 1
            if b.kind == "python":
                code = [p for p in out if p.lang == "python"]
                if not code:
                    raise ValueError(f"{path}:{i}: an output: python marker with no ```python block above it")
                b.python = "\n".join(code[-1].body) + "\n"
        out.append(b)
        i = close + 1
    for j, line in enumerate(lines):
        if line.startswith("<!-- output") and not any(b.marker == j for b in out):
            raise ValueError(f"{path}:{j + 1}: an output marker not followed by a fenced block")
    return out


def commands(body: list[str]) -> list[list[str]]:
    """The commands of a session block, each as its displayed lines."""
    cmds: list[list[str]] = []
    cont = False
    for line in body:
        if cont:
            cmds[-1].append(line)
        elif line.startswith("$ "):
            cmds.append([line])
        else:
            continue
        cont = line.endswith("\\")
    return cmds


def _venv_bin() -> Path:
    venv = ROOT / ".venv" / "bin"
    return venv if (venv / "facerec").exists() else Path(sys.executable).parent


def data_root() -> Path:
    return Path(os.environ.get("FACEREC_DATA") or ROOT / "data").resolve()


def setup(model: Path, work: Path) -> tuple[dict, str]:
    """A work folder as after `make demo`: runs/<name>-demo/best.pt; the environment to run in."""
    name = model.parent.name if model.parent.name.endswith("-demo") else f"{model.parent.name}-demo"
    ckpt = Path("runs") / name / "best.pt"
    (work / ckpt.parent).mkdir(parents=True, exist_ok=True)
    (work / ckpt).symlink_to(model.resolve())
    env = {**os.environ, "CKPT": str(ckpt), "FACEREC_DATA": str(data_root()), "PYTHONUNBUFFERED": "1",
           "PATH": f"{_venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
           "FACEREC_PROGRESS_SECONDS": "1000000"}  # no timed progress lines: they depend on the machine
    env.pop("COLUMNS", None)
    return env, str(ckpt)


def _tidy(text: str, work: Path) -> list[str]:
    for path in {str(work), str(work.resolve())}:
        text = text.replace(path + "/", "").replace(path, ".")
    text = text.replace(str(data_root()), "$FACEREC_DATA")
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def run_block(block: Block, model: Path, subs: dict[str, str] | None = None, timeout: float = 3600,
              train_log: Path | None = None) -> list[str] | None:
    """The block's new body, or None where it cannot be made (a log block without a log).
    `subs` replaces text in the commands before they run (the tests swap in smaller data)."""
    def sub(cmd: str) -> str:
        for old, new in (subs or {}).items():
            cmd = cmd.replace(old, new)
        return cmd

    if block.kind == "log":
        if train_log is None:
            return None
        keep = re.compile(r"^(epoch \d+ \| loss |done: )")
        return [line.rstrip() for line in train_log.read_text().splitlines() if keep.match(line)]
    with tempfile.TemporaryDirectory(prefix="facerec-docs-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        env, _ = setup(model, work)
        if block.kind == "python":
            r = subprocess.run([str(_venv_bin() / "python"), "-c", sub(block.python or "")], cwd=work, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
            if r.returncode != 0:
                raise RuntimeError(f"{block.where}: the python block exited with {r.returncode}:\n{r.stdout}")
            return _tidy(r.stdout, work)
        cmds = commands(block.body)
        if not cmds:
            raise ValueError(f"{block.where}: a shell output block with no `$ ` command line")
        script = ["cd " + _quote(str(work)) + " || exit 97"]
        if block.first:
            log = _quote(str(Path(tmp) / "first.log"))
            script.append(f"{{ {sub(block.first)}\n}} >{log} 2>&1 || {{ echo first-failed; cat {log}; exit 97; }}")
        for i, cmd in enumerate(cmds):
            text = "\n".join(cmd)[2:]  # without the prompt
            script += [f"printf '\\n%s\\n' {SENTINEL.format(i)}", sub(text)]
        r = subprocess.run(["bash", "-c", "\n".join(script)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if r.returncode == 97:
            raise RuntimeError(f"{block.where}: the first: command failed:\n{r.stdout}")
        parts = re.split(r"^__facerec_docs_output_\d+__$", r.stdout, flags=re.M)
        if len(parts) != len(cmds) + 1:
            raise RuntimeError(f"{block.where}: the session stopped early:\n{r.stdout}")
        body: list[str] = []
        for cmd, out in zip(cmds, parts[1:]):
            body += cmd + _tidy(out, work)
        return body


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def rewrite(path: Path, model: Path, train_log: Path | None = None, log=print) -> int:
    """Rewrites every output block of one file; returns how many were rewritten."""
    lines = path.read_text().splitlines()
    done = 0
    for b in reversed(blocks(path)):  # from the end, so earlier line numbers stay valid
        if b.kind is None:
            continue
        body = run_block(b, model, train_log=train_log)
        if body is None:
            log(f"{b.where}: a {b.kind} block, left as it is (pass --train-log FILE to rewrite it)")
            continue
        lines[b.start + 1:b.end] = body
        lines[b.marker] = re.sub(r"; pending(?=;| -->)", "", lines[b.marker])
        done += 1
        log(f"{b.where}: {b.kind} block rewritten ({len(body)} lines)")
    write_atomic(path, "\n".join(lines) + "\n")
    return done


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def newest_demo() -> Path | None:
    found = sorted((ROOT / "runs").glob("*-demo/best.pt"))
    return found[-1].parent if found else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="run directory whose best.pt the blocks use (default: the newest runs/*-demo)")
    ap.add_argument("--train-log", type=Path, default=None,
                    help="what a `make demo` run printed, for the log blocks (default: those are left as they are)")
    args = ap.parse_args()
    model_dir = args.model_dir or newest_demo()
    if model_dir is None or not (model_dir / "best.pt").is_file():
        print(f"no model: {'no runs/*-demo/best.pt; run make demo' if model_dir is None else model_dir / 'best.pt'} "
              "(or pass --model-dir)", file=sys.stderr)
        return 2
    if not data_root().is_dir():
        print(f"no data root at {data_root()}: set FACEREC_DATA", file=sys.stderr)
        return 2
    print(f"model: {model_dir / 'best.pt'}")
    total = sum(rewrite(path, model_dir / "best.pt", args.train_log) for path in (args.files or documents()))
    print(f"{total} block(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
