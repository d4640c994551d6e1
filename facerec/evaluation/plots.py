"""PNG plots: overlaid ROC and DET curves, and training curves. Written atomically."""

from __future__ import annotations

import numpy as np

from facerec.util.fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(fpr: np.ndarray, tpr: np.ndarray, lo: float, n: int = 2000) -> np.ndarray:
    """Indices of at most ~3n ROC points spread along log FAR, FAR and TAR. A million-pair
    ROC has ~10^5 corners; drawn at this size they are indistinguishable and only slow."""
    if len(fpr) <= 3 * n:
        return np.arange(len(fpr))
    targets = [(fpr, np.geomspace(lo, 1, n)), (fpr, np.linspace(0, 1, n)), (tpr, np.linspace(0, 1, n))]
    idx = np.concatenate([np.searchsorted(a, t) for a, t in targets] + [[0, len(fpr) - 1]])
    return np.unique(np.clip(idx, 0, len(fpr) - 1))


def plot_roc_det(curves: dict, path, title: str = "") -> None:
    """curves: legend label -> (scores, labels); several are overlaid to compare experiments.
    Left: ROC, TAR against FAR on a log axis. Right: DET, FNR against FPR on normal-deviate
    (probit) axes, where Gaussian score distributions give straight lines; the EER lies on
    the dotted diagonal."""
    from scipy.special import ndtri  # the normal quantile (norm.ppf) without scipy.stats' import time

    from facerec.evaluation.metrics import eer_from_roc, roc

    data = {}
    for name, (scores, labels) in curves.items():
        fpr, tpr, thr = roc(scores, labels)
        data[name] = fpr, tpr, eer_from_roc(fpr, tpr, thr)[0], int(np.count_nonzero(np.asarray(labels) == 0))
    # Rates below one pair in the largest set cannot be measured; start the axes there.
    lo = min(0.01, max(1e-6, 1 / max(n for *_, n in data.values())))
    probit = lambda p: ndtri(np.clip(p, lo / 2, 1 - lo / 2))  # noqa: E731  0 and 1 drawn at the edges
    ticks = [t for t in (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99) if t > lo / 2]

    plt = _pyplot()
    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, (fpr, tpr, e, _) in data.items():
        keep = _thin(fpr, tpr, lo)
        fpr, tpr = fpr[keep], tpr[keep]
        label = f"{name} (EER {e:.2f}%)"
        ax_roc.plot(np.maximum(fpr, lo), tpr, label=label)
        ax_det.plot(probit(fpr), probit(1 - tpr), label=label)
    ax_roc.set(xscale="log", xlim=(lo, 1), ylim=(0, 1.01), xlabel="false accept rate (FAR)",
               ylabel="true accept rate (TAR)", title="ROC")
    ax_roc.grid(True, which="both", alpha=0.3)
    edge = ndtri([lo / 2, 0.995])  # rates near 1 say little; zero rates are drawn on the low edge
    ax_det.plot(edge, edge, "k:", lw=0.8)
    tick_labels = [f"{t:g}" for t in ticks]
    ax_det.set(xticks=ndtri(ticks), xticklabels=tick_labels, yticks=ndtri(ticks), yticklabels=tick_labels,
               xlim=edge, ylim=edge, xlabel="false accept rate (FPR)", ylabel="false reject rate (FNR)", title="DET")
    ax_det.tick_params(axis="x", labelrotation=45)
    ax_det.grid(True, alpha=0.3)
    _legend_below(fig, ax_roc)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_curves(history: list[dict], path) -> None:
    """Training loss, train accuracy and val EER per epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ep = [r["epoch"] for r in history]
    axes[0].plot(ep, [r["loss"] for r in history], "o-", label="train loss")
    axes[0].set(xlabel="epoch", ylabel="loss", title="training loss")
    val = [(r["epoch"], r["val_eer"]) for r in history if "val_eer" in r]
    if val:
        axes[1].plot(*zip(*val), "o-", color="C3", label="val EER")
    axes[1].set(xlabel="epoch", ylabel="EER (%)", title="validation EER")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    _save(fig, path)


def _save(fig, path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_compare_curves(histories: dict, path, title: str = "") -> None:
    """histories: label -> list of per-seed histories (rows with epoch, loss, val_eer). Each label
    draws its mean over seeds per epoch, with the seeds' min-max as a band."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, runs) in enumerate(histories.items()):
        for ax, key in zip(axes, ("loss", "val_eer")):
            per_epoch: dict[int, list[float]] = {}
            for rows in runs:
                for r in rows:
                    if r.get(key) not in (None, ""):
                        per_epoch.setdefault(int(r["epoch"]), []).append(float(r[key]))
            if not per_epoch:
                continue
            ep = sorted(per_epoch)
            vals = [per_epoch[e] for e in ep]
            ax.plot(ep, [np.mean(v) for v in vals], "o-", ms=3, color=f"C{i % 10}", label=label)
            if any(len(v) > 1 for v in vals):
                ax.fill_between(ep, [min(v) for v in vals], [max(v) for v in vals], color=f"C{i % 10}", alpha=0.15)
    axes[0].set(xlabel="epoch", ylabel="loss", title="training loss (mean over seeds, band: min-max)")
    axes[1].set(xlabel="epoch", ylabel="EER (%)", title="validation EER")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    _legend_below(fig, axes[1])
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    _save(fig, path)


VERDICT_COLORS = {"better": "C2", "worse": "C3"}


def plot_eer_bars(labels: list[str], means: list[float], stds: list[float], baseline: str, path, title: str = "",
                  verdicts: list[str] | None = None) -> None:
    """Mean EER per experiment with a one-standard-deviation error bar; the baseline in grey with
    a dotted line at its mean; significantly better experiments green, worse red."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(labels) + 2), 4.2))
    verdicts = verdicts or [""] * len(labels)
    colors = ["0.55" if lab == baseline else VERDICT_COLORS.get(v, "C0") for lab, v in zip(labels, verdicts)]
    ax.bar(range(len(labels)), means, yerr=stds, color=colors, capsize=3)
    if baseline in labels:
        ax.axhline(means[labels.index(baseline)], color="0.3", ls=":", lw=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="EER (%)", title=title or "validation EER (mean +- std over seeds)")
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)


def _legend_below(fig, ax) -> None:
    """One legend under the panels: inside an axis it would sit on some run's curve."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(labels)), fontsize=8,
                   frameon=False)
