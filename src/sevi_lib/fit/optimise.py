"""The optimiser: constrained Fisher-scoring ascent, and the Poisson objective of two fits.

:func:`maximise` takes joint Fisher-scoring / Gauss-Newton steps in all parameters, solves each
step as a small quadratic programme (:func:`qp_step`) that keeps every shell's angular density
non-negative at a grid of c plus exact minimisers added as cutting planes
(:func:`constraint_matrix`), limits geometry steps to a few widths and backtracks on the true
objective. :func:`fit_poisson` is the (extended) Poisson likelihood of the unbinned and binned
fits on a :class:`~sevi_lib.fit.points.PointSet`. With many data groups the iterations' Fisher
matrix is that of a sample of them (:meth:`~sevi_lib.fit.points.PointSet.loglike`): the steps'
metric only, so the maximum, which the gradient of every group defines, does not move; the
standard errors take the exact matrix at the end.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import optimize
from scipy.linalg import solve_triangular

from sevi_lib.core.angular import legendre_even, min_density
from sevi_lib.core.errors import InputError
from sevi_lib.fit.centre import MAX_ROUNDS, alternate, refine_centre
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.result import SCREEN_AREA, make_result

#: Constraint points in [0, 1] (I is even in c).
C_GRID = np.cos(np.linspace(0.0, 0.5 * np.pi, 257))


def constraint_matrix(theta, S, extra):
    """Rows A with A @ theta >= 0 <=> every shell's density >= 0 at the constraint points.

    Parameters
    ----------
    theta : ndarray
    S : int
    extra : list of list of float
        Per shell, further c values (cutting planes) beyond :data:`C_GRID`.
    """
    layout = ParamLayout.of(theta, S)
    P = theta.size
    bg = np.zeros((1, P))
    bg[0, layout.background] = 1.0  # background >= 0
    rows = [bg]
    for j in range(S):
        cs = np.concatenate([C_GRID, np.abs(np.asarray(extra[j], dtype=np.float64))])
        basis = np.concatenate([np.ones((len(cs), 1)), legendre_even(cs, layout.n_beta)], axis=1)
        A = np.zeros((len(cs), P))
        A[:, layout.amplitudes(j)] = basis
        rows.append(A)
    return np.concatenate(rows)


def qp_step(g, H, theta, A):
    """Maximise g.d - d.H.d/2 subject to A (theta + d) >= 0. Returns (d, active)."""
    P = len(g)
    Hs = H + np.diag(1e-12 * np.diag(H) + 1e-300)
    d = np.linalg.solve(Hs, g)
    scale = np.maximum(np.abs(A) @ np.abs(theta), 1e-300)
    if np.all(A @ (theta + d) >= -1e-12 * scale):
        return d, False
    L = np.linalg.cholesky(Hs)

    gt = solve_triangular(L, g, lower=True)
    Ay = solve_triangular(L, A.T, lower=True).T / scale[:, None]
    b = (A @ theta) / scale
    # least-distance programme min |y - gt| s.t. Ay y >= -b, solved exactly through NNLS
    # (Lawson & Hanson, ch. 23): with y = gt + v, G v >= h' where G = Ay, h' = -b - Ay gt
    hp = -b - Ay @ gt
    E = np.vstack([Ay.T, hp[None, :]])
    f = np.zeros(P + 1)
    f[-1] = 1.0
    u, _ = optimize.nnls(E, f, maxiter=50 * E.shape[1])
    r = E @ u - f
    if abs(r[-1]) < 1e-12:  # infeasible (cannot happen from a feasible theta): stay put
        return np.zeros(P), True
    y = gt - r[:P] / r[-1]
    d = solve_triangular(L.T, y, lower=False)
    return d, True


@dataclass
class Objective:
    """Objective f(theta) to maximise with gradient and (approximate) Hessian.

    ``newton``, if given, is ``derivs`` with a fourth item, the matrix a Newton step is taken with
    (:func:`newton_matrix`; ``hess`` itself where that is not positive definite): called only
    where :func:`maximise` may take a Newton step, so that ``derivs`` need not compute it.
    """

    value: callable  # theta -> float
    derivs: callable  # theta -> (f, grad, hess)
    newton: callable = None  # theta -> (f, grad, hess, step matrix)


def _add_cutting_planes(theta, layout, extra):
    """Add the exact minimiser of every shell that dips below zero; True if any was added."""
    added = False
    av, _, _ = layout.unpack(theta)
    for j in range(layout.n_shells):
        vmin, cmin = min_density(av[j, 1:] / (2 * av[j, 0]))
        if vmin < -1e-9:
            extra[j].append(cmin)
            added = True
    return added


def _limit(d, theta, layout):
    """Largest ratio of a geometry step to its allowed size (3 widths for R, half a width for sigma), >= 1."""
    _, R, s = layout.unpack(d)
    _, _, s0 = layout.unpack(theta)
    return np.max(np.concatenate([np.abs(R) / (3 * s0), np.abs(s) / (0.5 * s0), [1.0]]))


def _backtrack(obj, theta, d, f, dec):
    """Halve the step until the objective rises enough; (candidate, value) or (None, None)."""
    alpha = 1.0
    while True:
        cand = theta + alpha * d
        fc = obj.value(cand)
        if np.isfinite(fc) and fc >= f + 1e-4 * alpha * dec - 1e-9 * abs(f):
            return cand, fc, alpha
        alpha *= 0.5
        if alpha < 1e-6:
            return None, None, alpha


def _derivs(obj, theta, newton):
    """(f, g, H, M) at theta: M, the Newton step's matrix, from ``obj.newton`` if `newton` (and Newton
    steps are on and the objective has one), else H (no Newton step there)."""
    if newton and NEWTON_LIMIT > 0 and obj.newton is not None:
        return tuple(obj.newton(theta))
    f, g, H = obj.derivs(theta)
    return f, g, H, H


#: A Newton step (:func:`newton_matrix`) is taken only within this many times the step limits (3
#: widths for R, half a width for sigma; a trust region), scaled into them; 0 turns Newton steps
#: off (Fisher scoring only). See :func:`maximise` for when it is tried at all.
NEWTON_LIMIT = 2.0

#: A Newton step may not take a shell's weight (a_0) below this fraction of its value.
NEWTON_KEEP_WEIGHT = 0.5


def _newton_safe(d, theta, layout):
    """The Newton step `d` scaled into the step limits if it lies within :data:`NEWTON_LIMIT` times
    them and keeps every shell's weight above :data:`NEWTON_KEEP_WEIGHT` of its value, else None."""
    lim = _limit(d, theta, layout)
    if lim > NEWTON_LIMIT:
        return None
    d = d / lim
    a, _, _ = layout.unpack(theta)
    da, _, _ = layout.unpack(d)
    if np.any(a[:, 0] + da[:, 0] < NEWTON_KEEP_WEIGHT * a[:, 0]):
        return None
    return d


def newton_matrix(H, geo, layout):
    """The step's matrix of the Poisson fits: H less the geometry curvature, if positive definite, else H.

    Parameters
    ----------
    H : ndarray, shape (P, P)
        Fisher matrix sum_g c_g J_g J_g^T / mu_g^2.
    geo : ndarray, shape (S, 3)
        Per shell, sum_g (c_g / mu_g) d2 mu_g / d(R R, R sigma, sigma sigma)
        (:meth:`sevi_lib.fit.points.PointSet.loglike`).
    layout : ParamLayout

    Returns
    -------
    ndarray, shape (P, P)
        ``H - Q`` on the (R, sigma) entries of every shell: the negative Hessian of the
        log-likelihood there (the observed information), H elsewhere. Where some electrons sit in
        a shell's tail under the current widths (a too narrow start), the Fisher matrix's
        ``c / mu^2`` weighting overstates the information on R and sigma and the ascent crawls;
        the observed information takes the Newton step (the ten-shell fit of
        ``benchmarks/bench_many_shells.py``: 16 Fisher-scoring iterations, 7 so; :func:`maximise`
        says where it is used).
    """
    M = H.copy()
    for j in range(layout.n_shells):
        r, s = layout.R(j), layout.sigma(j)
        M[r, r] -= geo[j, 0]
        M[r, s] -= geo[j, 1]
        M[s, r] -= geo[j, 1]
        M[s, s] -= geo[j, 2]
    try:
        np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return H
    return M


class Ascent(NamedTuple):
    """What :func:`maximise` reached (a tuple, so ``theta, f, g, H, n_iter, converged, active =``
    unpacks it too)."""

    theta: np.ndarray
    f: float
    g: np.ndarray
    H: np.ndarray
    n_iter: int
    converged: bool
    active: bool


def maximise(obj, theta, S, max_iter=60, *, tol=1e-4, log=None):
    """Fisher-scoring / Gauss-Newton ascent with physicality constraints and backtracking.

    Every iteration takes the Fisher-scoring step (a QP, :func:`qp_step`), limited to a few widths
    in R and sigma and backtracked on the objective. Newton steps on each shell's R and sigma
    (``obj.newton``, :func:`newton_matrix`: the observed information there) replace it only in
    the quadratic basin and only where they are safe:

    - at the start, and after a step taken in full (no backtracking) that needed no more than
      :data:`NEWTON_LIMIT` times the step limits: the derivatives with the Newton matrix are asked
      for only there;
    - the Newton matrix is positive definite (else :func:`newton_matrix` returns H: Fisher);
    - the Newton step lies within :data:`NEWTON_LIMIT` times the step limits (a trust region; it
      is scaled into them, so a width stays above half its value) and keeps every shell's weight
      above :data:`NEWTON_KEEP_WEIGHT` of its value;
    - the objective rises enough at the full Newton step; if it does not (the quadratic model
      failed), the Fisher step is taken from the same point instead, and Newton steps wait for the
      next full Fisher step within the limits.

    From a start far off (a shell a whole width or more away, too wide or too narrow) this is
    Fisher scoring, which walks such a shell back; near the optimum the Newton steps cut the
    iterations where the Fisher matrix overstates the information on R and sigma (electrons in a
    too narrow shell's tails).

    Parameters
    ----------
    obj : Objective
    theta : ndarray
        Feasible start.
    S : int
        Number of shells.
    max_iter : int
    tol : float
        Convergence when the decrement g.d falls below it with a full step.
    log : callable, optional
        Receives one progress line per iteration.

    Returns
    -------
    Ascent
        The parameters, objective, gradient and Fisher matrix at the end, the iterations, whether
        it converged and whether a constraint was active in the last step.
    """
    layout = ParamLayout.of(theta, S)
    extra = [[] for _ in range(S)]
    n_iter = 0
    converged = False
    active = False
    f, g, H, M = _derivs(obj, theta, True)
    if not np.isfinite(f):
        raise InputError("the start values give a zero model density at some data point")
    for n_iter in range(1, max_iter + 1):
        C = constraint_matrix(theta, S, extra)
        how = "fisher"
        if M is not H:
            d, active = qp_step(g, M, theta, C)
            lim = _limit(d, theta, layout)
            d = _newton_safe(d, theta, layout)
            if d is not None:
                dec = float(g @ d)
                cand, alpha = _trusted(obj, theta, d, f, dec - 0.5 * float(d @ M @ d)), 1.0
                how = "newton" if cand is not None else "fisher (newton failed)"
        if how != "newton":
            d, active = qp_step(g, H, theta, C)
            lim = _limit(d, theta, layout)  # keep geometry steps within a few widths
            d = d / lim
            dec = float(g @ d)
            cand, _, alpha = _backtrack(obj, theta, d, f, dec)
        if log is not None:
            _, R0, s0 = layout.unpack(theta)
            log(f"iter {n_iter}: f = {f:.6f}, decrement = {dec:.3g}, step = {alpha:g}, limit = {lim:.3g}, "
                f"{how}, constrained = {active}, R = {R0}, s = {s0}, b = {theta[-1]:.3g}")
        if cand is None:
            converged = dec < 10 * tol
            break
        theta = cand
        # the basin: a full step within NEWTON_LIMIT times the limits (Newton steps are asked for only then)
        f, g, H, M = _derivs(obj, theta, alpha == 1.0 and lim <= NEWTON_LIMIT and how != "fisher (newton failed)")
        # at a full small step, cutting planes for shells that dip below zero between grid points
        if dec < tol and alpha == 1.0 and not _add_cutting_planes(theta, layout, extra):
            converged = True
            break
    return Ascent(theta, f, g, H, n_iter, converged, active)


#: A Newton step is taken when the objective rises by at least this fraction of what its quadratic model predicts.
NEWTON_RATIO = 0.25


def _trusted(obj, theta, d, f, predicted):
    """theta + d if the objective rises there by :data:`NEWTON_RATIO` of `predicted` (up to rounding), else None."""
    cand = theta + d
    fc = obj.value(cand)
    if np.isfinite(fc) and fc - f >= NEWTON_RATIO * predicted - 1e-9 * abs(f):
        return cand
    return None


def fit_poisson(method, make_points, counts, theta, S, *, max_iter, log, n_data, diagnostics, centre=(0.0, 0.0),
                free_centre=False, n_frames=None, shell_search=None, max_rounds=MAX_ROUNDS):
    """Maximise the extended Poisson likelihood of grouped counts; FitResult with observed-information SEs.

    With a free centre the fit alternates the fit of theta at a fixed centre and Newton steps of
    the centre (:func:`sevi_lib.fit.centre.alternate`) until the centre moves less than
    :func:`~sevi_lib.fit.centre.tolerance` (0.001 px, or a twentieth of its SE if larger).

    Parameters
    ----------
    method : str
        Name recorded in the result.
    make_points : callable
        ``(x0, z0) -> sevi_lib.fit.points.PointSet`` of the data taken about that centre.
    counts : ndarray, shape (n_groups,)
    theta : ndarray
        Start.
    S, max_iter, log
        As in :func:`maximise` (`max_iter` per fit of theta).
    n_data : float
        Electrons (or counts) fitted.
    diagnostics : dict
    centre : array_like, shape (2,)
        The (start) centre.
    free_centre : bool
    n_frames : int, optional
        Frames the data came from (the background is also reported per frame).
    shell_search : dict, optional
        Recorded in the result.
    max_rounds : int
        Most rounds of the alternation.

    Returns
    -------
    sevi_lib.fit.result.FitResult
    """
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    layout = ParamLayout.of(theta, S)
    c = np.asarray(centre, dtype=np.float64).copy()
    pts = make_points(c)

    def total(theta):
        a, _, _ = layout.unpack(theta)
        return 2.0 * a[:, 0].sum() + SCREEN_AREA * theta[-1]

    def dtotal(P):
        d = np.zeros(P)
        for j in range(S):
            d[layout.offset(j)] = 2.0
        d[layout.background] = SCREEN_AREA
        return d

    def value(th):
        _, R, s = layout.unpack(th)
        if np.any(s <= 0) or np.any(R <= 0):
            return -np.inf
        return pts.loglike(th, counts, S, want=0)[0] - total(th)

    def derivs(th):
        ll, g, H = pts.loglike(th, counts, S, want=2)
        return ll - total(th), g - dtotal(len(th)), H

    def newton(th):
        geo = np.empty((S, 3))
        ll, g, H = pts.loglike(th, counts, S, want=2, geometry_curvature=geo)
        return ll - total(th), g - dtotal(len(th)), H, newton_matrix(H, geo, layout)

    obj = Objective(value, derivs, newton)
    # a free centre: a rough theta first (the start centre may be a few px off), then the
    # alternation of Newton steps of the centre at fixed theta and the fit of theta about it
    theta, f, _, H, n_iter, conv, active = maximise(obj, theta, S, min(max_iter, 5) if free_centre else max_iter,
                                                    log=log)
    info_c = None
    rounds = 0
    if free_centre:
        def update(c):
            nonlocal pts
            _, _, s_now = layout.unpack(theta)
            c, pts, info, _, ok = refine_centre(make_points, pts, c, theta, counts, S, max_step=0.5 * s_now.min())
            return c, info, ok

        def refit(c):
            nonlocal theta, f, H, n_iter, conv, active
            theta, f, _, H, it, conv, active = maximise(obj, theta, S, max_iter, log=log)
            n_iter += it

        c, info_c, rounds, conv_c = alternate(c, update, refit, first_rough=True, max_rounds=max_rounds, log=log)
        conv = conv and conv_c
    if pts.fisher_every() > 1:  # the iterations' Fisher matrix was a sample's: the exact one for the errors
        H = pts.loglike(theta, counts, S, want=2, exact=True)[2]
    mu = np.empty(pts.n_groups)
    pts.loglike(theta, counts, S, want=0, mu_out=mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(counts > 0, counts / mu, 0.0)
    Q = pts.curvature(theta, w, S)
    info = H - Q
    diagnostics = dict(diagnostics, centre_rounds=rounds)
    result = make_result(method, theta, f, info, S, n_iter=n_iter, converged=conv, active=active, n_data=n_data,
                         diagnostics=diagnostics,
                         centre=c, centre_info=info_c, n_frames=n_frames, shell_search=shell_search)
    if log is not None:
        for line in result.summary_lines():
            if line.startswith("warning:"):
                log(line)
    return result
