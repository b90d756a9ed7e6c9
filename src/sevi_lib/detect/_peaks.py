"""Plateau-safe local maxima of a patch (numba kernels).

Shared by the blob scan (:mod:`sevi_lib.detect.blobs`) and the seeding and growth of the mixture
fit (:mod:`sevi_lib.detect.spotfit`).
"""

from numba import njit


@njit(cache=True, nogil=True)
def is_patch_max(P, a, b, nbi, nbj, st):
    """Plateau-safe local maximum of P at (a, b) among the neighbours `st` pixels away.

    A neighbour earlier in raster order must be strictly lower, a later one not higher, so a
    plateau has exactly one maximum (its first pixel). Shared by the blob scan
    (:mod:`sevi_lib.detect.blobs`) and the seeding and growth of the fit.
    """
    v = P[a, b]
    for da in range(-st, st + 1, st):
        aa = a + da
        if aa < 0 or aa >= nbi:
            continue
        for db in range(-st, st + 1, st):
            bb = b + db
            if (da == 0 and db == 0) or bb < 0 or bb >= nbj:
                continue
            w = P[aa, bb]
            if da < 0 or (da == 0 and db < 0):
                if w >= v:
                    return False
            elif w > v:
                return False
    return True


@njit(cache=True, nogil=True)
def is_peak(P, a, b, nbi, nbj, r):
    """Plateau-safe local maximum of P at (a, b) among all pixels within `r` (Chebyshev distance).

    The rule of :func:`is_patch_max` (an earlier pixel in raster order strictly lower, a later one
    not higher) over the (2r + 1)^2 square; ``r = 1`` is ``is_patch_max(P, a, b, nbi, nbj, 1)``.
    Shared by the blob scan (:mod:`sevi_lib.detect.blobs`) and the seeding of the fit, with
    ``r = peak_radius``.
    """
    v = P[a, b]
    for da in range(-r, r + 1):
        aa = a + da
        if aa < 0 or aa >= nbi:
            continue
        for db in range(-r, r + 1):
            bb = b + db
            if (da == 0 and db == 0) or bb < 0 or bb >= nbj:
                continue
            w = P[aa, bb]
            if da < 0 or (da == 0 and db < 0):
                if w >= v:
                    return False
            elif w > v:
                return False
    return True
