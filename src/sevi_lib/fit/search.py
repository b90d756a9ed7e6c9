"""How many shells: significant peaks of the radial profile about the image centre.

The profile bins the radii of the data points about the (start) centre (electrons, or pixel
centres weighted by their counts) in half-pixel bins on [0, 1.5]. The search has three stages.

**Side-band pass.** The profile is smoothed with a one-pixel Gaussian as
:func:`sevi_lib.fit.start.initial_geometry` does. Every local maximum of the smoothed profile
inside the screen is a candidate. Its test:

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
:data:`MIN_EXCESS`), skipping any within 1.5 FWHM of an accepted one (the noise bumps on the top
of a big peak sit on its concave crown and would pass). A pure noise bump has Z of order 1 (the
local-maximum selection lifts it to 2-3 at most over a few hundred candidates), a shell of a few
thousand electrons has Z in the tens.

**Close-pair step.** The side-band pass misses the weaker member of a close pair (a few sigma_R
apart): its side bands hold the strong neighbour's edge, and the exclusion suppresses it. A
projected shell's radial profile is no Gaussian either: its inner tail (density ~ rho / sqrt(R^2 -
rho^2) smeared by sigma_R, shaped by beta) puts a slowly rising slope under an inner neighbour.
So, around every accepted shell (the largest excess first), the unsmoothed profile (one-pixel
bins; weighted profiles as they are, as counts) in a window of :data:`PAIR_REACH` + 4 widths
either side (widened to take in whole neighbouring shells; ending at `rho_limit`) is fitted by
Poisson maximum likelihood (:func:`_fit_window`) with

* a straight line, given by its values (>= 0) at the window's ends: uniform background and the
  smooth tails of the shells beyond;
* every accepted shell inside the window as an exact projected-shell profile
  (:func:`shell_templates`: the bin integrals of the isotropic, beta_2 and beta_4 parts of a shell
  of speed ~ Normal(R, sigma_R^2)), with its counts N >= 0, (beta_2, beta_4) in the box
  :data:`BETA_BOX` (a physical profile: unbounded amplitudes let a strong shell's tail cancel
  into the line and swallow a weak neighbour), and R, sigma_R within bounds about the side-band
  peak (the peak's FWHM over :data:`FWHM_PER_SHELL_SIGMA` gives sigma_R);
* every accepted shell beyond the window as its isotropic tail (geometry fixed, N free).

A score scan (the isotropic profile's score statistic on this null fit's residuals, every third
of a width) picks the most promising position up to PAIR_REACH widths from the shell and at
least :data:`PAIR_SCAN_SEP` (null-fit) widths from every shell in the window (a merged pair's null
fit is one wide shell between its members); a maximum at the scan's outer ends is an excess that goes on beyond the reach (a tail misfit, no
rim) and ends the search there. The fit is repeated with a shell added at the maximum (N, beta's,
R within 2 widths, sigma_R within a factor of two of the neighbour's). The deviance drop D,
divided by the dispersion phi = max(1, deviance per degree of freedom of that fit) (so that
over-dispersed weights, or a profile the templates do not follow, such as an off-centre ring or
an anisotropy of high order, are not read as a shell), is chi^2 with :data:`PAIR_DOF` degrees of
freedom under "no shell there" (R and sigma_R, unidentified then, are counted as degrees of
freedom: conservative); its tail probability times a Bonferroni factor (windows x positions
tried, one per sigma_R) gives Z. The shell is added when Z >= `threshold`, it holds at least
:data:`MIN_EXCESS` counts within one FWHM of its R and :data:`PAIR_MIN_FRACTION` of its nearest
neighbour's (a floor against the template's small, count-proportional misfit of a real shell),
it lies within the reach, and it is resolved after the fit: at least :data:`PAIR_MIN_SEP` FWHM
(of the two shells' mean fitted sigma_R) from every shell; then the window is searched
once more (two added shells at most). Its row reports the fitted R and sigma_R, FWHM = 2.355
sigma_R, the counts N within one FWHM of R, baseline = N minus the added shell's fitted counts
there, and Z. Shells closer than PAIR_MIN_SEP FWHM (about 3.5 sigma_R) are one shell to the
search.

The side-band candidates that failed with Z >= :data:`PAIR_SEED_Z` (the :data:`PAIR_SEEDS` most
significant, resolved from every shell) get the same test in a window of their own, the scan
kept within :data:`PAIR_SEED_REACH` widths (the accepted shells' median sigma_R) of where they
peaked: a weak isolated shell whose smoothed peak came out wide (its side bands then reach into
its neighbours) is found there. They count in the Bonferroni factor's windows.

**Whole-profile pass.** A window holds one accepted shell and what lies within its reach, but a
spectrum of many shells 5-8 sigma_R apart defeats both steps: every shell sits in its
neighbours' side bands, a weakly rimmed shell (beta_2 < 0) between two strong ones is a shoulder
of the profile, no local maximum, and a neighbour 7.7 widths away lies at the end of a window's
scan (read as a trend). So, last, the whole profile from the centre to `rho_limit` is fitted at
once (every shell free, a line; shells beyond `rho_limit` as isotropic tails), and a shell is
added where the residual score peaks, with the test of the windows (one more window in the
Bonferroni factor, positions over the whole profile), until none passes
(:data:`GLOBAL_MAX_ADD` at most). Three guards keep a template misfit of a strong shell (its
inner tail when its anisotropy has orders above 4) out: the scan keeps within the side bands of
a shell (their outer end, 3 side-band windows, plus a width: a shell farther from every other one
had clean side bands, and failed there); the dispersion phi is taken over the bins within
PAIR_REACH + 4 widths of the added shell (a misfit elsewhere is no reason to doubt it); and an
added shell whose fitted width ends at a bound of its box (0.4 or 2 widths) is refused (a patch
on a neighbour's edge, or a smooth bump). A significant candidate refused on these grounds (or
for a neighbour too close) is set aside and the next score maximum tried (:data:`GLOBAL_RETRIES`
times); the pass ends at the first candidate below the threshold.

Measured (eight-shell progression, pairs five sigma_R apart, weak member up to five times
weaker): all eight found on seeds 1-20, radii within 1.6 sigma_R (the side-band peaks lie up to
about one width inside R). A 2:1 pair (one wide side-band peak) is split on 5 seeds of 5 five
widths apart, on 3 of 5 four widths apart, never at 3.5 widths or closer. No added shell on a
uniform background, on single shells (5000 to 10^6 electrons, with or without background,
off-centre by up to 8 px) or on peaked high-order shells of 200000 electrons (16 seeds). With
the whole-profile pass (2026-12-07): the fourteen-shell spectrum of ``tests/fit/test_search.py``
(five close pairs five sigma_R apart, 5000 to 20000 electrons a shell) exactly on 20 of 20 seeds,
radii within 1.1 sigma_R (on a uniform background of 100000 electrons: 9 of 10, the miss a
5000-electron member beside a 20000-electron shell of beta_2 = 1 at Z 4.7); the fourteen shells
7.7 sigma_R apart of ``bench_many_shells.py`` at 300000 electrons on 3 of 3 seeds (8 or 9
before); the progression's eight still on 20 of 20. Cost: one histogram pass over the points,
then fits of a few hundred bins: about 50 ms of CPU for 10^6 points and eight shells by the
first two steps; the whole-profile pass adds about 60 ms for two shells (216000 electrons of the
published model: 15 ms before, 72 ms with it), and 0.7-1.1 s (one thread) when it adds six
shells to fourteen (a refit of all shells for each).
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit
from scipy import optimize, signal, special, stats

from sevi_lib.core.geometry import PIX_PER_UNIT

#: Significance a radial peak needs to count as a shell.
Z_MIN = 5.0

#: Fewest counts a peak must hold above its baseline (a shell of fewer cannot be fitted anyway).
MIN_EXCESS = 25.0

#: Bin width of the profile (half a pixel) and its range.
BIN = 1.0 / (2 * PIX_PER_UNIT)
RHO_MAX = 1.5

# Close-pair step (see the module docstring).

#: Radial orders of a shell's profile templates (isotropic, beta_2, beta_4 parts).
ORDERS = (0, 2, 4)

#: The close-pair step looks for a shell up to this many widths (sigma_R) from an accepted one.
PAIR_REACH = 8.0

#: ... and no closer than this many FWHM (2.355 sigma_R, of the two shells' mean sigma_R): the
#: resolution limit (the side-band pass suppresses candidates within 1.5 FWHM of an accepted peak).
PAIR_MIN_SEP = 1.5

#: The scan keeps this many (null-fit) widths from every shell in the window; a shell added
#: closer than PAIR_MIN_SEP FWHM after the fit is refused (a merged pair's null fit is one wide
#: shell, whose PAIR_MIN_SEP FWHM would hide both members).
PAIR_SCAN_SEP = 2.0

#: Parameters the added shell brings to the window fit (three amplitudes, R, sigma): the degrees
#: of freedom of the deviance difference.
PAIR_DOF = 5

#: Fewest counts the added shell must hold, as a fraction of its accepted neighbour's (a floor
#: against the small, count-proportional misfit of a real shell by the template).
PAIR_MIN_FRACTION = 0.03

#: Side-band candidates that failed with at least this Z (the most significant PAIR_SEEDS of them,
#: resolved from the accepted shells) get a window of their own: a shell added within
#: PAIR_SEED_REACH widths of where they peaked (a weak shell whose side bands were spoilt).
PAIR_SEED_Z = 2.0
PAIR_SEEDS = 5
PAIR_SEED_REACH = 2.0

#: The whole-profile pass (after the windows): most shells it adds, and how many of its significant
#: candidates may be refused (then set aside, the next score maximum tried) before it stops.
GLOBAL_MAX_ADD = 16
GLOBAL_RETRIES = 3

#: FWHM of a Gaussian over its sd.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: FWHM of a projected shell's smoothed radial profile over its sigma_R (measured: 3.8-5.1 for
#: sigma_R of 12 to 3 px; the inner tail widens it): turns the side-band pass's FWHM into a width.
FWHM_PER_SHELL_SIGMA = 4.4

#: Box on a shell's anisotropy in the window fit: beta_2 and beta_4 of ``I(c) = 1/2 + beta_2 P_2(c)
#: + beta_4 P_4(c)`` (this project's normalisation; I >= 0 needs beta_2 in [-1/2, 1] alone).
BETA_BOX = ((-0.5, 1.0), (-0.6, 1.2))

_P0 = (1.0, -0.5, 0.375)  # P_l(0) of ORDERS: the order-l template's amplitude is N beta_l P_l(0)

TEST = ("side-band pass: counts within one FWHM of each local maximum of the smoothed radial profile "
        "(half-pixel bins) against a straight line fitted to the side bands one to three FWHM away "
        "(uniform background grows linearly in rho); Z from the Poisson tail P(X >= N | B); accepted by "
        "decreasing Z while Z >= threshold, none within 1.5 FWHM of an accepted peak. Close-pair step: "
        "around each accepted shell, a Poisson fit of projected-shell profiles (counts, beta_2, beta_4, "
        "R, sigma_R) plus a line to the one-pixel profile, with and without a shell added where the "
        "residuals' score peaks (1.5 FWHM to 8 widths away); Z from the deviance drop as chi^2 with 5 degrees "
        "of freedom (scaled by the fit's dispersion) times a Bonferroni factor for the positions tried; "
        "added while Z >= threshold. Failed side-band candidates with Z >= 2 get the same test about "
        "their own position. Whole-profile pass: all shells fitted at once, a shell added where the "
        "residual score peaks within the shells' side bands (same test, dispersion about the added shell, "
        "its width inside its box) while one passes")


@dataclass
class ShellSearch:
    """What the shell search found.

    Attributes
    ----------
    threshold : float
        Z a peak needed.
    peaks : list of dict
        Accepted peaks, smallest radius first: ``R`` (start radius), ``sigma`` (start width),
        ``fwhm``, ``counts`` (N), ``baseline`` (B), ``z``. From the side-band pass: R at the
        smoothed profile's peak, sigma = FWHM / 2.5, N and B of the side-band test. Added by the
        close-pair step or the whole-profile pass: the window fit's R and sigma_R, FWHM = 2.355 sigma_R, N = the counts
        within one FWHM of R, B = N minus the added shell's fitted counts there, Z of the deviance
        drop.
    rejected : list of dict
        The most significant candidates that were not accepted (at most five: side-band
        candidates and shells of the later stages tried but not added), same keys.
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
    """Counts per half-pixel radial bin on [0, 1.5] and the bin edges (numpy's fast path for
    equal bins: the edges as a number and a range, not an array)."""
    n_bins = int(round(RHO_MAX / BIN))
    return np.histogram(rho, bins=n_bins, range=(0.0, n_bins * BIN), weights=weights)


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
    """Significant peaks of the radial profile: the side-band pass, then the close-pair step
    (see the module docstring).

    Parameters
    ----------
    rho : ndarray
        Radii of the data points about the centre.
    weights : ndarray, optional
        Their weights (pixel counts; electron-equivalents of a frame sum). All stages take the
        weighted profile as counts; the window fits scale their deviance drop by the
        fit's dispersion (deviance per degree of freedom, at least 1), so that over-dispersed
        weights (gain spread) or a profile the templates do not describe (an off-centre ring)
        do not pass for a shell.
    threshold : float
        Z a peak needs (both stages).
    rho_limit : float, optional
        Default ``1 - max(|x0|, |z0|)`` of `centre`. Distance from the centre to the nearest
        screen edge: a uniform background's profile peaks there (the edge cuts the rings), so
        candidates whose side bands reach it are skipped, and the close-pair windows end there.
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
        return {k: float(v) for k, v in r.items() if k not in ("k", "a")}

    if accepted:
        n = np.maximum(hist, 0.0)
        shells = [{"R": r["R"], "sigma": max(r["fwhm"] / FWHM_PER_SHELL_SIGMA, BIN), "row": r} for r in accepted]
        for q in shells:
            q["R_bounds"] = (q["R"] - q["sigma"], q["R"] + 2.5 * q["sigma"])
            q["s_bounds"] = (0.4 * q["sigma"], 1.6 * q["sigma"])
            q["reach"] = 3 * q["row"]["a"] * BIN  # the outer end of its side bands
        found, tested = _close_pairs(hist, n, edges, shells, rejected, rho_limit, threshold)
        accepted = accepted + found
        rejected = [r for r in rejected if all(abs(r["R"] - f["R"]) > 2 * f["fwhm"] for f in found)]
        rejected = sorted(rejected + tested, key=lambda r: -r["z"])[:5]
    accepted.sort(key=lambda r: r["R"])
    return ShellSearch(float(threshold), [public(r) for r in accepted], [public(r) for r in rejected],
                       centre=[float(centre[0]), float(centre[1])])


# ------------------------------------------------------------------------------ close pairs
_WIN = 7.0  # Gaussian half-window of the radial smearing integral (sigma units; tail < 1e-11)
_XG, _WG = np.polynomial.legendre.leggauss(24)


@njit(cache=True)
def _shell_cdf(edges, R, sigma, xg, wg, deriv, out):
    """Cumulative radial profile of one projected shell at the bin edges, per radial order.

    ``out[0, j, e]``: fraction of the order-``ORDERS[j]`` part of a shell of radius `R` and width
    `sigma` (speed ~ Normal(R, sigma^2)) projected inside rho = edges[e]; if `deriv`,
    ``out[1]``, ``out[2]``: its derivatives in R and sigma. A thin shell of speed r puts
    ``2 int_s^1 P_l(u) du = 2 (P_{l-1}(s) - P_{l+1}(s)) / (2l + 1)`` of its order-l part inside
    rho, ``s = sqrt(1 - rho^2 / r^2)`` (u = the velocity's direction cosine along the line of
    sight, whose density is ``1/2 + sum_l beta_l P_l(0) P_l(u)``; the isotropic part's share is
    1 - s). The smearing over r is integrated with Gauss-Legendre nodes in t, r = rho + t^2
    (which removes the square-root kink at r = rho), plus, for the isotropic part, the Gaussian
    mass below rho. 24 nodes: the bin counts to 3e-4 of the peak bin's.
    """
    n = edges.shape[0]
    inv_s = 1.0 / sigma
    norm = inv_s / math.sqrt(2.0 * math.pi)
    nd = 3 if deriv else 1
    for e in range(n):
        rho = edges[e]
        for d in range(nd):
            for j in range(3):
                out[d, j, e] = 0.0
        zz = (rho - R) * inv_s
        out[0, 0, e] = 0.5 * math.erfc(-zz / math.sqrt(2.0))
        if deriv:
            phi = norm * math.exp(-0.5 * zz * zz)
            out[1, 0, e] = -phi
            out[2, 0, e] = -phi * zz
        hi = R + _WIN * sigma - rho
        if hi <= 0.0:
            continue
        t_lo = math.sqrt(max(R - _WIN * sigma - rho, 0.0))
        t_hi = math.sqrt(hi)
        mid = 0.5 * (t_hi + t_lo)
        half = 0.5 * (t_hi - t_lo)
        a0 = 0.0
        a2 = 0.0
        a4 = 0.0
        r0 = 0.0
        r2 = 0.0
        r4 = 0.0
        s0 = 0.0
        s2_ = 0.0
        s4 = 0.0
        for k in range(xg.shape[0]):
            t = mid + half * xg[k]
            r = rho + t * t
            if r <= 0.0:
                continue
            s = min(t * math.sqrt(r + rho) / r, 1.0)
            q = (r - R) * inv_s
            g = norm * math.exp(-0.5 * q * q) * wg[k] * half * 2.0 * t
            ss = s * s
            c0 = 1.0 - s
            c2 = s * (1.0 - ss)
            # 2 (P_3(s) - P_5(s)) / 9
            c4 = 2.0 * (0.5 * (5.0 * ss - 3.0) * s - 0.125 * ((63.0 * ss - 70.0) * ss + 15.0) * s) / 9.0
            a0 += g * c0
            a2 += g * c2
            a4 += g * c4
            if deriv:
                gR = g * q * inv_s
                gs = g * (q * q - 1.0) * inv_s
                r0 += gR * c0
                r2 += gR * c2
                r4 += gR * c4
                s0 += gs * c0
                s2_ += gs * c2
                s4 += gs * c4
        out[0, 0, e] += a0
        out[0, 1, e] = a2
        out[0, 2, e] = a4
        if deriv:
            out[1, 0, e] += r0
            out[1, 1, e] = r2
            out[1, 2, e] = r4
            out[2, 0, e] += s0
            out[2, 1, e] = s2_
            out[2, 2, e] = s4


def shell_templates(edges, R, sigma, deriv=True):
    """Counts per bin (between `edges`) of a unit shell's orders :data:`ORDERS`, and (`deriv`)
    their derivatives in R and sigma: array (3 or 1, len(ORDERS), len(edges) - 1)."""
    out = np.empty((3 if deriv else 1, 3, len(edges)))
    _shell_cdf(np.ascontiguousarray(edges, dtype=np.float64), float(R), float(sigma), _XG, _WG, deriv, out)
    return np.diff(out, axis=2)


class _Comp:
    """One shell of a window fit: counts N, anisotropy (beta_2, beta_4) and geometry (R, sigma),
    the geometry free within bounds or frozen (then isotropic)."""

    def __init__(self, R, sigma, free, R_bounds=None, s_bounds=None):
        self.R, self.sigma, self.free = float(R), float(sigma), bool(free)
        self.R_bounds = R_bounds if R_bounds is not None else (R - 3 * sigma, R + 3 * sigma)
        self.s_bounds = s_bounds if s_bounds is not None else (max(0.4 * sigma, BIN), min(2.5 * sigma, 0.05))
        self.N, self.beta = 0.0, np.zeros(2)

    def copy(self):
        c = _Comp(self.R, self.sigma, self.free, self.R_bounds, self.s_bounds)
        c.N, c.beta = self.N, self.beta.copy()
        return c

    @property
    def amp(self):
        """Amplitudes of the order templates."""
        return self.N * np.r_[1.0, self.beta[0] * _P0[1], self.beta[1] * _P0[2]]


def _deviance(n, mu):
    """Poisson deviance of counts `n` (non-integer allowed) about means `mu` (floored at 1e-9)."""
    m = np.maximum(mu, 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(n > 0, n * np.log(n / m), 0.0)
    return float(2.0 * np.sum(t - (n - m)))


def _fit_window(n, edges, comps, max_iter=40):
    """Poisson maximum-likelihood fit of a line plus projected shells to the counts `n` between
    `edges` (Levenberg-damped Fisher scoring, parameters clipped to their boxes).

    The line is given by its values at both ends of the window (both >= 0, so the model stays
    >= 0 where shells do). Parameters per shell: N >= 0; free shells also (beta_2, beta_4) in
    :data:`BETA_BOX` and (R, sigma) in their bounds. Start: the line and the N's by non-negative
    weighted least squares at the start geometry. The Fisher weights 1/mu are floored at one
    count (empty bins would otherwise stiffen the line). Updates `comps` in place; returns
    (deviance, mu).
    """
    x = 0.5 * (edges[:-1] + edges[1:])
    t = (x - x[0]) / max(float(x[-1] - x[0]), BIN)  # the line: its values at both ends, >= 0
    m_bins = len(n)
    frozen = {i: shell_templates(edges, c.R, c.sigma, False)[0, 0] for i, c in enumerate(comps) if not c.free}
    # parameter layout: b0, b1, then per shell N [, beta2, beta4, R, sigma]
    lo, hi, theta = [0.0, 0.0], [np.inf, np.inf], [0.0, 0.0]
    for c in comps:
        theta.append(c.N)
        lo.append(0.0)
        hi.append(np.inf)
        if c.free:
            theta += [c.beta[0], c.beta[1], c.R, c.sigma]
            lo += [BETA_BOX[0][0], BETA_BOX[1][0], c.R_bounds[0], c.s_bounds[0]]
            hi += [BETA_BOX[0][1], BETA_BOX[1][1], c.R_bounds[1], c.s_bounds[1]]
    theta, lo, hi = np.array(theta), np.array(lo), np.array(hi)

    def model(th, jac):
        mu = th[0] * (1.0 - t) + th[1] * t
        J = np.empty((m_bins, len(th))) if jac else None
        if jac:
            J[:, 0], J[:, 1] = 1.0 - t, t
        k = 2
        for i, c in enumerate(comps):
            N = th[k]
            if not c.free:
                mu = mu + N * frozen[i]
                if jac:
                    J[:, k] = frozen[i]
                k += 1
                continue
            b2, b4, R, s = th[k + 1:k + 5]
            T = shell_templates(edges, R, s, jac)
            coef = np.array([1.0, b2 * _P0[1], b4 * _P0[2]])
            prof = coef @ T[0]
            mu = mu + N * prof
            if jac:
                J[:, k] = prof
                J[:, k + 1] = N * _P0[1] * T[0, 1]
                J[:, k + 2] = N * _P0[2] * T[0, 2]
                J[:, k + 3] = N * (coef @ T[1])
                J[:, k + 4] = N * (coef @ T[2])
            k += 5
        return mu, J

    # start: the counts N by weighted least squares at the start geometry and anisotropy
    theta = np.clip(theta, lo, hi)
    mu, J = model(theta, True)
    ncols, k = [0, 1], 2
    for c in comps:
        ncols.append(k)
        k += 5 if c.free else 1
    w = np.sqrt(1.0 / np.maximum(n, 1.0))
    A = J[:, ncols] * w[:, None]
    theta[ncols] = optimize.nnls(A, n * w)[0]
    theta = np.clip(theta, lo, hi)
    mu, J = model(theta, True)
    dev = _deviance(n, mu)
    lam = 1e-3
    for it in range(max_iter):
        g = J.T @ (n / np.maximum(mu, 1e-9) - 1.0)
        H = J.T @ (J / np.maximum(mu, 1.0)[:, None])  # Fisher weights, floored at one count
        # parameters held at a bound by the gradient stay there this step (projected scoring)
        act = ~(((theta <= lo) & (g < 0)) | ((theta >= hi) & (g > 0)))
        Ha, ga = H[np.ix_(act, act)], g[act]
        d = np.sqrt(np.maximum(np.diag(Ha), 1e-300))
        Hs = Ha / d[:, None] / d[None, :]
        improved = False
        while lam < 1e10:
            step = np.zeros(len(theta))
            try:
                step[act] = np.linalg.solve(Hs + lam * np.eye(len(d)), ga / d) / d
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            th_t = np.clip(theta + step, lo, hi)
            mu_t, _ = model(th_t, False)
            dev_t = _deviance(n, mu_t)
            if dev_t < dev:
                improved = dev - dev_t > 1e-2
                theta, mu, dev = th_t, mu_t, dev_t
                lam = max(lam * 0.2, 1e-7)
                break
            lam *= 10.0
        if not improved:
            break
        mu, J = model(theta, True)
    k = 2
    for c in comps:
        c.N = float(theta[k])
        if c.free:
            c.beta = theta[k + 1:k + 3].copy()
            c.R, c.sigma = float(theta[k + 3]), float(theta[k + 4])
            k += 5
        else:
            k += 1
    return dev, mu


def _z_of_deviance(delta, dof, trials):
    """One-sided normal quantile of ``trials`` times the chi^2(dof) tail beyond `delta`."""
    if not delta > 0:
        return 0.0
    logp = float(stats.chi2.logsf(delta, dof))
    if not math.isfinite(logp):  # far tail: log of the leading term of the chi^2 survival function
        logp = -0.5 * delta + (0.5 * dof - 1.0) * math.log(0.5 * delta) - math.lgamma(0.5 * dof)
    logp += math.log(max(trials, 1.0))
    if logp >= math.log(0.5):
        return 0.0
    if logp > -700.0:
        return float(stats.norm.isf(math.exp(logp)))
    return math.sqrt(-2.0 * logp - math.log(-4.0 * math.pi * logp))  # the normal tail's asymptote


def _resolved(R, s, others):
    """Whether a shell (R, s) lies at least PAIR_MIN_SEP FWHM (of the two shells' mean sigma)
    from every (R, sigma) in `others`."""
    return all(abs(R - Rq) >= PAIR_MIN_SEP * FWHM_PER_SIGMA * 0.5 * (s + sq) for Rq, sq in others)


def _rim_bins(c):
    """Bin range [a, b) within one FWHM (2.355 sigma) of a shell's R."""
    w = FWHM_PER_SIGMA * c.sigma
    return max(int(math.floor((c.R - w) / BIN)), 0), int(math.ceil((c.R + w) / BIN))


def _rim_counts(c):
    """A fitted shell's counts within one FWHM of its R (its rim, where its neighbours are judged)."""
    a, b = _rim_bins(c)
    e = np.arange(a, b + 1) * BIN
    return float(shell_templates(e, c.R, c.sigma, False)[0].sum(axis=1) @ c.amp)


def _close_pairs(hist, n, edges, shells, candidates, rho_limit, threshold):
    """The close-pair step (see the module docstring).

    Parameters
    ----------
    hist : ndarray
        The profile (half-pixel bins; weighted counts).
    n : ndarray
        The same, clipped at 0 (the counts the windows fit).
    edges : ndarray
        Its bin edges.
    shells : list of dict
        The accepted shells: ``R``, ``sigma`` (sigma_R), ``R_bounds``, ``s_bounds``, ``row`` (the
        side-band row); updated by the window fits and extended by the added shells.
    candidates : list of dict
        The side-band candidates not accepted (rows), most significant first.
    rho_limit, threshold : float
        As in :func:`find_shells`.

    Returns
    -------
    found, tested : list of dict
        Rows of the added shells and of the shells tried but not added.
    """
    order = sorted(shells, key=lambda q: -(q["row"]["counts"] - q["row"]["baseline"]))
    widths = np.median([q["sigma"] for q in shells])
    seeds = [r for r in candidates if r["z"] >= PAIR_SEED_Z][:PAIR_SEEDS]
    n_windows = len(order) + len(seeds)
    found, tested = [], []
    for p in order:
        _window(p, p["R"], p["sigma"], PAIR_REACH, hist, n, edges, shells, rho_limit, threshold, n_windows, found,
                tested)
    for r in seeds:  # side-band candidates that failed: tested alone, about where they peaked
        if _resolved(r["R"], widths, [(q["R"], q["sigma"]) for q in shells]):
            _window(None, r["R"], widths, PAIR_SEED_REACH, hist, n, edges, shells, rho_limit, threshold, n_windows,
                    found, tested)
    # the whole profile: every shell fitted at once, a shell added where the residual score peaks
    widths = float(np.median([q["sigma"] for q in shells]))
    half = 0.5 * rho_limit
    _window(None, half, widths, half / widths, hist, n, edges, shells, rho_limit, threshold, n_windows + 1, found,
            tested, max_add=GLOBAL_MAX_ADD, near=True)
    return found, tested


def _window(p, R0, s0, reach, hist, n, edges, shells, rho_limit, threshold, n_windows, found, tested, *,
            max_add=2, near=False):
    """One window of the close-pair step about `R0` (the accepted shell `p`, a side-band
    candidate, or the middle of the whole profile when `p` is None): the null fit, the score scan
    up to `reach` widths `s0` from R0 (`near`: and within the side bands of a shell, ``reach`` of
    its dict, plus one width), and the fit with a shell added (`max_add` times at most). Appends to
    `shells`, `found` and `tested`."""
    lo, hi = R0 - (reach + 4.0) * s0, R0 + (reach + 4.0) * s0
    for q in shells:
        if q is not p and q["R"] < lo < q["R"] + 4.0 * q["sigma"]:
            lo = q["R"] - 4.0 * q["sigma"]
        if q is not p and q["R"] > hi > q["R"] - 4.0 * q["sigma"]:
            hi = q["R"] + 4.0 * q["sigma"]
    i0 = max(int(math.floor(lo / BIN)), 2)
    i1 = min(int(math.ceil(hi / BIN)), int(math.floor(rho_limit / BIN)), len(n))
    if i1 - i0 < 20:
        return
    i0 -= i0 % 2
    i1 -= (i1 - i0) % 2
    e = edges[i0:i1 + 1:2]  # one-pixel bins: plenty for a shell of sigma_R >= 1 px
    lo, hi = e[0], e[-1]
    inside = [q for q in shells if lo <= q["R"] <= hi]
    comps = [_Comp(q["R"], q["sigma"], True, q["R_bounds"], q["s_bounds"]) for q in inside]
    comps += [_Comp(q["R"], q["sigma"], False) for q in shells if q["R"] > hi]
    nw = n[i0:i1].reshape(-1, 2).sum(axis=1)
    dev0, mu0 = _fit_window(nw, e, comps)
    for q, c in zip(inside, comps):
        q["R"], q["sigma"], q["rim"] = c.R, c.sigma, _rim_counts(c)
    aside, added = [], 0  # near: positions tried and refused, set aside for the next try
    for _ in range(max_add + (GLOBAL_RETRIES if near else 0)):
        if p is not None:
            R0, s0 = p["R"], p["sigma"]
        step = max(2 * BIN, s0 / 3.0)
        grid = np.arange(max(lo + 2 * s0, R0 - reach * s0), min(hi - 2 * s0, R0 + reach * s0) + 0.5 * step, step)
        grid = np.array([Rc for Rc in grid if all(abs(Rc - q["R"]) >= PAIR_SCAN_SEP * q["sigma"] for q in inside)
                         and (not near or any(abs(Rc - q["R"]) <= q["reach"] + s0 for q in shells))
                         and all(abs(Rc - Ra) >= PAIR_SCAN_SEP * s0 for Ra in aside)])
        if len(grid) < 3:
            return
        m = np.maximum(mu0, 1.0)
        score = np.empty(len(grid))
        for j, Rc in enumerate(grid):
            T = shell_templates(e, Rc, s0, False)[0, 0]
            score[j] = (T @ ((nw - mu0) / m)) / math.sqrt(max(T @ (T / m), 1e-300))
        j = int(np.argmax(score))
        if score[j] < 2.0:
            return  # nothing there
        if j in (0, len(grid) - 1):  # an excess that goes on beyond the reach: a trend, no rim
            if not near:
                return
            aside.append(float(grid[j]))
            continue
        Rc = float(grid[j])
        alt = [c.copy() for c in comps]
        new = _Comp(Rc, s0, True, R_bounds=(Rc - 2 * s0, Rc + 2 * s0), s_bounds=(0.4 * s0, 2.0 * s0))
        dev1, mu1 = _fit_window(nw, e, alt + [new])
        trials = n_windows * max(1.0, len(grid) * step / s0)
        if near:  # the dispersion about the added shell (a misfit elsewhere is no reason to doubt it)
            r = (PAIR_REACH + 4.0) * s0
            sel = np.abs(0.5 * (e[:-1] + e[1:]) - new.R) <= r
            n_par = 7 + 5 * sum(abs(c.R - new.R) <= r for c in alt if c.free)
            phi = max(1.0, _deviance(nw[sel], mu1[sel]) / max(int(sel.sum()) - n_par, 1))
        else:
            n_par = 2 + sum(5 if c.free else 1 for c in alt) + 5
            phi = max(1.0, dev1 / max(len(nw) - n_par, 1))
        z = _z_of_deviance((dev0 - dev1) / phi, PAIR_DOF, trials)
        floor = MIN_EXCESS
        if inside:
            floor = max(floor, PAIR_MIN_FRACTION * min(inside, key=lambda q: abs(q["R"] - new.R))["rim"])
        a, b = _rim_bins(new)
        rim = _rim_counts(new)
        N = float(hist[a:b].sum())
        row = {"R": new.R, "sigma": new.sigma, "fwhm": FWHM_PER_SIGMA * new.sigma, "counts": N,
               "baseline": N - rim, "z": z}
        ok = (z >= threshold and rim >= floor and _resolved(new.R, new.sigma, [(c.R, c.sigma) for c in alt if c.free])
              and abs(new.R - R0) <= reach * s0 and new.R + 2 * new.sigma <= rho_limit
              and not (near and not 1.05 * new.s_bounds[0] < new.sigma < 0.95 * new.s_bounds[1]))
        if not ok:
            tested.append(row)
            if not near or z < threshold:  # the scan's best position not significant: none is
                return
            aside += [Rc, new.R]
            continue
        found.append(row)
        added += 1
        q = {"R": new.R, "sigma": new.sigma, "rim": rim, "row": row, "R_bounds": new.R_bounds,
             "s_bounds": new.s_bounds, "reach": 3.0 * FWHM_PER_SHELL_SIGMA * new.sigma}
        shells.append(q)
        inside.append(q)
        comps = [c for c in alt if c.free] + [new] + [c for c in alt if not c.free]
        for qq, c in zip(inside, comps):
            qq["R"], qq["sigma"], qq["rim"] = c.R, c.sigma, _rim_counts(c)
        dev0, mu0 = dev1, mu1
        if added == max_add:
            return
