"""Mixture fit of model spots to one blob of a camera frame: how many spots, and which (numba).

A blob is handed over as a dense patch ``D`` (its bounding box): the pixel values of the blob,
``-1`` for pixels of the box outside the blob. The model (a sum of K spots of the published form,
any width and gain: the camera's spot model reaches the kernels through
:class:`~sevi_lib.detect.settings.DetectorParams`) and its Levenberg-Marquardt solver are in
:mod:`sevi_lib.detect._lm`; the plateau-safe peak tests in :mod:`sevi_lib.detect._peaks`. Fitting
width and correlation matters: a fixed shape leaves residuals that look like extra or missing
spots.

:func:`decompose_blob` (the kernel; :func:`decompose` is its Python front end) turns a patch
into components in phases, one function each: :func:`_seed` (local maxima and the saturated
centroid), :func:`_grow` (rounds of :func:`_split_bright`: split components with the light of
two or more spots; :func:`_add_at_peaks`: add components at residual peaks; a refit of the
components near a change; :func:`_merge_close`: merge components that converged onto each
other), :func:`_drop_faint`, :func:`_prune` (removal trials of weak components),
:func:`_expand_groups` (a component with the light of n spots becomes n), and a final fit,
skipped when nothing changed since a converged fit. A removal trial gives up once it cannot
pay. Component states are the flags ``FREE``, ``SETTLED``, ``GROUP`` of :mod:`~sevi_lib.detect._lm`.
A component holds :func:`_n_spots` electrons: the count :func:`n_electrons` that the gain law
makes most probable for ``sqrt(F A)``, its flux F (as the peak of a nominal spot,
``A s^2 / (sigma^2 sqrt(1 - rho^2))``) and peak A: spots closer than about 2 px are
indistinguishable in shape, only in flux. :func:`blob_electrons` turns the final components into
electrons.

The kernels take their buffers as one :data:`~sevi_lib.detect._lm.FitWorkspace` namedtuple (built
by :func:`~sevi_lib.detect._lm.fit_workspace`, one per detection thread) and the settings as one
:data:`~sevi_lib.detect.settings.KernelParams` namedtuple.
"""

import math
from dataclasses import replace

import numpy as np
from numba import njit

from sevi_lib.detect._lm import (
    FREE,
    GROUP,
    NPAR,
    SETTLED,
    STRIDE,
    _blob_spans,
    _lm,
    _nstride,
    _sse,
    fit_workspace,
)
from sevi_lib.detect._peaks import is_patch_max, is_peak
from sevi_lib.detect.settings import DetectorParams, kernel_params

#: Levenberg-Marquardt iterations of the intermediate fits (growth, removal).
INTERMEDIATE_ITER = 10

#: The refits after a growth round and the removal trials fit only the components within this
#: many widths of a change (split, added or removed components); the others stay fixed.
NEAR_SIGMAS = 5.0

#: Components fainter than this fraction of a mean spot must earn their place (see removal_cost).
WEAK_RATIO = 0.8


@njit(cache=True, nogil=True)
def _mark_near(comp, K, act, x, z, r):
    """act[k] = 1 for the components k < K within r of (x, z)."""
    for k in range(K):
        dx = comp[k, 0] - x
        dz = comp[k, 1] - z
        if dx * dx + dz * dz < r * r:
            act[k] = 1


@njit(cache=True, nogil=True)
def _flux(comp, k, sigma):
    """Flux of component k as the peak of a nominal spot (width `sigma`, rho 0) of equal flux."""
    s = comp[k, 3]
    return comp[k, 2] * s * s / (sigma * sigma * np.sqrt(1.0 - comp[k, 4] ** 2))


@njit(cache=True, nogil=True)
def _log_post(n, k, la, lq):
    """Log-posterior of n electrons, up to a constant (:func:`n_electrons`)."""
    return n * k * la - math.lgamma(n * k) + (n - 1) * lq - math.lgamma(n)


@njit(cache=True, nogil=True)
def n_electrons(a, par):
    """Electrons in a component of peak-equivalent light `a` (counts) under the gain law of `par`.

    The n >= 1 that maximises ``log Gamma(a; n k, theta) + (n - 1) log q - log (n - 1)!`` with
    ``k = 1 / gain_cv^2``, ``theta = amplitude / k`` (n electrons' gains sum to a gamma of shape
    n k) and ``q = pileup_odds`` (the prior: a Poisson number of further electrons). With the
    published law (cv 0.1) the boundaries are near 1.5, 2.5, .. mean spots, as rounding; with a
    broad law a bright single electron stays one (cv 0.45: up to about 2 mean spots).
    """
    if a <= 0.0:
        return 0
    k = 1.0 / (par.gain_cv * par.gain_cv)
    theta = par.amplitude / k
    la = np.log(a / theta)
    lq = np.log(par.pileup_odds)
    best = 1
    best_ll = _log_post(1, k, la, lq)
    n = 2
    while n < 256:
        ll = _log_post(n, k, la, lq)
        if ll <= best_ll:
            break  # the log-posterior is concave in n
        best = n
        best_ll = ll
        n += 1
    return best


@njit(cache=True, nogil=True)
def light_uniform(a):
    """A number in [0, 1) that is a fixed function of the light `a`: splitmix64 of ``a`` to 1e-6 counts.

    The key of :func:`n_electrons_drawn`: the same light draws the same count, in every run, thread
    and shard, so detection stays deterministic.
    """
    z = np.uint64(int(a * 1e6) & 0xFFFFFFFFFFFF) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def n_electrons_drawn(a, par):
    """Electrons in a component of light `a`, drawn from the posterior of :func:`n_electrons`.

    The n >= 1 at which the posterior's cumulative sum first exceeds ``light_uniform(a)`` of its
    total (:func:`light_uniform`: a fixed function of `a`). Over many components the drawn counts
    sum to the posterior means', which under the right prior (``pileup_odds``) is the true count
    on average; the mode (:func:`n_electrons`) counts an ambiguous pair as one more often than not.
    """
    if a <= 0.0:
        return 0
    k = 1.0 / (par.gain_cv * par.gain_cv)
    la = np.log(a / (par.amplitude / k))
    lq = np.log(par.pileup_odds)
    m = n_electrons(a, par)
    lm = _log_post(m, k, la, lq)
    top = m
    while top < 255 and _log_post(top + 1, k, la, lq) > lm - 40.0:
        top += 1
    tot = 0.0
    for n in range(1, top + 1):
        tot += math.exp(_log_post(n, k, la, lq) - lm)
    t = light_uniform(a) * tot
    c = 0.0
    for n in range(1, top + 1):
        c += math.exp(_log_post(n, k, la, lq) - lm)
        if c > t:
            return n
    return top


@njit(cache=True, nogil=True)
def _light(comp, k, sigma):
    """Peak-equivalent light of component k: ``sqrt(F A)``, flux F (:func:`_flux`) and peak A.

    The geometric mean of flux and peak counts a wide, flat component (one spot's light spread by
    the fit) as one, and a pile-up (flux and peak both n spots') as n.
    """
    return np.sqrt(_flux(comp, k, sigma) * comp[k, 2])


@njit(cache=True, nogil=True)
def _n_spots(comp, k, sigma, par):
    """Electrons in component k: :func:`n_electrons` of its light (:func:`_light`).

    The count rule of the expansion of :func:`decompose_blob` and, for the members of a group
    and every component unless ``par.count_draw``, of :func:`blob_electrons`.
    """
    return n_electrons(_light(comp, k, sigma), par)


@njit(cache=True, nogil=True)
def _set_comp(comp, k, a, b, A, s, rho):
    """comp[k] = (a, b, A, s, rho)."""
    comp[k, 0] = a
    comp[k, 1] = b
    comp[k, 2] = A
    comp[k, 3] = s
    comp[k, 4] = rho


@njit(cache=True, nogil=True)
def _move_comp(comp, flag, src, dst):
    """Copy component `src` (parameters and flag) over component `dst`."""
    for u in range(NPAR):
        comp[dst, u] = comp[src, u]
    flag[dst] = flag[src]


@njit(cache=True, nogil=True)
def _delete_comp(comp, flag, k, K):
    """Delete component k of K by moving the last one into its place; returns K - 1."""
    _move_comp(comp, flag, K - 1, k)
    return K - 1


@njit(cache=True, nogil=True)
def _split(ws, par, k, K, apply):
    """Replace component k by two of half its amplitude along its long axis (new one at index K).

    The axis and separation come from the second moments of the light attributed to k
    (data x model_k / model): two spots at +-h along u widen the light by h^2 along u only.
    Returns the axis (ux, uz) and the excess variance along it; with ``apply=False`` only that.
    """
    D, M, comp, win, E, csp = ws.D, ws.M, ws.comp, ws.win, ws.E, ws.csp
    off = par.subgrid_offset
    sigma = par.sigma_px
    a0 = win[k, 0]
    b0 = win[k, 2]
    sw = 0.0
    sxx = 0.0
    szz = 0.0
    sxz = 0.0
    for u in range(_nstride(a0, win[k, 1])):
        a = a0 + STRIDE * u
        for v in range(csp[k, u, 0], csp[k, u, 1]):
            b = b0 + STRIDE * v
            d = D[a, b]
            m = M[a // STRIDE, b // STRIDE]
            if d < 0.0 or m <= 0.0:
                continue
            ek = comp[k, 2] * E[k, u, v]
            w = ek * (1.0 if d >= 255.0 and m < d else d / m)
            dx = a + off - comp[k, 0]
            dz = b + off - comp[k, 1]
            sw += w
            sxx += w * dx * dx
            szz += w * dz * dz
            sxz += w * dx * dz
    ux = 1.0
    uz = 0.0
    h = 1.5
    if sw > 0.0:
        cxx = sxx / sw
        czz = szz / sw
        cxz = sxz / sw
        det = np.sqrt(0.25 * (cxx - czz) ** 2 + cxz * cxz)
        lam1 = 0.5 * (cxx + czz) + det
        if abs(cxz) > 1e-12:
            ux = lam1 - czz
            uz = cxz
        elif czz > cxx:
            ux = 0.0
            uz = 1.0
        nrm = np.sqrt(ux * ux + uz * uz)
        ux /= nrm
        uz /= nrm
        h = min(max(np.sqrt(2.0 * det), 1.5), sigma)
    if not apply:
        return ux, uz, 2.0 * det
    px = comp[k, 0]
    pz = comp[k, 1]
    A = comp[k, 2]
    _set_comp(comp, k, px + h * ux, pz + h * uz, 0.5 * A, sigma, 0.0)
    _set_comp(comp, K, px - h * ux, pz - h * uz, 0.5 * A, sigma, 0.0)
    return ux, uz, 2.0 * det


@njit(cache=True, nogil=True)
def _group_spacing(excess, n, sigma, min_px):
    """Spacing of n >= 2 electrons along a component's long axis whose light has `excess` variance.

    n spots spaced s apart add ``s^2 (n^2 - 1) / 12`` to the variance along the axis; the spacing
    is at least `min_px` and at most ``2 sigma / (n - 1)``.

    The two callers differ only in `min_px`, and deliberately so (kept from before the
    restructure: the detections stay bit-identical): the groups of :func:`_expand_groups` are
    refitted, so they start at least 1 px apart (``min_px=1``); :func:`blob_electrons` places
    the electrons of a component that could not be expanded (its group would exceed
    ``max_per_blob``: pile-ups of tens of spots) by the moments alone (``min_px=0``). Giving both
    a 1 px floor moves such electrons by up to one width (68 of 3983 electrons of a 200 e/frame
    test).
    """
    return min(max(np.sqrt(12.0 * max(excess, 0.0) / (n * n - 1)), min_px), 2.0 * sigma / (n - 1))


@njit(cache=True, nogil=True)
def blob_electrons(ws, par, K, out):
    """Electrons of the fitted components ws.comp[:K] into out[:, (a, b, amplitude, multiplicity)].

    A component is :func:`_n_spots` electrons (with ``par.count_draw``, one that is not a member
    of a group: :func:`n_electrons_drawn`), at least one; none if its flux (as a nominal
    spot's peak) is below ``min_amplitude``, unless it is a member of a :data:`GROUP`. For n >= 2
    they are spread evenly along the component's long axis so that their spread matches the
    excess second moment of its light (:func:`_group_spacing`, no lower bound), each with 1/n of
    the flux. Returns the number of electrons written, or -1 if more than ``out.shape[0]``.
    """
    comp = ws.comp
    sigma = par.sigma_px
    cap = out.shape[0]
    n_out = 0
    for k in range(K):
        A = _flux(comp, k, sigma)
        if A < par.min_amplitude and ws.flag[k] != GROUP:
            continue
        if par.count_draw and ws.flag[k] != GROUP:
            n = max(n_electrons_drawn(_light(comp, k, sigma), par), 1)
        else:
            n = max(_n_spots(comp, k, sigma, par), 1)
        if n_out + n > cap:
            return -1
        if n == 1:
            out[n_out, 0] = comp[k, 0]
            out[n_out, 1] = comp[k, 1]
            out[n_out, 2] = comp[k, 2]
            out[n_out, 3] = 1
            n_out += 1
            continue
        ux, uz, excess = _split(ws, par, k, K, False)
        s = _group_spacing(excess, n, sigma, 0.0)
        for r in range(n):
            t = (r - 0.5 * (n - 1)) * s
            out[n_out, 0] = comp[k, 0] + t * ux
            out[n_out, 1] = comp[k, 1] + t * uz
            out[n_out, 2] = A / n
            out[n_out, 3] = n
            n_out += 1
    return n_out


# ------------------------------------------------------------------ phases of decompose_blob
@njit(cache=True, nogil=True)
def _seed(ws, par, nbi, nbj):
    """Seed components at the local maxima >= peak_min (:func:`is_peak` within ``peak_radius``;
    one per 3 px) and at the centroid of the
    saturated pixels, each amplitude lowered by half the neighbours' light at it; returns K."""
    D, comp = ws.D, ws.comp
    off = par.subgrid_offset
    sigma = par.sigma_px
    kmax = par.max_per_blob
    K = 0
    sat_n = 0
    sat_a = 0.0
    sat_b = 0.0
    for a in range(nbi):
        for b in range(nbj):
            d = D[a, b]
            if d >= 255.0:
                sat_n += 1
                sat_a += a + off
                sat_b += b + off
            elif d >= par.peak_min and K < kmax and is_peak(D, a, b, nbi, nbj, par.peak_radius):
                close = False
                for k in range(K):
                    if abs(comp[k, 0] - (a + off)) < 3.0 and abs(comp[k, 1] - (b + off)) < 3.0:
                        close = True
                if not close:
                    _set_comp(comp, K, a + off, b + off, d, sigma, 0.0)
                    K += 1
    if sat_n > 0 and K < kmax:
        _set_comp(comp, K, sat_a / sat_n, sat_b / sat_n, 255.0, sigma, 0.0)
        K += 1
    inv2s2 = 0.5 / (sigma * sigma)
    for k in range(K):
        others = 0.0
        for q in range(K):
            if q != k:
                dx = comp[k, 0] - comp[q, 0]
                dz = comp[k, 1] - comp[q, 1]
                others += comp[q, 2] * np.exp(-(dx * dx + dz * dz) * inv2s2)
        comp[k, 2] = max(comp[k, 2] - 0.5 * others, 0.5 * comp[k, 2])
    return K


@njit(cache=True, nogil=True)
def _split_bright(ws, par, K, chg):
    """Split every FREE component of at least ``split_ratio`` spots' flux in two (both SETTLED,
    marked in `chg`), while fewer than max_per_blob; returns the new K."""
    comp, flag = ws.comp, ws.flag
    K0 = K
    for k in range(K0):
        if K < par.max_per_blob and flag[k] == FREE and _flux(comp, k, par.sigma_px) >= par.split_ratio * par.amplitude:
            _split(ws, par, k, K, True)
            flag[k] = SETTLED
            flag[K] = SETTLED
            chg[k] = 1
            chg[K] = 1
            K += 1
    return K


@njit(cache=True, nogil=True)
def _add_at_peaks(ws, par, nbi, nbj, K):
    """Add FREE components at the residual's local maxima of at least ``add_threshold`` counts,
    highest first, none within sigma of one added before; returns the new K."""
    D, M, R, comp, flag, cand = ws.D, ws.M, ws.R, ws.comp, ws.flag, ws.cand
    off = par.subgrid_offset
    sigma = par.sigma_px
    for a in range(0, nbi, STRIDE):
        for b in range(0, nbj, STRIDE):
            d = D[a, b]
            if d < 0.0:
                R[a, b] = -1e9
            elif d >= 255.0:
                R[a, b] = max(255.0 - M[a // STRIDE, b // STRIDE], 0.0)
            else:
                R[a, b] = d - M[a // STRIDE, b // STRIDE]
    nc = 0
    for a in range(0, nbi, STRIDE):
        for b in range(0, nbj, STRIDE):
            if R[a, b] >= par.add_threshold and nc < cand.shape[0] and is_patch_max(R, a, b, nbi, nbj, STRIDE):
                cand[nc, 0] = a + off
                cand[nc, 1] = b + off
                cand[nc, 2] = R[a, b]
                nc += 1
    K1 = K
    while K < par.max_per_blob:
        best = -1
        bv = 0.0
        for c in range(nc):
            if cand[c, 2] > bv:
                bv = cand[c, 2]
                best = c
        if best < 0:
            break
        ok = True
        for k in range(K1, K):
            dx = comp[k, 0] - cand[best, 0]
            dz = comp[k, 1] - cand[best, 1]
            if dx * dx + dz * dz < sigma * sigma:
                ok = False
        if ok:
            _set_comp(comp, K, cand[best, 0], cand[best, 1], cand[best, 2], sigma, 0.0)
            flag[K] = FREE
            K += 1
        cand[best, 2] = 0.0
    return K


@njit(cache=True, nogil=True)
def _merge_close(ws, par, K):
    """Merge components closer than ``merge_px`` into one of their summed flux at their flux-weighted
    mean (SETTLED); returns the new K and whether any merged."""
    comp, flag = ws.comp, ws.flag
    sigma = par.sigma_px
    merged = False
    k = 0
    while k < K:
        q = k + 1
        while q < K:
            dx = comp[k, 0] - comp[q, 0]
            dz = comp[k, 1] - comp[q, 1]
            if dx * dx + dz * dz < par.merge_px * par.merge_px:
                fk = _flux(comp, k, sigma)
                fq = _flux(comp, q, sigma)
                _set_comp(comp, k, (comp[k, 0] * fk + comp[q, 0] * fq) / (fk + fq),
                          (comp[k, 1] * fk + comp[q, 1] * fq) / (fk + fq), fk + fq, sigma, 0.0)
                flag[k] = SETTLED
                K = _delete_comp(comp, flag, q, K)
                merged = True
            else:
                q += 1
        k += 1
    return K, merged


@njit(cache=True, nogil=True)
def _grow(ws, par, nbi, nbj, K, settled):
    """Rounds of: split bright components, add components at residual peaks, refit the
    components near a change, merge components that converged onto each other (refit all if
    any did); until a round adds nothing. Returns K and whether every last fit converged."""
    comp = ws.comp
    kmax = par.max_per_blob
    max_iter = min(par.max_iter, INTERMEDIATE_ITER)
    for k in range(K):
        ws.flag[k] = FREE
    act = np.zeros(kmax + 1, dtype=np.int64)
    chg = np.zeros(kmax + 1, dtype=np.int64)
    rn = NEAR_SIGMAS * par.sigma_px
    for rnd in range(kmax):
        K0 = K
        for k in range(kmax + 1):
            chg[k] = 0
        K = _split_bright(ws, par, K, chg)
        K1 = K
        K = _add_at_peaks(ws, par, nbi, nbj, K)
        if K == K0:
            break
        for k in range(K):
            act[k] = 0
        for k in range(K):
            if chg[k] != 0 or k >= K1:
                _mark_near(comp, K, act, comp[k, 0], comp[k, 1], rn)
        _, cv = _lm(ws, par, nbi, nbj, K, max_iter, act)
        settled = settled and cv
        K, merged = _merge_close(ws, par, K)
        if merged:
            _, settled = _lm(ws, par, nbi, nbj, K, max_iter)
    return K, settled


@njit(cache=True, nogil=True)
def _drop_faint(ws, par, nbi, nbj, K, settled):
    """Drop components whose flux is below ``min_amplitude`` (keeping at least one) and refit;
    up to three rounds. Returns K and whether the last fit converged."""
    max_iter = min(par.max_iter, INTERMEDIATE_ITER)
    for rnd in range(3):
        K0 = K
        k = 0
        while k < K and K > 1:
            if _flux(ws.comp, k, par.sigma_px) < par.min_amplitude:
                K = _delete_comp(ws.comp, ws.flag, k, K)
            else:
                k += 1
        if K == K0:
            break
        _, settled = _lm(ws, par, nbi, nbj, K, max_iter)
    return K, settled


@njit(cache=True, nogil=True)
def _weakest(ws, par, K):
    """The FREE component of least flux below WEAK_RATIO spots (a component of a spot shared by
    two, wide and of low peak, counts by its peak), or -1."""
    comp, flag = ws.comp, ws.flag
    sigma = par.sigma_px
    weak = WEAK_RATIO * par.amplitude
    worst = -1
    wv = weak
    for k in range(K):
        if flag[k] != FREE:
            continue
        f = _flux(comp, k, sigma)
        if f >= weak and comp[k, 2] < weak:
            for q in range(K):
                dx = comp[q, 0] - comp[k, 0]
                dz = comp[q, 1] - comp[k, 1]
                if q != k and dx * dx + dz * dz < sigma * sigma:
                    f = comp[k, 2]
        if f < wv:
            wv = f
            worst = k
    return worst


@njit(cache=True, nogil=True)
def _prune(ws, par, nbi, nbj, K, settled):
    """Removal trials of the weak components, weakest first: remove one (handing its light to
    its nearest neighbour within 2 sigma) and refit the components near it; keep the removal if
    the squared residual grows by less than ``removal_cost``, else restore and mark it SETTLED.
    Returns K and whether the fits of the kept state converged."""
    comp, flag, R = ws.comp, ws.flag, ws.R
    sigma = par.sigma_px
    max_iter = min(par.max_iter, INTERMEDIATE_ITER)
    act = np.zeros(par.max_per_blob + 1, dtype=np.int64)
    rn = NEAR_SIGMAS * sigma
    cur = _sse(ws.Dc, ws.M, nbi, nbj, comp, K, par, ws.bsp)
    for k in range(K):
        flag[k] = FREE
    while K > 1:
        worst = _weakest(ws, par, K)
        if worst < 0:
            break
        for q in range(K):  # R (free by now) keeps the components in case the removal fails
            for u in range(NPAR):
                R[q, u] = comp[q, u]
        near = -1
        nd = 4.0 * sigma * sigma
        for q in range(K):
            dx = comp[q, 0] - comp[worst, 0]
            dz = comp[q, 1] - comp[worst, 1]
            if q != worst and dx * dx + dz * dz < nd:
                nd = dx * dx + dz * dz
                near = q
        if near >= 0:
            fw = _flux(comp, worst, sigma)
            fn = _flux(comp, near, sigma)
            comp[near, 0] = (comp[near, 0] * fn + comp[worst, 0] * fw) / (fn + fw)
            comp[near, 1] = (comp[near, 1] * fn + comp[worst, 1] * fw) / (fn + fw)
            comp[near, 2] = (fn + fw) * sigma * sigma / (comp[near, 3] * comp[near, 3])
        for k in range(K):
            act[k] = 0
        _mark_near(comp, K, act, comp[worst, 0], comp[worst, 1], rn)
        if near >= 0:
            _mark_near(comp, K, act, comp[near, 0], comp[near, 1], rn)
        act[worst] = act[K - 1]
        _move_comp(comp, flag, K - 1, worst)
        new, cv = _lm(ws, par, nbi, nbj, K - 1, max_iter, act, cur + par.removal_cost)
        if new - cur < par.removal_cost:
            K -= 1
            cur = new
            settled = settled and cv
        else:
            for q in range(K):
                for u in range(NPAR):
                    comp[q, u] = R[q, u]
            flag[worst] = SETTLED
            cur, _ = _lm(ws, par, nbi, nbj, K, 0)
    return K, settled


@njit(cache=True, nogil=True)
def _expand_groups(ws, par, K):
    """Replace each component with the light of n >= 2 spots (:func:`_n_spots`) by n GROUP
    components of 1/n its flux spread along its long axis (:func:`_group_spacing`, at least
    1 px apart), while they fit in max_per_blob; the other components become FREE. Returns K."""
    comp, flag = ws.comp, ws.flag
    sigma = par.sigma_px
    K0 = K
    for k in range(K0):
        n = _n_spots(comp, k, sigma, par)
        if n < 2 or K + n - 1 > par.max_per_blob:
            continue
        f = _flux(comp, k, sigma)
        ux, uz, excess = _split(ws, par, k, K, False)
        sp = _group_spacing(excess, n, sigma, 1.0)
        a = comp[k, 0]
        b = comp[k, 1]
        for r in range(n):
            q = k if r == 0 else K + r - 1
            t = (r - 0.5 * (n - 1)) * sp
            _set_comp(comp, q, a + t * ux, b + t * uz, f / n, sigma, 0.0)
            flag[q] = GROUP
        K += n - 1
    for k in range(K):
        if flag[k] != GROUP:
            flag[k] = FREE
    return K


@njit(cache=True, nogil=True)
def decompose_blob(ws, par, nbi, nbj):
    """Components of the blob in ws.D[:nbi, :nbj] (-1 outside it); returns K (ws.comp[:K],
    patch coordinates). Phases: seed, fit, grow (split, add, refit, merge), drop faint, prune
    by removal trials, expand multi-spot components into groups, final fit."""
    _blob_spans(ws.D, nbi, nbj, ws.bsp, ws.Dc)
    K = _seed(ws, par, nbi, nbj)
    if K == 0:
        return 0
    _, settled = _lm(ws, par, nbi, nbj, K, min(par.max_iter, INTERMEDIATE_ITER))
    K, settled = _grow(ws, par, nbi, nbj, K, settled)
    K, settled = _drop_faint(ws, par, nbi, nbj, K, settled)
    K, settled = _prune(ws, par, nbi, nbj, K, settled)
    # a component with the light of n >= 2 spots becomes n components spread along its long
    # axis, fitted together with the rest and never merged again: the fit places unresolved
    # pairs better than the moments
    K0 = K
    K = _expand_groups(ws, par, K)
    if not settled or K > K0:
        _lm(ws, par, nbi, nbj, K, par.max_iter)
    return K


def decompose(patch, params=None, **overrides):
    """Decompose one blob patch into model spots.

    Parameters
    ----------
    patch : ndarray, shape (n, m)
        Pixel values of the blob's bounding box (``Image[ix, iz]`` order), ``-1`` outside the blob.
    params : DetectorParams, optional
        Detector settings (default: ``DetectorParams()``).
    **overrides
        Fields of :class:`~sevi_lib.detect.settings.DetectorParams` replacing those of `params`
        (e.g. ``sigma_px=8.0``).

    Returns
    -------
    ndarray, shape (K, 5)
        Components ``(a, b, A, s, rho)``: continuous patch pixel coordinates (pixel a covers
        [a, a + 1)), peak amplitude, width (pixels) and correlation.
    """
    params = replace(params or DetectorParams(), **overrides).validate()
    patch = np.asarray(patch, dtype=np.float64)
    nbi, nbj = patch.shape
    ws = fit_workspace(max(nbi, nbj), params.max_per_blob, sigma_max=params.sigma_px)
    ws.D[:nbi, :nbj] = patch
    K = decompose_blob(ws, kernel_params(params), nbi, nbj)
    return ws.comp[:K].copy()
