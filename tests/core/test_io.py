"""Tests of sevi_lib.core.io: published layouts, atomic writes, frame streaming, tolerant readers, errors."""

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from sevi_lib.core import io as io
from sevi_lib.core.errors import InputError, UnphysicalError
from sevi_lib.core.geometry import N_PIX


def _frames(n, seed):
    """Sparse uint8 frames (quick to compress) with distinct content."""
    rng = np.random.default_rng(seed)
    fr = np.zeros((n, N_PIX, N_PIX), np.uint8)
    for k in range(n):
        fr[k, rng.integers(0, N_PIX, 60), rng.integers(0, N_PIX, 60)] = rng.integers(1, 256, 60)
        fr[k, 0, 0] = k + 1  # never two equal frames
    return fr


@pytest.fixture(scope="module")
def frame_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames") / "frames.h5"
    frames = _frames(7, 0)
    ids = np.arange(100, 107, dtype=np.int32)
    with io.FrameWriter(path, 7) as w:
        w.write(ids[:3], frames[:3])
        w.write(ids[3:], frames[3:])
    return path, ids, frames


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ published dtypes
def test_answer_dtype_is_the_published_one_byte_for_byte(tmp_path):
    n = 3
    expected = np.dtype([("SphereId", "u1"), ("R", "<f8"), ("beta", "<f8", (n,))])
    assert io.answer_dtype(n).descr == expected.descr == [("SphereId", "|u1"), ("R", "<f8"), ("beta", "<f8", (3,))]
    assert io.answer_dtype(n).itemsize == 1 + 8 + 8 * n  # packed, no padding

    table = io.write_answer(tmp_path / "final.h5", [0.8, 0.5], [[1.0, 0.85, 0.55], [-0.3, 0.1, 0.0]])
    with h5py.File(tmp_path / "final.h5", "r") as f:
        assert list(f.keys()) == ["Answer"]
        ds = f["Answer"]
        assert ds.shape == (2,)
        assert ds.dtype.descr == expected.descr and ds.dtype.itemsize == expected.itemsize
        raw = ds[()]
    assert raw.tobytes() == table.tobytes()
    # the records packed by hand: smaller radius first, SphereId 0, 1, beta_2 first
    by_hand = struct.pack("<Bd3d", 0, 0.5, -0.3, 0.1, 0.0) + struct.pack("<Bd3d", 1, 0.8, 1.0, 0.85, 0.55)
    assert raw.tobytes() == by_hand


def test_other_published_dtypes():
    assert io.FINAL_IMAGE_DTYPE.descr == [("ImageId", "<i4"), ("Image", "|u1", (1024, 1024))]
    assert io.FINAL_IMAGE_DTYPE.itemsize == 4 + 1024 * 1024
    assert io.truth_dtype(12).descr == [("SphereId", "|u1"), ("R", "<f8"), ("sigma_R", "<f8"), ("beta", "<f8", (12,))]
    assert io.distribution_dtype(2).descr == [("DistributionId", "<i4"), ("R", "<f8"), ("sigma_R", "<f8"), ("beta", "<f8", (2,))]
    assert io.GENERATED_DTYPE.names == ("SphereId", "ElectronId", "r", "cos_theta")
    assert io.DETECTED_DTYPE.descr == [("ImageId", "<i4"), ("ElectronId", "<i4"), ("x", "<f8"), ("z", "<f8")]


def test_write_answer_sorts_rows_with_their_beta(tmp_path):
    io.write_answer(tmp_path / "a.h5", [0.9, 0.3], [[0.2, 0.1], [-0.4, 0.05]])
    a = io.read_answer(tmp_path / "a.h5")
    np.testing.assert_array_equal(a["SphereId"], [0, 1])
    np.testing.assert_array_equal(a["R"], [0.3, 0.9])
    np.testing.assert_array_equal(a["beta"], [[-0.4, 0.05], [0.2, 0.1]])
    assert a["beta"].dtype == np.float64


# ------------------------------------------------------------------------------ atomic writes
def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.h5"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == ".h5" and tmp != target
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_atomic_path_keyboard_interrupt_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_path(tmp_path / "x.npy") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "t.h5"
    io.write_h5(target, a=np.arange(3))
    with pytest.raises(TypeError):
        io.write_h5(target, a=np.arange(4), b=np.array([object(), object()], dtype=object))
    assert _leftovers(tmp_path) == ["t.h5"]
    with h5py.File(target, "r") as f:
        np.testing.assert_array_equal(f["a"][()], np.arange(3))
        assert "b" not in f


def test_write_h5_text_npy(tmp_path):
    io.write_h5(tmp_path / "d.h5", attrs={"seed": 5, "note": "x"}, compression="gzip", a=np.arange(5), empty=np.zeros(0))
    with h5py.File(tmp_path / "d.h5", "r") as f:
        np.testing.assert_array_equal(f["a"][()], np.arange(5))
        assert f["a"].compression == "gzip"
        assert f.attrs["seed"] == 5 and f.attrs["note"] == "x"
    io.write_text(tmp_path / "t.txt", "hello\n")
    assert (tmp_path / "t.txt").read_text() == "hello\n"
    io.save_npy(tmp_path / "a.npy", [1.5, 2.5])
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), [1.5, 2.5])
    assert _leftovers(tmp_path) == ["a.npy", "d.h5", "t.txt"]


# ------------------------------------------------------------------------------ FrameWriter
def test_frame_writer_layout(frame_file):
    path, ids, frames = frame_file
    with h5py.File(path, "r") as f:
        ds = f["FinalImage"]
        assert ds.dtype == io.FINAL_IMAGE_DTYPE and ds.shape == (7,)
        assert ds.compression == "gzip" and ds.compression_opts == 9 and ds.chunks == (1,)
        # h5py itself (not only our raw-chunk reader) decodes what we wrote
        rows = ds[2:4]
    np.testing.assert_array_equal(rows["ImageId"], ids[2:4])
    np.testing.assert_array_equal(rows["Image"], frames[2:4])


def test_frame_writer_incomplete_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match=r"only 2 of 3 frames were written"):
        with io.FrameWriter(tmp_path / "f.h5", 3) as w:
            w.write([0, 1], _frames(2, 1))
    assert _leftovers(tmp_path) == []


def test_frame_writer_exception_inside_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with io.FrameWriter(tmp_path / "f.h5", 2) as w:
            w.write([0], _frames(1, 1))
            raise RuntimeError("boom")
    assert _leftovers(tmp_path) == []


def test_frame_writer_refuses_bad_frames(tmp_path):
    with pytest.raises(InputError, match="f.h5: frames must be uint8"):
        with io.FrameWriter(tmp_path / "f.h5", 1) as w:
            w.write([0], np.zeros((1, N_PIX, N_PIX), np.uint16))
    with pytest.raises(InputError, match="frames must be uint8"):
        with io.FrameWriter(tmp_path / "f.h5", 1) as w:
            w.write([0], np.zeros((1, 512, 512), np.uint8))
    with pytest.raises(InputError, match="more than the announced 1 frames"):
        with io.FrameWriter(tmp_path / "f.h5", 1) as w:
            w.write([0, 1], _frames(2, 1))
    assert _leftovers(tmp_path) == []


def test_frame_writer_threads_same_bytes(tmp_path, frame_file):
    path, ids, frames = frame_file
    with io.FrameWriter(tmp_path / "t.h5", 7, threads=3) as w:
        w.write(ids, frames)
    with io.FrameReader(tmp_path / "t.h5") as r:
        got_ids, got = r.read(0, 7)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, frames)


# ------------------------------------------------------------------------------ FrameReader
@pytest.mark.parametrize("threads", [1, 3])
def test_frame_reader_ranges(frame_file, threads):
    path, ids, frames = frame_file
    with io.FrameReader(path, threads=threads) as r:
        assert r.n_frames == 7
        for start, stop in [(0, 7), (0, 1), (2, 5), (6, 7), (3, 3)]:
            got_ids, got = r.read(start, stop)
            assert got_ids.dtype == np.int32 and got.dtype == np.uint8
            assert got.shape == (stop - start, N_PIX, N_PIX)
            np.testing.assert_array_equal(got_ids, ids[start:stop])
            np.testing.assert_array_equal(got, frames[start:stop])


def test_iter_chunks_covers_everything(frame_file):
    path, ids, frames = frame_file
    with io.FrameReader(path) as r:
        chunks = list(r.iter_chunks(chunk=3))
        assert [len(c[0]) for c in chunks] == [3, 3, 1]
        np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), ids)
        np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), frames)
        part = list(r.iter_chunks(2, 6, chunk=2))
        assert [c[0].tolist() for c in part] == [ids[2:4].tolist(), ids[4:6].tolist()]
        assert list(r.iter_chunks(4, 4)) == []


@pytest.mark.parametrize("start, stop", [(-1, 2), (3, 2), (0, 8), (7, 9)])
def test_frame_range_outside_the_file(frame_file, start, stop):
    path = frame_file[0]
    with io.FrameReader(path) as r:
        with pytest.raises(InputError, match=rf"frames\.h5: frame range \[{start}, {stop}\) is outside the file's 7 frames"):
            r.read(start, stop)
        with pytest.raises(InputError, match="outside"):
            list(r.iter_chunks(start, stop))


def _corrupt_chunks(src, dst, frames_to_break):
    data = bytearray(src.read_bytes())
    with h5py.File(src, "r") as f:
        infos = [f["FinalImage"].id.get_chunk_info_by_coord((i,)) for i in frames_to_break]
    for info in infos:
        data[info.byte_offset : info.byte_offset + info.size] = b"\xa5" * info.size
    dst.write_bytes(bytes(data))


def test_range_reads_touch_only_their_frames(tmp_path, frame_file):
    # frames 0 and 6 are destroyed on disk: a range read that does not need them still works
    path, ids, frames = frame_file
    bad = tmp_path / "bad.h5"
    _corrupt_chunks(path, bad, [0, 6])
    with io.FrameReader(bad) as r:
        got_ids, got = r.read(1, 6)
        np.testing.assert_array_equal(got_ids, ids[1:6])
        np.testing.assert_array_equal(got, frames[1:6])
        with pytest.raises(InputError, match=r"bad\.h5: frame 0 is unreadable"):
            r.read(0, 2)
        with pytest.raises(InputError, match=r"bad\.h5: frame 6 is unreadable"):
            list(r.iter_chunks(1, chunk=4))


def test_non_direct_layout_is_read_by_h5py(tmp_path, frame_file):
    # another chunking / no compression: the reader falls back on h5py and gives the same frames
    _, ids, frames = frame_file
    rows = np.empty(4, io.FINAL_IMAGE_DTYPE)
    rows["ImageId"], rows["Image"] = ids[:4], frames[:4]
    for kw in ({"chunks": (2,), "compression": "gzip"}, {}):
        path = tmp_path / f"other{len(kw)}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("FinalImage", data=rows, **kw)
        with io.FrameReader(path) as r:
            assert not r._direct
            got_ids, got = r.read(1, 4)
        np.testing.assert_array_equal(got_ids, ids[1:4])
        np.testing.assert_array_equal(got, frames[1:4])


def test_non_direct_corrupt_chunk(tmp_path, frame_file):
    _, ids, frames = frame_file
    rows = np.empty(4, io.FINAL_IMAGE_DTYPE)
    rows["ImageId"], rows["Image"] = ids[:4], frames[:4]
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("FinalImage", data=rows, chunks=(2,), compression="gzip")
    bad = tmp_path / "bad.h5"
    _corrupt_chunks(src, bad, [2])
    with io.FrameReader(bad) as r:
        np.testing.assert_array_equal(r.read(0, 2)[0], ids[:2])
        with pytest.raises(InputError, match=r"bad\.h5: frames 2\.\.3 are unreadable"):
            r.read(2, 4)


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name] = value
    return path


def test_frame_reader_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.h5: no such file"):
        with io.FrameReader(tmp_path / "nope.h5"):
            pass


def test_frame_reader_not_hdf5(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match=r"garbage\.h5: not a readable HDF5 file"):
        with io.FrameReader(path):
            pass


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.95])
def test_frame_reader_truncated_file(tmp_path, frame_file, fraction):
    data = frame_file[0].read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError, match=r"cut\.h5"):
        with io.FrameReader(path) as r:
            r.read(0, r.n_frames)


def _dataset_cases(tmp_path):
    return {
        "no FinalImage": (_h5(tmp_path / "a.h5", Other=np.zeros(3)), r"a\.h5: no dataset 'FinalImage' \(found: Other\)"),
        "not compound": (_h5(tmp_path / "b.h5", FinalImage=np.zeros((2, 4, 4), np.uint8)), r"b\.h5: 'FinalImage' must have fields ImageId and Image"),
        "uint16": (_h5(tmp_path / "c.h5", FinalImage=np.zeros(2, [("ImageId", "<i4"), ("Image", "<u2", (N_PIX, N_PIX))])),
                   r"c\.h5: 'FinalImage' frames must be uint8 \(1024, 1024\)"),
        "512 px": (_h5(tmp_path / "d.h5", FinalImage=np.zeros(2, [("ImageId", "<i4"), ("Image", "u1", (512, 512))])),
                   r"d\.h5: 'FinalImage' frames must be uint8"),
        "2d": (_h5(tmp_path / "e.h5", FinalImage=np.zeros((2, 1), io.FINAL_IMAGE_DTYPE)), r"e\.h5: 'FinalImage' must be one row per frame"),
        "group": (tmp_path / "g.h5", r"g\.h5: 'FinalImage' is a group, not a dataset of frames"),
    }


@pytest.mark.parametrize("case", ["no FinalImage", "not compound", "uint16", "512 px", "2d", "group"])
def test_frame_reader_wrong_layout(tmp_path, case):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_group("FinalImage")
    path, message = _dataset_cases(tmp_path)[case]
    with pytest.raises(InputError, match=message):
        with io.FrameReader(path):
            pass
    # the file was closed again: it can be rewritten
    with h5py.File(path, "w"):
        pass


# ------------------------------------------------------------------------------ truth / detected / answer
def _truth_table(dataset, id_field, sigma_field, beta_field="beta"):
    dt = np.dtype([(id_field, "u1" if id_field == "SphereId" else "<i4"), ("R", "<f8"), (sigma_field, "<f8"), (beta_field, "<f8", (3,))])
    t = np.zeros(2, dt)
    t[id_field] = [0, 1]
    t["R"] = [0.8, 0.5]          # stored larger radius first: the reader sorts
    t[sigma_field] = [0.008, 0.006]
    t[beta_field] = [[1.0, 0.85, 0.55], [-0.3, 0.0, 0.0]]
    return t


@pytest.mark.parametrize("dataset, id_field", [("Truth", "SphereId"), ("DistributionParameters", "DistributionId")])
@pytest.mark.parametrize("sigma", ["sigma_R", "sigmaR", "\\sigma_R", "Sigma_R", "σ_R"])
def test_read_truth_spellings(tmp_path, dataset, id_field, sigma):
    path = _h5(tmp_path / "truth.h5", **{dataset: _truth_table(dataset, id_field, sigma)})
    s = io.read_truth(path)
    np.testing.assert_array_equal(s.R, [0.5, 0.8])
    np.testing.assert_array_equal(s.sigma_R, [0.006, 0.008])
    np.testing.assert_array_equal(s.beta, [[-0.3, 0.0, 0.0], [1.0, 0.85, 0.55]])


def test_read_truth_written_by_write_h5(tmp_path):
    t = np.zeros(2, io.truth_dtype(2))
    t["SphereId"], t["R"], t["sigma_R"], t["beta"] = [0, 1], [0.5, 0.8], [0.006, 0.008], [[0.1, 0.0], [0.2, 0.1]]
    io.write_h5(tmp_path / "t.h5", Truth=t)
    assert io.read_truth(tmp_path / "t.h5").n_beta == 2


def test_read_truth_errors(tmp_path):
    with pytest.raises(InputError, match=r"missing\.h5: no such file"):
        io.read_truth(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"text\.h5: not a readable HDF5 file"):
        io.read_truth(tmp_path / "text.h5")
    _h5(tmp_path / "none.h5", Answer=np.zeros(2))
    with pytest.raises(InputError, match=r"none\.h5: no dataset 'Truth' or 'DistributionParameters' \(found: Answer\)"):
        io.read_truth(tmp_path / "none.h5")
    t = _truth_table("Truth", "SphereId", "sigma_R")
    _h5(tmp_path / "nosig.h5", Truth=t[["SphereId", "R", "beta"]].copy())
    with pytest.raises(InputError, match=r"nosig\.h5: dataset 'Truth' has no field 'sigma_R'"):
        io.read_truth(tmp_path / "nosig.h5")
    scalar = np.zeros(2, [("SphereId", "u1"), ("R", "<f8"), ("sigma_R", "<f8"), ("beta", "<f8")])
    scalar["R"] = [0.5, 0.8]
    _h5(tmp_path / "scalar.h5", Truth=scalar)
    with pytest.raises(InputError, match=r"scalar\.h5: field 'beta' of 'Truth' must be a vector per row"):
        io.read_truth(tmp_path / "scalar.h5")
    t["beta"][1] = [-0.8, 0.0, 0.0]
    _h5(tmp_path / "unphys.h5", Truth=t)
    with pytest.raises(UnphysicalError, match=r"unphys\.h5: shell 0 \(R = 0\.5\): unphysical beta"):
        io.read_truth(tmp_path / "unphys.h5")
    t = _truth_table("Truth", "SphereId", "sigma_R")
    t["R"][0] = -0.8
    _h5(tmp_path / "negR.h5", Truth=t)
    with pytest.raises(InputError, match=r"negR\.h5: shell 0: radius"):
        io.read_truth(tmp_path / "negR.h5")


def test_read_truth_corrupt_dataset(tmp_path):
    t = np.zeros(2000, io.truth_dtype(3))  # large enough for a chunk of its own
    t["R"] = np.linspace(0.3, 0.9, 2000)
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("Truth", data=t, chunks=(2000,), compression="gzip")
        info = f["Truth"].id.get_chunk_info(0)
    data = bytearray(src.read_bytes())
    data[info.byte_offset : info.byte_offset + info.size] = b"\x00\xff" * (info.size // 2) + b"\x00" * (info.size % 2)
    (tmp_path / "bad.h5").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.h5: dataset 'Truth' is corrupt"):
        io.read_truth(tmp_path / "bad.h5")


@pytest.mark.parametrize(
    "dtype",
    [
        [("ElectronId", "<i4"), ("x", "<f8"), ("z", "<f8")],                        # second kind
        [("ImageId", "<i4"), ("ElectronId", "<i4"), ("x", "<f8"), ("z", "<f8")],    # first kind
        [("ImageId", "<i4"), ("X", "<f4"), ("Z", "<f4"), ("flux", "<f4")],          # other case, float32, extra field
    ],
    ids=["second-kind", "first-kind", "spelling"],
)
def test_read_detected(tmp_path, dtype):
    rng = np.random.default_rng(3)
    t = np.zeros(50, dtype)
    for name in t.dtype.names:
        t[name] = rng.uniform(-1, 1, 50) if t.dtype[name].kind == "f" else np.arange(50)
    _h5(tmp_path / "det.h5", DetectedElectrons=t)
    d = io.read_detected(tmp_path / "det.h5")
    xname, zname = [n for n in t.dtype.names if n.lower() in ("x", "z")]
    assert d["x"].dtype == d["z"].dtype == np.float64
    np.testing.assert_array_equal(d["x"], t[xname].astype(np.float64))
    np.testing.assert_array_equal(d["z"], t[zname].astype(np.float64))
    for name in t.dtype.names:  # every field passed through
        np.testing.assert_array_equal(d[name], t[name])


def test_read_detected_errors(tmp_path):
    _h5(tmp_path / "plain.h5", DetectedElectrons=np.zeros((5, 2)))
    with pytest.raises(InputError, match=r"plain\.h5: dataset 'DetectedElectrons' is not a table"):
        io.read_detected(tmp_path / "plain.h5")
    _h5(tmp_path / "noz.h5", DetectedElectrons=np.zeros(3, [("x", "<f8"), ("y", "<f8")]))
    with pytest.raises(InputError, match=r"noz\.h5: dataset 'DetectedElectrons' has no field 'z' \(fields: x, y\)"):
        io.read_detected(tmp_path / "noz.h5")
    t = np.zeros(3, io.DETECTED_DTYPE)
    t["x"][1] = np.nan
    _h5(tmp_path / "nan.h5", DetectedElectrons=t)
    with pytest.raises(InputError, match=r"nan\.h5: 'DetectedElectrons' holds non-finite x or z"):
        io.read_detected(tmp_path / "nan.h5")
    _h5(tmp_path / "other.h5", Truth=np.zeros(2))
    with pytest.raises(InputError, match=r"other\.h5: no dataset 'DetectedElectrons' \(found: Truth\)"):
        io.read_detected(tmp_path / "other.h5")


def test_read_answer_as_stored(tmp_path):
    a = np.zeros(2, [("SphereId", "u1"), ("R", "<f8"), ("beta", "<f4", (2,))])  # no conversion: float32 stays
    _h5(tmp_path / "a.h5", Answer=a)
    assert io.read_answer(tmp_path / "a.h5").dtype == a.dtype
    _h5(tmp_path / "b.h5", answer=a)
    with pytest.raises(InputError, match=r"b\.h5: no dataset 'Answer' \(found: answer\)"):
        io.read_answer(tmp_path / "b.h5")
    _h5(tmp_path / "empty.h5")
    with pytest.raises(InputError, match=r"empty\.h5: no dataset 'Answer' \(found: nothing\)"):
        io.read_answer(tmp_path / "empty.h5")


def test_read_map(tmp_path):
    good = tmp_path / "map.npy"
    img = np.arange(N_PIX * N_PIX, dtype=np.float64).reshape(N_PIX, N_PIX)
    io.save_npy(good, img)
    np.testing.assert_array_equal(io.read_map(good), img)
    np.save(tmp_path / "small.npy", np.zeros((16, 16)))
    np.save(tmp_path / "text.npy", np.full((N_PIX, N_PIX), "a"))
    (tmp_path / "junk.npy").write_bytes(b"not an npy file")
    for name, why in [("small.npy", "expected a 1024 x 1024"), ("text.npy", "numeric"),
                      ("junk.npy", "cannot read"), ("missing.npy", "cannot read")]:
        with pytest.raises(InputError, match=why) as err:
            io.read_map(tmp_path / name)
        assert name in str(err.value)


# ------------------------------------------------------------------------------ issue 11: one line each
def test_directory_as_input_is_one_line(tmp_path):
    (tmp_path / "d.h5").mkdir()
    for call in (lambda: io.FrameReader(tmp_path / "d.h5").__enter__(), lambda: io.read_truth(tmp_path / "d.h5")):
        with pytest.raises(InputError) as exc:
            call()
        assert str(exc.value) == f"{tmp_path / 'd.h5'}: is a directory, not a file"


def _tree_offsets(data):
    """Offsets of the v1 B-tree nodes (chunk index) of an HDF5 file."""
    out, i = [], data.find(b"TREE")
    while i >= 0:
        out.append(i)
        i = data.find(b"TREE", i + 1)
    return out


def test_corrupt_chunk_index_is_one_line(tmp_path, frame_file):
    """Zeroed chunk-index entries (h5py: 'Can't get storage size of chunk') give one InputError."""
    path, _, _ = frame_file
    data = bytearray(Path(path).read_bytes())
    trees = _tree_offsets(data)
    assert trees
    for t in trees:
        data[t + 24: t + 24 + 200] = bytes(200)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError) as exc:
        with io.FrameReader(bad) as r:
            r.read(0, r.n_frames)
    assert str(exc.value).startswith(f"{bad}: ") and "\n" not in str(exc.value)


def test_read_truth_refuses_radii_off_the_screen(tmp_path):
    t = _truth_table("Truth", "SphereId", "sigma_R")
    t["R"] = [0.5, 1.7]
    _h5(tmp_path / "far.h5", Truth=t)
    with pytest.raises(InputError, match=r"far\.h5: shell 1: radius R = 1\.7 is outside \(0, 1\.5\)"):
        io.read_truth(tmp_path / "far.h5")


def test_check_outputs(tmp_path):
    inp = tmp_path / "in.h5"
    inp.write_text("x")
    io.check_outputs([tmp_path / "new" / "deeper" / "out.h5", None], [inp])  # missing folders are fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]
    cases = [
        ([inp], "output is the input file"),
        ([tmp_path / "." / "in.h5"], "output is the input file"),
        ([tmp_path], "is a directory"),
        ([inp / "x.h5"], "is not a directory"),
        ([tmp_path / "a.h5", tmp_path / "a.h5"], "given for two outputs"),
        (["/proc/sevi-test/x.h5"], "cannot write in /proc"),
    ]
    for outputs, message in cases:
        with pytest.raises(InputError, match=message):
            io.check_outputs(outputs, [inp])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]
