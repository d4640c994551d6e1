"""Benchmark scoring: compute_all on synthetic pairs with folds, and the scores-file round trip.

    .venv/bin/python scripts/bench_score.py [--pairs 1000000] [--repeats 5] [--no-record]

Prints the figures and appends them to docs/benchmarks.md (scripts/benchlog.py; earlier
entries are kept). Scores are float32 cosines cast to float64, as the evaluator makes
them, so ties occur as in real files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlog import append  # noqa: E402

from facerec.evaluation import metrics  # noqa: E402
from facerec.evaluation.scores import read_scores, write_scores  # noqa: E402


def synthetic(n: int, folds: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int8)
    scores = np.clip(rng.normal(0.1 + 0.4 * labels, 0.2), -1, 1).astype(np.float32).astype(np.float64)
    fold = np.repeat(np.arange(1, folds + 1), -(-n // folds))[:n]
    ids = rng.integers(0, 5749, (2, n))
    p1 = [f"lfw/id{a:04d}/id{a:04d}_{i % 9:04d}.jpg" for i, a in enumerate(ids[0].tolist())]
    p2 = [f"lfw/id{b:04d}/id{b:04d}_{i % 7:04d}.jpg" for i, b in enumerate(ids[1].tolist())]
    return scores, labels, fold, p1, p2


def timed(fn, repeats: int) -> tuple[tuple[float, float], object]:
    """Median (wall, CPU) seconds. CPU time is reported too: on a shared machine the wall
    time mostly measures the neighbours."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return (float(np.median(wall)), float(np.median(cpu))), out


def sklearn_reference(scores, labels) -> float:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    fnr = 1 - tpr
    idx = np.nanargmin(np.abs(fnr - fpr))
    roc_auc_score(labels, scores)
    return max(fpr[idx], fnr[idx]) * 100


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="compute_all runs; the median is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args(argv)

    scores, labels, folds, p1, p2 = synthetic(args.pairs, args.folds, args.seed)
    t_all, m = timed(lambda: metrics.compute_all(scores, labels, folds), args.repeats)
    t_sk, sk_eer = timed(lambda: sklearn_reference(scores, labels), 3)
    assert m["eer"] == sk_eer, (m["eer"], sk_eer)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.csv"
        t_write, _ = timed(lambda: write_scores(path, scores, labels, p1, p2, folds), 3)
        size = path.stat().st_size
        t_read, back = timed(lambda: read_scores(path), 3)
    assert np.array_equal(back.scores, scores) and back.path2 == p2, "round trip changed the data"
    assert metrics.compute_all(back.scores, back.labels, back.folds) == m

    n = f"{args.pairs:,}"
    rows = [
        (f"compute_all, {n} pairs, {args.folds} folds (median of {args.repeats})", t_all),
        ("sklearn roc_curve + EER + roc_auc_score, no folds (reference, median of 3)", t_sk),
        (f"write_scores, {size / 1e6:.0f} MB (median of 3)", t_write),
        ("read_scores, validated (median of 3)", t_read),
        ("scores file round trip, write + read", tuple(w + r for w, r in zip(t_write, t_read))),
    ]
    lines = [
        f"- result: EER {m['eer']:.3f}%, AUC {m['auc']:.4f}, "
        f"{args.folds}-fold accuracy {m.get('fold_acc_mean', float('nan')):.2f}%",
        "",
        "| step | wall s | CPU s |",
        "|---|---:|---:|",
        *[f"| {name} | {wall:.3f} | {cpu:.3f} |" for name, (wall, cpu) in rows],
    ]
    print("\n".join(lines))
    if not args.no_record:
        append("Scoring (scripts/bench_score.py)", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
