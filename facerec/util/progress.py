"""Progress of long work: a bar on a terminal; elsewhere (output to a log file) one line at a steady
interval, so a log never goes quiet for minutes while training, embedding or decoding runs.

The line says where the work is, its rate and the time left:
`epoch 3/15: 120/418 step (29%) | 2.1 step/s | ETA 2m22s | loss=12.345`. It is logged through
`logging` (logger `facerec.util.progress`, INFO), so `-q` silences it and a library user sees it only
when they configure logging. The interval is FACEREC_PROGRESS_SECONDS (default 60); the first
line comes after one interval, so short work prints nothing.
"""

from __future__ import annotations

import logging
import os
import time

from tqdm import tqdm

EVERY_ENV = "FACEREC_PROGRESS_SECONDS"
DEFAULT_EVERY = 60.0
LOG = logging.getLogger("facerec.util.progress")


def interval() -> float:
    try:
        return max(0.0, float(os.environ.get(EVERY_ENV, DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Ticker:
    """tqdm's interface (iterate, update, set_postfix, close) printing a line every `every` seconds."""

    def __init__(self, iterable=None, *, total=None, desc: str = "", unit: str = "it", every: float | None = None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.total, self.n, self.postfix = total, 0, ""
        self.every = interval() if every is None else every
        self.t0 = self.last = time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def __len__(self):
        return self.total if self.total is not None else len(self.iterable)

    def set_postfix(self, **kw) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            LOG.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or time.perf_counter()) - self.t0)
        rate = self.n / elapsed
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"
                 + (f" ({100 * self.n / self.total:.0f}%)" if self.total else ""), f"{rate:.1f} {self.unit}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return " | ".join(parts)

    def close(self) -> None:
        pass


def progress(iterable=None, *, bar: bool, total=None, desc: str = "", unit: str = "it", every: float | None = None):
    """A tqdm bar when `bar` (a terminal asked for one), else a Ticker logging at a steady interval."""
    if bar:
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    return Ticker(iterable, total=total, desc=desc, unit=unit, every=every)
