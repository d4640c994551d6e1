"""The command output shown in README.md and docs/*.md is what the current code prints.

Every block marked `<!-- output: ... -->` (scripts/docs_outputs.py rewrites them from a `make demo`
model) is run again here against a small model trained on ORL in seconds, and compared line by line
with numbers, paths and the SAME/DIFFERENT decision masked: a changed message, a missing or extra
line, a renamed JSON field fails. A block still marked `pending` (output of an older model, waiting
for `python scripts/docs_outputs.py`) is reported as an expected failure instead. And no unmarked
block may look like command output, so none escapes the check."""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import io
import random
import re
import sys
from pathlib import Path

import pytest

from facerec.cli import main

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_outputs", ROOT / "scripts" / "docs_outputs.py")
docs_outputs = importlib.util.module_from_spec(_spec)
sys.modules["docs_outputs"] = docs_outputs  # dataclasses look their module up there
_spec.loader.exec_module(docs_outputs)

BLOCKS = [b for page in docs_outputs.documents() for b in docs_outputs.blocks(page)]
MARKED = [b for b in BLOCKS if b.kind]
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?%?", re.I)
# Lines whose wording after a point depends on the model's scores (which branch of the FAR rule
# applies): only the part up to that point is compared.
BRANCHING = [re.compile(r"^(?:note: )?FAR=# (?:is|allows) # false accept\(s\) of # different validation pairs")]
# Lines the CLI prints, whatever the model: an unmarked block holding one is unchecked output.
PRINTED = [re.compile(p) for p in (r"^(SAME|DIFFERENT)  score ", r"^epoch \d+ \| loss ", r"^done: \d+ epochs",
                                   r"^scores: .* pairs\)$", r"^FaceModel\(", r"^\{\"file\": ", r"^rank-1 ",
                                   r"^\d+ probes vs \d+ identities", r"^EER\s+\d", r"^pairs\s+\d+ \(")]


def shape(line: str) -> str:
    """A line with what varies between models and machines masked."""
    s = " ".join("PATH" if "/" in tok and tok != "img/s" else tok for tok in line.split())
    s = re.sub(r"\b(SAME|DIFFERENT)\b", "DECISION", s)
    s = NUMBER.sub("#", s)
    for b in BRANCHING:
        m = b.match(s)
        if m:
            return m.group(0) + " ..."
    return s


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, orl_dir, data_root_lfw, data_root_orl):
    """A resnet18 at 32 px trained for two steps on ORL, as a `make demo` run directory; its train log."""
    if data_root_lfw != data_root_orl:
        pytest.skip("the output blocks read LFW and ORL from one data root")
    work = tmp_path_factory.mktemp("docs_outputs")
    assert main(["lists", "orl", "--data-root", str(data_root_orl), "--out", str(work)]) == 0
    run_dir = work / "20990101-000000-resnet18-arcface-demo"
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        rc = main(["train", "--train", str(work / "orl_train.txt"), "--val", str(work / "orl_val_pairs.csv"),
                   "--model", "resnet18", "--input-size", "32", "--embedding-dim", "32", "--batch-classes", "10",
                   "--workers", "0", "--no-progress", "--epochs", "1", "--max-steps", "2", "--tta",
                   "--run-dir", str(run_dir)])
    assert rc == 0, log.getvalue()
    return {"model": run_dir / "best.pt", "log": log.getvalue(), "work": work}


@pytest.fixture(scope="module")
def smaller_data(tiny, orl_dir, data_root_lfw):
    """LFW View 1's val pairs cost a minute to embed on 2 cores: ORL pairs with the same numbers of
    same and different pairs stand in for them, so every count-dependent line reads the same."""
    assert main(["lists", "lfw", "--data-root", str(data_root_lfw), "--out", str(tiny["work"] / "lfw")]) == 0
    labels = [line.split(",")[0] for line in (tiny["work"] / "lfw" / "view1_val_pairs.csv").read_text().splitlines()
              if line and not line.startswith("#")]
    rng = random.Random(0)
    people = sorted(p.name for p in orl_dir.iterdir() if p.is_dir())
    imgs = {p: sorted(f.name for f in (orl_dir / p).iterdir()) for p in people}
    same = [f"1,{p}/{a},{p}/{b}" for p in people for i, a in enumerate(imgs[p]) for b in imgs[p][i + 1:]]
    different = [f"0,{p}/{a},{q}/{b}" for i, p in enumerate(people) for q in people[i + 1:]
                 for a, b in zip(imgs[p][:2], imgs[q][:2])]
    rng.shuffle(same)
    rng.shuffle(different)
    n_same = labels.count("1")
    assert n_same <= len(same) and len(labels) - n_same <= len(different)
    lines = [f"# root: {orl_dir}", *same[:n_same], *different[:len(labels) - n_same]]
    pairs = tiny["work"] / "orl_as_view1_val_pairs.csv"
    pairs.write_text("\n".join(lines) + "\n")
    return {"data_lists/lfw/view1_val_pairs.csv": str(pairs)}


@pytest.fixture(scope="module")
def fresh(tiny, smaller_data, data_root_lfw):
    """Every marked block as the current code writes it, with the small model."""
    import os

    before = os.environ.get("FACEREC_DATA")
    os.environ["FACEREC_DATA"] = str(data_root_lfw)
    try:
        out = {}
        for b in MARKED:
            if b.kind == "log":
                keep = re.compile(r"^(epoch \d+ \| loss |done: )")
                out[b.where] = [line for line in tiny["log"].splitlines() if keep.match(line)]
            else:
                out[b.where] = docs_outputs.run_block(b, tiny["model"], subs=smaller_data, timeout=300)
        return out
    finally:
        if before is None:
            os.environ.pop("FACEREC_DATA", None)
        else:
            os.environ["FACEREC_DATA"] = before


def _mismatch(block, now: list[str]) -> str | None:
    if block.kind == "log":  # a whole training log: every line is an epoch line or the done line
        want = {shape(line) for line in now}
        bad = [line for line in block.body if shape(line) not in want]
        missing = not block.body or not block.body[-1].startswith("done: ")
        if not bad and not missing:
            return None
        return ("lines unlike what training prints now:\n  " + "\n  ".join(bad[:3]) + "\nnow:\n  " + "\n  ".join(now)
                + ("\n(no done: line at the end)" if missing else ""))
    doc, cur = [shape(line) for line in block.body], [shape(line) for line in now]
    if doc == cur:
        return None
    return "\n".join(difflib.unified_diff(doc, cur, "in the docs (masked)", "printed now (masked)", lineterm=""))


def test_the_docs_have_output_blocks():
    kinds = {b.kind for b in MARKED}
    assert {"shell", "python", "log"} <= kinds, kinds
    assert any(b.path.name == "README.md" for b in MARKED)


@pytest.mark.parametrize("block", MARKED, ids=lambda b: b.where)
def test_an_output_block_has_the_shape_of_what_the_code_prints(block, fresh):
    diff = _mismatch(block, fresh[block.where])
    if diff and block.pending:
        pytest.xfail(f"{block.where} still shows an older model's output; `python scripts/docs_outputs.py` "
                     f"rewrites it:\n{diff}")
    assert not diff, f"{block.where}: the output shown is not what the code prints now:\n{diff}"


def test_no_unmarked_block_looks_like_command_output(fresh):
    printed = {shape(line) for lines in fresh.values() for line in lines
               if line.strip() and not line.startswith("$ ")}
    for b in BLOCKS:
        if b.kind:
            continue
        for i, line in enumerate(b.body):
            looks = any(p.match(line) for p in PRINTED) or shape(line) in printed
            session = line.startswith("$ ") and i + 1 < len(b.body) and not b.body[i + 1].startswith(("$ ", " "))
            assert not (looks or session), (
                f"{b.path.name}:{b.start + 2 + i}: {line!r} looks like command output; mark the block with "
                "<!-- output: ... --> so scripts/docs_outputs.py writes it and this test checks it")


def test_markers_parse_and_sessions_have_commands():
    for b in MARKED:
        if b.kind == "shell":
            assert docs_outputs.commands(b.body), f"{b.where}: a shell block with no `$ ` command"
    m = docs_outputs.parse_marker("<!-- output: shell; pending; first: a; b -->")
    assert (m.kind, m.pending, m.first) == ("shell", True, "a; b")
    with pytest.raises(ValueError):
        docs_outputs.parse_marker("<!-- output: bash -->")


def test_the_script_rewrites_marked_blocks_in_place(tiny, tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n```python\nprint('from python', 6 * 7)\n```\n\n<!-- output: python; pending -->\n"
                    "```\nstale\n```\n\nText.\n\n<!-- output: shell; pending; first: echo unseen; echo unseen -->\n"
                    "```\n$ echo $CKPT\nstale\n$ echo one; \\\n  echo two\n```\n\n<!-- output: log -->\n```\nkept\n```\n")
    assert docs_outputs.rewrite(page, tiny["model"], log=print) == 2
    assert page.read_text() == (
        "# A page\n\n```python\nprint('from python', 6 * 7)\n```\n\n<!-- output: python -->\n```\nfrom python 42\n```\n\n"
        "Text.\n\n<!-- output: shell; first: echo unseen; echo unseen -->\n```\n$ echo $CKPT\n"
        "runs/20990101-000000-resnet18-arcface-demo/best.pt\n$ echo one; \\\n  echo two\none\ntwo\n```\n\n"
        "<!-- output: log -->\n```\nkept\n```\n")
    assert "a log block, left as it is" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]  # the temporary file was renamed over it
