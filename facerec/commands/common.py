"""Arguments several subcommands share, defined once."""

from __future__ import annotations

import argparse
import math


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None,
                   help="data root holding lfw/ and orl/ (default: $FACEREC_DATA, else ./data)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: one per CPU core, max 8)")


def add_test_crops(p: argparse.ArgumentParser, default: str, scoring_only: bool = False) -> None:
    """--test-crops, with the choices of the training key it overrides; `default` says what it falls back on."""
    from facerec.config import CHOICES

    only = "; a scoring choice only, like --tta: folds scored otherwise are rescored without retraining" \
        if scoring_only else ""
    p.add_argument("--test-crops", type=int, choices=CHOICES["test_crops"], default=None,
                   help=f"crops of each face embedded and summed: 1 (the centre) or 5 (and the four corners, the "
                        f"extremes of training's random crop){only} (default: {default})")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bars: auto shows them only on a terminal, never in a log file (default auto)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const="off", help="= --progress off")


def progress_on(args) -> bool:
    import sys

    return args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())


def cosine_threshold(text: str) -> float:
    """argparse type of a --threshold: a finite cosine in [-1, 1] (nan or inf is a usage error, exit 2)."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [-1, 1], got {text!r}") from None
    if not (math.isfinite(t) and -1 <= t <= 1):
        raise argparse.ArgumentTypeError(f"a cosine threshold is a finite number in [-1, 1], got {text!r}")
    return t


def score_threshold(text: str) -> float:
    """argparse type of verify's --threshold: a finite number (nan would refuse every pair, inf even an
    image compared with itself). Its range depends on the model (a cosine in [-1, 1], a back-end's score
    otherwise), so that is checked once the model is loaded."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None
    if not math.isfinite(t):
        raise argparse.ArgumentTypeError(f"a threshold is a finite number (a cosine in [-1, 1], or a back-end's "
                                         f"score), got {text!r}")
    return t


def finite_number(text: str) -> float:
    """argparse type of a finite float (nan or inf is a usage error, exit 2)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return x


def false_accept_rate(text: str) -> float:
    """argparse type of a --far: a number in (0, 1)."""
    try:
        far = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < far < 1:
        raise argparse.ArgumentTypeError(f"a false accept rate lies in (0, 1), got {text!r}")
    return far
