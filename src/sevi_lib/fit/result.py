"""What a fit returns: :class:`FitResult`, its covariance in the user's parameters, and the floor.

The optimiser works in the amplitudes a (:mod:`sevi_lib.fit.layout`); the result reports the
electron number ``n_j = 2 a_0j`` and ``beta_2l,j = a_lj / (2 a_0j)``, with their covariance
from the delta method (:func:`user_covariance`). :func:`known_c_floor` is the Cramer-Rao
floor a perfect measurement of every electron's cos(theta) would reach.
"""

from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import legendre as npleg

from sevi_lib.core.angular import distance_weights, legendre_even, min_density
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.fit.layout import ParamLayout

#: Area of the screen [-1, 1]^2 (the background's expected count is area * b).
SCREEN_AREA = 4.0

#: A shell whose weight is at most this fraction of the data fitted has collapsed (:func:`collapsed_shells`).
COLLAPSED_WEIGHT = 1e-6


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
        Expected number of uniform background ("stray") electrons on the whole screen,
        ``SCREEN_AREA * b`` (for ``sum``: in spot-equivalents).
    background_se : float
    background_density : float
        b itself, per unit screen area (what the model adds to every shell's density).
    background_per_frame, background_per_frame_se : float or None
        The background per frame, when the number of frames is known.
    centre : ndarray, shape (2,)
        Image centre (x0, z0), screen units (fitted, or the fixed one).
    centre_se : ndarray, shape (2,)
        Its standard errors (0 when fixed): the inverse of the centre's own information block
        (block diagonal by symmetry, :mod:`sevi_lib.fit.centre`).
    centre_fixed : bool
    shell_search : dict
        The shell search about the start centre (:class:`sevi_lib.fit.search.ShellSearch`:
        ``peaks``, their ``z``, the ``test``, ``threshold``, ``n_found``; ``n_shells_given`` when the
        number was fixed).
    cov : ndarray
        Covariance of (weights, beta_2..beta_2N, R, sigma_R) per shell, then background.
    objective : float
        Log-likelihood (or -chi^2 / 2 for ``sum``) at the optimum.
    n_iter : int
    converged : bool
        Whether the optimiser converged, and no shell collapsed (``diagnostics``).
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
        ``collapsed_shells`` lists the shells that collapsed (:func:`collapsed_shells`; then
        ``converged`` is false and :meth:`summary_lines` warns).
    dispersion : dict
        Binned fits only (else empty): the pixels' variance over their mean, ``phi`` with
        ``phi_se`` (1 for Poisson counts; counts per electron times 1 + cv^2 for an accumulated
        camera image), ``read_variance``, the ``scale`` the image was divided by before the fit,
        ``meaning``; for an intensity image also ``quasi_likelihood: true`` and the refits
        (:mod:`sevi_lib.fit.dispersion`).
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
    background_se: float = 0.0
    background_density: float = 0.0
    background_per_frame: float | None = None
    background_per_frame_se: float | None = None
    centre: np.ndarray = field(default_factory=lambda: np.zeros(2))
    centre_se: np.ndarray = field(default_factory=lambda: np.zeros(2))
    centre_fixed: bool = True
    shell_search: dict = field(default_factory=dict)
    dispersion: dict = field(default_factory=dict)

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
        blk = ParamLayout(len(self.R), n).betas(j)
        cov = self.cov[blk, blk]
        value = 0.5 + basis @ self.beta[j]
        se = np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", basis, cov, basis), 0.0))
        return value, se

    def summary_lines(self):
        """One line per shell (R, sigma_R, n, beta_2 with errors, expected distance and floor)."""
        lines = []
        for j in range(len(self.R)):
            act = ", constraint I >= 0 active" if self.constraint_active[j] else ""
            lines.append(f"shell {j}: R = {self.R[j]:.6f} +- {self.se_R[j]:.1e}, sigma_R = {self.sigma_R[j]:.5f} "
                         f"+- {self.se_sigma_R[j]:.1e}, n = {self.weights[j]:.0f}, beta_2 = {self.beta[j, 0]:.4f} "
                         f"+- {self.se_beta[j, 0]:.4f}, expected distance {self.expected_distance[j]:.4f} "
                         f"(floor {self.floor[j]:.4f}){act}")
        px = PIX_PER_UNIT
        how = "fixed" if self.centre_fixed else (f"+- ({self.centre_se[0] * px:.3f}, "
                                                  f"{self.centre_se[1] * px:.3f}) px")
        lines.append(f"centre: x0 = {self.centre[0]:.6f}, z0 = {self.centre[1]:.6f} ({self.centre[0] * px:+.3f}, "
                     f"{self.centre[1] * px:+.3f} px from the screen centre) {how}")
        per_frame = "" if self.background_per_frame is None else \
            f", {self.background_per_frame:.4g} +- {self.background_per_frame_se:.2g} per frame"
        lines.append(f"background: {self.background:.6g} +- {self.background_se:.3g} electrons on the screen{per_frame}")
        disp = self.dispersion or {}
        if "phi" in disp:
            if disp.get("quasi_likelihood"):
                lines.append(f"intensity image (quasi-likelihood): phi = {disp['phi']:.4g} +- {disp['phi_se']:.2g} "
                             "image units per effective electron (counts per electron x (1 + cv^2)); n, background "
                             "in effective electrons (image / phi), standard errors and shell search scaled by it; "
                             f"read variance {disp['read_variance']:.3g} +- {disp['read_variance_se']:.2g} per pixel")
            else:
                lines.append(f"dispersion: phi = {disp['phi']:.4g} +- {disp['phi_se']:.2g} (pixel variance over mean; "
                             "1 for Poisson counts)")
        for j in (self.diagnostics or {}).get("collapsed_shells", []):
            lines.append(f"warning: shell {j} collapsed (weight {self.weights[j]:.3g}, SE of R {self.se_R[j]:.2g}, "
                         f"of sigma_R {self.se_sigma_R[j]:.2g}): not a clean convergence; the start or the number "
                         "of shells is likely wrong")
        search = self.shell_search or {}
        if "peaks" in search:
            zs = ", ".join(f"R {p['R']:.4f} Z {p['z']:.1f}" for p in search["peaks"])
            given = search.get("n_shells_given")
            what = f"{given} shells given" if given else f"{len(self.R)} shells found"
            lines.append(f"shell search: {what}; significant peaks (Z >= {search['threshold']:g}): {zs or 'none'}")
        return lines


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


def collapsed_shells(weights, se_R, se_sigma, n_data):
    """The shells (indices) that collapsed: a weight at most :data:`COLLAPSED_WEIGHT` of the data
    fitted, or a standard error of R or sigma_R that is zero or not finite (the likelihood flat in
    them: no electrons left in the shell).

    Parameters
    ----------
    weights, se_R, se_sigma : ndarray, shape (S,)
    n_data : float

    Returns
    -------
    list of int
    """
    bad = (weights <= COLLAPSED_WEIGHT * max(float(n_data), 1.0)) | ~(se_R > 0) | ~(se_sigma > 0)
    bad |= ~np.isfinite(se_R) | ~np.isfinite(se_sigma)
    return [int(j) for j in np.flatnonzero(bad)]


def user_jacobian(theta, S):
    """d(n_j, beta..., R, s per shell, b) / d(a_0..a_n, R, s per shell, b) at `theta`, shape (P, P)."""
    layout = ParamLayout.of(theta, S)
    T = np.eye(layout.size)
    for j in range(S):
        o = layout.offset(j)
        a0 = theta[o]
        T[o, o] = 2.0
        for l in range(1, layout.n1):
            T[o + l, o + l] = 1.0 / (2 * a0)
            T[o + l, o] = -theta[o + l] / (2 * a0 * a0)
    return T


def user_covariance(theta, cov_theta, S):
    """Delta method from (a_0..a_n, R, s per shell, b) to (n_j, beta..., R, s per shell, b)."""
    T = user_jacobian(theta, S)
    return T @ cov_theta @ T.T


def make_result(method, theta, f, info, S, *, n_iter, converged, active, n_data, cov=None, diagnostics=None,
                centre=(0.0, 0.0), centre_info=None, n_frames=None, shell_search=None, centre_cov=None):
    """FitResult from the optimum `theta` and its information matrix (or a given covariance).

    Parameters
    ----------
    method : str
    theta : ndarray
        Optimum (amplitude parameters).
    f : float
        Objective there.
    info : ndarray
        Observed information (inverted unless `cov` is given).
    S : int
    n_iter, converged, active
        From the optimiser.
    n_data : float
    cov : ndarray, optional
        Covariance of theta (e.g. a sandwich estimate).
    diagnostics : dict, optional
    centre : array_like, shape (2,)
        The image centre.
    centre_info : ndarray, shape (2, 2), optional
        Its information (None: the centre was fixed).
    n_frames : int, optional
        Frames of the data (for the background per frame).
    shell_search : dict, optional
    centre_cov : ndarray, shape (2, 2), optional
        The centre's covariance (instead of `centre_info`, e.g. a sandwich estimate).

    Returns
    -------
    FitResult
    """
    layout = ParamLayout.of(theta, S)
    n1 = layout.n1
    a, R, s = layout.unpack(theta)
    if cov is None:
        try:
            cov = np.linalg.inv(info)
            if np.any(np.diag(cov) < 0):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            cov = np.linalg.pinv(info)
    ucov = user_covariance(theta, cov, S)
    se = np.sqrt(np.maximum(np.diag(ucov), 0.0))
    weights = 2 * a[:, 0]
    beta = a[:, 1:] / (2 * a[:, :1])
    mins = np.array([min_density(b)[0] for b in beta])
    blk = layout.blocks(se)
    wts = distance_weights(n1 - 1)
    exp_d = np.array([np.sqrt(np.sum(wts * blk[j, 1:n1] ** 2)) for j in range(S)])
    floor = np.array([known_c_floor(beta[j], weights[j]) for j in range(S)])
    centre_se = np.zeros(2)
    if centre_cov is not None:
        centre_se = np.sqrt(np.maximum(np.diag(centre_cov), 0.0))
    elif centre_info is not None:
        try:
            centre_se = np.sqrt(np.maximum(np.diag(np.linalg.inv(centre_info)), 0.0))
        except np.linalg.LinAlgError:
            centre_se = np.full(2, np.inf)
    diagnostics = dict(diagnostics or {})
    collapsed = collapsed_shells(weights, blk[:, n1], blk[:, n1 + 1], n_data)
    diagnostics.pop("collapsed_shells", None)
    if collapsed:  # not a clean convergence
        diagnostics["collapsed_shells"] = collapsed
    converged = bool(converged) and not collapsed
    bg, bg_se = SCREEN_AREA * float(theta[-1]), SCREEN_AREA * float(se[-1])
    per_frame = (bg / n_frames, bg_se / n_frames) if n_frames else (None, None)
    return FitResult(
        method=method, R=R.copy(), sigma_R=s.copy(), weights=weights, beta=beta,
        se_R=blk[:, n1].copy(), se_sigma_R=blk[:, n1 + 1].copy(), se_weights=blk[:, 0].copy(),
        se_beta=blk[:, 1:n1].copy(), background=bg, cov=ucov, objective=float(f),
        n_iter=int(n_iter), converged=bool(converged),
        constraint_active=np.array([bool(active) and m < 1e-6 for m in mins]) | (mins < 1e-9),
        min_density=mins, n_data=float(n_data), floor=floor, expected_distance=exp_d,
        diagnostics=diagnostics,
        background_se=bg_se, background_density=float(theta[-1]), background_per_frame=per_frame[0],
        background_per_frame_se=per_frame[1], centre=np.asarray(centre, dtype=np.float64).copy(),
        centre_se=centre_se, centre_fixed=centre_info is None and centre_cov is None, shell_search=dict(shell_search or {}),
    )
