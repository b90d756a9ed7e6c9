"""Tests of ``sevi detect`` and ``sevi accumulate`` (small rendered test files made on the fly)."""

import hashlib
import os

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.io import DETECTED_DTYPE, FINAL_IMAGE_DTYPE
from sevi_lib.core.shells import Shells
from sevi_lib.detect.blobs import ELECTRON_DTYPE
from sevi_lib.detect.shards import read_shard
from sevi_lib.simulate.render import write_test_file

PEAKED = [1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    sh = Shells([0.5, 0.8], [0.0075, 0.0075], [PEAKED, PEAKED])
    write_test_file(d / "t.h5", d / "truth.h5", sh, 3, [40, 40], detection_loss=0.1, seed=5, progress=False)
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
    write_test_file(d / "other.h5", d / "other_truth.h5", sh, 3, [40, 40], detection_loss=0.1, seed=6, progress=False)
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
