"""Plateau-safe local maxima of a patch (numba kernels).

Shared by the blob scan (:mod:`sevi_lib.detect.blobs`) and the seeding and growth of the mixture
fit (:mod:`sevi_lib.detect.spotfit`).
"""

from numba import njit


@njit(cache=True, nogil=True, inline="always")
def is_lattice_peak(P, a, b, nbi, nbj, k, step):
    """Plateau-safe local maximum of P at (a, b) among the points every `step` pixels within `k`
    pixels (Chebyshev distance; `k` a multiple of `step`) inside the ``nbi x nbj`` patch.

    A neighbour earlier in raster order must be strictly lower, a later one not higher, so a
    plateau has exactly one maximum (its first point). :func:`is_patch_max`, :func:`is_peak` and
    the blob scan's faint-spot pass (on a lattice of half a spot width) are its cases.
    """
    v = P[a, b]
    for da in range(-k, k + 1, step):
        aa = a + da
        if aa < 0 or aa >= nbi:
            continue
        for db in range(-k, k + 1, step):
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
def is_patch_max(P, a, b, nbi, nbj, st):
    """Plateau-safe local maximum of P at (a, b) among the neighbours `st` pixels away.

    The rule of :func:`is_lattice_peak` on the 3 x 3 lattice of step `st`. Shared by the blob
    scan (:mod:`sevi_lib.detect.blobs`) and the seeding and growth of the fit.
    """
    return is_lattice_peak(P, a, b, nbi, nbj, st, st)


@njit(cache=True, nogil=True)
def is_peak(P, a, b, nbi, nbj, r):
    """Plateau-safe local maximum of P at (a, b) among all pixels within `r` (Chebyshev distance).

    The rule of :func:`is_lattice_peak` over the (2r + 1)^2 square; ``r = 1`` is
    ``is_patch_max(P, a, b, nbi, nbj, 1)``. Shared by the blob scan (:mod:`sevi_lib.detect.blobs`)
    and the seeding of the fit, with ``r = peak_radius``.
    """
    return is_lattice_peak(P, a, b, nbi, nbj, r, 1)
