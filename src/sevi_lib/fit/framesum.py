"""The frame-sum fit: weighted least squares of the sum of raw camera frames.

The expected sum is the pixel expectation of the shell model convolved with the mean rendered
spot (:func:`mean_spot`, through :mod:`sevi_lib.simulate.render`), optionally plus a flat pedestal
(the camera's offset summed over the frames); its compound-Poisson variance uses the mean squared
spot. With the centre fixed at the screen centre (and no pedestal) the image is folded into one
quadrant (:func:`sevi_lib.core.maps.fold`; the model is even in x and z); with a free (or another
fixed) centre the whole image is fitted (a fold about the screen centre would cancel a shift to
first order). Standard errors are sandwich estimates that account for each spot covering many
pixels.
"""

from dataclasses import dataclass

import numpy as np
from scipy import fft

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres
from sevi_lib.core.maps import fold, unfold
from sevi_lib.fit.binned import check_map
from sevi_lib.fit.centre import alternate, parse_centre, start_centre, tolerance
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.optimise import Objective, maximise
from sevi_lib.fit.points import PointSet
from sevi_lib.fit.result import make_result
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.fit.start import (
    DEFAULT_SIGMA,
    initial_geometry,
    shell_geometry,
    start_theta,
    table_step,
)
from sevi_lib.simulate.render import draw_spot_params, render_frame

_D = FitSettings()


@dataclass(frozen=True)
class SpotKernel:
    """Mean rendered spot of one electron at a pixel centre (Monte Carlo over A, sigma, rho).

    Attributes
    ----------
    mean : ndarray, shape (2w + 1, 2w + 1)
        ``mean[w + dx, w + dz]``: expected value (after rounding) of pixel (i + dx, j + dz) for an
        electron at the centre of pixel (i, j).
    square : ndarray, shape (2w + 1, 2w + 1)
        Expected squared value (the compound-Poisson variance per electron).
    total_ratio : float
        E[T^2] / E[T]^2 of a spot's total T (amplitude spread; enters the sandwich SEs).
    total : float
        Mean total of one spot (pixel-value units).
    n_spots : int
    """

    mean: np.ndarray
    square: np.ndarray
    total_ratio: float
    total: float
    n_spots: int


def mean_spot(n_spots=_D.kernel_spots, seed=12345, half_width=32):
    """Mean rendered spot of the published model, through :mod:`sevi_lib.simulate.render`.

    Spots are rendered on a sparse lattice of pixel centres (70 px apart, so none overlap), each
    frame quantised like a camera frame (``render.render_frame``: round, clip, uint8), so the
    support square, the 5 x 5 sub-grid and the rounding are those of the renderer. Electrons sit
    exactly at pixel centres: the sum model samples the electron density there (midpoint rule,
    spectrally accurate for densities smooth on the pixel scale).

    Parameters
    ----------
    n_spots : int
    seed : int
    half_width : int
        Kernel half-width w in pixels (the support half-width is about 24 px).

    Returns
    -------
    SpotKernel
    """
    rng = np.random.default_rng(seed)
    w = int(half_width)
    step = 2 * w + 6
    lattice = np.arange(w + 2, N_PIX - w - 2, step)
    gi, gj = [a.ravel() for a in np.meshgrid(lattice, lattice, indexing="ij")]
    per_frame = len(gi)
    acc = np.zeros((2 * w + 1, 2 * w + 1))
    acc2 = np.zeros_like(acc)
    tot = []
    done = 0
    centres = pixel_centres()
    while done < n_spots:
        k = min(per_frame, n_spots - done)
        A, sig, rho = draw_spot_params(k, rng)
        frame = render_frame(centres[gi[:k]], centres[gj[:k]], A, sig, rho)
        ii = gi[:k, None, None] + np.arange(-w, w + 1)[None, :, None]
        jj = gj[:k, None, None] + np.arange(-w, w + 1)[None, None, :]
        cut = frame[ii, jj].astype(np.float64)
        acc += cut.sum(axis=0)
        acc2 += (cut ** 2).sum(axis=0)
        tot.append(cut.sum(axis=(1, 2)))
        done += k
    tot = np.concatenate(tot)
    mean = acc / done
    square = acc2 / done
    # x <-> z symmetry of the spot model (rho symmetric): halve the Monte Carlo noise
    mean = 0.5 * (mean + mean.T)
    square = 0.5 * (square + square.T)
    return SpotKernel(mean, square, float(np.mean(tot ** 2) / np.mean(tot) ** 2), float(np.mean(tot)), done)


class Convolver:
    """Convolution of full frames with a fixed centred kernel via real FFTs (zero padding)."""

    def __init__(self, kernel):
        self.fft = fft
        w = kernel.shape[0] // 2
        self.w = w
        self.shape = (fft.next_fast_len(N_PIX + 2 * w, real=True),) * 2
        self.kf = fft.rfft2(kernel, self.shape)
        self.kf_adj = fft.rfft2(kernel[::-1, ::-1], self.shape)

    def __call__(self, img, adjoint=False):
        f = self.fft.rfft2(img, self.shape)
        out = self.fft.irfft2(f * (self.kf_adj if adjoint else self.kf), self.shape)
        w = self.w
        return out[w:w + N_PIX, w:w + N_PIX]


class _SumModel:
    """Expected frame sum, its variance and Jacobian on the kept pixels.

    Folded (one quadrant, the published geometry: centre (0, 0)) or the whole image about a
    centre (``folded=False``; the point set is then the whole screen's pixel centres about it).
    """

    def __init__(self, pts, kernel, keep, n_shells, folded=True):
        self.pts = pts
        self.conv = Convolver(kernel.mean)
        self.conv2 = Convolver(kernel.square)
        self.keep = keep
        self.S = n_shells
        self.folded = folded
        self.half = N_PIX // 2
        self.zeros = np.zeros(pts.n_groups)

    def to_full(self, q):
        """A per-point vector as a full 1024 x 1024 image."""
        return unfold(q.reshape(self.half, self.half)) if self.folded else q.reshape(N_PIX, N_PIX)

    def to_data(self, img):
        """A full image in the data's layout (folded quadrant or the image itself)."""
        return fold(img) if self.folded else img

    def density(self, th):
        """Pixel expectations of the model on the whole screen."""
        mu = np.empty(self.pts.n_groups)
        self.pts.loglike(th, self.zeros, self.S, want=0, mu_out=mu)
        return self.to_full(mu)

    def expected(self, th, var=False):
        full = self.density(th)
        m = self.to_data(self.conv(full))
        return (m, self.to_data(self.conv2(full))) if var else m

    def _convolved_columns(self, cols):
        out = np.empty((self.keep.sum(), cols.shape[1]))
        for k in range(cols.shape[1]):
            out[:, k] = self.to_data(self.conv(self.to_full(np.ascontiguousarray(cols[:, k]))))[self.keep]
        return out

    def jacobian(self, th):
        return self._convolved_columns(self.pts.jacobian(th, self.S))

    def centre_jacobian(self, th):
        """d expected / d(x0, z0) on the kept pixels, shape (n_kept, 2) (whole-image model only)."""
        return self._convolved_columns(self.pts.shift_gradient(th, self.S))


def _profile(J, weight):
    """J with its weighted mean removed (the pedestal profiled out), or J itself when there is none."""
    if J is None or weight is None:
        return J
    return J - (weight @ J)[None, :] / weight.sum()


def fit_frame_sum(intensity_sum, kernel=None, *, n_beta=_D.n_beta, n_shells=_D.shells, R0=None, sigma0=None,
                  h=None, mask=None, max_iter=40, n_reweight=2, log=None, what="frame sum", centre=_D.centre,
                  pedestal=False):
    """Weighted least-squares fit of the sum of raw camera frames.

    The expected sum is ``sum_q area lambda(q - c) K(p - q)`` over pixel centres q (K the mean
    rendered spot, :func:`mean_spot`; c the image centre), plus a flat pedestal when asked; its
    compound-Poisson variance uses the mean squared spot (plus a flat variance estimated from the
    residuals when there is a pedestal: read noise). Weights are refreshed `n_reweight` times
    from the current fit. The pedestal is profiled out (for fixed shells its best value is the
    weighted mean residual). A free centre alternates the fit of the shells with Gauss-Newton
    steps of the centre (d expected / d centre from
    :meth:`sevi_lib.fit.points.PointSet.shift_gradient`, convolved), after each reweighting, in
    the alternation of every fit (:func:`sevi_lib.fit.centre.alternate`). Standard errors are
    sandwich estimates that account for each spot covering many pixels (the centre's from the
    same sandwich).

    Parameters
    ----------
    intensity_sum : ndarray, shape (1024, 1024)
        Sum of frames, ``Image[ix, iz]``.
    kernel : SpotKernel, optional
        Default: ``mean_spot()``.
    n_beta, n_shells, R0, sigma0, h, max_iter, log, centre
        As in :func:`sevi_lib.fit.unbinned.fit_electrons` (``sevi fit`` passes its ``max_iter``;
        the shell search weighs pixels by intensity over the mean spot total, above the median
        pixel when there is a pedestal).
    mask : ndarray of bool, shape (1024, 1024), optional
        Pixels to leave out (hot pixels, pixels that saturated in some frame); in the folded fit a
        folded pixel is dropped if any of its four mirror pixels is masked.
    n_reweight : int
    what : str
    pedestal : bool
        Fit a flat pedestal (reported in ``diagnostics["pedestal"]`` with its standard error, in
        the sum's pixel units).

    Returns
    -------
    sevi_lib.fit.result.FitResult
    """
    img = check_map(intensity_sum, what)
    if kernel is None:
        kernel = mean_spot()
    c0, free = parse_centre(centre)
    folded = not free and not pedestal and not np.any(c0)
    hp = 1.0 / PIX_PER_UNIT
    centres = pixel_centres()
    total = img.sum() / kernel.total
    need = min_electrons(n_beta, n_shells)
    if total < need:
        raise InputError(f"{what}: too little intensity to fit ({img.sum():g}, {total:.0f} spots; at least "
                         f"{need} needed for {n_shells or 1} shell(s) with {n_beta} beta's)")
    if folded:
        data = fold(img)
        keep = np.ones_like(data, dtype=bool) if mask is None else ~(fold(np.asarray(mask, dtype=np.float64)) > 0)
        half = N_PIX // 2
        iq, jq = np.meshgrid(np.arange(half, N_PIX), np.arange(half, N_PIX), indexing="ij")
        xq, zq = centres[iq.ravel()], centres[jq.ravel()]
        search_w = data.ravel() / kernel.total
    else:
        data = img
        keep = np.ones_like(data, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
        iq, jq = np.meshgrid(np.arange(N_PIX), np.arange(N_PIX), indexing="ij")
        xq, zq = centres[iq.ravel()], centres[jq.ravel()]
        level = float(np.median(data[keep])) if pedestal else 0.0
        search_w = np.where(keep, np.maximum(data - level, 0.0), 0.0).ravel() / kernel.total
        if free:
            c0 = start_centre(xq, zq, search_w)
    rho_q = np.hypot(xq - c0[0], zq - c0[1])
    if R0 is None and n_shells:
        R0, _ = initial_geometry(rho_q, data.ravel() if folded else search_w, n_shells)
        sigma0 = np.full(n_shells, DEFAULT_SIGMA) if sigma0 is None else sigma0
    S, R0, sigma0, search = shell_geometry(rho_q, search_w, n_shells, R0=R0, sigma0=sigma0, centre=c0, what=what)
    if R0 is not None and sigma0 is None:
        sigma0 = np.full(S, DEFAULT_SIGMA)
    theta, R0, s0 = start_theta(rho_q, data.ravel(), S, n_beta, total, R0=R0, sigma0=sigma0)
    theta[-1] = 0.0
    step = table_step(s0, h)
    rho_max = float(rho_q.max()) + 0.05 if free else None

    def make_points(c):
        return PointSet(xq - c[0], zq - c[1], 1, np.full(len(xq), hp * hp), n_beta, step, rho_max)

    layout = ParamLayout(S, n_beta)
    d = data[keep]
    c = c0.copy()
    model = _SumModel(make_points(c), kernel, keep, S, folded)
    state = {"weight": None}

    def residual(th):
        r = d - model.expected(th)[keep]
        if pedestal:
            w = state["weight"]
            r = r - (w @ r) / w.sum()
        return r

    def value(th):
        _, R, s = layout.unpack(th)
        if np.any(s <= 0) or np.any(R <= 0):
            return -np.inf
        r = residual(th)
        return -0.5 * float(np.sum(state["weight"] * r * r))

    def derivs(th):
        w = state["weight"]
        J = model.jacobian(th)
        if pedestal:
            J = _profile(J, w)
        r = residual(th)
        Jw = J * w[:, None]
        return -0.5 * float(np.sum(w * r * r)), Jw.T @ r, J.T @ Jw

    obj = Objective(value, derivs)
    v0 = 1e-3 * kernel.square.max()
    flat_var = 0.0
    n_iter_total = 0
    rounds = 0
    conv_c = True

    def update(c):
        dc, info, ok = _centre_step(model, theta, residual, state["weight"], pedestal,
                                    0.5 * layout.unpack(theta)[2].min())
        return (c if np.hypot(*dc) < tolerance(info) else c + dc), info, ok

    def refit(c):
        nonlocal theta, f, H, n_iter_total, conv_ok, active
        model.pts = make_points(c)
        theta, f, _, H, n_iter, conv_ok, active = maximise(obj, theta, S, max_iter, log=log)
        n_iter_total += n_iter

    for _ in range(n_reweight + 1):
        _, v = model.expected(theta, var=True)
        state["weight"] = 1.0 / (np.maximum(v[keep], 0.0) + v0 + flat_var)
        theta, f, _, H, n_iter, conv_ok, active = maximise(obj, theta, S, max_iter, log=log)
        n_iter_total += n_iter
        if free:
            c, _, rounds, conv_c = alternate(c, update, refit, log=log)
        if pedestal:
            r = residual(theta)
            flat_var = max(float(np.mean(r * r - np.maximum(v[keep], 0.0))), 0.0)
    cov, centre_cov, ped = _sandwich(model, theta, state["weight"], H, kernel.total_ratio, free, pedestal,
                                     flat_var, d)
    diagnostics = {"R_start": np.asarray(R0).tolist(), "sigma_start": np.asarray(s0).tolist(),
                   "table_step": step, "spot_total": kernel.total, "spots_in_kernel": kernel.n_spots,
                   "pixels_masked": int((~keep).sum()), "folded": bool(folded), "centre_rounds": rounds,
                   "centre_start": np.asarray(c0).tolist()}
    if pedestal:
        diagnostics.update(pedestal=ped[0], pedestal_se=ped[1], flat_variance=flat_var)
    return make_result("sum", theta, f, H, S, n_iter=n_iter_total, converged=conv_ok and conv_c, active=active,
                       n_data=total, cov=cov,
                       diagnostics=diagnostics, centre=c, centre_cov=centre_cov, shell_search=search)


def _centre_step(model, theta, residual, weight, pedestal, max_step):
    """Gauss-Newton step of the centre at fixed shells (weighted least squares), at most `max_step` long.

    Returns the step, the centre's information under the weights (``J^T W J``, for the tolerance)
    and whether it could be solved (a zero step otherwise).
    """
    Jc = _profile(model.centre_jacobian(theta), weight if pedestal else None)
    r = residual(theta)
    A = Jc.T @ (Jc * weight[:, None])
    try:
        dc = np.linalg.solve(A, Jc.T @ (weight * r))
    except np.linalg.LinAlgError:
        return np.zeros(2), A, False
    n = np.hypot(*dc)
    return (dc * (max_step / n) if n > max_step else dc), A, True


def _sandwich(model, theta, weight, bread, total_ratio, free=False, pedestal=False, flat_var=0.0, d=None):
    """Sandwich covariance: Var(J^T W r) = sum over electrons of u u^T, u = adjoint-convolved W J.

    With a free centre its two columns join J (the bread then holds them too; the cross terms
    with the shells vanish by symmetry and are kept as computed); with a pedestal J is profiled
    (:func:`_profile`) and the flat variance enters the meat. Returns (cov of theta, cov of the
    centre or None, (pedestal, its SE) or None).
    """
    J = model.jacobian(theta)
    P = J.shape[1]
    if free:
        J = np.concatenate([J, model.centre_jacobian(theta)], axis=1)
    if pedestal:
        J = _profile(J, weight)
    keep = model.keep
    mu_full = model.density(theta)
    U = np.empty((N_PIX * N_PIX if model.folded else keep.size, J.shape[1]))
    for k in range(J.shape[1]):
        wj = np.zeros(keep.shape)
        wj[keep] = weight * J[:, k]
        U[:, k] = model.conv(unfold(wj) if model.folded else wj, adjoint=True).ravel()
    meat = total_ratio * (U * mu_full.ravel()[:, None]).T @ U
    if flat_var > 0:
        Jw = J * weight[:, None]
        meat += flat_var * Jw.T @ Jw
    full_bread = J.T @ (J * weight[:, None]) if free else bread
    bi = np.linalg.pinv(full_bread)
    cov = bi @ meat @ bi
    centre_cov = cov[P:, P:] if free else None
    ped = None
    if pedestal:
        m = model.expected(theta)[keep]
        ped_value = float(weight @ (d - m) / weight.sum())
        ped_se = float(np.sqrt(total_ratio * np.sum(
            (model.conv(_full(keep, weight), adjoint=True).ravel()) ** 2 * mu_full.ravel())
            + flat_var * np.sum(weight ** 2)) / weight.sum())
        ped = (ped_value, ped_se)
    return cov[:P, :P], centre_cov, ped


def _full(keep, values):
    out = np.zeros(keep.shape)
    out[keep] = values
    return out
