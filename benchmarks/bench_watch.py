"""Live analysis: does ``sevi watch`` keep up with a camera writing 50 frames/s of 80 electrons?

A writer process replays a simulated file (two shells, 80 detected electrons per frame, read
noise) into an SWMR file at ``--fps``; the watcher (:class:`sevi_lib.watch.live.Watcher`, the loop
of ``sevi watch``, ``--threads`` detection threads, refits every ``--refit`` s in its fitting
process) follows it in this process. Printed:

- the baseline, measured first in this process on the same frames: batch detection alone
  (``detect_file``, same threads), frames/s;
- the watcher: frames/s it sustained over the run, as a ratio to the camera's rate and to the
  baseline; the lag (seconds between the moment a frame was due from the writer and the moment
  it was counted) at every chunk: median, 95th percentile, largest, and at the end;
- the refits it made meanwhile.

The machine's load changes all of these; the ratios are the result. Run:

    python benchmarks/bench_watch.py [--frames 400] [--fps 50] [--threads 2] [--refit 15] [--fit-nice 10]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sevi_lib.core.shells import Shells
from sevi_lib.detect.shards import detect_file
from sevi_lib.detect.camera import survey_frames
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings
from sevi_lib.watch.live import Watcher, WatchSettings, status_lines
from sevi_lib.watch.sources import SwmrSource, writer_flags
from sevi_lib.watch.state import WatchState

PEAKED = [1, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0, 0, 0.0]
SHELLS = Shells([0.5, 0.8], [0.007, 0.008], [PEAKED, PEAKED])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--fps", type=float, default=50.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--refit", type=float, default=15.0, help="seconds between refits")
    ap.add_argument("--electrons", type=float, default=80.0, help="detected electrons per frame")
    ap.add_argument("--fit-nice", type=int, default=WatchSettings.fit_nice,
                    help="niceness of the fitting process (0: the watcher's own priority)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_shell = args.electrons / 2 / 0.9  # 10 % detection loss
        t = time.perf_counter()
        write_test_file(tmp / "run.h5", tmp / "truth.h5", SHELLS, SimulationSettings(
            n_frames=args.frames, electrons_per_shell=[per_shell, per_shell], seed=1, read_noise=1.0, threads=2),
            progress=False)
        print(f"simulated {args.frames} frames in {time.perf_counter() - t:.1f} s")
        camera = survey_frames(tmp / "run.h5")
        detect_file(tmp / "run.h5", 0, min(8, args.frames), camera=camera, threads=args.threads)  # compile
        t = time.perf_counter()
        base = detect_file(tmp / "run.h5", 0, args.frames, camera=camera, threads=args.threads, chunk=32)
        base_rate = args.frames / (time.perf_counter() - t)
        print(f"baseline: batch detection, {args.threads} threads: {base_rate:.1f} frames/s "
              f"({base['electrons'].size / args.frames:.1f} electrons per frame)")

        start_at = time.monotonic() + 3.0
        writer = subprocess.Popen([sys.executable, "-m", "sevi_lib.watch.writer", str(tmp / "run.h5"),
                                   str(tmp / "live.h5"), "--fps", str(args.fps), "--start-at", str(start_at)])
        while not (tmp / "live.h5").exists() or writer_flags(tmp / "live.h5") is None:
            time.sleep(0.02)
        time.sleep(0.2)
        lags, refits = [], []

        times = []

        def on_chunk(done):
            times.append(time.monotonic())
            lags.append(times[-1] - (start_at + (done - 1) / args.fps))

        with SwmrSource(tmp / "live.h5") as src:
            w = Watcher(src, WatchState(tmp / "st"), camera=camera, on_chunk=on_chunk,
                        on_refit=lambda st, r, w: refits.append(st),
                        settings=WatchSettings(threads=args.threads, refit_seconds=args.refit, poll_seconds=0.02,
                                               chunk=16, fit_nice=args.fit_nice))
            out = w.run()
            t_end = time.monotonic()
        writer.wait()
        lags = np.array(lags)
        n = out["acc"]["n_frames"]
        rate = n / (times[-1] - start_at)
        print(f"camera: {args.fps:g} frames/s for {args.frames / args.fps:.1f} s")
        print(f"watcher: {n} frames counted, {rate:.1f} frames/s sustained = {rate / args.fps:.2f} x the camera, "
              f"{rate / base_rate:.2f} x batch detection")
        print(f"lag (s) at each chunk: median {np.median(lags):.2f}, 95 % {np.percentile(lags, 95):.2f}, "
              f"largest {lags.max():.2f}, at the end {lags[-1]:.2f} (finish, accumulate and final fit "
              f"{t_end - times[-1]:.1f} s more)")
        print(f"refits during the run: {len(refits)}")
        if refits:
            print("\n".join(status_lines(refits[-1])))
        keeps_up = lags[-1] < 2.0 and rate >= 0.95 * args.fps
        print(f"keeps up with {args.fps:g} frames/s: {'yes' if keeps_up else 'NO'}")


if __name__ == "__main__":
    main()
