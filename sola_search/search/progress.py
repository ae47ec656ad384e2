"""Live progress of a search on the terminal (rich), or nothing with --quiet."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class SearchStats:
    target: int | None
    deadline: float | None
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    running: int = 0
    queued: int = 0  # trials in packs queued behind a busy worker's running one (`--ahead`)
    duplicates: int = 0
    infeasible: int = 0  # proposals outside the budget, never trained
    front_size: int = 0
    best_top1: float | None = None
    best_pattern: str | None = None
    trial_seconds: list[float] = field(default_factory=list)
    workers: int = 1  # trials at once: worker processes x pack size
    warming: int = 0  # workers still warming up (data onto the device, kernels loaded)
    training: dict = field(default_factory=dict)  # a running pack → its worker's last progress report

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left: remaining trials at the mean trial time over the workers, or the deadline."""
        left = None
        if self.target is not None and self.trial_seconds:
            mean = sum(self.trial_seconds) / len(self.trial_seconds)
            remaining = max(self.target - self.done - self.failed, 0)
            left = mean * -(-remaining // max(self.workers, 1))
        if self.deadline is not None:
            to_deadline = max(self.deadline - time.monotonic(), 0.0)
            left = to_deadline if left is None else min(left, to_deadline)
        return left

    def line(self) -> str:
        total = f"/{self.target}" if self.target is not None else ""
        best = f"{self.best_top1:.4f} ({self.best_pattern})" if self.best_top1 is not None else "–"
        eta = _clock(self.eta) if self.eta is not None else "–"
        warming = f"{self.warming} worker(s) warming up (data, kernels) │ " if self.warming else ""
        prefix = warming + self._training()
        queued = f", {self.queued} queued" if self.queued else ""
        return (f"{prefix}trials {self.done}{total} done, {self.running} running{queued}, {self.failed} failed"
                f"{f', {self.duplicates} answered from storage' if self.duplicates else ''}"
                f"{f', {self.infeasible} outside the budget' if self.infeasible else ''} │ front {self.front_size}"
                f" │ best top-1 {best} │ {_clock(self.elapsed)} elapsed, ETA {eta}")

    def _training(self) -> str:
        """Where the running packs are: steps, images/s (all workers), the longest time left."""
        reports = [r for r in self.training.values() if "step" in r and "steps" in r]
        if not reports:
            return ""
        steps = ", ".join(f"{r['step']}/{r['steps']}" for r in reports[:4]) + (" …" if len(reports) > 4 else "")
        rate = sum(r.get("images_per_s", 0.0) for r in reports)
        left = max(r.get("eta_s", 0.0) for r in reports)
        return f"training step {steps}, {rate:,.0f} images/s, {_clock(left)} left │ "


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Redraws one status line in place; prints lines for finished and failed trials above it."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._live = None

    def __enter__(self) -> Progress:
        if not self.quiet:
            from rich.console import Console
            from rich.live import Live

            console = Console(stderr=True)
            self._live = Live("", console=console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, stats: SearchStats) -> None:
        if self._live is not None:
            self._live.update(stats.line())

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, highlight=False, markup=False)
        elif not self.quiet:
            print(text)
