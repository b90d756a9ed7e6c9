"""Issue 13: the network's input recentred on the fitted image centre (sevi_lib.nn.centre)."""

import json

import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import write_h5
from sevi_lib.core.maps import count_map
from sevi_lib.nn.centre import centre_map_file, recentred_map

#: A centre offset of (+3.5, -2.25) pixels, exact in binary: shifting there and back is exact.
OFFSET = (3.5 / 512, -2.25 / 512)


def _electrons(n=20000, seed=0):
    """Positions inside radius 0.9, on a 2**-30 grid (so that x + x0 - x0 == x exactly)."""
    rng = np.random.default_rng(seed)
    r = 0.9 * np.sqrt(rng.random(n))
    phi = 2 * np.pi * rng.random(n)
    q = 2.0 ** -30
    return np.round(r * np.cos(phi) / q) * q, np.round(r * np.sin(phi) / q) * q


def test_recentred_map_of_shifted_electrons_is_the_map_of_the_unshifted():
    x, z = _electrons()
    want = count_map(x, z)
    got = recentred_map(x + OFFSET[0], z + OFFSET[1], OFFSET)
    np.testing.assert_array_equal(got, want)
    assert got.sum() == len(x)
    # the uncorrected map is another map: the shells would be smeared by the fold
    assert not np.array_equal(count_map(x + OFFSET[0], z + OFFSET[1]), want)
    np.testing.assert_array_equal(recentred_map(x, z, (0.0, 0.0)), want)  # centre (0, 0): nothing moves


def _table(path, x, z):
    table = np.zeros(len(x), dtype=[("ImageId", "<i4"), ("x", "<f8"), ("z", "<f8")])
    table["x"], table["z"] = x, z
    write_h5(path, DetectedElectrons=table)
    return path


def test_centre_map_file(tmp_path):
    x, z = _electrons(5000, 1)
    el = _table(tmp_path / "electrons.h5", x + OFFSET[0], z + OFFSET[1])
    (tmp_path / "fit.json").write_text(json.dumps({"centre": list(OFFSET), "centre_se": [1e-5, 1e-5]}))
    centre, n = centre_map_file(el, tmp_path / "fit.json", tmp_path / "out" / "map.npy")
    assert centre == OFFSET and n == 5000
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "map.npy"), count_map(x, z))


def test_centre_map_file_refuses_before_any_work(tmp_path):
    x, z = _electrons(100, 2)
    el = _table(tmp_path / "electrons.h5", x, z)
    (tmp_path / "old.json").write_text(json.dumps({"R": [0.4, 0.7]}))
    with pytest.raises(InputError, match="records no image centre"):
        centre_map_file(el, tmp_path / "old.json", tmp_path / "map.npy")
    with pytest.raises(InputError, match="output is the input"):
        centre_map_file(el, tmp_path / "old.json", el)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["electrons.h5", "old.json"]
