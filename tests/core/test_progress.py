"""sevi_lib.core.progress: plain progress lines at an interval, with rate and ETA."""

import io

from sevi_lib.core.progress import ProgressLog


def test_lines_at_the_interval_and_at_the_end():
    t = [0.0]
    out = io.StringIO()
    log = ProgressLog(100, "detect f.h5 [0, 100)", every=10.0, stream=out, clock=lambda: t[0])
    for done in range(1, 101):
        t[0] = done * 0.5  # 2 frames/s
        log(done)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # at 10, 20, 30, 40 s and the last frame
    assert lines[0] == "detect f.h5 [0, 100): 20/100 frames, 2.0 frames/s, ETA 40 s"
    assert lines[-1].startswith("detect f.h5 [0, 100): 100/100 frames") and lines[-1].endswith("ETA 0 s")


def test_update_counts_and_silence():
    out = io.StringIO()
    log = ProgressLog(10, "synth", unit="maps", every=0, stream=out)
    log.update(4)
    log.update(6)
    assert log.done == 10 and out.getvalue() == ""
