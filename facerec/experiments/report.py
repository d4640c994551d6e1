"""Comparison reports: one Markdown file and one self-contained HTML page per phase (or per
ad-hoc set of runs), and an index page linking them.

Per experiment: its hypothesis, the config keys it changes against the baseline, EER / AUC /
TAR@FAR as mean +- std over seeds, the EER delta to the baseline with a 95% paired-bootstrap
interval and Welch's t-test over seeds, the verdict (see stats.py), and its costs (params,
FLOPs, CPU ms/image, size, peak memory, training time). Plots: EER bars with error bars,
overlaid training curves, overlaid ROC/DET, and per experiment the same two against the
baseline.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from facerec.experiments import stats
from facerec.experiments.compare import Comparison, RunData, compare, groups_from_index
from facerec.util.fileio import write_text


# --- rendering ---------------------------------------------------------------------------------
def _pm(ms: tuple[float, float], digits: int = 2) -> str:
    if ms[1] != ms[1]:  # NaN: a single seed
        return f"{ms[0]:.{digits}f} ± n/a (1 seed)"
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def _num(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def _delta(c: Comparison) -> str:
    if c.boot is None:
        return "n/a"
    return f"{c.boot.delta:+.2f} [{c.boot.low:+.2f}, {c.boot.high:+.2f}]"


def _p(c: Comparison) -> str:
    return "n/a (< 2 seeds)" if c.welch is None else f"{c.welch.p:.3g}"


def table_rows(comps: list[Comparison], baseline: str) -> list[list[str]]:
    rows = []
    for c in comps:
        is_base = c.label == baseline
        stopped = [r.interrupted_at for r in c.runs if r.interrupted_at is not None]
        mark = (f" (interrupted at epoch {stopped[0]})" if len(c.runs) == 1 else f" ({len(stopped)} interrupted)"
                ) if stopped else ""
        rows.append([c.label + (" (baseline)" if is_base and c.label != "baseline" else "") + mark, str(len(c.runs)), _pm(c.eer), "" if is_base else _delta(c),
                     "" if is_base else _p(c), "" if is_base else c.verdict, _pm(c.auc, 4), _pm(c.tar, 1),
                     _num(c.cost("trunk_params") and c.cost("trunk_params") / 1e6, ".2f"),
                     _num(c.cost("flops") and c.cost("flops") / 1e9, ".2f"), _num(c.cost("ms_per_image_cpu"), ".2f"),
                     _num(c.cost("size_mb"), ".1f"), _num(c.cost("peak_memory_mb"), ".0f"),
                     _num(c.cost("train_seconds"), ".0f")])
    return rows


HEADER = ["experiment", "seeds", "EER % (mean ± std)", "Δ EER vs baseline [95% CI]", "Welch p", "verdict",
          "AUC", "TAR@FAR=1e-2 %", "trunk params (M)", "GFLOPs", "CPU ms/img", "size MB", "peak mem MB", "train s"]


def _md_table(header, rows) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "report"


def write_report(groups: dict[str, list[RunData]], baseline: str, out_dir, name: str, *, title: str,
                 description: str = "", n_boot: int = 1000) -> Path:
    """Writes OUT/NAME.md, OUT/NAME.html (images inlined) and OUT/NAME_files/*.png; returns the HTML path."""
    from facerec.evaluation.plots import plot_compare_curves, plot_eer_bars, plot_roc_det

    comps = compare(groups, baseline, n_boot=n_boot)
    out_dir = Path(out_dir)
    files = out_dir / f"{slug(name)}_files"
    files.mkdir(parents=True, exist_ok=True)
    labels = [c.label for c in comps]
    plots = {"eer_bars.png": "EER per experiment", "curves.png": "Training curves", "roc_det.png": "ROC and DET"}
    plot_eer_bars(labels, [c.eer[0] for c in comps], [c.eer[1] for c in comps], baseline, files / "eer_bars.png",
                  title=f"{title}: validation EER (mean ± std over seeds; green better, red worse)",
                  verdicts=[c.verdict for c in comps])
    plot_compare_curves({c.label: [r.history for r in c.runs] for c in comps}, files / "curves.png", title=title)
    median = {c.label: _median_run(c.runs) for c in comps}
    roc_sets = {lab: (r.scores.scores, r.scores.labels) for lab, r in median.items() if r.scores is not None}
    if roc_sets:
        plot_roc_det(roc_sets, files / "roc_det.png", title=f"{title} (each experiment's median-EER seed)")
    else:
        plots.pop("roc_det.png")
    per_exp = {}
    for c in comps[1:]:
        stem = slug(c.label)
        plot_compare_curves({baseline: [r.history for r in comps[0].runs], c.label: [r.history for r in c.runs]},
                            files / f"{stem}_curves.png", title=f"{c.label} vs {baseline}")
        pair = {lab: roc_sets[lab] for lab in (baseline, c.label) if lab in roc_sets}
        if len(pair) == 2:
            plot_roc_det(pair, files / f"{stem}_roc_det.png", title=f"{c.label} vs {baseline}")
        per_exp[c.label] = [p for p in (f"{stem}_curves.png", f"{stem}_roc_det.png") if (files / p).is_file()]

    rows = table_rows(comps, baseline)
    env = comps[0].runs[0].env
    md = [f"# {title}", "", description, "",
          f"Baseline: **{baseline}**. Verdict rule: {_rule()}", "", _md_table(HEADER, rows), ""]
    for p, caption in plots.items():
        md += [f"![{caption}]({files.name}/{p})", ""]
    for c in comps[1:]:
        md += _md_experiment(c, baseline, files.name, per_exp[c.label])
    md += ["## Environment", "", "```", json.dumps(env, indent=2), "```", ""]
    write_text(out_dir / f"{slug(name)}.md", "\n".join(md))

    def img(p):
        data = base64.b64encode((files / p).read_bytes()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(p)}">'

    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(description)}</p>",
            f"<p>Baseline: <b>{html.escape(baseline)}</b>. Verdict rule: {html.escape(_rule())}</p>",
            _html_table(HEADER, rows)]
    body += [f"<h3>{html.escape(cap)}</h3>{img(p)}" for p, cap in plots.items()]
    for c in comps[1:]:
        body += _html_experiment(c, baseline, [img(p) for p in per_exp[c.label]])
    body += ["<h2>Environment</h2>", f"<pre>{html.escape(json.dumps(env, indent=2))}</pre>"]
    page = out_dir / f"{slug(name)}.html"
    write_text(page, _page(title, "\n".join(body)))
    return page


def _median_run(runs: list[RunData]) -> RunData:
    return sorted(runs, key=lambda r: r.metrics["eer"])[(len(runs) - 1) // 2]


def _rule() -> str:
    return ("better/worse when the 95% paired-bootstrap interval of the EER delta (over validation pairs, "
            "1000 resamples) excludes 0 and, with >= 2 seeds on both sides, Welch's t-test over seeds gives "
            f"p < {stats.ALPHA}; otherwise not significant.")


def _seed_rows(c: Comparison) -> list[list[str]]:
    return [[str(r.seed), f"{r.metrics['eer']:.2f}", f"{r.metrics['auc']:.4f}",
             f"{r.metrics['tar_far_1e-2']:.1f}", str(r.summary.get("best_epoch")),
             str(r.run_dir) + ("" if r.interrupted_at is None else f" (interrupted at epoch {r.interrupted_at})")]
            for r in c.runs]


SEED_HEADER = ["seed", "EER %", "AUC", "TAR@FAR=1e-2 %", "best epoch", "run"]


def _diff_rows(c: Comparison) -> list[list[str]]:
    return [[k, str(a), str(b)] for k, (a, b) in c.diff.items()] or [["(none)", "", ""]]


def _sentence(c: Comparison, baseline: str) -> str:
    if c.boot is None:
        return f"{c.label}: {c.note or 'not comparable'}."
    direction = "lower" if c.boot.delta < 0 else "higher"
    return (f"{c.label}: EER {_pm(c.eer)}% vs {baseline}, {abs(c.boot.delta):.2f} points {direction} "
            f"(95% CI {c.boot.low:+.2f} to {c.boot.high:+.2f}; Welch p = {_p(c)}): **{c.verdict}**.")


def _md_experiment(c: Comparison, baseline: str, files: str, plots: list[str]) -> list[str]:
    md = [f"## {c.label}", "", f"*Hypothesis:* {c.hypothesis or '(none given)'}", "", _sentence(c, baseline), "",
          "Config against the baseline:", "", _md_table(["key", baseline, c.label], _diff_rows(c)), "",
          _md_table(SEED_HEADER, _seed_rows(c)), ""]
    md += [f"![{p}]({files}/{p})" for p in plots] + [""]
    return md


def _html_experiment(c: Comparison, baseline: str, imgs: list[str]) -> list[str]:
    sentence = html.escape(_sentence(c, baseline)).replace("**", "")
    return [f"<h2 id='{html.escape(slug(c.label))}'>{html.escape(c.label)}</h2>",
            f"<p><i>Hypothesis:</i> {html.escape(c.hypothesis or '(none given)')}</p>",
            f"<p class='verdict {c.verdict.replace(' ', '-')}'>{sentence}</p>",
            _html_table(["key", baseline, c.label], _diff_rows(c)), _html_table(SEED_HEADER, _seed_rows(c)), *imgs]


def _page(title: str, body: str) -> str:
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
             "th{background:#f0f0f0}img{max-width:100%;display:block;margin:.5em 0}"
             ".verdict.better{color:#070}.verdict.worse{color:#a00}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def write_index_page(out_dir) -> Path:
    out_dir = Path(out_dir)
    pages = sorted(p for p in out_dir.glob("*.html") if p.name != "index.html")
    items = "".join(f"<li><a href='{html.escape(p.name)}'>{html.escape(p.stem)}</a></li>" for p in pages)
    page = out_dir / "index.html"
    write_text(page, _page("facerec reports", f"<h1>Reports</h1><ul>{items}</ul>"))
    md = "# Reports\n\n" + "".join(f"- [{p.stem}]({p.stem}.md)\n" for p in pages)
    write_text(out_dir / "index.md", md)
    return page


def write_phase_report(index, phase: str, baseline: str = "baseline", out_dir=None, n_boot: int = 1000) -> Path:
    from facerec.experiments.plan import load_phases

    phases = load_phases()
    groups = groups_from_index(index, phase)
    desc = phases[phase].description if phase in phases else ""
    out_dir = Path(out_dir) if out_dir else index.folder / "report"
    page = write_report(groups, baseline, out_dir, phase, title=f"Phase {phase}", description=desc, n_boot=n_boot)
    write_index_page(out_dir)
    return page
