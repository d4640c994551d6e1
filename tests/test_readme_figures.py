"""README and docs/results.md quote measured figures only: the `make demo` figure is the newest one
scripts/bench_demo.py recorded in docs/benchmarks.md, over the seeds the guide names, and each
View 2 row run with `make lfw-view2` the newest record there of its own command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = r"best View 1 EER \*\*(\d+\.\d+) ± (\d+\.\d+)%\*\*"


def newest_entry(title: str) -> str:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    entries = [e for e in doc.split("\n## ")[1:] if e.startswith(title)]
    assert entries, f"docs/benchmarks.md holds no '{title}' entry: run scripts/bench_demo.py"
    return entries[-1]


def test_readme_demo_figure_is_the_newest_bench_demo_measurement():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What `make demo` does and gets"):readme.index("## Everyday use")]
    quoted = re.findall(FIGURE, section)
    assert len(quoted) == 1, "README's demo section must quote exactly one 3-seed figure"
    entry = newest_entry("make demo over seeds")
    assert "- preset demo, seeds 42, 123, 456;" in entry
    measured = re.search(r"- measured: " + FIGURE, entry)
    assert measured, "the bench_demo entry lost its measured line"
    assert quoted[0] == measured.groups(), f"README says {quoted[0]}, the newest measurement is {measured.groups()}"


def test_every_cpu_view2_row_is_its_commands_newest_recorded_run():
    """Each README / results.md row run with `make lfw-view2 ...` quotes the accuracy and pooled EER of
    the newest docs/benchmarks.md View 2 entry made by exactly that command."""
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    entries = [e for e in doc.split("\n## ")[1:] if e.startswith("LFW View 2 (make lfw-view2)")]
    newest = {}
    for e in entries:
        newest[re.search(r"- command: `([^`]+)`", e).group(1)] = e
    checked = set()
    for page in ("README.md", "docs/results.md"):  # the headline table and the full one
        for row in (line for line in (ROOT / page).read_text().splitlines() if "| `make lfw-view2" in line):
            command = re.search(r"\| `(make lfw-view2[^`]*)` \|$", row).group(1)
            assert command in newest, f"{page}: no docs/benchmarks.md View 2 entry was made by `{command}`"
            acc = re.search(r"Accuracy: \*\*(\d+\.\d+)% \+- (\d+\.\d+)\*\*", newest[command]).groups()
            eer = re.search(r"Pooled test folds: EER (\d+\.\d+)%", newest[command]).group(1)
            quoted = re.search(r"\| (\d+\.\d+) ± (\d+\.\d+) \| (\d+\.\d+) \|", row).groups()
            assert quoted == (*acc, eer), f"{page} says {quoted} for `{command}`, its newest record is {(*acc, eer)}"
            checked.add(command)
    assert "make lfw-view2 PRESET=demo_e6" in checked
