"""The optimiser's pieces (:mod:`sevi_lib.fit.optimise`): the positivity constraints and the QP step."""

import numpy as np

from sevi_lib.core.angular import min_density
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.optimise import C_GRID, constraint_matrix, qp_step


def _theta(beta, n=1000.0, R=0.5, s=0.006, b=10.0):
    beta = np.atleast_2d(beta)
    S, N = beta.shape
    a = np.concatenate([np.full((S, 1), n), n * beta], axis=1)
    return ParamLayout(S, N).pack(a, np.full(S, R), np.full(S, s), b)


def test_constraint_rows_are_the_density_at_the_grid_and_the_background():
    beta = np.array([[0.5, 0.1, 0.0]])
    theta = _theta(beta)
    A = constraint_matrix(theta, 1, [[0.3]])
    assert A.shape == (1 + len(C_GRID) + 1, theta.size)
    vals = A @ theta
    assert vals[0] == 10.0  # the background row
    assert np.all(vals[1:] > 0) and min(vals[1:]) >= 1000.0 * 2 * min_density(beta[0])[0] - 1e-9


def test_qp_step_is_the_newton_step_when_feasible_and_stays_feasible_otherwise():
    theta = _theta([0.2, 0.0, 0.0])
    P = theta.size
    rng = np.random.default_rng(1)
    M = rng.standard_normal((P, P))
    H = M @ M.T + P * np.eye(P)
    A = constraint_matrix(theta, 1, [[]])
    g = H @ (1e-3 * rng.standard_normal(P))  # a small step: inside the feasible set
    d, active = qp_step(g, H, theta, A)
    assert not active and np.allclose(d, np.linalg.solve(H, g))
    # a Newton step that would make the density negative (beta_2 from 0.2 to -1.8)
    target = np.zeros(P)
    target[ParamLayout(1, 3).amplitudes(0).start + 1] = -2000.0
    g_bad = H @ target
    d, active = qp_step(g_bad, H, theta, A)
    scale = np.abs(A) @ np.abs(theta)
    assert active and np.all(A @ (theta + d) >= -1e-9 * scale)
    # and it still goes uphill
    assert g_bad @ d - 0.5 * d @ H @ d > 0
