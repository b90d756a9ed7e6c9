"""Tests of the watch loop (sevi_lib.watch.live) on simulated runs replayed by a writer process."""

import json
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.errors import SettingsError
from sevi_lib.core.io import FrameReader, FrameWriter
from sevi_lib.core.shells import Shells
from sevi_lib.detect.settings import SurveySettings
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings
from sevi_lib.watch.live import Watcher, WatchSettings, projection, status, status_lines
from sevi_lib.watch.sources import ChunkFolder, SwmrSource, writer_flags
from sevi_lib.watch.state import WatchState
from sevi_lib.watch.writer import SwmrWriter

#: the sevi command in a process of its own
SEVI = [sys.executable, "-c", "import sys; from sevi_lib.cli import main; sys.exit(main())"]
PEAKED = [1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0]
N_FRAMES = 24


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    """24 frames of two shells (~72 electrons a frame) with read noise and hot pixels."""
    d = tmp_path_factory.mktemp("run")
    sh = Shells([0.5, 0.8], [0.0075, 0.0075], [PEAKED, PEAKED])
    write_test_file(d / "run.h5", d / "truth.h5", sh, SimulationSettings(
        n_frames=N_FRAMES, electrons_per_shell=[40, 40], seed=11, read_noise=1.5, hot_pixels=3), progress=False)
    return d / "run.h5"


def replay(source, target, *extra):
    """Start a writer process replaying `source` into `target`."""
    return subprocess.Popen([sys.executable, "-m", "sevi_lib.watch.writer", str(source), str(target), *extra])


def batch(frames, camera, tmp, start=None, stop=None):
    """The batch commands on `frames`: detect (one shard, with `camera`), accumulate, fit."""
    rng = [] if start is None else ["--start", str(start), "--stop", str(stop)]
    assert main(["detect", str(frames), "--camera", str(camera), "--out", str(tmp / "shard.h5"), *rng]) == 0
    assert main(["accumulate", str(tmp / "shard.h5"), "--electrons", str(tmp / "e.h5"), "--count-map",
                 str(tmp / "c.npy"), "--intensity-sum", str(tmp / "i.npy"), "--partial"]) == 0
    assert main(["fit", str(tmp / "e.h5"), "--out", str(tmp / "fit.h5"), "--plot", "none", "--quiet"]) == 0
    return tmp


def assert_same(state, ref):
    """The watch's outputs equal the batch commands' bit for bit."""
    with h5py.File(state / "electrons.h5") as a, h5py.File(ref / "e.h5") as b:
        np.testing.assert_array_equal(a["DetectedElectrons"][()], b["DetectedElectrons"][()])
        np.testing.assert_array_equal(a["BlobMultiplicity"][()], b["BlobMultiplicity"][()])
    np.testing.assert_array_equal(np.load(state / "count_map.npy"), np.load(ref / "c.npy"))
    np.testing.assert_array_equal(np.load(state / "intensity_sum.npy"), np.load(ref / "i.npy"))
    with h5py.File(state / "fit.h5") as a, h5py.File(ref / "fit.h5") as b:
        np.testing.assert_array_equal(a["Answer"][()], b["Answer"][()])
    sa, sb = json.loads((state / "fit.json").read_text()), json.loads((ref / "fit.json").read_text())
    for key in ("R", "se_R", "sigma_R", "beta", "se_beta", "centre", "centre_se", "background"):
        assert sa[key] == sb[key], key


def test_projection_scales_as_one_over_sqrt_frames():
    p = projection(0.03, 500, 0.01, 25.0)
    assert p["frames_needed"] == 4500 and p["frames_left"] == 4000 and p["seconds_left"] == 160.0
    assert not p["reached"]
    assert projection(0.009, 500, 0.01, 25.0)["reached"]
    assert np.isnan(projection(0.03, 500, 0.01, float("nan"))["seconds_left"])


def test_status_says_when_the_target_is_reached():
    class R:
        R = np.array([0.5]); se_R = np.array([1e-3]); sigma_R = np.array([0.01]); beta = np.array([[1.0, 0.5]])
        se_beta = np.array([[0.008, 0.01]]); centre = np.zeros(2); centre_se = np.zeros(2)
        background_per_frame = 0.1; expected_distance = np.array([0.02]); converged = True

    st = status(R, frames=1000, electrons=80000, elapsed=20.0, camera_rate=50.0, detect_rate=80.0, lag_frames=25,
                settings=WatchSettings(target_se=0.01))
    assert st["electrons_per_s"] == pytest.approx(4000.0) and st["lag_s"] == pytest.approx(0.5)
    text = "\n".join(status_lines(st))
    assert "TARGET REACHED" in text and "beta_2 +1.0000 +- 0.0080" in text
    st = status(R, frames=1000, electrons=80000, elapsed=20.0, camera_rate=50.0, detect_rate=80.0, lag_frames=0,
                settings=WatchSettings(target_se=0.004))
    assert "TARGET REACHED" not in "\n".join(status_lines(st))
    assert st["targets"]["se_beta2"]["frames_needed"] == 4000



@pytest.mark.parametrize("bad, message", [
    ({"refit_seconds": 0.0}, "refit_seconds must be > 0, got 0.0"),
    ({"poll_seconds": float("inf")}, "poll_seconds must be a finite number"),
    ({"segment_frames": 0}, "segment_frames must be >= 1"),
    ({"chunk": 2.5}, "chunk must be an integer, got 2.5"),
    ({"fit_nice": 20}, "fit_nice must be in 0 .. 19, got 20"),
    ({"target_se": -0.01}, "target_se must be > 0"),
    ({"target_distance": "small"}, "target_distance must be a finite number or None"),
])
def test_settings_refuse_a_bad_value_on_construction(bad, message):
    assert WatchSettings(target_se=None, target_distance=0.02).validate().target_distance == 0.02
    with pytest.raises(SettingsError) as exc:
        WatchSettings(**bad)
    assert str(exc.value).startswith(next(iter(bad))) and message in str(exc.value)


@pytest.mark.parametrize("flag, value, message", [
    ("--refit-seconds", "0", "refit_seconds must be > 0"),
    ("--fit-nice", "25", "fit_nice must be in 0 .. 19, got 25"),
])
def test_the_command_turns_a_bad_setting_into_one_line(tmp_path, run_file, capsys, flag, value, message):
    assert main(["watch", str(run_file), "--state", str(tmp_path / "st"), "--quiet", flag, value]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sevi: error: ") and message in lines[0], err
    assert not (tmp_path / "st").exists()

def test_writer_flags_while_open_and_after_close(tmp_path, run_file):
    with FrameReader(run_file) as r:
        ids, frames = r.read(0, 2)
    p = tmp_path / "live.h5"
    with SwmrWriter(p) as w:
        w.write(ids, frames)
        assert writer_flags(p)  # open for (SWMR) writing
        with SwmrSource(p) as src:  # a reader opens it while the writer holds it
            assert src.poll() == 2 and src.writing()
            np.testing.assert_array_equal(src.read(0, 2)[1], frames)
    assert writer_flags(p) == 0


def test_live_swmr_run_equals_the_batch_commands(tmp_path, run_file):
    target = tmp_path / "live.h5"
    writer = replay(run_file, target, "--fps", "12", "--batch", "2")
    while not target.exists() or writer_flags(target) is None:
        time.sleep(0.05)
    time.sleep(0.3)  # the writer has switched to SWMR
    statuses = []
    with SwmrSource(target) as src:
        w = Watcher(src, WatchState(tmp_path / "st"), on_refit=lambda st, r, w: statuses.append(st),
                    survey_settings=SurveySettings(n_sample=8),
                    settings=WatchSettings(refit_seconds=0.2, segment_frames=6, chunk=4, poll_seconds=0.05))
        out = w.run()
    assert writer.wait(30) == 0
    assert out["acc"]["n_frames"] == N_FRAMES and not w.warnings
    assert len(list((tmp_path / "st" / "segments").iterdir())) >= 2
    # a refit started while the camera wrote (its fit may fail on the first few hundred electrons:
    # then its status says why)
    assert statuses and statuses[0]["frames"] < N_FRAMES
    assert all("R" in s or s["note"] for s in statuses)
    assert not any(s["camera_fps"] <= 0 for s in statuses)  # positive, or nan before two growths
    # a refit of all the frames, warm-started from the last answer, recorded in the history
    w.refit()
    st = w.collect(wait=True)
    w.close()
    assert len(st["R"]) == 2 and np.allclose(st["R"], [0.5, 0.8], atol=0.01) and st["frames"] == N_FRAMES
    assert st["targets"]["se_beta2"]["frames_needed"] > N_FRAMES
    history = WatchState(tmp_path / "st").history()
    assert history[-1]["frames"] == N_FRAMES and history[-1]["beta"] == st["beta"]
    assert statuses[-1] is st  # on_refit saw it too
    assert [h["frames"] for h in history] == [s["frames"] for s in statuses if "R" in s]
    ref = batch(target, tmp_path / "st" / "camera.json", tmp_path)
    assert_same(tmp_path / "st", ref)
    assert "the survey of the whole file" in out["note"]


def test_killed_and_restarted_counts_every_frame_once(tmp_path, run_file):
    folder = tmp_path / "chunks"
    with FrameReader(run_file) as r:
        ids, frames = r.read(0, N_FRAMES)
    folder.mkdir()
    for i in range(3):  # 3 of 6 chunks of 4 frames have landed
        with FrameWriter(folder / f"chunk_{i:03d}.h5", 4) as fw:
            fw.write(ids[4 * i: 4 * i + 4], frames[4 * i: 4 * i + 4])
    state = tmp_path / "st"
    assert main(["survey", str(run_file), "--out", str(tmp_path / "camera.json")]) == 0
    proc = subprocess.Popen([*SEVI, "watch", str(folder), "--state", str(state), "--camera",
                             str(tmp_path / "camera.json"), "--quiet", "--refit-seconds", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    segs = state / "segments"
    deadline = time.monotonic() + 240
    while (not segs.is_dir() or len([p for p in segs.iterdir() if p.name.startswith("seg_")]) < 2) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = sorted(p.name for p in segs.iterdir() if p.name.startswith("seg_"))
    assert 2 <= len(done) <= 3
    for i in range(3, 6):
        with FrameWriter(folder / f"chunk_{i:03d}.h5", 4) as fw:
            fw.write(ids[4 * i: 4 * i + 4], frames[4 * i: 4 * i + 4])
    (folder / "END").touch()
    with ChunkFolder(folder) as src:  # the restart
        w = Watcher(src, WatchState(state), settings=WatchSettings(refit_seconds=1000))
        out = w.run()
    assert out["acc"]["n_frames"] == N_FRAMES and out["acc"]["ranges"][-1] == (20, 24)
    ref = batch(run_file, tmp_path / "camera.json", tmp_path)
    assert_same(state, ref)


def test_truncated_and_misshapen_chunks_are_reported_and_not_counted(tmp_path, run_file):
    folder = tmp_path / "chunks"
    folder.mkdir()
    with FrameReader(run_file) as r:
        ids, frames = r.read(0, 24)
    for i in range(3):
        with FrameWriter(folder / f"chunk_{i:03d}.h5", 8) as fw:
            fw.write(ids[8 * i: 8 * i + 8], frames[8 * i: 8 * i + 8])
    good = folder / "chunk_002.h5"
    shutil.copy(good, tmp_path / "keep.h5")
    with open(good, "r+b") as f:  # truncated chunk file
        f.truncate(good.stat().st_size // 2)
    with h5py.File(folder / "chunk_003.h5", "w") as f:  # frames of another shape
        f.create_dataset("FinalImage", data=np.zeros(2, dtype=[("ImageId", "<i4"), ("Image", "u1", (512, 512))]))
    (folder / "END").touch()
    lines = []
    with ChunkFolder(folder) as src:
        w = Watcher(src, WatchState(tmp_path / "st"), warn=lines.append, settings=WatchSettings(refit_seconds=1000))
        out = w.run()
    assert len(lines) == 2
    assert "chunk_002.h5" in lines[0] and "not counted" in lines[0]
    assert "chunk_003.h5" in lines[1] and "(1024, 1024)" in lines[1]
    assert out["acc"]["n_frames"] == 16
    ref = batch(run_file, tmp_path / "st" / "camera.json", tmp_path, 0, 16)
    assert_same(tmp_path / "st", ref)


def test_writer_dying_mid_chunk_finishes_with_what_it_wrote(tmp_path, run_file):
    target = tmp_path / "live.h5"
    writer = replay(run_file, target, "--fps", "0", "--batch", "4", "--die-after", "16")
    assert writer.wait(60) == 1
    assert writer_flags(target)  # still marked open: the writer never closed it
    lines = []
    with SwmrSource(target) as src:
        assert src.poll() == 20  # 4 frames announced, never written
        w = Watcher(src, WatchState(tmp_path / "st"), warn=lines.append,
                    settings=WatchSettings(refit_seconds=1000, idle_seconds=1.0, poll_seconds=0.05))
        out = w.run()
    assert len(lines) == 1 and "frames [16, 20) are announced but unreadable" in lines[0]
    assert out["acc"]["n_frames"] == 16
    ref = batch(run_file, tmp_path / "st" / "camera.json", tmp_path, 0, 16)
    assert_same(tmp_path / "st", ref)
