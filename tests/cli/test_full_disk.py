"""Every command that writes, on a full disk: one ``sevi: error:`` line, exit 2, nothing left.

The full disk is a small tmpfs filled to the last block (needs root and ``mount``, as CI has;
skipped elsewhere). Each command runs as the console script (a subprocess), because the crash this
guards against (HDF5 tearing down a file it could not write, then a segmentation fault at exit)
happened only there. An in-process test of the writers with an injected ENOSPC runs everywhere.
"""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core import io
from sevi_lib.core.errors import OutputError

SEVI = str(Path(sys.executable).with_name("sevi"))
CONFIG = str(Path(__file__).resolve().parents[2] / "config" / "config.yaml")


def _mount_full_tmpfs(where):
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        return False
    (where / "out").mkdir()
    try:  # fill it: every block taken, so the first write of any command fails
        with open(where / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return True


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    where = tmp_path_factory.mktemp("disk") / "full"
    if not _mount_full_tmpfs(where):
        pytest.skip("a full disk needs root and mount (a small tmpfs)")
    yield where
    subprocess.run(["umount", str(where)], check=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small run's files: frames, truth, camera, one shard, electrons, maps, fit."""
    d = tmp_path_factory.mktemp("inputs")
    p = {k: str(d / v) for k, v in dict(frames="f.h5", truth="t.h5", camera="cam.json", shard="s.h5",
                                         electrons="e.h5", count_map="c.npy", isum="i.npy", fit="fit.h5",
                                         sidecar="fit.json").items()}
    assert main(["simulate", "--frames", p["frames"], "--truth", p["truth"], "--params", CONFIG,
                 "--n-frames", "12", "--electrons-per-shell", "40", "40", "--no-progress"]) == 0
    assert main(["survey", p["frames"], "--out", p["camera"]]) == 0
    assert main(["detect", p["frames"], "--camera", p["camera"], "--out", p["shard"], "--threads", "1"]) == 0
    assert main(["accumulate", p["shard"], "--electrons", p["electrons"], "--count-map", p["count_map"],
                 "--intensity-sum", p["isum"]]) == 0
    assert main(["fit", p["electrons"], "--out", p["fit"], "--sidecar", p["sidecar"], "--shells", "2"]) == 0
    return p


COMMANDS = {
    "simulate": lambda p, o: ["simulate", "--frames", o("f.h5"), "--truth", o("t.h5"), "--params", CONFIG,
                              "--n-frames", "4", "--no-progress"],
    "survey": lambda p, o: ["survey", p["frames"], "--out", o("cam.json"), "--plot", o("cam.png")],
    "detect": lambda p, o: ["detect", p["frames"], "--camera", p["camera"], "--out", o("s.h5"), "--threads", "1"],
    "accumulate": lambda p, o: ["accumulate", p["shard"], "--electrons", o("e.h5"), "--count-map", o("c.npy"),
                                "--intensity-sum", o("i.npy"), "--png", o("c.png"), "--summary", o("s.txt")],
    "fit": lambda p, o: ["fit", p["electrons"], "--out", o("fit.h5"), "--sidecar", o("fit.json"), "--shells", "2"],
    "spectrum": lambda p, o: ["spectrum", p["electrons"], "--tsv", o("spectrum.tsv"), "--plot", o("spectrum.png"),
                              "--fit-sidecar", p["sidecar"]],
    "score": lambda p, o: ["score", p["fit"], p["truth"], "--tsv", o("score.tsv")],
    "plot-map": lambda p, o: ["plot-map", p["count_map"], "--fit-sidecar", p["sidecar"], "--out", o("map.png")],
    "plot-camera": lambda p, o: ["plot-camera", p["camera"], "--out", o("camera.png")],
    "report": lambda p, o: ["report", "--out", o("report.md"), "--answer", f"fit={p['fit']}", "--truth", p["truth"]],
    "calibrate-shard": lambda p, o: ["calibrate-shard", p["fit"], p["sidecar"], "--electrons", p["electrons"],
                                     "--camera", p["camera"], "--shard", "0", "--shards", "1", "--frames", "8",
                                     "--blocks", "2", "--min-frames", "8", "--out", o("cal.h5"), "--quiet"],
    "nn synth": lambda p, o: ["nn", "synth", o("shard.h5"), "--stage", "pretrain", "--n", "4", "--key", "k"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_on_a_full_disk_says_one_line(name, full, inputs):
    for leftover in (full / "out").iterdir():  # a failed case before this one
        leftover.unlink()
    args = COMMANDS[name](inputs, lambda leaf: str(full / "out" / leaf))
    res = subprocess.run([SEVI, *args], capture_output=True, text=True, timeout=600)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert len(err) >= 1 and err[-1].startswith("sevi: error: ") and str(full) in err[-1], res.stderr[-2000:]
    assert "No space left on device" in err[-1], err[-1]
    assert not [line for line in err if "Traceback" in line or "Exception ignored" in line], res.stderr[-2000:]
    assert sorted(os.listdir(full)) == ["filler", "out"]
    assert os.listdir(full / "out") == [], "a failed command left files"


@pytest.mark.parametrize("write", [
    lambda path: io.write_h5(path, x=np.arange(1000.0), compression="gzip"),
    lambda path: io.save_npy(path, np.arange(10)),
    lambda path: io.write_text(path, "text"),
])
def test_writers_turn_enospc_into_one_output_error(write, tmp_path, monkeypatch):
    """An injected ENOSPC from the operating system's write: OutputError naming the file, no file left."""
    real_open = os.open

    def fail_on_temp(path, *a, **kw):
        if ".tmp" in os.fspath(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", fail_on_temp)
    monkeypatch.setattr(io.h5py, "File", lambda path, *a, **kw: (_ for _ in ()).throw(
        OSError(f"Unable to create file (file write failed: errno = {errno.ENOSPC}, error message = 'No space')")))
    target = tmp_path / "out.dat"
    with pytest.raises(OutputError) as info:
        write(target)
    assert str(info.value) == f"{target}: cannot write: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_read_error_inside_a_write_is_not_called_a_write_error(tmp_path):
    """Only the errors that mean 'cannot write' become OutputError; a missing input stays what it is."""
    with pytest.raises(FileNotFoundError):
        with io.atomic_path(tmp_path / "out.h5"):
            open(tmp_path / "missing.h5")  # noqa: SIM115
    assert list(tmp_path.iterdir()) == []
