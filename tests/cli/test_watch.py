"""Tests of ``sevi watch``: the batch workflow's answer at the end, the live page (in a real browser when
one is installed), and the one-line errors."""

import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.shells import Shells
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings

#: the sevi command in a process of its own
SEVI = [sys.executable, "-c", "import sys; from sevi_lib.cli import main; sys.exit(main())"]
PEAKED = [1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0]
BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A complete 16-frame file (read noise, hot pixels) watched, and the workflow's commands on it."""
    d = tmp_path_factory.mktemp("watch")
    sh = Shells([0.45, 0.75], [0.0075, 0.0075], [PEAKED, PEAKED])
    write_test_file(d / "run.h5", d / "truth.h5", sh, SimulationSettings(
        n_frames=16, electrons_per_shell=[40, 40], seed=3, read_noise=1.5, hot_pixels=2), progress=False)
    frames = str(d / "run.h5")
    assert main(["survey", frames, "--out", str(d / "camera.json")]) == 0
    assert main(["detect", frames, "--shard", "0", "--shards", "1", "--camera", str(d / "camera.json"),
                 "--out", str(d / "shard.h5")]) == 0
    assert main(["accumulate", str(d / "shard.h5"), "--electrons", str(d / "e.h5"), "--count-map", str(d / "c.npy"),
                 "--intensity-sum", str(d / "i.npy"), "--summary", str(d / "summary.txt")]) == 0
    assert main(["fit", str(d / "e.h5"), "--out", str(d / "fit.h5"), "--quiet"]) == 0
    assert main(["watch", frames, "--state", str(d / "st"), "--quiet"]) == 0
    return d


def test_a_complete_file_gives_the_workflows_answer(watched):
    d, st = watched, watched / "st"
    assert json.loads((st / "camera.json").read_text()) == json.loads((d / "camera.json").read_text())
    with h5py.File(st / "electrons.h5") as a, h5py.File(d / "e.h5") as b:
        np.testing.assert_array_equal(a["DetectedElectrons"][()], b["DetectedElectrons"][()])
        assert dict(a.attrs) == dict(b.attrs)
    for name in ("count_map.npy", "intensity_sum.npy"):
        np.testing.assert_array_equal(np.load(st / name), np.load(d / name.replace("count_map", "c")
                                                                     .replace("intensity_sum", "i")))
    with h5py.File(st / "fit.h5") as a, h5py.File(d / "fit.h5") as b:
        np.testing.assert_array_equal(a["Answer"][()], b["Answer"][()])
    sa, sb = json.loads((st / "fit.json").read_text()), json.loads((d / "fit.json").read_text())
    sa["diagnostics"].pop("input"), sb["diagnostics"].pop("input")
    assert sa == sb
    assert (st / "summary.txt").read_text() == (d / "summary.txt").read_text()


def test_the_final_page_shows_the_answer(watched):
    live = watched / "st" / "live"
    page = (live / "index.html").read_text()
    assert "http-equiv=\"refresh\"" not in page and "run finished" in page  # the end: no more reloads
    assert "shell 0: R 0.4" in page and "shell 1: R 0.7" in page
    for name in ("count_map.png", "betas.png", "fit.png"):
        assert f'src="{name}?' in page and (live / name).stat().st_size > 5000


def test_live_page_reloads_itself():
    from sevi_lib.report.live import live_page

    page = live_page(["a < b"], [("x.png", "caption")], refresh_s=7, stamp="12", reached=True)
    assert '<meta http-equiv="refresh" content="7">' in page and 'src="x.png?12"' in page
    assert "a &lt; b" in page and 'id="reached"' in page


@pytest.mark.skipif(BROWSER is None, reason="no chromium or google-chrome on this machine")
def test_the_page_in_a_headless_browser(watched, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1000,1400", (watched / "st" / "live" / "index.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    import matplotlib.image

    img = matplotlib.image.imread(shot)
    assert img.shape[:2] == (1400, 1000)
    # the figures were loaded and drawn: many distinct colours (a page of text alone has a few)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200


def test_a_file_written_without_swmr_gets_one_line(tmp_path, capsys):
    p = tmp_path / "run.h5"
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time\n"
                               f"f = h5py.File({str(p)!r}, 'w'); f.create_dataset('x', data=[1]); f.flush()\n"
                               "print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert main(["watch", str(p), "--state", str(tmp_path / "st")]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sevi: error: {p}: is open for writing without SWMR")
    assert "swmr_mode = True" in err[0]


def test_a_file_replaced_under_the_watcher_stops_with_one_line(watched, tmp_path):
    target = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-m", "sevi_lib.watch.writer", str(watched / "run.h5"), str(target),
                               "--fps", "1"])
    try:
        while not target.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        watch = subprocess.Popen([*SEVI, "watch", str(target), "--state",
                                  str(tmp_path / "st"), "--camera", str(watched / "camera.json"), "--quiet",
                                  "--segment-frames", "1", "--refit-seconds", "1000"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        segs = tmp_path / "st" / "segments"
        deadline = time.monotonic() + 240
        while (not segs.is_dir() or not any(p.name.startswith("seg_") for p in segs.iterdir())) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.copy(watched / "run.h5", tmp_path / "other.h5")
        os.replace(tmp_path / "other.h5", target)
        _, err = watch.communicate(timeout=240)
    finally:
        writer.kill()
        writer.wait()
    assert watch.returncode == 2
    lines = [line for line in err.splitlines() if line.startswith("sevi")]
    assert len(lines) == 1 and "another file was put at this path" in lines[0]
    assert len([p for p in segs.iterdir() if p.name.startswith("seg_")]) >= 1
