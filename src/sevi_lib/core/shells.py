"""A parameter set of shells (radius, width, beta's), and the default number of beta's."""

from dataclasses import dataclass

import numpy as np

from sevi_lib.core.angular import check_physical
from sevi_lib.core.errors import InputError

#: Number of anisotropy parameters per shell by default: beta_2 .. beta_24, the published
#: ``Answer`` and ``Truth`` layouts (the fit's and the network's ``n_beta``).
N_BETA = 12


@dataclass(frozen=True)
class Shells:
    """Parameters of the shells of one data set, sorted by radius (shell 0 is the smaller).

    Attributes
    ----------
    R : ndarray, shape (S,)
        Mean radii (speeds) in screen units.
    sigma_R : ndarray, shape (S,)
        Radial standard deviations.
    beta : ndarray, shape (S, N)
        beta_2 .. beta_2N of each shell; every row is physical.

    Construction sorts the shells by R and checks every value (finite, R > 0, sigma_R >= 0,
    physical beta); bad values raise :class:`~sevi_lib.core.errors.InputError` or
    :class:`~sevi_lib.core.errors.UnphysicalError` naming the shell.
    """

    R: np.ndarray
    sigma_R: np.ndarray
    beta: np.ndarray

    def __post_init__(self):
        R = np.atleast_1d(np.asarray(self.R, dtype=np.float64))
        sigma_R = np.atleast_1d(np.asarray(self.sigma_R, dtype=np.float64))
        beta = np.atleast_2d(np.asarray(self.beta, dtype=np.float64))
        if not (R.ndim == 1 and sigma_R.shape == R.shape and beta.shape[0] == R.shape[0]):
            raise InputError(
                f"shells: shapes of R {R.shape}, sigma_R {sigma_R.shape} and beta {beta.shape} do not agree"
            )
        order = np.argsort(R, kind="stable")
        R, sigma_R, beta = R[order], sigma_R[order], beta[order]
        for j in range(len(R)):
            if not (np.isfinite(R[j]) and R[j] > 0):
                raise InputError(f"shell {j}: radius R = {R[j]} must be positive and finite")
            if not (np.isfinite(sigma_R[j]) and sigma_R[j] >= 0):
                raise InputError(f"shell {j}: sigma_R = {sigma_R[j]} must be >= 0 and finite")
            check_physical(beta[j], what=f"shell {j} (R = {R[j]:g})")
        for name, value in (("R", R), ("sigma_R", sigma_R), ("beta", beta)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_shells(self):
        """Number of shells."""
        return len(self.R)

    @property
    def n_beta(self):
        """Number of beta coefficients per shell."""
        return self.beta.shape[1]

    @classmethod
    def from_config(cls, shells):
        """Build from a config list ``[{R: .., sigma_R: .., beta: [..]}, ...]``.

        Parameters
        ----------
        shells : list of dict

        Returns
        -------
        Shells
        """
        try:
            n = max(len(s["beta"]) for s in shells)
            beta = np.zeros((len(shells), n))
            for j, s in enumerate(shells):
                beta[j, : len(s["beta"])] = s["beta"]
            R = [float(s["R"]) for s in shells]
            sigma_R = [float(s["sigma_R"]) for s in shells]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"shells: each shell needs numbers R, sigma_R and a beta list ({exc!r})") from None
        return cls(R, sigma_R, beta)

    def to_config(self):
        """The inverse of :meth:`from_config`: a list of plain dicts (YAML-friendly)."""
        return [
            {"R": float(r), "sigma_R": float(s), "beta": [float(b) for b in bb]}
            for r, s, bb in zip(self.R, self.sigma_R, self.beta)
        ]
