"""Tests of sevi_lib.detect.spotfit (the mixture fit of model spots to one blob).

Blobs of known spots are rendered with the project's renderer (the published model: 5 x 5
sub-grid, rounding, clipping at 255) and cut out as the detector cuts them (bounding box, -1
below the threshold). Positions are checked against a tolerance derived from the data: the only
noise is the rounding to integers (uniform, variance 1/12 count^2 per pixel), so the Cramer-Rao
bound of the positions, given all 5 parameters of every spot free, follows from the Jacobian of
the exact (unrounded) rendering on the STRIDE grid the fit uses (:func:`position_sd`; 0.0046 px
for one isolated spot, 2 sd(x0) = 2 sqrt(2/pi) sigma_n / A analytically; 0.01-0.07 px when
spots overlap). The tolerance is 5 of those standard deviations plus 0.01 px for the model's
one approximation (a pixel is the spot at its mean sub-grid offset, not the mean over the
sub-grid: a smoothing of 0.08 px^2, whose effect on a position is far below that).
"""

import numpy as np
import pytest

from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.detect.blobs import detect_frame
from sevi_lib.detect.settings import DetectorParams, KernelParams, kernel_params
from sevi_lib.detect._lm import STRIDE, fit_workspace
from sevi_lib.detect._peaks import is_patch_max
from sevi_lib.detect.spotfit import decompose
from sevi_lib.simulate.render import render_frame, render_frame_float

SIGMA = 0.015  # published mean spot width (screen units)
THRESHOLD = DetectorParams().threshold


def _frame(xp, zp, A, render=render_frame, s=None, rho=None):
    xp = np.asarray(xp, float)
    zp = np.asarray(zp, float)
    n = xp.size
    s = np.full(n, SIGMA) if s is None else np.asarray(s, float)
    rho = np.zeros(n) if rho is None else np.asarray(rho, float)
    return render(xp / PIX_PER_UNIT - 1, zp / PIX_PER_UNIT - 1, np.broadcast_to(np.asarray(A, float), (n,)).copy(), s, rho)


def blob_patch(xp, zp, A):
    """Patch of the spots at pixel coordinates (xp, zp): bounding box of the pixels >= threshold,
    -1 elsewhere; returns the patch and its origin."""
    f = _frame(xp, zp, A)
    ii, jj = np.nonzero(f >= THRESHOLD)
    i0, j0 = ii.min(), jj.min()
    p = f[i0:ii.max() + 1, j0:jj.max() + 1].astype(np.float64)
    return np.where(p >= THRESHOLD, p, -1.0), i0, j0


def position_sd(xp, zp, A):
    """Cramer-Rao standard deviations of the spots' x and z (pixels) under rounding noise, all
    parameters (x, z, A, s, rho per spot) free, on the STRIDE grid: shape (2, n)."""
    xp = np.asarray(xp, float)
    zp = np.asarray(zp, float)
    n = xp.size
    theta = np.r_[xp, zp, np.full(n, A), np.full(n, SIGMA), np.zeros(n)]
    box = (slice(int(xp.min()) - 40, int(xp.max()) + 40, STRIDE), slice(int(zp.min()) - 40, int(zp.max()) + 40, STRIDE))

    def model(t):
        return _frame(t[:n], t[n:2 * n], t[2 * n:3 * n], render_frame_float, t[3 * n:4 * n], t[4 * n:])[box]

    steps = np.r_[np.full(3 * n, 1e-3), np.full(2 * n, 1e-5)]
    J = np.empty((theta.size, model(theta).size))
    for k, h in enumerate(steps):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += h
        tm[k] -= h
        J[k] = ((model(tp) - model(tm)) / (2 * h)).ravel()
    cov = np.linalg.inv(J @ J.T * 12.0)  # Fisher information with noise variance 1/12
    return np.sqrt(np.diag(cov))[: 2 * n].reshape(2, n)


def fit(xp, zp, A=100.0, **settings):
    patch, i0, j0 = blob_patch(xp, zp, A)
    comp = decompose(patch, **settings)
    comp[:, 0] += i0
    comp[:, 1] += j0
    return comp


def assert_positions(comp, xp, zp, A=100.0):
    """Each true spot has its own component within 5 sd + 0.01 px on each axis."""
    tol = 5 * position_sd(xp, zp, A) + 0.01
    for k, (x, z) in enumerate(zip(xp, zp)):
        d = np.hypot(comp[:, 0] - x, comp[:, 1] - z)
        c = comp[np.argmin(d)]
        assert abs(c[0] - x) <= tol[0, k] and abs(c[1] - z) <= tol[1, k], (k, c[:2], (x, z), tol[:, k])


@pytest.mark.parametrize(
    "xp, zp",
    [
        ([300.3], [600.7]),  # one spot
        ([300.3, 311.1], [600.7, 604.2]),  # two overlapping spots, 11.4 px apart
        ([300.3, 311.1, 303.0], [600.7, 604.2, 612.5]),  # three in a triangle
    ],
    ids=["one", "two", "three"],
)
def test_known_spots_recovered(xp, zp):
    comp = fit(xp, zp)
    assert comp.shape == (len(xp), 5)
    assert_positions(comp, xp, zp)
    # amplitude and width near the truth: the fit's own priors hold them, within 2 %
    np.testing.assert_allclose(comp[:, 2], 100.0, rtol=0.02)
    np.testing.assert_allclose(comp[:, 3], SIGMA * PIX_PER_UNIT, rtol=0.02)


def test_isolated_spot_position_at_noise_floor():
    """The analytic bound for one spot, 2 sqrt(2 / pi) sigma_n / A on the STRIDE grid, is what the
    numeric bound gives (checks the tolerance's derivation)."""
    sd = position_sd([300.3], [600.7], 100.0)
    np.testing.assert_allclose(sd, 2 * np.sqrt(2 / np.pi) * np.sqrt(1 / 12) / 100.0, rtol=0.05)


@pytest.mark.parametrize("n", [3, 4])
def test_saturated_pile_up_counts(n):
    """n spots within 2 px: the peak is clipped at 255, the count still comes from the flux."""
    rng = np.random.default_rng(n)
    xp = 400.3 + rng.uniform(-1, 1, n)
    zp = 500.6 + rng.uniform(-1, 1, n)
    patch, _, _ = blob_patch(xp, zp, 100.0)
    assert patch.max() == 255 and (patch == 255).sum() > 20
    assert decompose(patch).shape[0] == n
    found = detect_frame(_frame(xp, zp, 100.0))
    assert found.size == n
    assert np.all(found["blob_size"] == n)


def test_removal_rule():
    """A faint spot (half a spot's flux, so tested for removal) beside a bright one is kept when
    removing it costs more than removal_cost, and removed when removal_cost is larger than that."""
    xp, zp, A = [300.3, 314.0], [600.7, 600.7], [100.0, 50.0]
    patch, i0, _ = blob_patch(xp, zp, A)
    kept = decompose(patch)
    assert kept.shape[0] == 2
    faint = kept[np.argmin(kept[:, 2])]
    assert abs(faint[0] + i0 - 314.0) < 0.2 and abs(faint[2] - 50.0) < 2.0
    # its light alone is worth sum(model^2) on the STRIDE grid = pi s^2 A^2 / 4 ~ 1.2e5 counts^2;
    # removed (the neighbour refitted to take what it can), the residual still grows by > 1e4
    assert decompose(patch, removal_cost=1e4).shape[0] == 2
    assert decompose(patch, removal_cost=1.2e5).shape[0] == 1


def test_split_rule():
    """Two spots 4 px apart make one maximum, one seed, one component of two spots' flux: it is
    split in two, each near its spot (tolerance from the bound, which is wide for so close a pair)."""
    xp, zp = [300.3, 304.3], [600.7, 600.7]
    patch, _, _ = blob_patch(xp, zp, 100.0)
    n, m = patch.shape
    seeds = [(a, b) for a in range(n) for b in range(m)
             if patch[a, b] >= DetectorParams().peak_min and is_patch_max(patch, a, b, n, m, 1)]
    assert len(seeds) == 1
    comp = fit(xp, zp)
    assert comp.shape[0] == 2
    assert_positions(comp, xp, zp)
    np.testing.assert_allclose(comp[:, 2], 100.0, rtol=0.05)


def test_kernel_params_follow_detector_params():
    """The kernels' parameter record has every DetectorParams field, by name, in its declared type."""
    p = DetectorParams(amplitude=100, threshold=12)
    kp = kernel_params(p)
    assert isinstance(kp, KernelParams)
    assert kp._fields == tuple(p.to_dict())
    assert kp.amplitude == 100.0 and isinstance(kp.amplitude, float)
    assert kp.threshold == 12 and isinstance(kp.threshold, int)


def test_fit_workspace_sizes():
    ws = fit_workspace(64, 8, sigma_max=7.68)
    assert ws.D.shape == (64, 64) and ws.comp.shape == (9, 5) and ws.H.shape == (45, 45)


def test_empty_patch():
    assert decompose(np.full((5, 5), -1.0)).shape == (0, 5)
    assert decompose(np.full((5, 5), 20.0)).shape == (0, 5)  # below peak_min: no seed


def test_decompose_float_patch():
    """On an unrounded patch the fit recovers two overlapping spots' parameters closely."""
    full = _frame([300.0, 311.0], [400.0, 404.0], [100.0, 90.0], render_frame_float, s=[0.015, 0.016], rho=[0.1, -0.05])
    patch = full[270:345, 370:435]
    patch = np.where(patch >= 10, patch, -1.0)
    comp = decompose(patch)
    assert comp.shape == (2, 5)
    comp = comp[np.argsort(comp[:, 0])]
    np.testing.assert_allclose(comp[:, 0] + 270, [300.0, 311.0], atol=0.05)
    np.testing.assert_allclose(comp[:, 1] + 370, [400.0, 404.0], atol=0.05)
    np.testing.assert_allclose(comp[:, 2], [100.0, 90.0], rtol=0.02)
    np.testing.assert_allclose(comp[:, 3], [7.68, 8.192], rtol=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_stay_on_a_saturated_arc(seed):
    """The pole of a sharply aligned shell: ~100 spots on an arc, most of the blob saturated
    (censored). Every component's centre lies within 2 px of a pixel of the blob: before the
    centres were bounded (``_inside_blob``), components parked outside the blob with unbounded
    amplitude on censored pixels and became stacks of tens to hundreds of electrons there."""
    rng = np.random.default_rng(seed)
    n = 100
    phi = rng.normal(0.0, 0.12, n)  # radians about the pole
    r = 256.0 + rng.normal(0.0, 3.5, n)
    xp, zp = 512.0 + r * np.sin(phi), 512.0 + r * np.cos(phi)
    patch, _, _ = blob_patch(xp, zp, 100.0)
    assert (patch == 255).sum() > 0.3 * (patch >= 0).sum()  # largely saturated, as at the poles
    comp = decompose(patch)
    lit = np.argwhere(patch >= 0) + 0.5  # pixel centres
    for a, b in comp[:, :2]:
        assert np.hypot(lit[:, 0] - a, lit[:, 1] - b).min() <= 2.0, (a, b, patch.shape)


def test_compact_grid_and_normal_equations_match_a_dense_evaluation():
    """The kernels keep the patch and the model compact on the STRIDE grid (``ws.Dc``, ``ws.M``)
    and the Jacobian as one contiguous row per parameter (``ws.J[k, p, u, v]``). After a fit of
    three overlapping spots with saturated pixels, the compact patch is the patch on the grid, the
    model is the sum of the components' spots on their discs of WINDOW_SIGMAS widths, and the
    normal equations (J^T J and J^T r with the shape priors) equal those of a dense Jacobian built
    here from the model's analytic derivatives (rounding only: relative 1e-9)."""
    from sevi_lib.detect._lm import NPAR, WINDOW_SIGMAS, _normal_equations, _sse
    from sevi_lib.detect.spotfit import decompose_blob

    patch, _, _ = blob_patch([300.3, 309.1, 303.0], [600.7, 603.2, 611.5], 160.0)
    assert (patch >= 255).any()
    nbi, nbj = patch.shape
    params = DetectorParams()
    par = kernel_params(params)
    ws = fit_workspace(max(nbi, nbj), params.max_per_blob, sigma_max=params.sigma_px)
    ws.D[:nbi, :nbj] = patch
    K = decompose_blob(ws, par, nbi, nbj)
    assert K >= 3
    grid = patch[::STRIDE, ::STRIDE]
    inside = grid >= 0
    np.testing.assert_array_equal(ws.Dc[:grid.shape[0], :grid.shape[1]][inside], grid[inside])

    off = par.subgrid_offset
    ii, jj = np.nonzero(inside)
    x = STRIDE * ii + off
    z = STRIDE * jj + off
    comp = ws.comp[:K]
    n = NPAR * K
    Jd = np.zeros((ii.size, n))
    model = np.zeros(ii.size)
    for k, (a, b, A, s, rho) in enumerate(comp):
        dx, dz = x - a, z - b
        on = dx * dx + dz * dz <= (WINDOW_SIGMAS * s) ** 2
        e = np.where(on, np.exp(-(dx * dx + dz * dz + 2 * rho * dx * dz) / (2 * s * s)), 0.0)
        model += A * e
        Jd[:, NPAR * k:NPAR * k + NPAR] = np.c_[A * e * (dx + rho * dz) / s**2, A * e * (dz + rho * dx) / s**2, e,
                                               A * e * (dx * dx + dz * dz + 2 * rho * dx * dz) / s**3,
                                               -A * e * dx * dz / s**2]
    np.testing.assert_allclose(ws.M[ii, jj], model, rtol=1e-9, atol=1e-9)

    d = grid[inside]
    sat = d >= 255
    w = np.where(sat & (model >= 255), 0.0, 1.0)
    r = np.where(sat, 255.0, d) - model
    r[w == 0] = 0.0
    Jw = Jd * w[:, None]
    H = Jw.T @ Jw
    g = Jw.T @ r
    ws2 = (2.0 / par.sigma_sd_px) ** 2
    wr2 = (2.0 / par.rho_sd) ** 2
    H[3::NPAR, 3::NPAR] += np.diag(np.full(K, ws2))
    H[4::NPAR, 4::NPAR] += np.diag(np.full(K, wr2))
    g[3::NPAR] += ws2 * (par.sigma_px - comp[:, 3])
    g[4::NPAR] -= wr2 * comp[:, 4]
    _normal_equations(ws, par, nbi, nbj, np.arange(K), K)
    scale = np.abs(H).max()
    np.testing.assert_allclose(ws.H[:n, :n], H, rtol=1e-9, atol=1e-9 * scale)
    # at the fit's optimum g is a sum of terms that cancel: compare against the terms' size
    np.testing.assert_allclose(ws.g[:n], g, rtol=0, atol=1e-9 * (np.abs(Jw).T @ np.abs(r)).max())
    sse = np.sum(np.where(sat, np.maximum(255.0 - model, 0.0), d - model) ** 2)
    sse += np.sum((2.0 / par.sigma_sd_px * (comp[:, 3] - par.sigma_px)) ** 2 + (2.0 / par.rho_sd * comp[:, 4]) ** 2)
    assert _sse(ws.Dc, ws.M, nbi, nbj, ws.comp, K, par, ws.bsp) == pytest.approx(sse, rel=1e-9)
