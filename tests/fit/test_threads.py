"""The fit on several numba threads: the same answer, bit for bit, as on one.

The kernels run chunks of groups in parallel and add the chunks' partial sums in chunk order
(:mod:`sevi_lib.fit._kernels`), so the thread count changes nothing; BLAS's threads are left as
they are (its reductions are the same in both runs).
"""

import numba
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")


def _on_threads(k, f):
    before = numba.get_num_threads()
    numba.set_num_threads(k)
    try:
        return f()
    finally:
        numba.set_num_threads(before)


def test_kernels_agree_bit_for_bit_across_threads(progression, monkeypatch):
    """Value, gradient, Fisher matrix, geometry curvature, curvature and centre gradient on 1 and 2
    threads (several chunks); the score pass with a sampled Fisher matrix too."""
    from sevi_lib.fit import points
    from sevi_lib.fit.layout import ParamLayout
    from sevi_lib.fit.points import CHUNK, PointSet

    x, z = progression.sample(5, progression.counts // 5)
    o = np.argsort(np.hypot(x, z))
    x, z = x[o], z[o]
    n, S = 4, len(progression.radii)
    a = np.zeros((S, n + 1))
    a[:, 0] = progression.counts / 20.0
    a[:, 1] = 0.2 * a[:, 0]
    theta = ParamLayout(S, n).pack(a, progression.radii, np.full(S, progression.sigma), 3.0)
    counts = np.random.default_rng(1).poisson(1.0, len(x)).astype(np.float64)
    assert len(x) > 3 * CHUNK

    def evaluate():
        pts = PointSet(x, z, 1, np.ones(len(x)), n, progression.sigma / 24, None)
        mu = np.empty(len(x))
        v = pts.loglike(theta, counts, S, want=0, mu_out=mu)[0]
        geo = np.empty((S, 3))
        ll, g, H = pts.loglike(theta, counts, S, want=2, geometry_curvature=geo)
        Q = pts.curvature(theta, counts / mu, S)
        return v, mu, ll, g, H, geo, Q, pts.shift_gradient(theta, S)

    one, two = _on_threads(1, evaluate), _on_threads(2, evaluate)
    for name, u, v in zip(("value", "mu", "loglike", "gradient", "Fisher", "geometry curvature", "curvature",
                           "centre gradient"), one, two):
        assert np.array_equal(u, v), f"{name}: max difference {np.max(np.abs(np.asarray(u) - np.asarray(v)))}"

    def sampled():  # the score pass and a sampled Fisher matrix (every 3rd group)
        pts = PointSet(x, z, 1, np.ones(len(x)), n, progression.sigma / 24, None)
        geo = np.empty((S, 3))
        ll, g, H = pts.loglike(theta, counts, S, want=2, geometry_curvature=geo)
        return ll, g, H, geo

    monkeypatch.setattr(points, "FISHER_GROUPS", len(x) // 3)
    one, two = _on_threads(1, sampled), _on_threads(2, sampled)
    for name, u, v in zip(("loglike", "gradient", "Fisher", "geometry curvature"), one, two):
        assert np.array_equal(u, v), f"sampled {name}: max difference {np.max(np.abs(np.asarray(u) - np.asarray(v)))}"


def test_fit_agrees_bit_for_bit_across_threads(progression):
    """The unbinned fit (free centre) of a small spectrum on 1 and 2 threads: the same answer."""
    from sevi_lib import fit

    x, z = progression.sample(6, progression.counts // 20)
    radii = progression.radii

    def run():
        r = fit.fit_electrons(x + 0.001, z, n_beta=2, n_shells=len(radii), R0=radii, max_iter=20)
        return np.concatenate([r.R, r.sigma_R, r.beta.ravel(), r.weights, [r.background_density], r.centre,
                               [r.objective]])

    assert np.array_equal(_on_threads(1, run), _on_threads(2, run))
