"""The image centre (x0, z0): its start value and its Newton step in the Poisson fits.

The model density is ``lambda(x, z) = sum_j shells_j(x - x0, z - z0) + b``: the shells sit on
the image centre, the uniform background b covers the screen. The fits alternate

(a) the fit of theta (amplitudes, radii, widths, b) at a fixed centre (the data points taken
    about the centre, :func:`sevi_lib.fit.optimise.maximise`), and
(b) an update of (x0, z0) at fixed theta (the Poisson fits: Newton steps, :func:`refine_centre`;
    the frame-sum fit: a weighted Gauss-Newton step),

until an update moves the centre less than :func:`tolerance` (0.001 px, or SE / 20 if larger),
at most :data:`MAX_ROUNDS` rounds; :func:`alternate` is this loop, shared by every fit. Score and
information of the centre in the Poisson fits come from mu_g' = d mu_g / d(x0, z0) (:meth:`sevi_lib.fit.points.PointSet.shift_gradient`: the radial
derivative of the spline tables and the derivative of the Legendre polynomials; the tests check
it against central differences): ``score = sum_g c_g mu_g' / mu_g``, ``info = sum_g c_g mu_g'
mu_g'^T / mu_g^2`` (Fisher scoring; its expectation is the Fisher information, because the total
expectation does not depend on the centre).

Why the centre's covariance is the inverse of its own block: the model has only even Legendre
orders, so every shell's density is even in x - x0 and in z - z0. d lambda / d x0 is odd in
x - x0, every d lambda / d theta_k is even in both, and d lambda / d z0 is odd in z - z0; their
products integrate to zero over data distributed symmetrically about the centre (the uniform
background does not move with the centre, so d lambda / d x0 vanishes where only it lives). The
expected information is block diagonal: (x0, z0) decouple from theta and from each other, the
alternation converges in a few rounds, and the standard errors of theta are those of the fit at
the fitted centre.
"""

from typing import NamedTuple

import numpy as np

from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.fit.search import find_shells

#: The alternation stops when the centre moves less than this (pixels), or a twentieth of its SE.
TOL_PX = 1e-3

#: Most rounds of the alternation. The centre decouples from theta (see above), so each round
#: brings it close to its optimum at the current theta; the fits of the default data take two
#: or three, and an alternation that has not settled in ten is reported as not converged.
MAX_ROUNDS = 10


def parse_centre(centre):
    """``"free"`` -> (None, True); ``"screen"`` -> ((0, 0), False); (x0, z0) -> ((x0, z0), False).

    Raises
    ------
    ValueError
        Anything else.
    """
    if isinstance(centre, str):
        if centre == "free":
            return None, True
        if centre == "screen":
            return np.zeros(2), False
        raise ValueError(f"centre must be 'free', 'screen' or (x0, z0), got {centre!r}")
    c = np.asarray(centre, dtype=np.float64).ravel()
    if c.shape != (2,) or not np.all(np.isfinite(c)):
        raise ValueError(f"centre must be 'free', 'screen' or (x0, z0), got {centre!r}")
    return c, False


def _centroid(x, z, w, fallback):
    total = w.sum()
    if not total > 0:
        return fallback
    return np.array([np.dot(w, x) / total, np.dot(w, z) / total])


def start_centre(x, z, w=None, rounds=2):
    """Start value of the centre: the centroid of the data, then of the data on the rings.

    The plain centroid is pulled towards the screen centre by a uniform background; the rings
    (the points within two FWHM of the significant radial peaks about the current estimate,
    :func:`sevi_lib.fit.search.find_shells`) hold few background points and are symmetric about
    the true centre. Its error is that of a centroid, about R / sqrt(2 N) (a pixel or two for
    tens of thousands of electrons); the likelihood takes it from there.

    Parameters
    ----------
    x, z : ndarray
        Data positions.
    w : ndarray, optional
        Their weights.
    rounds : int
        Ring-centroid refinements.

    Returns
    -------
    ndarray, shape (2,)
    """
    w = np.ones(len(x)) if w is None else np.asarray(w, dtype=np.float64)
    c = _centroid(x, z, w, np.zeros(2))
    for _ in range(rounds):
        rho = np.hypot(x - c[0], z - c[1])
        peaks = find_shells(rho, w, centre=c).peaks
        if not peaks:
            break
        on = np.zeros(len(x), dtype=bool)
        for p in peaks:
            on |= np.abs(rho - p["R"]) < 2 * max(p["fwhm"], 2.0 / PIX_PER_UNIT)
        c = _centroid(x[on], z[on], w[on], c)
    return c


def centre_derivs(pts, theta, counts, S, tables):
    """Score (2,), information (2, 2) and sum_g c_g log mu_g of the centre at fixed theta.

    Parameters
    ----------
    pts : PointSet
        The data taken about the centre.
    theta : ndarray
    counts : ndarray
        Counts per group.
    S : int
    tables : Workspace
        A workspace of theta with the same table range (its spline tables are reused).
    """
    mu = np.empty(pts.n_groups)
    ll = pts.loglike(theta, counts, S, want=0, mu_out=mu, like=tables)[0]
    d = pts.shift_gradient(theta, S, like=tables).T
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(counts > 0, counts / mu, 0.0)
    score = d @ w
    info = (d * (w / np.where(mu > 0, mu, 1.0))) @ d.T
    return score, info, ll


def tolerance(info):
    """Step length (screen units) below which the centre counts as converged.

    :data:`TOL_PX` pixels, or a twentieth of the centre's standard error if that is larger: on
    few electrons the centre is known to a pixel or so, and chasing it to 0.001 px makes the
    alternation with the shell fit wander for hundreds of iterations at no gain in accuracy.

    Parameters
    ----------
    info : ndarray, shape (2, 2)
        The centre's information.

    Returns
    -------
    float
    """
    try:
        se = float(np.sqrt(np.max(np.diag(np.linalg.inv(info)))))
    except np.linalg.LinAlgError:
        se = 0.0
    return max(TOL_PX / PIX_PER_UNIT, 0.05 * se if np.isfinite(se) else 0.0)


def refine_centre(make_points, pts, c, theta, counts, S, *, max_step, max_steps=10):
    """Newton steps of the centre at fixed theta (each at most `max_step` long).

    Stops when a step is shorter than :func:`tolerance` (that last step is not taken, so
    the centre returned is the one its information belongs to) or after `max_steps`.

    Parameters
    ----------
    make_points : callable
        ``(x0, z0) -> PointSet`` of the data about that centre (one ``rho_max`` for all).
    pts : PointSet
        The data about `c`.
    c : ndarray, shape (2,)
        Start.
    theta, counts, S
        As in :func:`centre_derivs`.
    max_step : float
        Longest step (screen units).
    max_steps : int

    Returns
    -------
    c : ndarray, shape (2,)
    pts : PointSet
        The data about it.
    info : ndarray, shape (2, 2)
        The centre's information at the returned centre.
    moved : float
        Distance from the start (screen units).
    converged : bool
        Whether the last step was below the tolerance.
    """
    tables = pts.workspace(theta, S)
    start = c.copy()
    info = np.full((2, 2), np.nan)
    for _ in range(max_steps):
        score, info, _ = centre_derivs(pts, theta, counts, S, tables)
        try:
            d = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            return c, pts, info, float(np.hypot(*(c - start))), False
        n = np.hypot(*d)
        if n < tolerance(info):
            return c, pts, info, float(np.hypot(*(c - start))), True
        if n > max_step:
            d *= max_step / n
        c = c + d
        pts = make_points(c)
    return c, pts, info, float(np.hypot(*(c - start))), False


class Alternation(NamedTuple):
    """What :func:`alternate` reached."""

    centre: np.ndarray
    info: np.ndarray
    rounds: int
    converged: bool


def alternate(centre, update, refit, *, first_rough=False, max_rounds=MAX_ROUNDS, log=None):
    """The image-centre alternation of every fit: centre updates at fixed theta, theta fits at the centre.

    Each round updates the centre at the current theta; when the update moved it less than
    :func:`tolerance` of its information, the alternation has converged (the update's own sub-tolerance
    step is not taken, so theta was fitted about the centre returned); otherwise theta is fitted
    afresh about the new centre and the next round begins.

    Parameters
    ----------
    centre : ndarray, shape (2,)
        The centre theta was fitted about.
    update : callable
        ``c -> (c_new, info, ok)``: the centre after its update at the current theta (``c`` itself
        when the step would be shorter than ``tolerance(info)``), the centre's information there,
        and whether the update succeeded (False: a singular information).
    refit : callable
        ``c -> None``: fits theta about the centre ``c`` (the caller keeps theta).
    first_rough : bool
        The theta of the first round is a rough one (a few iterations from a start centre that
        may be pixels off): its round cannot conclude the alternation.
    max_rounds : int
    log : callable, optional
        Receives one line per round.

    Returns
    -------
    Alternation
        The centre, its information at the last update, the rounds taken and whether the last
        update moved less than the tolerance (and succeeded).
    """
    c = np.asarray(centre, dtype=np.float64).copy()
    info = np.full((2, 2), np.nan)
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        c_new, info, ok = update(c)
        moved = float(np.hypot(*(c_new - c)))
        c = np.asarray(c_new, dtype=np.float64)
        if log is not None:
            log(f"centre round {rounds}: ({c[0]:.6f}, {c[1]:.6f}), moved {moved * PIX_PER_UNIT:.4f} px")
        if moved < tolerance(info) and not (first_rough and rounds == 1):
            return Alternation(c, info, rounds, bool(ok))
        refit(c)
    return Alternation(c, info, rounds, False)
