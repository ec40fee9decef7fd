"""Progress that tells the truth: counts of passes done and left, and the time left at the rate so far.

``explain(progress=...)`` calls ``progress(fraction, text)`` with a fraction that starts at 0 and
never goes back, and a text such as "Score-CAM: masked pass 240 / 1,280 · about 25 s left".

The fraction counts units of work (one masked forward pass of one image, or one call of a method
that makes one map per call); the totals are planned before the first slow method starts, from
upper bounds, and lowered when a method knows its exact count (Score-CAM runs channels whose
activation is constant only once), so the fraction only jumps forward.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

Progress = Optional[Callable[[float, str], None]]
PassCounter = Callable[[int, int], None]  # (passes done in this call, passes this call makes)


def time_left(seconds: float) -> str:
    """'about 25 s left', 'about 3 min left' (rounded as a person would say it)."""
    if seconds < 1:
        return "less than a second left"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


class ProgressTracker:
    """The progress of one ``explain()`` call over its slow methods (the one-pass methods are one step).

    Args:
        progress: the caller's callback, or None (then every method here does nothing).
        plan: {method label: (upper bound of its units, unit name, e.g. "masked pass")}.
    """

    def __init__(self, progress: Progress, plan: dict[str, tuple[int, str]],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.progress, self.clock = progress, clock
        self.totals = {label: max(int(units), 0) for label, (units, _) in plan.items()}
        self.units = {label: unit for label, (_, unit) in plan.items()}
        self.done = {label: 0 for label in plan}
        self.started: Optional[float] = None
        self.fraction = 0.0

    def start(self, text: str = "one forward and backward pass") -> None:
        self._report(text)

    def method(self, label: str) -> "MethodProgress":
        if self.started is None:
            self.started = self.clock()
        return MethodProgress(self, label)

    def finish(self, label: str) -> None:
        """The method is done: whatever was planned and not run is dropped from its total."""
        self.totals[label] = self.done[label]
        self._report(f"{label}: done")

    def _report(self, text: str) -> None:
        if self.progress is None:
            return
        total = sum(self.totals.values())
        done = sum(self.done.values())
        self.fraction = max(self.fraction, min(done / total, 1.0) if total else 0.0)  # never backwards
        self.progress(self.fraction, text)

    def _count_text(self, label: str) -> str:
        done, total = self.done[label], self.totals[label]
        text = f"{label}: {self.units[label]} {done:,} / {total:,}"
        all_done, all_total = sum(self.done.values()), sum(self.totals.values())
        if all_done and self.started is not None and self.clock() > self.started:
            elapsed = self.clock() - self.started
            text += " · " + time_left(elapsed / all_done * (all_total - all_done))
        return text


class MethodProgress:
    """One slow method's counter; ``call(estimate)`` gives the callback for one call of the method."""

    def __init__(self, tracker: ProgressTracker, label: str) -> None:
        self.tracker, self.label = tracker, label

    def call(self, estimate: int) -> PassCounter:
        """A (done, total) callback for one call planned at ``estimate`` units; its real total replaces it."""
        tracker, label = self.tracker, self.label
        base = tracker.done[label]
        planned = [int(estimate)]

        def counter(done: int, total: int) -> None:
            if total != planned[0]:  # the call knows better than the plan
                tracker.totals[label] = max(tracker.totals[label] + total - planned[0], base + total)
                planned[0] = total
            tracker.done[label] = base + min(done, total)
            tracker._report(tracker._count_text(label))

        return counter

    def step(self) -> None:
        """For methods counted per call (one map per class and layer): one more call done."""
        tracker = self.tracker
        tracker.done[self.label] = min(tracker.done[self.label] + 1, tracker.totals[self.label])
        tracker._report(tracker._count_text(self.label))
