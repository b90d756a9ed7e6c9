"""sevi_lib._workflow: the input checks and the frames identity the workflow uses at start."""

import os

import h5py
import numpy as np
import pytest

from sevi_lib._workflow import check_input_file, file_identity
from sevi_lib.core.errors import InputError


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f[name] = data
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("directory", "is a directory, not an HDF5 file"),
    ("not_hdf5", "not a readable HDF5 file"),
    ("no_dataset", "no dataset FinalImage (found: Other)"),
    ("group", "no dataset FinalImage (found: FinalImage)"),
])
def test_bad_input_files_are_named_with_their_key(tmp_path, case, message):
    path = tmp_path / "frames.h5"
    if case == "directory":
        path.mkdir()
    elif case == "not_hdf5":
        path.write_bytes(b"not an hdf5 file at all" * 10)
    elif case == "no_dataset":
        _h5(path, Other=np.zeros(3))
    elif case == "group":
        with h5py.File(path, "w") as f:
            f.create_group("FinalImage")
    with pytest.raises(InputError) as err:
        check_input_file("test_images", str(path), ["FinalImage"])
    assert str(err.value) == f"config test_images: {path}: {message}"


def test_good_file_passes_and_any_listed_dataset_counts(tmp_path):
    path = _h5(tmp_path / "truth.h5", DistributionParameters=np.zeros(2))
    check_input_file("truth", str(path), ["Truth", "DistributionParameters"])


def test_identity_follows_contents_not_time_stamps(tmp_path):
    a = tmp_path / "a.bin"
    data = np.random.default_rng(0).bytes(3 << 20)
    a.write_bytes(data)
    ident = file_identity(a)
    os.utime(a, (1, 1))
    assert file_identity(a) == ident  # touching is not a change
    a.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # last byte changed
    assert file_identity(a) != ident
    b = tmp_path / "b.bin"
    b.write_bytes(data[:100])
    assert file_identity(b).startswith("100:")
