"""Shared test helpers."""

import h5py
import numpy as np
import pytest


def write_shard(path, n, seed, shape=(1, 16, 16), n_beta=12, n_shells=2, view=None):
    """A synthesis-shard-shaped HDF5 file of random arrays (inputs, labels, R, sigma_R).

    ``view``: optional JSON string stored as the ``view`` attribute, as sevi_lib.nn.synth does.
    """
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", data=rng.random((n, *shape), dtype=np.float32), chunks=(1, *shape))
        f["labels"] = 0.3 * rng.standard_normal((n, n_shells, n_beta))
        f["R"] = np.sort(rng.uniform(0.3, 0.9, (n, n_shells)), axis=1)
        f["sigma_R"] = rng.uniform(0.005, 0.0095, (n, n_shells))
        if view is not None:
            f.attrs["view"] = view
    return path


@pytest.fixture(scope="session")
def shard_writer():
    """:func:`write_shard` itself, for module-scoped fixtures (tests import no helper modules)."""
    return write_shard


@pytest.fixture
def make_shard(tmp_path):
    """``make_shard(name, n, seed, shape=(1, 16, 16), n_beta=12)`` -> path of a random shard in tmp_path."""

    def make(name, n, seed, **kw):
        return write_shard(tmp_path / name, n, seed, **kw)

    return make
