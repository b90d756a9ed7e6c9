"""Lab-camera data (issue 13): shells found automatically, a free image centre, a background rate.

Electrons come from the project's sampler; the centre offset and the uniform stray electrons are
added here with numpy (independent of the simulator's own options).
"""

import numpy as np
import pytest

from sevi_lib import fit
from sevi_lib.core.angular import legendre_even
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.core.maps import count_map
from sevi_lib.core.score import shell_distance
from sevi_lib.fit import _kernels
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.points import PointSet
from sevi_lib.fit.search import find_shells
from sevi_lib.simulate.electrons import sample_shell

PEAKED = np.array([1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0])
SOFT = np.array([0.7, 0.6, 0.35, 0.15, 0.06, 0.02, 0.005, 0.001, 0.0, 0.0, 0.0, 0.0])
PUBLISHED = [(0.5, 0.007, PEAKED), (0.8, 0.008, SOFT)]
LAB = [(0.3, 0.006, np.r_[0.8, 0.3, 0.05, np.zeros(3)]), (0.55, 0.007, np.r_[-0.4, 0.05, np.zeros(4)]),
       (0.8, 0.008, PEAKED[:6])]
OFFSET_PX = (3.3, -4.2)


def electrons(shells, n, seed, offset_px=(0.0, 0.0), strays=0):
    """n electrons per shell moved by offset_px, plus `strays` uniform on the screen."""
    xs, zs = [], []
    for j, (R, s, beta) in enumerate(shells):
        _, _, x, z = sample_shell(R, s, np.asarray(beta, dtype=np.float64), n, seed * 10 + j)
        xs.append(x + offset_px[0] / PIX_PER_UNIT)
        zs.append(z + offset_px[1] / PIX_PER_UNIT)
    u = np.random.default_rng(seed + 999).uniform(-1, 1, (strays, 2))
    return np.concatenate(xs + [u[:, 0]]), np.concatenate(zs + [u[:, 1]])


def test_search_finds_three_lab_shells_and_two_published():
    x, z = electrons(LAB, 20_000, 1, OFFSET_PX, 20_000)
    c = np.array(OFFSET_PX) / PIX_PER_UNIT
    found = find_shells(np.hypot(x - c[0], z - c[1]), centre=c)
    assert found.n_found == 3
    assert np.allclose([p["R"] for p in found.peaks], [0.3, 0.55, 0.8], atol=0.01)
    assert all(p["z"] > 20 for p in found.peaks) and all(p["z"] < 5 for p in found.rejected)
    x, z = electrons(PUBLISHED, 10_000, 2)
    assert find_shells(np.hypot(x, z)).n_found == 2
    assert find_shells(np.random.default_rng(3).uniform(0, 0.9, 5000)).n_found == 0


def test_legendre_rows_are_legendre_even_bit_for_bit():
    c = np.random.default_rng(0).uniform(-1, 1, 1000)
    pm, dpm = np.empty((1000, 7)), np.empty((1000, 7))
    _kernels.legendre_rows(c, 6, pm, dpm)
    assert np.array_equal(pm[:, 1:], legendre_even(c, 6)) and np.all(pm[:, 0] == 1)
    h = 1e-6
    up, dn = legendre_even(c + h, 6), legendre_even(c - h, 6)
    assert np.allclose(dpm[:, 1:], (up - dn) / (2 * h), rtol=1e-6, atol=1e-6)


def test_shift_gradient_matches_central_differences():
    x, z = electrons(LAB, 1000, 4, OFFSET_PX, 500)
    n = 4
    theta = ParamLayout(3, n).pack(np.array([[1000, 300, 100, 20, 5.0]] * 3), np.array([0.3, 0.55, 0.8]),
                                   np.array([0.006, 0.007, 0.008]), 1.0)
    c = np.array([0.006, -0.008])
    ones = np.ones(len(x))

    def points(cc):
        return PointSet(x - cc[0], z - cc[1], 1, ones, n, 2e-4, 2.0)

    grad = points(c).shift_gradient(theta, 3)
    num = np.empty_like(grad)
    d = 1e-5
    for k in range(2):
        e = np.zeros(2)
        e[k] = d
        mu = []
        for cc in (c + e, c - e):
            m = np.empty(len(x))
            points(cc).loglike(theta, ones, 3, 0, m)
            mu.append(m)
        num[:, k] = (mu[0] - mu[1]) / (2 * d)
    assert np.abs(grad - num).max() < 1e-5 * np.abs(grad).max()


@pytest.fixture(scope="module")
def lab():
    n, strays = 100_000, 30_000
    x, z = electrons(LAB, n, 5, OFFSET_PX, strays)
    free = fit.fit_electrons(x, z, n_beta=6)
    given = fit.fit_electrons(x, z, n_beta=6, n_shells=3, centre=tuple(np.array(OFFSET_PX) / PIX_PER_UNIT),
                              R0=[s[0] for s in LAB], sigma0=[s[1] for s in LAB])
    return x, z, strays, free, given


def test_lab_like_unbinned(lab):
    """3 shells found; centre within 0.1 px and 3.5 SE; distances within 1.5 x the true-centre fit; background."""
    _, _, strays, r, given = lab
    assert len(r.R) == 3 and r.converged and not r.centre_fixed
    err_px = r.centre * PIX_PER_UNIT - OFFSET_PX
    assert np.all(np.abs(err_px) < 0.1), err_px
    assert np.all(np.abs(err_px) < 3.5 * r.centre_se * PIX_PER_UNIT), (err_px, r.centre_se * PIX_PER_UNIT)
    for j, (_, _, beta) in enumerate(LAB):
        assert shell_distance(r.beta[j], beta) <= 1.5 * shell_distance(given.beta[j], beta) + 1e-4
    assert abs(r.background - strays) < 3 * r.background_se, (r.background, r.background_se)
    side = r.to_dict()
    for key in ("centre", "centre_se", "background", "background_se", "shell_search"):
        assert key in side
    assert side["shell_search"]["n_found"] == 3 and len(side["shell_search"]["peaks"]) == 3


def test_lab_like_binned(lab):
    x, z, strays, r, _ = lab
    b = fit.fit_count_map(count_map(x, z), n_beta=6)
    assert len(b.R) == 3
    err_px = b.centre * PIX_PER_UNIT - OFFSET_PX
    assert np.all(np.abs(err_px) < 0.1) and np.all(np.abs(err_px) < 3.5 * b.centre_se * PIX_PER_UNIT), err_px
    assert np.all(np.abs(b.beta[:, 0] - r.beta[:, 0]) < 0.5 * r.se_beta[:, 0])
    assert abs(b.background - strays) < 3 * b.background_se


def test_published_shells_found_and_answers_unchanged():
    """Two shells found on published-like data; the free-centre answers match the screen-centre fit."""
    x, z = electrons(PUBLISHED, 100_000, 6)
    r = fit.fit_electrons(x, z)
    old = fit.fit_electrons(x, z, n_shells=2, centre="screen")
    assert len(r.R) == 2 and r.shell_search["n_found"] == 2 and old.centre_fixed
    assert np.all(np.abs(r.centre) < 4 * r.centre_se)
    for j, (_, _, beta) in enumerate(PUBLISHED):
        assert shell_distance(r.beta[j], beta) <= shell_distance(old.beta[j], beta) + 0.25 * old.expected_distance[j]
    assert np.allclose(r.R, old.R, atol=0.2 * old.se_R)
    assert abs(r.background) < 3 * r.background_se + 1.0


def test_fixed_shell_count_and_centre_keywords():
    x, z = electrons(PUBLISHED, 5000, 7, (2.0, 1.0))
    r = fit.fit_electrons(x, z, n_beta=2, n_shells=2, centre=(2.0 / PIX_PER_UNIT, 1.0 / PIX_PER_UNIT), n_frames=100)
    assert r.centre_fixed and np.all(r.centre_se == 0) and r.shell_search["n_shells_given"] == 2
    assert r.background_per_frame == pytest.approx(r.background / 100)
    with pytest.raises(ValueError):
        fit.fit_electrons(x, z, centre="middle")


@pytest.mark.slow  # about 1 min on a shared 2-core machine
def test_frame_sum_free_centre_pedestal_and_mask():
    from sevi_lib.simulate import render

    shells = [(0.5, 0.006, PEAKED[:4]), (0.8, 0.008, SOFT[:4])]
    x, z = electrons(shells, 15_000, 8, (3.4, -2.6), 3000)
    perm = np.random.default_rng(0).permutation(len(x))
    x, z = x[perm], z[perm]
    A, sig, rho = render.draw_spot_params(len(x), 1)
    total = np.zeros((1024, 1024))
    frame = np.empty((1024, 1024), np.uint8)
    for k in range(0, len(x), 80):
        sl = slice(k, k + 80)
        total += render.render_frame(x[sl], z[sl], A[sl], sig[sl], rho[sl], out=frame)
    total += 120.0  # a flat pedestal
    hot = np.zeros((1024, 1024), dtype=bool)
    hot[[100, 700, 300], [900, 200, 512]] = True
    total[hot] += 400 * 200.0  # hot pixels, masked
    r = fit.fit_frame_sum(total, fit.mean_spot(5000), n_beta=4, n_reweight=1, pedestal=True, mask=hot)
    assert len(r.R) == 2 and not r.centre_fixed
    err_px = r.centre * PIX_PER_UNIT - (3.4, -2.6)
    assert np.all(np.abs(err_px) < 4 * r.centre_se * PIX_PER_UNIT + 0.15), (err_px, r.centre_se * PIX_PER_UNIT)
    for j, (R, _, beta) in enumerate(shells):
        assert abs(r.R[j] - R) < 5 * r.se_R[j]
        assert abs(r.beta[j, 0] - beta[0]) < 5 * r.se_beta[j, 0]
    assert r.diagnostics["pedestal"] == pytest.approx(120.0, abs=20.0)


@pytest.mark.slow  # about 1 min on a shared 2-core machine
def test_pulls_with_free_centre_and_background():
    """Pulls of x0, z0, beta_2 of both shells and the background over 40 seeds (offset, strays)."""
    shells = [(0.5, 0.006, np.array([0.8, 0.3])), (0.8, 0.008, np.array([-0.3, 0.1]))]
    strays = 2000
    pulls = []
    for seed in range(40):
        x, z = electrons(shells, 10_000, 300 + seed, (2.5, -1.5), strays)
        r = fit.fit_electrons(x, z, n_beta=2)
        assert len(r.R) == 2
        c = (r.centre * PIX_PER_UNIT - (2.5, -1.5)) / (r.centre_se * PIX_PER_UNIT)
        pulls.append([c[0], c[1], (r.beta[0, 0] - 0.8) / r.se_beta[0, 0], (r.beta[1, 0] + 0.3) / r.se_beta[1, 0],
                      (r.background - strays) / r.background_se])
    pulls = np.array(pulls)
    # 40 seeds: SE of a mean 0.16, of an SD about 0.11
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.5), pulls.mean(axis=0)
    sd = pulls.std(axis=0, ddof=1)
    assert np.all((sd > 0.65) & (sd < 1.35)), sd
