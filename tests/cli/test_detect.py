"""Tests of ``sevi detect`` and ``sevi accumulate`` (small rendered test files made on the fly)."""

import hashlib
import json
import os

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.io import DETECTED_DTYPE, FINAL_IMAGE_DTYPE
from sevi_lib.core.shells import Shells
from sevi_lib.detect.blobs import ELECTRON_DTYPE
from sevi_lib.detect.shards import read_shard
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings

PEAKED = [1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    sh = Shells([0.5, 0.8], [0.0075, 0.0075], [PEAKED, PEAKED])
    write_test_file(d / "t.h5", d / "truth.h5", sh,
                    SimulationSettings(n_frames=3, electrons_per_shell=[40, 40], detection_loss=0.1, seed=5),
                    progress=False)
    return d / "t.h5"


def frames_of(path):
    with h5py.File(path) as f:
        return f["FinalImage"]["Image"]


def test_shards_and_accumulate(test_file, tmp_path, capsys):
    # 5 shards over 3 frames: two shards are empty and still valid
    shards = []
    for i in range(5):
        out = tmp_path / f"s{i}.h5"
        assert main(["detect", str(test_file), "--shard", str(i), "--shards", "5", "--out", str(out)]) == 0
        shards.append(out)
    sizes = [read_shard(p)["n_frames"] for p in shards]
    assert sorted(sizes) == [0, 0, 1, 1, 1]
    outs = {k: tmp_path / v for k, v in {"e": "e.h5", "c": "c.npy", "i": "i.npy", "p": "m.png", "s": "sum.txt"}.items()}
    assert main(["accumulate", *map(str, shards[::-1]), "--electrons", str(outs["e"]), "--count-map", str(outs["c"]),
                 "--intensity-sum", str(outs["i"]), "--png", str(outs["p"]), "--summary", str(outs["s"])]) == 0
    with h5py.File(outs["e"]) as f:
        e = f["DetectedElectrons"][()]
    assert e.dtype == ELECTRON_DTYPE
    assert e.dtype.names[:4] == DETECTED_DTYPE.names  # published layout first
    assert np.all(np.diff(e["ImageId"]) >= 0)
    np.testing.assert_array_equal(e["ElectronId"], np.arange(e.size))
    assert 150 < e.size < 250  # ~72 detected electrons per frame
    c = np.load(outs["c"])
    assert c.dtype == np.float64 and c.shape == (1024, 1024) and c.sum() == e.size
    ref, _, _ = np.histogram2d(e["x"], e["z"], bins=1024, range=[[-1, 1], [-1, 1]])
    np.testing.assert_array_equal(c, ref)
    raw = np.load(outs["i"])
    np.testing.assert_array_equal(raw, frames_of(test_file).sum(axis=0, dtype=np.float64))
    assert outs["p"].stat().st_size > 1000
    text = outs["s"].read_text()
    assert "frames: 3" in text and f"electrons: {e.size}" in text and "blobs by multiplicity" in text


def test_range_and_threads_agree(test_file, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["detect", str(test_file), "--start", "1", "--stop", "3", "--out", str(a)]) == 0
    assert main(["detect", str(test_file), "--start", "1", "--stop", "3", "--threads", "2", "--chunk", "1",
                 "--out", str(b)]) == 0
    sa, sb = read_shard(a), read_shard(b)
    np.testing.assert_array_equal(sa["DetectedElectrons"], sb["DetectedElectrons"])
    assert set(sa["DetectedElectrons"]["ImageId"]) == {1, 2}


def test_detector_flags_reach_detector(test_file, tmp_path):
    out = tmp_path / "s.h5"
    assert main(["detect", str(test_file), "--stop", "1", "--threshold", "12", "--out", str(out)]) == 0
    assert read_shard(out)["params"]["threshold"] == 12


def expect_error(args, capsys, *words):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sevi: error:"), err
    for w in words:
        assert w in err[0], err[0]


def test_bad_inputs(test_file, tmp_path, capsys):
    out = tmp_path / "out.h5"
    expect_error(["detect", str(tmp_path / "nope.h5"), "--out", str(out)], capsys, "nope.h5")
    # missing FinalImage
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["Something"] = np.zeros(3)
    expect_error(["detect", str(other), "--out", str(out)], capsys, "other.h5", "FinalImage")
    # wrong frame dtype / shape
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["FinalImage"] = np.zeros(2, dtype=[("ImageId", "<i4"), ("Image", "<u2", (1024, 1024))])
    expect_error(["detect", str(bad), "--out", str(out)], capsys, "bad.h5", "uint8")
    small = tmp_path / "small.h5"
    with h5py.File(small, "w") as f:
        f["FinalImage"] = np.zeros(2, dtype=[("ImageId", "<i4"), ("Image", "u1", (512, 512))])
    expect_error(["detect", str(small), "--out", str(out)], capsys, "small.h5")
    # empty or outside range
    expect_error(["detect", str(test_file), "--start", "2", "--stop", "2", "--out", str(out)], capsys, "empty")
    expect_error(["detect", str(test_file), "--start", "0", "--stop", "9", "--out", str(out)], capsys, "outside")
    expect_error(["detect", str(test_file), "--shard", "5", "--shards", "5", "--out", str(out)], capsys, "shard")
    # truncated file
    trunc = tmp_path / "trunc.h5"
    data = test_file.read_bytes()
    trunc.write_bytes(data[: len(data) * 2 // 3])
    expect_error(["detect", str(trunc), "--out", str(out)], capsys, "trunc.h5")
    assert not out.exists()
    assert not list(tmp_path.glob(".out.h5*"))  # no temporary left behind


def test_corrupt_frame_named(test_file, tmp_path, capsys):
    """A frame whose compressed chunk is damaged: the error names the file and the frame."""
    bad = tmp_path / "corrupt.h5"
    with h5py.File(test_file) as src, h5py.File(bad, "w") as dst:
        ds = dst.create_dataset("FinalImage", shape=(3,), dtype=FINAL_IMAGE_DTYPE, chunks=(1,), compression="gzip")
        for i in range(3):
            mask, blob = src["FinalImage"].id.read_direct_chunk((i,))
            if i == 1:
                blob = blob[:100] + bytes(len(blob) - 100)
            ds.id.write_direct_chunk((i,), blob, mask)
    out = tmp_path / "o.h5"
    expect_error(["detect", str(bad), "--out", str(out)], capsys, "corrupt.h5", "frame 1")
    assert not out.exists()


def test_accumulate_rejects_overlap_and_non_shards(test_file, tmp_path, capsys):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    main(["detect", str(test_file), "--start", "0", "--stop", "2", "--out", str(a)])
    main(["detect", str(test_file), "--start", "1", "--stop", "3", "--out", str(b)])
    capsys.readouterr()
    args = ["--electrons", str(tmp_path / "e.h5"), "--count-map", str(tmp_path / "c.npy"),
            "--intensity-sum", str(tmp_path / "i.npy")]
    expect_error(["accumulate", str(a), str(b), *args], capsys, "overlap")
    expect_error(["accumulate", str(test_file), *args], capsys, "not a detection shard")
    assert not (tmp_path / "e.h5").exists()


# ---------------------------------------------------------------- inputs that cannot lie (issue 11)
def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder, keep):
    """Files in `folder` other than `keep` (names): outputs or temporaries left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def no_detection(monkeypatch):
    """Detection must not start: the checks under test come first."""
    from sevi_lib.detect import shards

    def fail(*a, **k):
        raise AssertionError("detection started before the output was checked")

    monkeypatch.setattr(shards, "detect_file", fail)


def test_detect_refuses_output_equal_to_input(test_file, tmp_path, capsys, no_detection):
    frames = tmp_path / "f.h5"
    frames.write_bytes(test_file.read_bytes())
    before = digest(frames)
    expect_error(["detect", str(frames), "--out", str(frames)], capsys, str(frames), "is the input")
    # the same file by another spelling of its path
    expect_error(["detect", str(frames), "--out", str(tmp_path / "." / "f.h5")], capsys, "is the input")
    assert digest(frames) == before
    assert leftovers(tmp_path, {"f.h5"}) == []


def test_detect_refuses_unwritable_output_before_work(test_file, tmp_path, capsys, no_detection):
    before = digest(test_file)
    folder = tmp_path / "dir"
    folder.mkdir()
    expect_error(["detect", str(test_file), "--out", str(folder)], capsys, str(folder), "directory")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    expect_error(["detect", str(test_file), "--out", str(afile / "s.h5")], capsys, "file.txt", "not a directory")
    assert digest(test_file) == before
    assert leftovers(tmp_path, {"dir", "file.txt"}) == [] and list(folder.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_detect_refuses_read_only_folder(test_file, tmp_path, capsys, no_detection):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        expect_error(["detect", str(test_file), "--out", str(ro / "s.h5")], capsys, "ro", "cannot write")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.fixture(scope="module")
def shard_set(test_file, tmp_path_factory):
    """Shards 0, 1, 2 of 3 of the test file, and shard 1 of 3 of another frames file."""
    d = tmp_path_factory.mktemp("shards")
    paths = []
    for i in range(3):
        paths.append(d / f"s{i}.h5")
        assert main(["detect", str(test_file), "--shard", str(i), "--shards", "3", "--out", str(paths[i])]) == 0
    sh = Shells([0.5, 0.8], [0.0075, 0.0075], [PEAKED, PEAKED])
    write_test_file(d / "other.h5", d / "other_truth.h5", sh,
                    SimulationSettings(n_frames=3, electrons_per_shell=[40, 40], detection_loss=0.1, seed=6),
                    progress=False)
    foreign = d / "foreign1.h5"
    assert main(["detect", str(d / "other.h5"), "--shard", "1", "--shards", "3", "--out", str(foreign)]) == 0
    return paths, foreign


@pytest.mark.parametrize(
    "pick, words",
    [
        ("mixed", ["foreign1.h5", "another frames file"]),
        ("gap", ["s2.h5", "[1, 2)", "in no shard"]),
        ("missing", ["s1.h5", "[2, 3)", "in no shard"]),
        ("overlap", ["s1.h5", "overlap"]),
    ],
)
def test_accumulate_refuses_mixture_gap_missing_overlap(shard_set, tmp_path, capsys, pick, words):
    (s0, s1, s2), foreign = shard_set
    chosen = {"mixed": [s0, foreign, s2], "gap": [s0, s2], "missing": [s0, s1], "overlap": [s0, s1, s1, s2]}[pick]
    before = {p: digest(p) for p in chosen}
    outs = ["--electrons", str(tmp_path / "e.h5"), "--count-map", str(tmp_path / "c.npy"),
            "--intensity-sum", str(tmp_path / "i.npy"), "--summary", str(tmp_path / "s.txt")]
    expect_error(["accumulate", *map(str, chosen), *outs], capsys, *words)
    assert {p: digest(p) for p in chosen} == before
    assert leftovers(tmp_path, set()) == []


def test_accumulate_refuses_output_equal_to_a_shard(shard_set, tmp_path, capsys):
    shards, _ = shard_set
    before = digest(shards[0])
    expect_error(["accumulate", *map(str, shards), "--electrons", str(shards[0]), "--count-map",
                  str(tmp_path / "c.npy"), "--intensity-sum", str(tmp_path / "i.npy")], capsys, "is the input")
    expect_error(["accumulate", *map(str, shards), "--electrons", str(tmp_path / "e.h5"), "--count-map",
                  str(tmp_path / "c.npy"), "--intensity-sum", str(tmp_path / "c.npy")], capsys, "c.npy", "two outputs")
    assert digest(shards[0]) == before
    assert leftovers(tmp_path, set()) == []


def test_accumulate_partial(shard_set, tmp_path, capsys):
    (s0, s1, _), _ = shard_set
    out = ["--electrons", str(tmp_path / "e.h5"), "--count-map", str(tmp_path / "c.npy"),
           "--intensity-sum", str(tmp_path / "i.npy")]
    assert main(["accumulate", str(s0), str(s1), "--partial", *out]) == 0
    assert "frames: 2" in capsys.readouterr().err


# ------------------------------------------------------------------ camera survey (issue 13)
@pytest.fixture(scope="module")
def lab_file(test_file, tmp_path_factory):
    """The test file's frames with read noise (sd 1.5) and 3 hot pixels, uncompressed."""
    rng = np.random.default_rng(8)
    frames = frames_of(test_file)[()].astype(np.float64)
    frames += rng.normal(0.0, 1.5, frames.shape)
    hot = [(100, 900), (700, 40), (512, 300)]
    for (i, j), level in zip(hot, (80.0, 150.0, 255.0)):
        frames[:, i, j] += level
    rows = np.zeros(frames.shape[0], dtype=FINAL_IMAGE_DTYPE)
    rows["ImageId"] = np.arange(frames.shape[0])
    rows["Image"] = np.clip(np.rint(frames), 0, 255)
    path = tmp_path_factory.mktemp("lab") / "lab.h5"
    with h5py.File(path, "w") as f:
        f["FinalImage"] = rows
    return path, hot


def test_survey_and_detect_with_camera(lab_file, tmp_path, capsys):
    frames, hot = lab_file
    cam = tmp_path / "camera.json"
    assert main(["survey", str(frames), "--out", str(cam)]) == 0
    assert "hot pixels masked: 3" in capsys.readouterr().err
    d = json.loads(cam.read_text())
    assert abs(d["read_noise"] - 1.5) < 0.05 and sorted(map(tuple, d["hot_pixels"])) == sorted(hot)
    shards = [tmp_path / "a.h5", tmp_path / "b.h5"]
    assert main(["detect", str(frames), "--stop", "2", "--camera", str(cam), "--out", str(shards[0])]) == 0
    assert main(["detect", str(frames), "--start", "2", "--camera", str(cam), "--out", str(shards[1])]) == 0
    s = read_shard(shards[0])
    assert s["camera"] == d and s["params"]["peak_radius"] == 4 and s["params"]["threshold"] >= 10
    e = s["DetectedElectrons"]
    px = np.c_[e["x"], e["z"]] * 512 + 512
    assert np.linalg.norm(px[:, None] - (np.array(hot)[None] + 0.5), axis=2).min() > 2
    outs = [tmp_path / n for n in ("e.h5", "c.npy", "i.npy", "s.txt")]
    assert main(["accumulate", *map(str, shards), "--electrons", str(outs[0]), "--count-map", str(outs[1]),
                 "--intensity-sum", str(outs[2]), "--summary", str(outs[3])]) == 0
    text = outs[3].read_text()
    assert "camera survey: 3 of 3 frames, read noise 1.5" in text and "hot pixels masked: 3" in text
    assert "(700, 40): 150" in text
    with h5py.File(outs[0]) as f:
        assert json.loads(f.attrs["camera"]) == d
    # the raw-frame sum keeps the hot pixels
    np.testing.assert_array_equal(np.load(outs[2]), frames_of(frames).sum(axis=0, dtype=np.float64))
    # a shard without the survey does not mix with these
    plain = tmp_path / "plain.h5"
    assert main(["detect", str(frames), "--start", "2", "--out", str(plain)]) == 0
    capsys.readouterr()
    expect_error(["accumulate", str(shards[0]), str(plain), "--electrons", str(tmp_path / "x.h5"), "--count-map",
                  str(tmp_path / "x.npy"), "--intensity-sum", str(tmp_path / "y.npy")], capsys, "plain.h5",
                 "without a camera survey")


def test_survey_of_published_frames_changes_nothing(test_file, tmp_path):
    cam = tmp_path / "camera.json"
    assert main(["survey", str(test_file), "--out", str(cam), "--n-sample", "2"]) == 0
    d = json.loads(cam.read_text())
    assert (d["read_noise"], d["pedestal"], d["hot_pixels"], d["frames_sampled"]) == (0.0, 0.0, [], [0, 2])
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["detect", str(test_file), "--out", str(a)]) == 0
    assert main(["detect", str(test_file), "--camera", str(cam), "--out", str(b)]) == 0
    sa, sb = read_shard(a), read_shard(b)
    for name in ("DetectedElectrons", "CountMap", "IntensitySum", "BlobMultiplicity"):
        assert sa[name].tobytes() == sb[name].tobytes()
    assert sa["params"] == sb["params"] and sa["camera"] is None and sb["camera"] == d


def test_survey_and_camera_errors(test_file, tmp_path, capsys):
    frames = tmp_path / "f.h5"
    frames.write_bytes(test_file.read_bytes())
    expect_error(["survey", str(frames), "--out", str(frames)], capsys, "is the input")
    expect_error(["survey", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "c.json")], capsys, "nope.h5")
    expect_error(["survey", str(frames), "--out", str(tmp_path / "c.json"), "--n-sample", "0"], capsys, "n_sample")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    out = tmp_path / "s.h5"
    expect_error(["detect", str(frames), "--camera", str(bad), "--out", str(out)], capsys, "bad.json",
                 "not a camera survey")
    expect_error(["detect", str(frames), "--camera", str(tmp_path / "none.json"), "--out", str(out)], capsys,
                 "none.json")
    expect_error(["detect", str(frames), "--camera", str(bad), "--out", str(bad)], capsys, "is the input")
    assert not out.exists() and not (tmp_path / "c.json").exists()
