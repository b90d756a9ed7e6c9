"""The parameter vector of the shell fit, written down once.

``theta`` holds, shell after shell, the Legendre amplitudes ``a_0 .. a_n`` (``a_0 = n_j / 2``,
``a_l = n_j beta_2l``), then R and sigma_R; the uniform background b comes last::

    theta = [a_00 .. a_0n, R_0, s_0,  a_10 .. a_1n, R_1, s_1,  ...,  b]

so shell j's block starts at ``j * (n + 3)`` (``n + 1`` amplitudes and two geometry values). The
covariance of :class:`~sevi_lib.fit.result.FitResult` uses the same blocks with
``(n_j, beta_2 .. beta_2n, R, sigma_R)`` in place of the amplitudes.

:class:`ParamLayout` gives the slices and indices in Python; :func:`shell_offset` is the same
arithmetic for the numba kernels (:mod:`sevi_lib.fit._kernels`).
"""

import numpy as np
from numba import njit

#: Geometry values per shell block after its amplitudes (R, sigma_R).
N_GEOMETRY = 2


@njit(cache=True, inline="always")
def shell_offset(j, n1):
    """Index of shell j's first amplitude when each shell has `n1` amplitudes (numba)."""
    return j * (n1 + N_GEOMETRY)


class ParamLayout:
    """Slices and indices of the fit's parameter vector.

    Parameters
    ----------
    n_shells : int
    n_beta : int
        beta's per shell (``n``), so ``n + 1`` amplitudes per shell.

    Attributes
    ----------
    n_shells, n_beta : int
    n1 : int
        Amplitudes per shell, ``n_beta + 1``.
    stride : int
        Length of one shell block, ``n1 + 2``.
    size : int
        Length of theta, ``n_shells * stride + 1``.
    background : int
        Index of b (the last).
    """

    def __init__(self, n_shells, n_beta):
        self.n_shells = int(n_shells)
        self.n_beta = int(n_beta)
        self.n1 = self.n_beta + 1
        self.stride = self.n1 + N_GEOMETRY
        self.size = self.n_shells * self.stride + 1
        self.background = self.size - 1

    @classmethod
    def of(cls, theta, n_shells):
        """The layout of a parameter vector (or its length) with `n_shells` shells."""
        size = theta if np.ndim(theta) == 0 else len(theta)
        return cls(n_shells, (size - 1) // n_shells - N_GEOMETRY - 1)

    def offset(self, j):
        """Index of shell j's first amplitude (``a_0``; ``n_j`` in the user covariance)."""
        return j * self.stride

    def amplitudes(self, j):
        """Slice of shell j's amplitudes ``a_0 .. a_n``."""
        o = self.offset(j)
        return slice(o, o + self.n1)

    def betas(self, j):
        """Slice of shell j's ``a_1 .. a_n`` (beta_2 .. beta_2n in the user covariance)."""
        o = self.offset(j)
        return slice(o + 1, o + self.n1)

    def R(self, j):
        """Index of shell j's radius."""
        return self.offset(j) + self.n1

    def sigma(self, j):
        """Index of shell j's radial width."""
        return self.offset(j) + self.n1 + 1

    def blocks(self, theta):
        """theta without the background, shape (n_shells, stride) (a view)."""
        return np.asarray(theta)[:-1].reshape(self.n_shells, self.stride)

    def unpack(self, theta):
        """Amplitudes (S, n1), radii (S,) and widths (S,) of theta (views)."""
        th = self.blocks(theta)
        return th[:, :-N_GEOMETRY], th[:, -2], th[:, -1]

    def pack(self, a, R, sigma, b):
        """theta from amplitudes (S, n1), radii, widths and the background."""
        return np.concatenate([np.concatenate([a[j], [R[j], sigma[j]]]) for j in range(len(R))] + [[b]])


@njit(cache=True, inline="always")
def amplitudes_per_shell(P, S):
    """Amplitudes per shell (``n + 1``) of a parameter vector of length `P` with `S` shells (numba)."""
    return (P - 1) // S - N_GEOMETRY
