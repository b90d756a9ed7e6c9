"""Maximum-likelihood fit of the projected two-shell model.

The expected screen density of electrons is

    lambda(x, z) = sum_j sum_{l=0}^{N} a_lj F_2l(x, z; R_j, sigma_j),

(:mod:`sevi_lib.fit.projection`), with a_0j = n_j / 2 (n_j the expected number of electrons of shell
j) and a_lj = n_j beta_2l,j. Three data kinds are fitted with the same model:

``unbinned``
    electron positions (extended Poisson likelihood ``sum_e log lambda(x_e) - sum_j n_j``);
``binned``
    a count map in the ``numpy.histogram2d`` convention (Poisson over pixels; each pixel's
    expectation integrates lambda with 2 x 2 Gauss points);
``sum``
    the sum of raw camera frames (expected sum = pixel expectations convolved with the mean
    rendered spot, :func:`mean_spot`; weighted least squares with the compound-Poisson variance).

For fixed geometry the likelihood is concave in the a's (lambda is linear in them). The fit takes
joint Fisher-scoring steps in all parameters (exact Hessian for the a-block), solves each step
as a small quadratic programme that keeps every shell's angular density non-negative
(I_j(c) >= 0 on a grid of c plus the exact minimisers found by
:func:`sevi_lib.core.angular.min_density`, added as cutting planes), and backtracks on the true
objective. Start values come from the data: the two most prominent peaks of the radial profile.
Standard errors come from the observed information (second derivatives included).
"""

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from numpy.polynomial import legendre as npleg
from scipy import optimize, signal

from sevi_lib.core.angular import distance_weights, legendre_even, min_density
from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT
from sevi_lib.fit import projection

METHODS = ("unbinned", "binned", "sum")

_C_GRID = np.cos(np.linspace(0.0, 0.5 * np.pi, 257))  # constraint points in [0, 1] (I is even)


# ------------------------------------------------------------------------------- numba kernels
@njit(cache=True, inline="always")
def _spl(tab, col, t):
    return ((tab[col, 0] * t + tab[col, 1]) * t + tab[col, 2]) * t + tab[col, 3]


@njit(cache=True)
def _group_jacobian(g, K, idx, t, pm, scale, full, cont, imax, li, mi, n1, J):
    """d mu_g / d theta for group g into J (layout per shell: a_0..a_n, R, sigma)."""
    S = full.shape[0]
    npairs = li.shape[0]
    for k in range(J.shape[0]):
        J[k] = 0.0
    for q in range(K):
        e = g * K + q
        i = idx[e]
        if i < 0:
            continue
        tt = t[e]
        for j in range(S):
            if i > imax[j]:
                continue
            off = j * (n1 + 2)
            tab = full[j, i]
            for p in range(npairs):
                J[off + li[p]] += _spl(tab, p, tt) * pm[e, mi[p]]
            ctab = cont[j, i]
            for m in range(n1):
                J[off + n1] += _spl(ctab, n1 + m, tt) * pm[e, m]
                J[off + n1 + 1] += _spl(ctab, 2 * n1 + m, tt) * pm[e, m]
    sc = scale[g]
    P = J.shape[0]
    for k in range(P - 1):
        J[k] *= sc
    J[P - 1] = K * sc  # uniform background


@njit(cache=True)
def _loglike_kernel(K, idx, t, pm, counts, scale, full, cont, imax, li, mi, theta, want, grad, hess, mu_out):
    """sum_g counts_g log mu_g (and its gradient / Fisher matrix); -inf if some mu_g <= 0."""
    S = full.shape[0]
    n1 = (theta.shape[0] - 1) // S - 2
    P = theta.shape[0]
    J = np.empty(P)
    ll = 0.0
    for k in range(P):
        grad[k] = 0.0
        if want >= 2:
            for k2 in range(P):
                hess[k, k2] = 0.0
    for g in range(counts.shape[0]):
        _group_jacobian(g, K, idx, t, pm, scale, full, cont, imax, li, mi, n1, J)
        mu = 0.0
        for j in range(S):
            off = j * (n1 + 2)
            for l in range(n1):
                mu += theta[off + l] * J[off + l]
        mu += theta[P - 1] * J[P - 1]
        if mu_out.shape[0] > 0:
            mu_out[g] = mu
        c = counts[g]
        if c == 0.0:
            continue
        if not mu > 0.0:
            return -np.inf
        ll += c * math.log(mu)
        if want >= 1:
            w = c / mu
            for k in range(P):
                grad[k] += w * J[k]
            if want >= 2:
                w2 = w / mu
                for k in range(P):
                    if J[k] == 0.0:
                        continue
                    v = w2 * J[k]
                    for k2 in range(k, P):
                        hess[k, k2] += v * J[k2]
    if want >= 2:
        for k in range(P):
            for k2 in range(k):
                hess[k, k2] = hess[k2, k]
    return ll


@njit(cache=True)
def _jacobian_kernel(K, idx, t, pm, scale, full, cont, imax, li, mi, theta, out):
    """Jacobian d mu_g / d theta of every group into out (n_groups, P)."""
    S = full.shape[0]
    n1 = (theta.shape[0] - 1) // S - 2
    for g in range(out.shape[0]):
        _group_jacobian(g, K, idx, t, pm, scale, full, cont, imax, li, mi, n1, out[g])


@njit(cache=True)
def _curvature_kernel(K, idx, t, pm, weight, scale, fulld, contd, imax, li, mi, theta, Q):
    """Q = sum_g weight_g d2 mu_g / d theta2 (the second-derivative part of the information)."""
    S = fulld.shape[0]
    n1 = (theta.shape[0] - 1) // S - 2
    npairs = li.shape[0]
    dR = np.empty(n1)
    ds = np.empty(n1)
    sec = np.empty(3)
    for g in range(weight.shape[0]):
        wg = weight[g] * scale[g]
        if wg == 0.0:
            continue
        for j in range(S):
            off = j * (n1 + 2)
            for l in range(n1):
                dR[l] = 0.0
                ds[l] = 0.0
            sec[0] = 0.0
            sec[1] = 0.0
            sec[2] = 0.0
            hit = False
            for q in range(K):
                e = g * K + q
                i = idx[e]
                if i < 0 or i > imax[j]:
                    continue
                hit = True
                tt = t[e]
                tab = fulld[j, i]
                for p in range(npairs):
                    pmv = pm[e, mi[p]]
                    dR[li[p]] += _spl(tab, npairs + p, tt) * pmv
                    ds[li[p]] += _spl(tab, 2 * npairs + p, tt) * pmv
                ctab = contd[j, i]
                for m in range(n1):
                    pmv = pm[e, m]
                    sec[0] += _spl(ctab, 3 * n1 + m, tt) * pmv
                    sec[1] += _spl(ctab, 4 * n1 + m, tt) * pmv
                    sec[2] += _spl(ctab, 5 * n1 + m, tt) * pmv
            if not hit:
                continue
            for l in range(n1):
                Q[off + l, off + n1] += wg * dR[l]
                Q[off + l, off + n1 + 1] += wg * ds[l]
            Q[off + n1, off + n1] += wg * sec[0]
            Q[off + n1, off + n1 + 1] += wg * sec[1]
            Q[off + n1 + 1, off + n1 + 1] += wg * sec[2]
    P = theta.shape[0]
    for k in range(P):
        for k2 in range(k):
            Q[k, k2] = Q[k2, k]


# ------------------------------------------------------------------------------------ the model
class PointSet:
    """Evaluation points of the model, grouped (one group per electron or per pixel).

    Parameters
    ----------
    x, z : ndarray, shape (n_groups * K,)
        Screen coordinates of the nodes, group by group.
    K : int
        Nodes per group.
    scale : ndarray, shape (n_groups,)
        Group expectation = scale * sum of lambda over its nodes.
    n : int
        Highest Legendre order index.
    h : float
        Radial table step.
    """

    def __init__(self, x, z, K, scale, n, h):
        x = np.ascontiguousarray(x, dtype=np.float64)
        z = np.ascontiguousarray(z, dtype=np.float64)
        rho = np.hypot(x, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.clip(np.where(rho > 0, z / np.where(rho > 0, rho, 1.0), 0.0), -1.0, 1.0)
        self.K = int(K)
        self.n = int(n)
        self.h = float(h)
        self.rho_max = float(rho.max(initial=0.0)) + 2 * h
        self.idx = np.minimum((rho / h).astype(np.int64), int(self.rho_max / h))
        self.t = rho - self.idx * h
        self.pm = np.ascontiguousarray(
            np.concatenate([np.ones((len(c), 1)), legendre_even(c, n)], axis=1)
        )
        self.scale = np.ascontiguousarray(scale, dtype=np.float64)
        self.n_groups = len(self.scale)
        self.li, self.mi = [np.ascontiguousarray(a, dtype=np.int64) for a in projection.pair_index(n)]
        if len(x) != self.n_groups * self.K:
            raise ValueError("PointSet: len(x) must be n_groups * K")

    def _tables(self, theta, S, second=False):
        n1 = self.n + 1
        th = theta[:-1].reshape(S, n1 + 2)
        full, cont, imax = [], [], np.empty(S, dtype=np.int64)
        for j in range(S):
            R, s = th[j, n1], th[j, n1 + 1]
            tab, ctab = projection.radial_spline(R, s, self.n, self.h, self.rho_max, derivatives=1 if second else 0,
                                                 contract=th[j, :n1], contract_derivatives=2 if second else 1)
            full.append(np.ascontiguousarray(np.swapaxes(tab, 1, 2)))
            cont.append(np.ascontiguousarray(np.swapaxes(ctab, 1, 2)))
            imax[j] = min(int((R + projection.WINDOW * s) / self.h) + 1, tab.shape[0] - 1)
        return np.stack(full), np.stack(cont), imax

    def loglike(self, theta, counts, S, want=0, mu_out=None):
        """sum_g counts_g log mu_g with gradient and Fisher matrix (want = 0, 1, 2)."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        full, cont, imax = self._tables(theta, S)
        P = len(theta)
        grad = np.zeros(P)
        hess = np.zeros((P, P))
        mu = np.empty(0) if mu_out is None else mu_out
        ll = _loglike_kernel(self.K, self.idx, self.t, self.pm, counts, self.scale, full, cont, imax,
                             self.li, self.mi, theta, want, grad, hess, mu)
        return ll, grad, hess

    def jacobian(self, theta, S):
        """d mu_g / d theta for every group, shape (n_groups, P); mu = J[:, a-columns] @ a."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        full, cont, imax = self._tables(theta, S)
        out = np.empty((self.n_groups, len(theta)))
        _jacobian_kernel(self.K, self.idx, self.t, self.pm, self.scale, full, cont, imax, self.li, self.mi,
                         theta, out)
        return out

    def curvature(self, theta, weight, S):
        """sum_g weight_g d2 mu_g / d theta2, shape (P, P)."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        fulld, contd, imax = self._tables(theta, S, second=True)
        Q = np.zeros((len(theta), len(theta)))
        _curvature_kernel(self.K, self.idx, self.t, self.pm, np.ascontiguousarray(weight, dtype=np.float64),
                          self.scale, fulld, contd, imax, self.li, self.mi, theta, Q)
        return Q


# ------------------------------------------------------------------------------ start values
def initial_geometry(rho, weights=None, n_shells=2):
    """Start radii and widths from the most prominent peaks of the radial profile.

    Parameters
    ----------
    rho : ndarray
        Screen radii of electrons (or pixel centres).
    weights : ndarray, optional
        Weight of each radius (pixel counts).
    n_shells : int

    Returns
    -------
    R, sigma_R : ndarray, shape (n_shells,)
        Sorted by radius.

    Raises
    ------
    InputError
        If fewer than `n_shells` peaks are found.
    """
    bw = 1.0 / 1024
    hist, edges = np.histogram(rho, bins=np.arange(0.0, 1.5 + bw, bw), weights=weights)
    # the projected shell density per unit rho is rim-dominated; smooth with a 2-bin Gaussian
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    smooth = np.convolve(hist, k / k.sum(), mode="same")
    peaks, props = signal.find_peaks(smooth, prominence=0.0)
    if len(peaks) < n_shells:
        raise InputError(f"radial profile shows {len(peaks)} peak(s), {n_shells} shells expected")
    best = np.sort(peaks[np.argsort(props["prominences"])[::-1][:n_shells]])
    width = signal.peak_widths(smooth, best, rel_height=0.5)[0] * bw
    centres = 0.5 * (edges[:-1] + edges[1:])
    R = centres[best] + 0.5 * bw
    sigma = np.clip(width / 2.5, 2 * bw, 0.05)
    return R, sigma


# ------------------------------------------------------------------------------ optimisation
def _pack(a, R, s, b):
    return np.concatenate([np.concatenate([a[j], [R[j], s[j]]]) for j in range(len(R))] + [[b]])


def _unpack(theta, S):
    th = theta[:-1].reshape(S, -1)
    return th[:, :-2], th[:, -2], th[:, -1]


def _constraint_matrix(theta, S, extra):
    """Rows A with A @ theta >= 0 <=> every shell's density >= 0 at the constraint points."""
    n1 = (theta.size - 1) // S - 2
    P = theta.size
    bg = np.zeros((1, P))
    bg[0, -1] = 1.0  # background >= 0
    rows = [bg]
    for j in range(S):
        cs = np.concatenate([_C_GRID, np.abs(np.asarray(extra[j], dtype=np.float64))])
        basis = np.concatenate([np.ones((len(cs), 1)), legendre_even(cs, n1 - 1)], axis=1)
        A = np.zeros((len(cs), P))
        A[:, j * (n1 + 2): j * (n1 + 2) + n1] = basis
        rows.append(A)
    return np.concatenate(rows)


def _qp_step(g, H, theta, A):
    """Maximise g.d - d.H.d/2 subject to A (theta + d) >= 0. Returns (d, active)."""
    P = len(g)
    Hs = H + np.diag(1e-12 * np.diag(H) + 1e-300)
    d = np.linalg.solve(Hs, g)
    scale = np.maximum(np.abs(A) @ np.abs(theta), 1e-300)
    if np.all(A @ (theta + d) >= -1e-12 * scale):
        return d, False
    L = np.linalg.cholesky(Hs)
    from scipy.linalg import solve_triangular

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
class _Objective:
    """Objective f(theta) to maximise with gradient and (approximate) Hessian."""

    value: callable  # theta -> float
    derivs: callable  # theta -> (f, grad, hess)


def _maximise(obj, theta, S, max_iter=60, tol=1e-4, log=None):
    """Fisher-scoring / Gauss-Newton ascent with physicality constraints and backtracking."""
    extra = [[] for _ in range(S)]
    n_iter = 0
    converged = False
    active = False
    f, g, H = obj.derivs(theta)
    if not np.isfinite(f):
        raise InputError("the start values give a zero model density at some data point")
    for n_iter in range(1, max_iter + 1):
        A = _constraint_matrix(theta, S, extra)
        d, active = _qp_step(g, H, theta, A)
        # keep geometry steps within a few widths
        a, R, s = _unpack(d, S)
        _, R0, s0 = _unpack(theta, S)
        lim = np.max(np.concatenate([np.abs(R) / (3 * s0), np.abs(s) / (0.5 * s0), [1.0]]))
        d = d / lim
        dec = float(g @ d)
        alpha = 1.0
        while True:
            cand = theta + alpha * d
            fc = obj.value(cand)
            if np.isfinite(fc) and fc >= f + 1e-4 * alpha * dec - 1e-9 * abs(f):
                break
            alpha *= 0.5
            if alpha < 1e-6:
                fc = None
                break
        if log is not None:
            log(f"iter {n_iter}: f = {f:.6f}, decrement = {dec:.3g}, step = {alpha:g}, limit = {lim:.3g}, "
                f"constrained = {active}, R = {R0}, s = {s0}, b = {theta[-1]:.3g}")
        if fc is None:
            converged = dec < 10 * tol
            break
        theta = cand
        f, g, H = obj.derivs(theta)
        if dec < tol and alpha == 1.0:
            # cutting planes: add exact minimisers of shells that dip below zero between grid points
            added = False
            av, _, _ = _unpack(theta, S)
            for j in range(S):
                vmin, cmin = min_density(av[j, 1:] / (2 * av[j, 0]))
                if vmin < -1e-9:
                    extra[j].append(cmin)
                    added = True
            if not added:
                converged = True
                break
    return theta, f, g, H, n_iter, converged, active


# ----------------------------------------------------------------------------------- results
@dataclass
class FitResult:
    """Fitted shells with uncertainties and diagnostics.

    Attributes
    ----------
    method : str
        ``unbinned``, ``binned`` or ``sum``.
    R, sigma_R, weights : ndarray, shape (S,)
        Radii, radial widths and expected electron numbers (for ``sum``: in units of electrons
        only if the spot kernel is absolute, which it is).
    beta : ndarray, shape (S, N)
    se_R, se_sigma_R, se_weights : ndarray, shape (S,)
    se_beta : ndarray, shape (S, N)
        Standard errors from the observed information (sandwich for ``sum``).
    background : float
        Uniform background density (per unit screen area).
    cov : ndarray
        Covariance of (weights, beta_2..beta_2N, R, sigma_R) per shell, then background.
    objective : float
        Log-likelihood (or -chi^2 / 2 for ``sum``) at the optimum.
    n_iter : int
    converged : bool
    constraint_active : ndarray of bool, shape (S,)
        Whether I_j >= 0 binds (the density touches zero somewhere).
    min_density : ndarray, shape (S,)
        min over c of each fitted I_j.
    n_data : float
        Electrons (or counts, or spot-equivalents for ``sum``) fitted.
    floor : ndarray, shape (S,)
        Cramer-Rao floor of the per-shell distance if cos(theta) of all n_j electrons were known.
    expected_distance : ndarray, shape (S,)
        sqrt(sum_i 2/(4i+1) Var(beta_2i)): the per-shell distance this fit expects.
    diagnostics : dict
    """

    method: str
    R: np.ndarray
    sigma_R: np.ndarray
    weights: np.ndarray
    beta: np.ndarray
    se_R: np.ndarray
    se_sigma_R: np.ndarray
    se_weights: np.ndarray
    se_beta: np.ndarray
    background: float
    cov: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    constraint_active: np.ndarray
    min_density: np.ndarray
    n_data: float
    floor: np.ndarray
    expected_distance: np.ndarray
    diagnostics: dict = field(default_factory=dict)

    def to_dict(self):
        """JSON-ready dictionary (lists and numbers)."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                out[k] = v.tolist()
            elif isinstance(v, (np.floating, np.integer, np.bool_)):
                out[k] = v.item()
            else:
                out[k] = v
        return out

    def density_band(self, c, j):
        """Fitted angular density of shell j at `c` and its standard error (delta method)."""
        n = self.beta.shape[1]
        basis = legendre_even(np.asarray(c, dtype=np.float64), n)
        blk = slice(j * (n + 3) + 1, j * (n + 3) + 1 + n)
        cov = self.cov[blk, blk]
        value = 0.5 + basis @ self.beta[j]
        se = np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", basis, cov, basis), 0.0))
        return value, se


def known_c_floor(beta, n_electrons, n_nodes=400):
    """Per-shell distance floor if the cos(theta) of `n_electrons` electrons were known.

    sqrt(trace(W F^-1)) with Fisher matrix F_kl = n int P_k P_l / I dc and W = diag(2/(4i+1));
    equal to sqrt(6 / n) for an isotropic shell and N = 12.

    Parameters
    ----------
    beta : ndarray, shape (N,)
    n_electrons : float

    Returns
    -------
    float
    """
    x, w = npleg.leggauss(n_nodes)
    n = len(beta)
    P = legendre_even(x, n)
    dens = np.maximum(0.5 + P @ beta, 1e-9)
    F = n_electrons * np.einsum("q,qk,ql->kl", w / dens, P, P)
    try:
        cov = np.linalg.inv(F)
    except np.linalg.LinAlgError:
        return float("nan")
    return float(np.sqrt(max(np.sum(distance_weights(n) * np.diag(cov)), 0.0)))


def _user_covariance(theta, cov_theta, S):
    """Delta method from (a_0..a_n, R, s per shell, b) to (n_j, beta..., R, s per shell, b)."""
    P = len(theta)
    n1 = (P - 1) // S - 2
    T = np.eye(P)
    for j in range(S):
        o = j * (n1 + 2)
        a0 = theta[o]
        T[o, o] = 2.0
        for l in range(1, n1):
            T[o + l, o + l] = 1.0 / (2 * a0)
            T[o + l, o] = -theta[o + l] / (2 * a0 * a0)
    return T @ cov_theta @ T.T


def _result(method, theta, f, info, S, n_iter, converged, active, n_data, cov=None, diagnostics=None):
    P = len(theta)
    n1 = (P - 1) // S - 2
    a, R, s = _unpack(theta, S)
    if cov is None:
        try:
            cov = np.linalg.inv(info)
            if np.any(np.diag(cov) < 0):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            cov = np.linalg.pinv(info)
    ucov = _user_covariance(theta, cov, S)
    se = np.sqrt(np.maximum(np.diag(ucov), 0.0))
    weights = 2 * a[:, 0]
    beta = a[:, 1:] / (2 * a[:, :1])
    mins = np.array([min_density(b)[0] for b in beta])
    blk = se[:-1].reshape(S, n1 + 2)
    wts = distance_weights(n1 - 1)
    exp_d = np.array([np.sqrt(np.sum(wts * blk[j, 1:n1] ** 2)) for j in range(S)])
    floor = np.array([known_c_floor(beta[j], weights[j]) for j in range(S)])
    return FitResult(
        method=method, R=R.copy(), sigma_R=s.copy(), weights=weights, beta=beta,
        se_R=blk[:, n1].copy(), se_sigma_R=blk[:, n1 + 1].copy(), se_weights=blk[:, 0].copy(),
        se_beta=blk[:, 1:n1].copy(), background=float(theta[-1]), cov=ucov, objective=float(f),
        n_iter=int(n_iter), converged=bool(converged),
        constraint_active=np.array([bool(active) and m < 1e-6 for m in mins]) | (mins < 1e-9),
        min_density=mins, n_data=float(n_data), floor=floor, expected_distance=exp_d,
        diagnostics=dict(diagnostics or {}),
    )


def _start(rho, weights, S, n, total, R0=None, sigma0=None):
    if R0 is None:
        R0, s0 = initial_geometry(rho, weights, S)
    else:
        R0 = np.asarray(R0, dtype=np.float64)
        s0 = np.asarray(sigma0 if sigma0 is not None else np.full(S, 0.008), dtype=np.float64)
    a = np.zeros((S, n + 1))
    a[:, 0] = total / (2.0 * S)
    outside = np.sum(weights[rho > R0.max() + 12 * s0.max()]) if weights is not None else \
        np.count_nonzero(rho > R0.max() + 12 * s0.max())
    b = (outside + 1.0) / 4.0
    return _pack(a, R0, s0, b), R0, s0


def _table_step(s0, h):
    if h is not None:
        return float(h)
    return float(np.clip(np.min(s0) / 24.0, 1.0 / 16384, 1.0 / 2048))


def _poisson_fit(method, pts, counts, theta, S, max_iter, log, n_data, diagnostics):
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    area = 4.0  # the screen [-1, 1]^2

    def total(theta):
        a, _, _ = _unpack(theta, S)
        return 2.0 * a[:, 0].sum() + area * theta[-1]

    def dtotal(P):
        d = np.zeros(P)
        n1 = (P - 1) // S - 2
        for j in range(S):
            d[j * (n1 + 2)] = 2.0
        d[-1] = area
        return d

    def value(th):
        _, R, s = _unpack(th, S)
        if np.any(s <= 0) or np.any(R <= 0):
            return -np.inf
        return pts.loglike(th, counts, S, want=0)[0] - total(th)

    def derivs(th):
        ll, g, H = pts.loglike(th, counts, S, want=2)
        return ll - total(th), g - dtotal(len(th)), H

    theta, f, g, H, n_iter, conv, active = _maximise(_Objective(value, derivs), theta, S, max_iter, log=log)
    mu = np.empty(pts.n_groups)
    pts.loglike(theta, counts, S, want=0, mu_out=mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(counts > 0, counts / mu, 0.0)
    Q = pts.curvature(theta, w, S)
    info = H - Q
    return _result(method, theta, f, info, S, n_iter, conv, active, n_data, diagnostics=diagnostics)


def fit_electrons(x, z, n_beta=12, n_shells=2, R0=None, sigma0=None, h=None, max_iter=60, log=None):
    """Unbinned extended-likelihood fit of electron positions.

    Parameters
    ----------
    x, z : array_like
        Screen coordinates of detected electrons.
    n_beta : int
        Number of fitted beta's per shell (beta_2 .. beta_2N).
    n_shells : int
    R0, sigma0 : array_like, optional
        Start geometry; by default from the radial profile's peaks.
    h : float, optional
        Radial table step (default: a 24th of the smallest start width).
    max_iter : int
    log : callable, optional
        Receives one progress line per iteration.

    Returns
    -------
    FitResult
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64).ravel()
    if x.shape != z.shape or x.size < 10 * n_shells * (n_beta + 3):
        raise InputError(f"too few electrons to fit: {x.size}")
    rho = np.hypot(x, z)
    theta, R0, s0 = _start(rho, None, n_shells, n_beta, float(x.size), R0, sigma0)
    pts = PointSet(x, z, 1, np.ones(x.size), n_beta, _table_step(s0, h))
    return _poisson_fit("unbinned", pts, np.ones(x.size), theta, n_shells, max_iter, log, x.size,
                        {"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": pts.h})


_G2 = np.array([-0.5, 0.5]) / np.sqrt(3.0)


def pixel_nodes(ix, iz):
    """2 x 2 Gauss-Legendre nodes of pixels (ix, iz) in screen units, pixel by pixel.

    Parameters
    ----------
    ix, iz : ndarray of int
        Pixel indices (``Image[ix, iz]``).

    Returns
    -------
    x, z : ndarray, shape (4 * len(ix),)
    """
    hp = 1.0 / PIX_PER_UNIT
    xc = -1.0 + (np.asarray(ix) + 0.5) * hp
    zc = -1.0 + (np.asarray(iz) + 0.5) * hp
    ox = np.repeat(_G2, 2) * hp
    oz = np.tile(_G2, 2) * hp
    return (xc[:, None] + ox[None, :]).ravel(), (zc[:, None] + oz[None, :]).ravel()


def _check_map(image, what):
    image = np.asarray(image)
    if image.shape != (N_PIX, N_PIX):
        raise InputError(f"{what}: expected a {N_PIX} x {N_PIX} map, got shape {image.shape}")
    if not np.all(np.isfinite(image)) or np.any(image < 0):
        raise InputError(f"{what}: map holds negative or non-finite values")
    return image.astype(np.float64)


def fit_count_map(image, n_beta=12, n_shells=2, R0=None, sigma0=None, h=None, max_iter=60, log=None,
                  what="count map"):
    """Binned Poisson fit of a count map (``numpy.histogram2d(x, z, bins=1024, range=[[-1,1],[-1,1]])``).

    Parameters
    ----------
    image : ndarray, shape (1024, 1024)
        Counts, ``Image[ix, iz]``.
    n_beta, n_shells, R0, sigma0, h, max_iter, log
        As in :func:`fit_electrons`.
    what : str
        Name used in error messages.

    Returns
    -------
    FitResult
    """
    image = _check_map(image, what)
    ix, iz = np.nonzero(image)
    counts = image[ix, iz]
    if counts.sum() < 10 * n_shells * (n_beta + 3):
        raise InputError(f"{what}: too few counts to fit ({counts.sum():g})")
    hp = 1.0 / PIX_PER_UNIT
    rho = np.hypot(-1.0 + (ix + 0.5) * hp, -1.0 + (iz + 0.5) * hp)
    theta, R0, s0 = _start(rho, counts, n_shells, n_beta, float(counts.sum()), R0, sigma0)
    x, z = pixel_nodes(ix, iz)
    pts = PointSet(x, z, 4, np.full(len(ix), hp * hp / 4.0), n_beta, _table_step(s0, h))
    return _poisson_fit("binned", pts, counts, theta, n_shells, max_iter, log, counts.sum(),
                        {"R_start": R0.tolist(), "sigma_start": s0.tolist(), "table_step": pts.h,
                         "pixels": int(len(ix))})


# ------------------------------------------------------------------------ raw-frame-sum variant
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


def mean_spot(n_spots=40000, seed=12345, half_width=32):
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
    hp = 1.0 / PIX_PER_UNIT
    while done < n_spots:
        k = min(per_frame, n_spots - done)
        A, sig, rho = draw_spot_params(k, rng)
        frame = render_frame(-1.0 + (gi[:k] + 0.5) * hp, -1.0 + (gj[:k] + 0.5) * hp, A, sig, rho)
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


def _fold(img):
    """Quadrant fold: pixel i pairs with 1023 - i on both axes; returns [512:, 512:] sums."""
    h = N_PIX // 2
    return img[h:, h:] + img[h - 1::-1, h:] + img[h:, h - 1::-1] + img[h - 1::-1, h - 1::-1]


def _unfold(q):
    h = N_PIX // 2
    out = np.empty((N_PIX, N_PIX) + q.shape[2:])
    out[h:, h:] = q
    out[h - 1::-1, h:] = q
    out[h:, h - 1::-1] = q
    out[h - 1::-1, h - 1::-1] = q
    return out


class _Convolver:
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


def fit_frame_sum(intensity_sum, kernel=None, n_beta=12, n_shells=2, R0=None, sigma0=None, h=None,
                  mask=None, max_iter=40, n_reweight=2, log=None, what="frame sum"):
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
        As in :func:`fit_electrons`.
    mask : ndarray of bool, shape (1024, 1024), optional
        Pixels to leave out (e.g. pixels that saturated in some frame); the mask is folded
        (a folded pixel is dropped if any of its four mirror pixels is masked).
    n_reweight : int
    what : str

    Returns
    -------
    FitResult
    """
    img = _check_map(intensity_sum, what)
    if kernel is None:
        kernel = mean_spot()
    conv = _Convolver(kernel.mean)
    conv2 = _Convolver(kernel.square)
    data = _fold(img)
    keep = np.ones_like(data, dtype=bool) if mask is None else ~(_fold(np.asarray(mask, dtype=np.float64)) > 0)
    hp = 1.0 / PIX_PER_UNIT
    half = N_PIX // 2
    iq, jq = np.meshgrid(np.arange(half, N_PIX), np.arange(half, N_PIX), indexing="ij")
    xq = -1.0 + (iq.ravel() + 0.5) * hp
    zq = -1.0 + (jq.ravel() + 0.5) * hp
    total = img.sum() / kernel.total
    if total < 10 * n_shells * (n_beta + 3):
        raise InputError(f"{what}: too little intensity to fit ({img.sum():g})")
    rho_q = np.hypot(xq, zq)
    if R0 is None:
        R0, _ = initial_geometry(rho_q, data.ravel(), n_shells)
        sigma0 = np.full(n_shells, 0.008) if sigma0 is None else sigma0
    theta, R0, s0 = _start(rho_q, data.ravel(), n_shells, n_beta, total, R0, sigma0)
    theta[-1] = 0.0
    pts = PointSet(xq, zq, 1, np.full(len(xq), hp * hp), n_beta, _table_step(s0, h))
    zeros = np.zeros(pts.n_groups)

    def expected(th, var=False):
        mu = np.empty(pts.n_groups)
        pts.loglike(th, zeros, n_shells, want=0, mu_out=mu)
        full = _unfold(mu.reshape(half, half))
        m = _fold(conv(full))
        return (m, _fold(conv2(full))) if var else m

    def jac(th):
        Jq = pts.jacobian(th, n_shells)
        out = np.empty((keep.sum(), len(th)))
        for k in range(len(th)):
            out[:, k] = _fold(conv(_unfold(Jq[:, k].reshape(half, half))))[keep]
        return out

    d = data[keep]
    weight = None

    def value(th):
        _, R, s = _unpack(th, n_shells)
        if np.any(s <= 0) or np.any(R <= 0):
            return -np.inf
        r = d - expected(th)[keep]
        return -0.5 * float(np.sum(weight * r * r))

    def derivs(th):
        J = jac(th)
        r = d - expected(th)[keep]
        Jw = J * weight[:, None]
        return -0.5 * float(np.sum(weight * r * r)), Jw.T @ r, J.T @ Jw

    n_iter_total = 0
    for rep in range(n_reweight + 1):
        m, v = expected(theta, var=True)
        v0 = 1e-3 * kernel.square.max()
        weight = 1.0 / (np.maximum(v[keep], 0.0) + v0)
        theta, f, g, H, n_iter, conv_ok, active = _maximise(_Objective(value, derivs), theta, n_shells,
                                                            max_iter, log=log)
        n_iter_total += n_iter
    # sandwich: Var(J^T W r) = sum over electrons of u u^T, u = adjoint-convolved W J
    J = jac(theta)
    Wfull = np.zeros(data.shape)
    Wfull[keep] = weight
    mu = np.empty(pts.n_groups)
    pts.loglike(theta, zeros, n_shells, want=0, mu_out=mu)
    mu_full = _unfold(mu.reshape(half, half))
    U = np.empty((N_PIX * N_PIX, len(theta)))
    for k in range(len(theta)):
        wj = np.zeros(data.shape)
        wj[keep] = weight * J[:, k]
        U[:, k] = conv(_unfold(wj), adjoint=True).ravel()
    meat = kernel.total_ratio * (U * mu_full.ravel()[:, None]).T @ U
    bread = H
    bi = np.linalg.pinv(bread)
    cov = bi @ meat @ bi
    return _result("sum", theta, f, bread, n_shells, n_iter_total, conv_ok, active, total, cov=cov,
                   diagnostics={"R_start": np.asarray(R0).tolist(), "sigma_start": np.asarray(s0).tolist(),
                                "table_step": pts.h, "spot_total": kernel.total, "spots_in_kernel": kernel.n_spots,
                                "pixels_masked": int((~keep).sum())})
