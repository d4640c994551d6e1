"""PNG plots: overlaid ROC and DET curves, and training curves. Written atomically."""

from __future__ import annotations

import numpy as np

from .fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc_det(curves: dict, path, title: str = "") -> None:
    """curves: label -> (scores, labels). ROC on a log FAR axis; DET on normal-deviate axes."""
    from scipy.stats import norm

    from .metrics import eer, roc

    plt = _pyplot()
    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(11, 4.8))
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5])
    for name, (scores, labels) in curves.items():
        fpr, tpr, _ = roc(scores, labels)
        e, _ = eer(scores, labels)
        label = f"{name} (EER {e:.2f}%)"
        ax_roc.plot(np.maximum(fpr, 1e-4), tpr, label=label)
        clip = lambda p: norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))  # noqa: E731
        ax_det.plot(clip(fpr), clip(1 - tpr), label=label)
    ax_roc.set(xscale="log", xlim=(1e-4, 1), ylim=(0, 1), xlabel="false accept rate (FAR)",
               ylabel="true accept rate (TAR)", title="ROC")
    ax_roc.grid(True, which="both", alpha=0.3)
    ax_det.set(xticks=norm.ppf(ticks), xticklabels=[f"{t:g}" for t in ticks], yticks=norm.ppf(ticks),
               yticklabels=[f"{t:g}" for t in ticks], xlabel="false accept rate", ylabel="false reject rate", title="DET")
    ax_det.plot(norm.ppf([1e-3, 0.5]), norm.ppf([1e-3, 0.5]), "k:", lw=0.8)
    ax_det.grid(True, alpha=0.3)
    ax_roc.legend(loc="lower right", fontsize=8)
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
