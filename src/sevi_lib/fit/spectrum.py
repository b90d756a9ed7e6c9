"""The photoelectron spectrum beside the fitted shells: I(R), beta_2(R), beta_4(R) with error bands.

What a SEVI paper shows first. The data (electron positions, or the pixel centres of a count map
weighted by their counts) are histogrammed about the fitted image centre on an odd grid of the
screen's pixel size (1/512), so that the centre sits on a pixel centre, as PyAbel's rBasex wants
(:func:`centred_map`); rBasex (``abel.rbasex.rbasex_transform``, even orders up to `order`)
inverts the projection and gives the radial distribution and the anisotropy parameters per
one-pixel radius bin. A count map's counts move to the new grid with their pixel centres (at
most half a pixel: a blur of 0.4 px rms beside sigma_R of 3-5 px).

Conventions of :class:`Spectrum`:

* ``I`` is electrons per unit radius in screen units (rBasex's ``4 pi r^2 P_0(r)`` per pixel
  times 512), so its integral over R counts the electrons;
* ``beta`` are in this project's normalisation ``I(c) = 1/2 + sum beta_2i P_2i(c)``: rBasex's
  ``1 + b_2 P_2 + ...`` halved (the usual beta_2 is twice ``beta[0]``);
* errors are Poisson: rBasex is linear in the image, and ``n_boot`` maps resampled from the
  centred count map (each count Poisson-distributed about the observed one: a parametric
  bootstrap) go through the same transform; the standard errors are the replicates' standard
  deviations (relative precision about ``1 / sqrt(2 n_boot)``: 11 % at 40).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from sevi_lib.core.geometry import PIX_PER_UNIT

#: Columns of the spectrum table (beta's in this project's normalisation).
COLUMNS = ("R", "I", "I_se", "beta2", "beta2_se", "beta4", "beta4_se")


@dataclass
class Spectrum:
    """Radial distribution and anisotropy of the inverted image, per one-pixel radius bin.

    Attributes
    ----------
    R : ndarray, shape (n_r,)
        Radii (screen units) of the bins' centres.
    I, I_se : ndarray, shape (n_r,)
        Electrons per unit radius (screen units) and its standard error.
    beta, beta_se : ndarray, shape (order / 2, n_r)
        beta_2, beta_4, ... (``1/2 + sum beta P`` normalisation) and their standard errors.
    replicates : ndarray, shape (n_boot, 1 + order / 2, n_r)
        The bootstrap replicates of (I, beta_2, beta_4, ...).
    centre : tuple of float
        The centre of the inversion (screen units).
    n_boot : int
    """

    R: np.ndarray
    I: np.ndarray
    I_se: np.ndarray
    beta: np.ndarray
    beta_se: np.ndarray
    replicates: np.ndarray = field(repr=False)
    centre: tuple = (0.0, 0.0)
    n_boot: int = 0

    def table(self):
        """Rows (R, I, I_se, beta2, beta2_se, beta4, beta4_se, ...), shape (n_r, 3 + 2 order/2)."""
        cols = [self.R, self.I, self.I_se]
        for b, s in zip(self.beta, self.beta_se):
            cols += [b, s]
        return np.stack(cols, axis=1)

    def columns(self):
        """Column names of :meth:`table`."""
        names = ["R", "I", "I_se"]
        for i in range(len(self.beta)):
            names += [f"beta{2 * i + 2}", f"beta{2 * i + 2}_se"]
        return names


def centred_map(x, z, centre, weights=None, half=512):
    """Odd histogram of points about `centre`, rows z and columns x (PyAbel's orientation).

    Parameters
    ----------
    x, z : ndarray
        Screen positions.
    centre : (float, float)
        The image centre; it becomes the centre of pixel (half, half).
    weights : ndarray, optional
        Counts per point (a count map's pixels).
    half : int
        Pixels on each side of the centre pixel (the map is ``2 half + 1`` square).

    Returns
    -------
    ndarray, shape (2 half + 1, 2 half + 1)
        ``image[iz, ix]``.
    """
    h = 1.0 / PIX_PER_UNIT
    edges = (np.arange(2 * half + 2) - half - 0.5) * h
    img, _, _ = np.histogram2d(np.asarray(z) - centre[1], np.asarray(x) - centre[0], bins=[edges, edges],
                               weights=weights)
    return img


def _rbasex(img, order, rmax):
    """(r in pixels, I per pixel, b_2, b_4, ...) of rBasex, the usual normalisation."""
    # local: PyAbel is slow to import and only the spectrum uses it
    import abel

    c = img.shape[0] // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, distr = abel.rbasex.rbasex_transform(img, origin=(c, c), order=order, rmax=rmax, out=None)
    rib = distr.rIbeta()
    return rib[0], rib[1], rib[2:]


def spectrum(x, z, *, centre=(0.0, 0.0), weights=None, order=4, n_boot=40, seed=0, rmax=None):
    """Photoelectron spectrum I(R) and beta_2l(R) of points about `centre`, by rBasex.

    Parameters
    ----------
    x, z : ndarray
        Electron positions, or pixel centres with `weights` (counts).
    centre : (float, float)
        Image centre (the fit's), screen units.
    weights : ndarray, optional
        Counts per point.
    order : int
        Highest (even) Legendre order of the inversion (4: beta_2 and beta_4).
    n_boot : int
        Poisson-resampled maps for the standard errors (0: none, errors NaN).
    seed : int
    rmax : float, optional
        Largest radius (screen units); default: the distance from the centre to the nearest
        screen edge (beyond it rings are cut).

    Returns
    -------
    Spectrum
    """
    if order < 2 or order % 2:
        raise ValueError(f"order must be even and >= 2, got {order}")
    c = (float(centre[0]), float(centre[1]))
    img = centred_map(x, z, c, weights)
    if rmax is None:
        rmax = 1.0 - max(abs(c[0]), abs(c[1]))
    rpix = int(np.clip(np.floor(rmax * PIX_PER_UNIT) - 1, 8, img.shape[0] // 2))
    r, I, b = _rbasex(img, order, rpix)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        _, Ib, bb = _rbasex(rng.poisson(img).astype(np.float64), order, rpix)
        reps.append(np.concatenate([Ib[None] * PIX_PER_UNIT, 0.5 * bb]))
    reps = np.array(reps) if reps else np.full((0, 1 + order // 2, len(r)), np.nan)
    se = reps.std(axis=0, ddof=1) if n_boot > 1 else np.full(reps.shape[1:], np.nan)
    return Spectrum(R=r / PIX_PER_UNIT, I=I * PIX_PER_UNIT, I_se=se[0], beta=0.5 * np.asarray(b), beta_se=se[1:],
                    replicates=reps, centre=c, n_boot=int(n_boot))


def shell_average(spec, R, sigma_R, width=2.0):
    """Intensity-weighted beta's of the spectrum over one shell's peak, with standard errors.

    Parameters
    ----------
    spec : Spectrum
    R, sigma_R : float
        The shell's radius and width (screen units).
    width : float
        Bins within ``width * sigma_R`` of R count (weights max(I, 0)).

    Returns
    -------
    beta, beta_se : ndarray, shape (order / 2,)
        The weighted means of the spectrum and of every bootstrap replicate; the SE is the
        replicates' standard deviation.
    """
    sel = np.abs(spec.R - R) <= width * sigma_R
    if not np.any(sel):
        sel = np.abs(spec.R - R) == np.min(np.abs(spec.R - R))

    def mean(I, b):
        w = np.maximum(I[sel], 0.0)
        return (b[:, sel] @ w) / max(w.sum(), 1e-300)

    value = mean(spec.I, spec.beta)
    if len(spec.replicates) < 2:
        return value, np.full_like(value, np.nan)
    reps = np.array([mean(rep[0], rep[1:]) for rep in spec.replicates])
    return value, reps.std(axis=0, ddof=1)


def peak_radius(spec, R, window):
    """Radius of the largest I within `window` of R (the spectrum's peak near a fitted shell)."""
    sel = np.flatnonzero(np.abs(spec.R - R) <= window)
    return float(spec.R[sel[np.argmax(spec.I[sel])]]) if len(sel) else float("nan")
