"""How many shells: significant peaks of the radial profile about the image centre.

The profile bins the radii of the data points about the (start) centre (electrons, or pixel
centres weighted by their counts) in half-pixel bins on [0, 1.5], smoothed with a one-pixel
Gaussian as :func:`sevi_lib.fit.start.initial_geometry` does. Every local maximum of the smoothed
profile inside the screen is a candidate. Its test:

* window: the bins within one full width at half maximum (FWHM, of the smoothed peak, at least
  2 px) of the candidate; N = the (unsmoothed) counts there;
* side bands: the bins from one to three FWHM away on both sides; a straight line
  ``alpha + beta rho`` is fitted to them (weighted least squares, Poisson weights), so the baseline
  holds a uniform background (its counts per radial bin grow linearly in rho) and the smooth
  inner part of the projected outer shells;
* B = the line summed over the window; Z = the one-sided normal quantile of the Poisson tail
  P(X >= N | B) (exact at low counts, where a Gaussian Z would flag a handful of counts over a
  baseline of two), divided by sqrt(1 + Var B / B) for the line's own error.

Candidates are accepted in order of decreasing Z while Z >= :data:`Z_MIN` (and N - B >=
:data:`MIN_EXCESS`), skipping any within
1.5 FWHM of an accepted one (the noise bumps on the top of a big peak sit on its concave crown
and would pass). A pure noise bump has Z of order 1 (the local-maximum selection lifts it to
2-3 at most over a few hundred candidates), a shell of a few thousand electrons has Z in the tens.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import signal, special, stats

from sevi_lib.core.geometry import PIX_PER_UNIT

#: Significance a radial peak needs to count as a shell.
Z_MIN = 5.0

#: Fewest counts a peak must hold above its baseline (a shell of fewer cannot be fitted anyway).
MIN_EXCESS = 25.0

#: Bin width of the profile (half a pixel) and its range.
BIN = 1.0 / (2 * PIX_PER_UNIT)
RHO_MAX = 1.5

TEST = ("counts within one FWHM of each local maximum of the smoothed radial profile (half-pixel bins) "
        "against a straight line fitted to the side bands one to three FWHM away (uniform background "
        "grows linearly in rho); Z from the Poisson tail P(X >= N | B); accepted by decreasing Z while "
        "Z >= threshold, none within 1.5 FWHM of an accepted peak")


@dataclass
class ShellSearch:
    """What the shell search found.

    Attributes
    ----------
    threshold : float
        Z a peak needed.
    peaks : list of dict
        Accepted peaks, smallest radius first: ``R`` (start radius), ``sigma`` (start width),
        ``fwhm``, ``counts`` (N), ``baseline`` (B), ``z``.
    rejected : list of dict
        The most significant candidates that were not accepted (at most five), same keys.
    test : str
        The test, in words.
    centre : list of float
        The centre the radii were taken about.
    """

    threshold: float
    peaks: list
    rejected: list
    test: str = TEST
    centre: list = field(default_factory=lambda: [0.0, 0.0])

    @property
    def n_found(self):
        return len(self.peaks)

    def to_dict(self):
        out = asdict(self)
        out["n_found"] = self.n_found
        return out


def radial_histogram(rho, weights=None):
    """Counts per half-pixel radial bin on [0, 1.5] and the bin edges."""
    return np.histogram(rho, bins=np.arange(0.0, RHO_MAX + BIN, BIN), weights=weights)


def smooth_profile(hist):
    """The profile smoothed with a Gaussian of two bins (one pixel) sd."""
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    return np.convolve(hist, k / k.sum(), mode="same")


def _side_band_test(hist, centres, k, a):
    """(N, B, Z) of the window k +- a against the line through the side bands."""
    n = len(hist)
    lo, hi = max(k - a, 0), min(k + a, n - 1)
    win = np.arange(lo, hi + 1)
    side = np.r_[np.arange(max(k - 3 * a, 0), lo), np.arange(hi + 1, min(k + 3 * a, n - 1) + 1)]
    N = float(hist[win].sum())
    if len(side) < 4:
        return N, np.nan, -np.inf
    X = np.stack([np.ones(len(side)), centres[side]], axis=1)
    w = np.ones(len(side))
    for _ in range(2):  # unweighted, then weights from that line (Pearson: no low-count bias)
        A = X.T @ (X * w[:, None])
        try:
            cov = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            return N, np.nan, -np.inf
        coef = cov @ (X.T @ (w * hist[side]))
        w = 1.0 / np.maximum(X @ coef, 1.0)
    u = np.array([len(win), centres[win].sum()])
    B = float(u @ coef)
    var_B = float(u @ cov @ u)
    return N, B, significance(N, B, var_B)


def significance(N, B, var_B=0.0):
    """Z of N counts over an expected B (+- sqrt(var_B)): the Poisson tail P(X >= N | B) as a
    one-sided normal quantile, divided by sqrt(1 + var_B / B) for the baseline's own error."""
    B = max(B, 1.0)
    if N <= B:
        return float((N - B) / np.sqrt(B + var_B))
    p = special.gammainc(N, B)  # P(X >= N) for Poisson(B), continuous in N
    z = float(stats.norm.isf(p)) if p > 0 else float((N - B) / np.sqrt(B))
    return z / np.sqrt(1.0 + var_B / B)


def find_shells(rho, weights=None, threshold=Z_MIN, rho_limit=None, centre=(0.0, 0.0)):
    """Significant peaks of the radial profile (see the module docstring).

    Parameters
    ----------
    rho : ndarray
        Radii of the data points about the centre.
    weights : ndarray, optional
        Their weights (pixel counts; electron-equivalents of a frame sum).
    threshold : float
        Z a peak needs.
    rho_limit : float, optional
        Default ``1 - max(|x0|, |z0|)`` of `centre`. Distance from the centre to the nearest screen edge: a uniform background's profile
        peaks there (the edge cuts the rings), so candidates whose side bands reach it are
        skipped.
    centre : tuple of float
        Recorded in the result.

    Returns
    -------
    ShellSearch
    """
    if rho_limit is None:
        rho_limit = 1.0 - max(abs(centre[0]), abs(centre[1]))
    hist, edges = radial_histogram(rho, weights)
    hist = hist.astype(np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    smooth = smooth_profile(hist)
    cand, _ = signal.find_peaks(smooth)
    rows = []
    if len(cand):
        fwhm = signal.peak_widths(smooth, cand, rel_height=0.5)[0]
        for k, w in zip(cand, fwhm):
            a = int(np.clip(np.ceil(w), 4, 100))
            if centres[k] + 3 * a * BIN > rho_limit:
                continue  # the side bands would reach the ring where the screen's edge cuts in
            N, B, Z = _side_band_test(hist, centres, int(k), a)
            rows.append({"k": int(k), "a": a, "R": float(centres[k] + 0.5 * BIN),
                         "sigma": float(np.clip(w * BIN / 2.5, 2 * BIN, 0.05)), "fwhm": float(w * BIN),
                         "counts": N, "baseline": B, "z": Z})
    rows.sort(key=lambda r: -r["z"])
    accepted, rejected = [], []
    for r in rows:
        near = any(abs(r["k"] - q["k"]) < 1.5 * max(r["a"], q["a"]) for q in accepted)
        if r["z"] >= threshold and r["counts"] - r["baseline"] >= MIN_EXCESS and not near:
            accepted.append(r)
        elif len(rejected) < 5 and not near:
            rejected.append(r)

    def public(r):
        return {k: v for k, v in r.items() if k not in ("k", "a")}

    accepted.sort(key=lambda r: r["R"])
    return ShellSearch(float(threshold), [public(r) for r in accepted], [public(r) for r in rejected],
                       centre=[float(centre[0]), float(centre[1])])
