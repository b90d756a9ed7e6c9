"""The frame-sum fit: weighted least squares of the sum of raw camera frames.

The expected sum is the pixel expectation of the shell model convolved with the mean rendered
spot (:func:`mean_spot`, through :mod:`sevi_lib.simulate.render`); its compound-Poisson variance
uses the mean squared spot. The image is folded into one quadrant (:func:`sevi_lib.core.maps.fold`;
the model is even in x and z), and standard errors are sandwich estimates that account for each
spot covering many pixels.
"""

from dataclasses import dataclass

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT, pixel_centres
from sevi_lib.core.maps import fold, unfold
from sevi_lib.fit.binned import check_map
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.optimise import Objective, maximise
from sevi_lib.fit.points import PointSet
from sevi_lib.fit.result import make_result
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.fit.start import DEFAULT_SIGMA, initial_geometry, start_theta, table_step

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
    from sevi_lib.simulate.render import draw_spot_params, render_frame

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
        from scipy import fft

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
    """Expected folded frame sum, its variance and Jacobian on the kept quadrant pixels."""

    def __init__(self, pts, kernel, keep, n_shells):
        self.pts = pts
        self.conv = Convolver(kernel.mean)
        self.conv2 = Convolver(kernel.square)
        self.keep = keep
        self.S = n_shells
        self.half = N_PIX // 2
        self.zeros = np.zeros(pts.n_groups)

    def density(self, th):
        """Pixel expectations of the model on the whole screen (unfolded)."""
        mu = np.empty(self.pts.n_groups)
        self.pts.loglike(th, self.zeros, self.S, want=0, mu_out=mu)
        return unfold(mu.reshape(self.half, self.half))

    def expected(self, th, var=False):
        full = self.density(th)
        m = fold(self.conv(full))
        return (m, fold(self.conv2(full))) if var else m

    def jacobian(self, th):
        Jq = self.pts.jacobian(th, self.S)
        out = np.empty((self.keep.sum(), len(th)))
        for k in range(len(th)):
            out[:, k] = fold(self.conv(unfold(Jq[:, k].reshape(self.half, self.half))))[self.keep]
        return out


def fit_frame_sum(intensity_sum, kernel=None, n_beta=_D.n_beta, n_shells=_D.n_shells, R0=None, sigma0=None,
                  h=None, mask=None, max_iter=40, n_reweight=2, log=None, what="frame sum"):
    """Weighted least-squares fit of the sum of raw camera frames.

    The expected sum is ``sum_q area lambda(q) K(p - q)`` over pixel centres q (K the mean
    rendered spot, :func:`mean_spot`); its compound-Poisson variance uses the mean squared spot.
    The image is folded into one quadrant (the model is even in x and z). Weights are refreshed
    `n_reweight` times from the current fit. Standard errors are sandwich estimates that account
    for each spot covering many pixels.

    Parameters
    ----------
    intensity_sum : ndarray, shape (1024, 1024)
        Sum of frames, ``Image[ix, iz]``.
    kernel : SpotKernel, optional
        Default: ``mean_spot()``.
    n_beta, n_shells, R0, sigma0, h, max_iter, log
        As in :func:`sevi_lib.fit.unbinned.fit_electrons` (``sevi fit`` passes its ``max_iter``).
    mask : ndarray of bool, shape (1024, 1024), optional
        Pixels to leave out (e.g. pixels that saturated in some frame); the mask is folded
        (a folded pixel is dropped if any of its four mirror pixels is masked).
    n_reweight : int
    what : str

    Returns
    -------
    sevi_lib.fit.result.FitResult
    """
    img = check_map(intensity_sum, what)
    if kernel is None:
        kernel = mean_spot()
    data = fold(img)
    keep = np.ones_like(data, dtype=bool) if mask is None else ~(fold(np.asarray(mask, dtype=np.float64)) > 0)
    hp = 1.0 / PIX_PER_UNIT
    half = N_PIX // 2
    iq, jq = np.meshgrid(np.arange(half, N_PIX), np.arange(half, N_PIX), indexing="ij")
    centres = pixel_centres()
    xq = centres[iq.ravel()]
    zq = centres[jq.ravel()]
    total = img.sum() / kernel.total
    need = min_electrons(n_beta, n_shells)
    if total < need:
        raise InputError(f"{what}: too little intensity to fit ({img.sum():g}, {total:.0f} spots; at least "
                         f"{need} needed for {n_shells} shells with {n_beta} beta's)")
    rho_q = np.hypot(xq, zq)
    if R0 is None:
        R0, _ = initial_geometry(rho_q, data.ravel(), n_shells)
        sigma0 = np.full(n_shells, DEFAULT_SIGMA) if sigma0 is None else sigma0
    theta, R0, s0 = start_theta(rho_q, data.ravel(), n_shells, n_beta, total, R0, sigma0)
    theta[-1] = 0.0
    pts = PointSet(xq, zq, 1, np.full(len(xq), hp * hp), n_beta, table_step(s0, h))
    model = _SumModel(pts, kernel, keep, n_shells)
    layout = ParamLayout(n_shells, n_beta)
    d = data[keep]
    weight = None

    def value(th):
        _, R, s = layout.unpack(th)
        if np.any(s <= 0) or np.any(R <= 0):
            return -np.inf
        r = d - model.expected(th)[keep]
        return -0.5 * float(np.sum(weight * r * r))

    def derivs(th):
        J = model.jacobian(th)
        r = d - model.expected(th)[keep]
        Jw = J * weight[:, None]
        return -0.5 * float(np.sum(weight * r * r)), Jw.T @ r, J.T @ Jw

    n_iter_total = 0
    for _ in range(n_reweight + 1):
        _, v = model.expected(theta, var=True)
        v0 = 1e-3 * kernel.square.max()
        weight = 1.0 / (np.maximum(v[keep], 0.0) + v0)
        theta, f, _, H, n_iter, conv_ok, active = maximise(Objective(value, derivs), theta, n_shells,
                                                           max_iter, log=log)
        n_iter_total += n_iter
    cov = _sandwich(model, theta, weight, H, kernel.total_ratio)
    return make_result("sum", theta, f, H, n_shells, n_iter_total, conv_ok, active, total, cov=cov,
                       diagnostics={"R_start": np.asarray(R0).tolist(), "sigma_start": np.asarray(s0).tolist(),
                                    "table_step": pts.h, "spot_total": kernel.total,
                                    "spots_in_kernel": kernel.n_spots, "pixels_masked": int((~keep).sum())})


def _sandwich(model, theta, weight, bread, total_ratio):
    """Sandwich covariance: Var(J^T W r) = sum over electrons of u u^T, u = adjoint-convolved W J."""
    J = model.jacobian(theta)
    keep = model.keep
    mu_full = model.density(theta)
    U = np.empty((N_PIX * N_PIX, len(theta)))
    for k in range(len(theta)):
        wj = np.zeros(keep.shape)
        wj[keep] = weight * J[:, k]
        U[:, k] = model.conv(unfold(wj), adjoint=True).ravel()
    meat = total_ratio * (U * mu_full.ravel()[:, None]).T @ U
    bi = np.linalg.pinv(bread)
    return bi @ meat @ bi
