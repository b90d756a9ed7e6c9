"""Tests of sevi_lib.detect.shards: ranges, the frames file's identity, shard files and accumulation."""

import itertools

import h5py
import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.io import FINGERPRINT_BYTES
from sevi_lib.detect.blobs import ELECTRON_DTYPE, MAX_BLOB_HIST
from sevi_lib.detect.settings import DetectorParams
from sevi_lib.detect.shards import (
    accumulate,
    frame_range,
    frames_identity,
    read_shard,
    shard_range,
    write_shard,
)


def test_shard_ranges_cover_frames():
    for n, k in [(0, 3), (3, 10), (10, 10), (1001, 7)]:
        ranges = [shard_range(n, i, k) for i in range(k)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    with pytest.raises(ValueError):
        shard_range(10, 3, 3)


def test_frame_range():
    assert frame_range("f", 10) == (0, 10)
    assert frame_range("f", 10, start=2) == (2, 10)
    assert frame_range("f", 10, shard=1, shards=2) == (5, 10)
    with pytest.raises(InputError, match="empty or outside"):
        frame_range("f", 10, start=3, stop=3)
    with pytest.raises(InputError, match="not both"):
        frame_range("f", 10, start=0, shard=0, shards=2)


def test_frames_identity(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(bytes(3 * FINGERPRINT_BYTES))
    ida = frames_identity(a)
    assert ida["frames_path"] == str(a.resolve()) and ida["frames_size"] == 3 * FINGERPRINT_BYTES
    b = tmp_path / "b.bin"
    b.write_bytes(bytes(3 * FINGERPRINT_BYTES - 1) + b"\1")  # differs in the last MiB only
    assert frames_identity(b)["frames_fingerprint"] != ida["frames_fingerprint"]
    c = tmp_path / "c.bin"
    c.write_bytes(a.read_bytes())  # same contents elsewhere: same fingerprint
    assert frames_identity(c)["frames_fingerprint"] == ida["frames_fingerprint"]
    with pytest.raises(InputError, match="nope"):
        frames_identity(tmp_path / "nope.h5")


def fake_result(start, stop, n_file, n_per_frame=2):
    """A detect_file result with n_per_frame electrons per frame (no detection run)."""
    k = stop - start
    e = np.zeros(k * n_per_frame, dtype=ELECTRON_DTYPE)
    e["ImageId"] = np.repeat(np.arange(start, stop), n_per_frame)
    e["x"] = np.linspace(-0.5, 0.5, e.size)
    cm = np.zeros((N_PIX, N_PIX))
    cm[0, 0] = e.size
    hist = np.zeros(MAX_BLOB_HIST + 1, dtype=np.int64)
    hist[1] = e.size
    return {"electrons": e, "count_map": cm, "intensity_sum": np.full((N_PIX, N_PIX), float(k)),
            "blob_hist": hist, "n_frames": k, "n_file_frames": n_file}


@pytest.fixture
def frames_file(tmp_path):
    p = tmp_path / "frames.h5"
    p.write_bytes(b"frames" * 1000)
    return p


def shard(tmp_path, frames, start, stop, n_file=10, name=None, params=None):
    path = tmp_path / (name or f"s{start}_{stop}.h5")
    write_shard(path, fake_result(start, stop, n_file), frames, start, stop, params or DetectorParams())
    return path


def test_shard_records_its_origin(tmp_path, frames_file):
    s = read_shard(shard(tmp_path, frames_file, 2, 5))
    assert (s["start"], s["stop"], s["n_frames"], s["n_file_frames"]) == (2, 5, 3, 10)
    ident = frames_identity(frames_file)
    for key, value in ident.items():
        assert s[key] == value


def test_accumulate_in_frame_order(tmp_path, frames_file):
    paths = [shard(tmp_path, frames_file, a, b) for a, b in [(5, 10), (0, 0), (0, 5)]]
    acc = accumulate(paths)
    assert acc["n_frames"] == 10 and acc["ranges"] == [(0, 0), (0, 5), (5, 10)]
    assert np.all(np.diff(acc["electrons"]["ImageId"]) >= 0)
    np.testing.assert_array_equal(acc["electrons"]["ElectronId"], np.arange(20))
    assert acc["count_map"][0, 0] == 20 and acc["intensity_sum"][5, 5] == 10


@pytest.mark.parametrize(
    "ranges, partial, words",
    [
        ([(0, 5), (4, 10)], False, ["s4_10.h5", "overlap"]),
        ([(0, 4), (5, 10)], False, ["s5_10.h5", "[4, 5)", "in no shard"]),
        ([(0, 5)], False, ["s0_5.h5", "[5, 10)", "in no shard"]),
        ([(2, 5), (5, 8)], False, ["s2_5.h5", "[0, 2)"]),
        ([(2, 5), (6, 8)], True, ["s6_8.h5", "[5, 6)"]),
    ],
)
def test_accumulate_refuses_overlap_gap_missing(tmp_path, frames_file, ranges, partial, words):
    paths = [shard(tmp_path, frames_file, a, b) for a, b in ranges]
    with pytest.raises(InputError) as exc:
        accumulate(paths, partial=partial)
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_accumulate_partial_contiguous(tmp_path, frames_file):
    paths = [shard(tmp_path, frames_file, a, b) for a, b in [(2, 5), (5, 8)]]
    assert accumulate(paths, partial=True)["n_frames"] == 6


def test_accumulate_refuses_other_frames_file_or_params(tmp_path, frames_file):
    other = tmp_path / "other.h5"
    other.write_bytes(b"others" * 1000)
    a = shard(tmp_path, frames_file, 0, 5)
    b = shard(tmp_path, other, 5, 10, name="b.h5")
    with pytest.raises(InputError, match=r"b\.h5: made from .*other\.h5.*another frames file"):
        accumulate([a, b])
    c = shard(tmp_path, frames_file, 5, 10, name="c.h5", params=DetectorParams(threshold=12))
    with pytest.raises(InputError, match=r"c\.h5: detected with other detector parameters"):
        accumulate([a, c])


def test_old_shard_without_identity_refused(tmp_path, frames_file):
    p = shard(tmp_path, frames_file, 0, 10)
    with h5py.File(p, "a") as f:
        del f.attrs["frames_fingerprint"]
    with pytest.raises(InputError, match="identity"):
        read_shard(p)
