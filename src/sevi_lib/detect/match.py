"""One-to-one matching of true and detected electrons, for scoring a detector (tests, benchmarks)."""

import numpy as np

from sevi_lib.core.geometry import PIX_PER_UNIT


def match_electrons(tx, tz, dx, dz, tol_px=3.0):
    """One-to-one matching of true and detected electrons within a distance.

    Parameters
    ----------
    tx, tz : array_like
        True positions, screen units.
    dx, dz : array_like
        Detected positions, screen units.
    tol_px : float
        Largest distance of a matched pair, in pixels.

    Returns
    -------
    matched_true, matched_detected : ndarray of bool
        Which true / detected electrons have a partner.
    pairs : tuple of ndarray of int
        Indices (true, detected) of the matched pairs; the assignment minimises the summed
        distance (``scipy.optimize.linear_sum_assignment``).
    """
    # local: scipy.optimize takes about a second to import and detection needs it only here
    from scipy.optimize import linear_sum_assignment

    T = np.c_[tx, tz] * PIX_PER_UNIT
    D = np.c_[dx, dz] * PIX_PER_UNIT
    mt = np.zeros(len(T), bool)
    md = np.zeros(len(D), bool)
    if len(T) == 0 or len(D) == 0:
        return mt, md, (np.zeros(0, int), np.zeros(0, int))
    C = np.linalg.norm(T[:, None] - D[None], axis=2)
    C = np.where(C < tol_px, C, 1e6)
    r, c = linear_sum_assignment(C)
    ok = C[r, c] < tol_px
    mt[r[ok]] = True
    md[c[ok]] = True
    return mt, md, (r[ok], c[ok])
