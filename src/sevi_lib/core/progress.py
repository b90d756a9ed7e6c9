"""Progress of long jobs as plain log lines: count, rate and ETA at a sensible interval.

A progress bar redrawn in place is unreadable in a Snakemake log file; these lines are written
at most every `every` seconds (and once at the end), so a 50000-frame detection shard logs a
line every 10 s instead of one per frame.
"""

import sys
import time


class ProgressLog:
    """Callable progress reporter: ``log(done)`` with the absolute count, or ``log.update(k)``.

    Parameters
    ----------
    total : int
        Units of work in all.
    what : str
        Prefix of every line (e.g. ``"detect frames.h5 [0, 5000)"``).
    unit : str
        Name of the unit (``"frames"``, ``"maps"``).
    every : float
        Seconds between lines; 0 or None: silent.
    stream : file, optional
        Where lines go (default ``sys.stderr``).
    clock : callable, optional
        Time source (default ``time.perf_counter``; tests pass their own).

    Lines read ``what: done/total unit, R unit/s, ETA S s``.
    """

    def __init__(self, total, what, *, unit="frames", every=10.0, stream=None, clock=time.perf_counter):
        self.total, self.what, self.unit, self.every = int(total), what, unit, every
        self.stream, self.clock = stream, clock
        self.done = 0
        self.t0 = self.last = clock()

    def line(self, done):
        """The progress line for `done` units now."""
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        return (f"{self.what}: {done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, "
                + (f"ETA {eta:.0f} s" if eta != float("inf") else "ETA ?"))

    def __call__(self, done):
        self.done = int(done)
        now = self.clock()
        if not self.every or (now - self.last < self.every and self.done < self.total):
            return
        self.last = now
        print(self.line(self.done), file=self.stream or sys.stderr, flush=True)

    def update(self, k):
        """Add `k` units (tqdm-style)."""
        self(self.done + int(k))

    def close(self):
        """Nothing to release (tqdm-style); the last line was written when `done` reached `total`."""
