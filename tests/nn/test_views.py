import numpy as np
import pytest

from sevi_lib.core.errors import InputError
from sevi_lib.core.maps import fold
from sevi_lib.nn.views import View, apply_view, downsample


def _hist(x, z):
    return np.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])[0]


def test_fold_is_histogram_of_absolute_coordinates():
    rng = np.random.default_rng(3)
    x, z = rng.uniform(-1, 1, (2, 20000))
    folded = fold(_hist(x, z))
    direct = np.histogram2d(np.abs(x), np.abs(z), bins=512, range=[[0, 1], [0, 1]])[0]
    np.testing.assert_array_equal(folded, direct)


def test_fold_conserves_counts_and_keeps_integers():
    m = np.random.default_rng(0).integers(0, 5, (1024, 1024)).astype(np.uint16)
    f = fold(m)
    assert f.shape == (512, 512) and f.dtype == np.int64
    assert f.sum() == m.sum()


def test_fold_of_symmetric_map_is_four_quadrants():
    q = np.random.default_rng(1).random((512, 512))
    right = np.concatenate([q[::-1], q], axis=0)  # symmetric in x
    full = np.concatenate([right[:, ::-1], right], axis=1)  # and in z
    np.testing.assert_allclose(fold(full), 4 * q)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_downsample_block_sums(k):
    m = np.random.default_rng(k).integers(0, 9, (64, 64))
    d = downsample(m, k)
    assert d.shape == (64 // k, 64 // k)
    assert d.sum() == m.sum()
    assert d[1, 2] == m[k : 2 * k, 2 * k : 3 * k].sum()


@pytest.mark.parametrize(
    "cfg, shape",
    [
        ({"name": "full"}, (1, 1024, 1024)),
        ({"name": "fold"}, (1, 512, 512)),
        ({"name": "full", "downsample": 4}, (1, 256, 256)),
        ({"name": "fold", "downsample": 4}, (1, 128, 128)),
    ],
)
def test_views_normalise_to_scale(cfg, shape):
    view = View.from_config(cfg)
    m = np.random.default_rng(2).poisson(0.3, (1024, 1024))
    out = apply_view(m, view)
    assert out.dtype == np.float32 and out.shape == shape == view.shape
    np.testing.assert_allclose(out.sum(dtype=np.float64), 255.0, rtol=1e-5)
    # the seed team's full view: counts / total * 255
    if cfg == {"name": "full"}:
        np.testing.assert_allclose(out[0], m / m.sum() * 255, rtol=1e-6)
    # independent of the number of electrons collected
    np.testing.assert_allclose(apply_view(3 * m, view), out, rtol=1e-6)


def test_empty_map_gives_zeros():
    assert not apply_view(np.zeros((1024, 1024)), View("fold", 2)).any()


def test_bad_views_raise():
    with pytest.raises(InputError, match="unknown name"):
        View("quadrant")
    with pytest.raises(InputError, match="divisor"):
        View("fold", 3)
    with pytest.raises(InputError, match="1024 x 1024"):
        apply_view(np.zeros((512, 512)), View())
    assert View.from_config(View("fold", 4).to_config()) == View("fold", 4)
