"""Electron simulator: shells of photoelectrons, their projection and their count map (numba).

For a shell with radius R, radial width sigma_R and angular coefficients beta:

- c = cos(theta) is drawn by inverse-transform sampling of the density
  ``I(c) = 1/2 + sum_i beta_{2i} P_{2i}(c)``: each uniform u is mapped to the root of
  ``F(c) = u`` of the closed-form CDF ``F(c) = (1 + c)/2 + sum_i beta_{2i} (P_{2i+1}(c) -
  P_{2i-1}(c)) / (4i + 1)``, found to machine precision by safeguarded Newton iteration on the
  exact F (Legendre recurrence inside numba). A small table of exact quantiles F^-1(k/K) only
  supplies each sample's starting point and a guaranteed bracket; it never is the answer.
- r ~ Normal(R, sigma_R^2), phi ~ Uniform(0, 2 pi);
- the detector sees ``x = r sin(theta) cos(phi)``, ``z = r c``.

Random numbers come from numba's Mersenne Twister, reseeded per frame (and per stream) with
``frame_seed(seed, frame, stream)``; a frame's electrons therefore depend only on the seed and
the frame index, never on how frames are grouped into chunks or spread over threads.

Lab-camera effects (issue 13; off by default, and then nothing of them runs): the image centre
``centre_offset`` pixels off the screen centre shifts every shell electron's screen position;
``stray_electrons`` per frame (Poisson) land uniformly on the whole screen, from their own
per-frame stream (:data:`STREAM_STRAYS`), and join the detected electrons with ElectronId -1.
The published streams (electrons, spots) are untouched by either.
"""

import dataclasses
from collections import namedtuple

import numpy as np
from numba import njit, prange

from sevi_lib.core.angular import check_physical
from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.core.io import DETECTED_DTYPE, GENERATED_DTYPE

#: Size of the quantile table that gives Newton its starting point and bracket.
TABLE_SIZE = 1024

#: Random streams of a frame (see :func:`frame_seed`): the published ones ...
STREAM_ELECTRONS = 0
STREAM_SPOTS = 1
_N_STREAMS = 2
#: ... and the lab-camera ones (issue 13), seeded from a separate block of seeds.
STREAM_STRAYS = 2
STREAM_NOISE = 3
_N_EXTRA = 2
_EXTRA_BLOCK = np.uint64(1 << 31)

#: ``detected_shell`` of a stray electron (and ElectronId of its DetectedElectrons row: -1).
STRAY_SHELL = 255

_MASK32 = np.uint64(0xFFFFFFFF)


# ------------------------------------------------------------------------------------ seeding
@njit(cache=True)
def splitmix64(x):
    """SplitMix64 output for state `x` (uint64): the next state is ``x + 0x9E3779B97F4A7C15``."""
    x = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def frame_seed(seed, frame, stream):
    """32-bit seed of numba's generator for one frame and stream.

    ``(hash(seed) + 2 * frame + stream) mod 2**32`` for the published streams 0 and 1, and
    ``(hash(seed) + 2**31 + 2 * frame + stream - 2) mod 2**32`` for the lab-camera streams 2 and
    3: distinct for every (frame, stream) of one seed (up to 2**30 frames), so no two frames of
    a file share a random stream and the lab-camera streams never reuse a published one.

    Parameters
    ----------
    seed : int
        Run seed (>= 0).
    frame : int
        Global frame index.
    stream : int
        :data:`STREAM_ELECTRONS` (0), :data:`STREAM_SPOTS` (1, the renderer's spot parameters),
        :data:`STREAM_STRAYS` (2) or :data:`STREAM_NOISE` (3, the renderer's read noise).

    Returns
    -------
    int
        Seed for ``np.random.seed`` inside numba.
    """
    base = splitmix64(np.uint64(seed)) & _MASK32
    if stream < _N_STREAMS:
        return np.int64((base + np.uint64(_N_STREAMS * frame + stream)) & _MASK32)
    return np.int64((base + _EXTRA_BLOCK + np.uint64(_N_EXTRA * frame + stream - _N_STREAMS)) & _MASK32)


# ------------------------------------------------------------------------- Legendre machinery
@njit(cache=True)
def _prepare_coefficients(beta):
    """Legendre coefficients of I (even orders) and F (odd orders) in one array.

    Returns ``a`` with ``a[0] = 1/2`` (constant of both), ``a[2i] = beta_{2i}`` and the odd
    ``a[l]`` the coefficients of F - 1/2; trailing zero betas are dropped. Also the recurrence
    factors ``alpha[l] = (2l+1)/(l+1)``, ``gamma[l] = l/(l+1)``.
    """
    nb = beta.shape[0]
    while nb > 0 and beta[nb - 1] == 0.0:
        nb -= 1
    lmax = 2 * nb + 1
    a = np.zeros(lmax + 1)
    a[0] = 0.5
    a[1] = 0.5
    for i in range(1, nb + 1):
        b = beta[i - 1]
        a[2 * i] = b
        w = b / (4.0 * i + 1.0)
        a[2 * i + 1] += w
        a[2 * i - 1] -= w
    alpha = np.zeros(lmax + 1)
    gamma = np.zeros(lmax + 1)
    for l in range(1, lmax + 1):
        alpha[l] = (2.0 * l + 1.0) / (l + 1.0)
        gamma[l] = l / (l + 1.0)
    return a, alpha, gamma


@njit(cache=True)
def _cdf_density(c, a, alpha, gamma):
    """F(c) and I(c) at one point (scalar recurrence)."""
    lmax = a.shape[0] - 1
    pm = 1.0
    p = c
    f = 0.5
    F = 0.5 + a[1] * c
    for l in range(1, lmax, 2):
        pe = alpha[l] * c * p - gamma[l] * pm
        po = alpha[l + 1] * c * pe - gamma[l + 1] * p
        f += a[l + 1] * pe
        F += a[l + 2] * po
        pm = pe
        p = po
    return F, f


@njit(cache=True, error_model="numpy")
def _solve(u, lo, hi, c, a, alpha, gamma):
    """Root of F(c) = u in the bracket [lo, hi] by safeguarded Newton (bisection fallback).

    Stops when the step falls below the rounding level of c or the bracket collapses.
    """
    if c < lo or c > hi:
        c = 0.5 * (lo + hi)
    step_old = hi - lo
    for _ in range(200):
        F, f = _cdf_density(c, a, alpha, gamma)
        g = F - u
        if g == 0.0:
            return c
        if g < 0.0:
            lo = c
        else:
            hi = c
        cn = c - g / f if f > 0.0 else np.nan
        if not (lo <= cn <= hi) or abs(cn - c) > 0.5 * step_old:
            cn = 0.5 * (lo + hi)
        step = abs(cn - c)
        step_old = step
        c = cn
        if step <= 2.3e-16 * abs(c) + 1e-300 or hi - lo <= 2.3e-16 * max(abs(lo), abs(hi)):
            return c
    return c


@njit(cache=True)
def _quantile_table(a, alpha, gamma, K):
    """Exact quantiles c_k = F^-1(k / K), k = 0..K (each solved to machine precision)."""
    table = np.empty(K + 1)
    table[0] = -1.0
    table[K] = 1.0
    for k in range(1, K):
        lo = table[k - 1]
        F, f = _cdf_density(lo, a, alpha, gamma)
        guess = lo + (k / K - F) / f if f > 0.0 else lo
        table[k] = _solve(k / K, lo, 1.0, min(guess, 1.0), a, alpha, gamma)
    return table


@njit(cache=True)
def make_sampler(beta, K=TABLE_SIZE):
    """Precompute what :func:`sample_c_into` needs for one beta vector (numba).

    The beta vector must be physical (check with :func:`sevi_lib.core.angular.check_physical`).

    Parameters
    ----------
    beta : ndarray of float64, shape (N,)
    K : int
        Quantile-table size (starting points only; accuracy does not depend on it).

    Returns
    -------
    tuple of ndarray
        ``(a, alpha, gamma, table)``.
    """
    a, alpha, gamma = _prepare_coefficients(beta)
    return a, alpha, gamma, _quantile_table(a, alpha, gamma, K)


_BLOCK = 64


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def sample_c_into(u, out, sampler):
    """Map uniforms `u` to c = F^-1(u) exactly, writing into `out` (numba).

    Per sample: starting point by linear interpolation in the quantile table, whose two nodes
    bracket the root; two Newton steps on the exact CDF, vectorised over blocks of samples;
    a sample is accepted when the second step certifies convergence (predicted error of the
    next step ``|d2|^3 / d1^2 <= 1e-17``, or ``|d2|`` at rounding level). Any other sample
    (e.g. near a zero of the density, where Newton is slow) is finished by the scalar
    safeguarded solver :func:`_solve` inside its bracket.

    Parameters
    ----------
    u : ndarray of float64, shape (n,)
        Uniforms in [0, 1].
    out : ndarray of float64, shape (n,)
    sampler : tuple
        From :func:`make_sampler`.
    """
    a, alpha, gamma, table = sampler
    K = table.shape[0] - 1
    lmax = a.shape[0] - 1
    n = u.shape[0]
    B = _BLOCK
    c = np.empty(B)
    lo = np.empty(B)
    hi = np.empty(B)
    uu = np.empty(B)
    F = np.empty(B)
    f = np.empty(B)
    pm = np.empty(B)
    p = np.empty(B)
    d1 = np.empty(B)
    d2 = np.empty(B)
    a1 = a[1]
    for start in range(0, n, B):
        m = min(B, n - start)
        for j in range(m):
            uj = u[start + j]
            t = uj * K
            k = min(int(t), K - 1)
            w = t - k
            l0 = table[k]
            h0 = table[k + 1]
            lo[j] = l0
            hi[j] = h0
            c[j] = l0 + w * (h0 - l0)
            uu[j] = uj
        for it in range(2):
            for j in range(m):
                pm[j] = 1.0
                p[j] = c[j]
                f[j] = 0.5
                F[j] = 0.5 + a1 * c[j] - uu[j]
            for l in range(1, lmax, 2):
                al = alpha[l]
                gl = gamma[l]
                al2 = alpha[l + 1]
                gl2 = gamma[l + 1]
                ae = a[l + 1]
                ao = a[l + 2]
                for j in range(m):
                    cj = c[j]
                    pe = al * cj * p[j] - gl * pm[j]
                    po = al2 * cj * pe - gl2 * p[j]
                    f[j] += ae * pe
                    F[j] += ao * po
                    pm[j] = pe
                    p[j] = po
            dd = d1 if it == 0 else d2
            for j in range(m):
                step = F[j] / f[j]
                dd[j] = step
                c[j] -= step
        for j in range(m):
            e1 = abs(d1[j])
            e2 = abs(d2[j])
            cj = c[j]
            # certified: second step at rounding level, or predicted next step |d2|^3/d1^2
            # negligible; and still inside the exact bracket (false for NaN)
            ok = (e2 <= 4.5e-16 * abs(cj)) | (e2 * e2 * e2 <= 1e-17 * e1 * e1)
            ok = ok & (lo[j] <= cj) & (cj <= hi[j])
            if ok:
                out[start + j] = cj
            else:
                out[start + j] = _solve(uu[j], lo[j], hi[j], 0.5 * (lo[j] + hi[j]), a, alpha, gamma)


def sample_cos_theta(beta, n, seed):
    """Draw c = cos(theta) from ``I(c) = 1/2 + sum_i beta_{2i} P_{2i}(c)``.

    Inverse-transform sampling on the exact closed-form CDF, solved per sample to machine
    precision by the numba kernel :func:`sample_c_into`; the uniforms come from NumPy's PCG64
    generator seeded with `seed`.

    Parameters
    ----------
    beta : array_like, shape (N,)
        beta_2 .. beta_2N; must be physical.
    n : int
        Number of samples.
    seed : int or numpy.random.Generator
        Seed (>= 0) or generator of the uniforms.

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    UnphysicalError
        If I(c) < 0 somewhere on [-1, 1].
    """
    beta = check_physical(np.ascontiguousarray(beta, dtype=np.float64))
    u = np.random.default_rng(seed).random(int(n))
    out = np.empty_like(u)
    sample_c_into(u, out, make_sampler(beta))
    return out


def _check_seed(seed):
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise InputError(f"seed {seed} must be in [0, 2**32)")
    return seed


@njit(cache=True)
def _draw_shell(u, r, phi, c, x, z, R, sigma_R, sampler):
    """Fill r, c, x, z of len(u) electrons from uniforms u and current numba generator state."""
    n = u.shape[0]
    for i in range(n):
        u[i] = np.random.random()
    for i in range(n):
        r[i] = np.random.normal(R, sigma_R) if sigma_R > 0.0 else R
    for i in range(n):
        phi[i] = 2.0 * np.pi * np.random.random()
    sample_c_into(u, c, sampler)
    for i in range(n):
        s = np.sqrt(max(0.0, 1.0 - c[i] * c[i]))
        x[i] = r[i] * s * np.cos(phi[i])
        z[i] = r[i] * c[i]


@njit(cache=True)
def sample_shell(R, sigma_R, beta, n, seed):
    """Draw `n` electrons of one shell and project them (numba; callable from numba code).

    The beta vector must be physical (the Python-level API checks; this kernel does not).

    Parameters
    ----------
    R, sigma_R : float
        Radius and radial standard deviation (screen units).
    beta : ndarray of float64, shape (N,)
    n : int
    seed : int
        Seeds numba's generator (0 <= seed < 2**32).

    Returns
    -------
    r, c, x, z : ndarray of float64, shape (n,)
        Speed, cos(theta), projected screen position.
    """
    np.random.seed(seed)
    u = np.empty(n)
    phi = np.empty(n)
    r = np.empty(n)
    c = np.empty(n)
    x = np.empty(n)
    z = np.empty(n)
    _draw_shell(u, r, phi, c, x, z, R, sigma_R, make_sampler(beta))
    return r, c, x, z


# ------------------------------------------------------------------------------ frame simulator
@njit(cache=True)
def _frame_counts(frame0, nf, seed, means):
    S = means.shape[0]
    counts = np.empty((nf, S), dtype=np.int64)
    for k in range(nf):
        np.random.seed(frame_seed(seed, frame0 + k, STREAM_ELECTRONS))
        for s in range(S):
            counts[k, s] = np.random.poisson(means[s])
    return counts


@njit(cache=True)
def _stray_counts(frame0, nf, seed, mean):
    """Poisson(mean) stray electrons of each frame (first draw of its :data:`STREAM_STRAYS` stream)."""
    counts = np.empty(nf, dtype=np.int64)
    for k in range(nf):
        np.random.seed(frame_seed(seed, frame0 + k, STREAM_STRAYS))
        counts[k] = np.random.poisson(mean)
    return counts


@njit(cache=True)
def _draw_strays(frame0, nf, seed, mean, offsets, x, z):
    """Positions of the stray electrons, uniform on [-1, 1)^2; frame k's are x, z[offsets[k]:offsets[k+1]].

    Stream :data:`STREAM_STRAYS` of each frame: the count (as :func:`_stray_counts`), then the
    x of every stray, then their z.
    """
    for k in range(nf):
        np.random.seed(frame_seed(seed, frame0 + k, STREAM_STRAYS))
        np.random.poisson(mean)
        for i in range(offsets[k], offsets[k + 1]):
            x[i] = 2.0 * np.random.random() - 1.0
        for i in range(offsets[k], offsets[k + 1]):
            z[i] = 2.0 * np.random.random() - 1.0


def stray_electrons_table(frame0, nf, seed, mean):
    """Stray electrons of frames frame0 .. frame0 + nf - 1 (their own per-frame streams).

    Parameters
    ----------
    frame0, nf : int
        First global frame index and number of frames.
    seed : int
    mean : float
        Poisson mean per frame (> 0).

    Returns
    -------
    table : structured ndarray, :data:`sevi_lib.core.io.DETECTED_DTYPE`
        Ordered by frame; ElectronId -1; x, z uniform on the screen.
    offsets : ndarray of int64, shape (nf + 1,)
        Frame k's strays are ``table[offsets[k]:offsets[k + 1]]``.
    """
    counts = _stray_counts(frame0, nf, seed, float(mean))
    offsets = np.zeros(nf + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    x = np.empty(int(offsets[-1]))
    z = np.empty_like(x)
    _draw_strays(frame0, nf, seed, float(mean), offsets, x, z)
    table = np.empty(len(x), dtype=DETECTED_DTYPE)
    table["ImageId"] = np.repeat(np.arange(frame0, frame0 + nf, dtype=np.int32), counts)
    table["ElectronId"] = -1
    table["x"] = x
    table["z"] = z
    return table, offsets


#: The frame simulator's model, one record built in :func:`iter_frame_electrons`: per shell the
#: Poisson mean, R, sigma_R and the sampler arrays of :class:`_Samplers`; and the detection loss.
FrameModel = namedtuple("FrameModel", ["means", "loss", "R", "sigma_R", "a", "alpha", "gamma", "table"])

#: The frame simulator's outputs, one record: frame offsets and per electron its shell, r,
#: cos(theta), x, z and whether it was detected.
ElectronBuffers = namedtuple("ElectronBuffers", ["offsets", "shell", "r", "c", "x", "z", "detected"])


@njit(cache=True, parallel=True)
def _simulate_frames(frame0, nf, seed, model, out):
    """Electrons of frames frame0 .. frame0 + nf - 1 into the preallocated :data:`ElectronBuffers` `out`.

    Frame k's electrons occupy [out.offsets[k], out.offsets[k+1]), shell by shell. Its generator
    is seeded with frame_seed(seed, frame, 0); draws: counts of every shell, then per shell
    u, r, phi, detection uniforms. `model` is a :data:`FrameModel`.
    """
    # unpack the records before the parallel loop: numba's parfor lowering mishandles arrays
    # reached through a tuple inside prange (measured: wrong shells and detections)
    means, loss, R, sigma_R, a, alpha, gamma, table = model
    offsets, shell, r, c, x, z, detected = out
    S = means.shape[0]
    for k in prange(nf):
        np.random.seed(frame_seed(seed, frame0 + k, STREAM_ELECTRONS))
        cnt = np.empty(S, dtype=np.int64)
        for s in range(S):
            cnt[s] = np.random.poisson(means[s])
        pos = offsets[k]
        for s in range(S):
            m = cnt[s]
            sampler = (a[s], alpha[s], gamma[s], table[s])
            u = np.empty(m)
            phi = np.empty(m)
            _draw_shell(u, r[pos:pos + m], phi, c[pos:pos + m], x[pos:pos + m], z[pos:pos + m],
                        R[s], sigma_R[s], sampler)
            for i in range(m):
                shell[pos + i] = s
                detected[pos + i] = np.random.random() >= loss
            pos += m


class _Samplers:
    """Per-shell sampler arrays padded to one common order (numba wants homogeneous arrays).

    Zero coefficients beyond a shell's own order leave its F and I unchanged.
    """

    def __init__(self, shells):
        parts = [make_sampler(np.ascontiguousarray(b)) for b in shells.beta]
        L = max(p[0].shape[0] for p in parts)  # even: lmax = L - 1 is odd for every shell
        S = len(parts)
        self.a = np.zeros((S, L))
        for s, p in enumerate(parts):
            self.a[s, : len(p[0])] = p[0]
        ls = np.arange(L, dtype=np.float64)
        self.alpha = np.tile(np.where(ls > 0, (2 * ls + 1) / (ls + 1), 0.0), (S, 1))
        self.gamma = np.tile(np.where(ls > 0, ls / (ls + 1), 0.0), (S, 1))
        self.table = np.stack([p[3] for p in parts])


#: One chunk of simulated frames (see :func:`iter_frame_electrons`).
FrameElectrons = namedtuple(
    "FrameElectrons", ["frame_start", "n_frames", "generated", "detected", "detected_shell", "frame_offsets"]
)
FrameElectrons.__doc__ = """Electrons of frames [frame_start, frame_start + n_frames).

generated : structured ndarray, :data:`sevi_lib.core.io.GENERATED_DTYPE` (SphereId, ElectronId, r, cos_theta)
    Every electron, ordered by frame, then shell.
detected : structured ndarray, :data:`sevi_lib.core.io.DETECTED_DTYPE` (ImageId, ElectronId, x, z)
    The detected ones, same order, each frame's stray electrons (ElectronId -1) after its shell
    electrons; ImageId is the global frame index; x, z screen positions.
detected_shell : ndarray of uint8
    Shell of each detected electron (:data:`STRAY_SHELL` for a stray electron).
frame_offsets : ndarray of int64, shape (n_frames + 1,)
    Frame k's detected electrons are ``detected[frame_offsets[k]:frame_offsets[k + 1]]``.
"""


def check_args(shells, n_frames, electrons_per_shell, detection_loss, seed):
    """Check the arguments of a frame simulation; InputError naming the bad one.

    Parameters
    ----------
    shells : sevi_lib.core.shells.Shells
    n_frames : int
    electrons_per_shell : float or sequence of float
    detection_loss : float
    seed : int

    Returns
    -------
    means : ndarray of float64, shape (n_shells,)
    detection_loss : float
    n_frames : int
    seed : int
    """
    means = np.broadcast_to(np.asarray(electrons_per_shell, dtype=np.float64), (shells.n_shells,)).copy() \
        if np.ndim(electrons_per_shell) == 0 else np.asarray(electrons_per_shell, dtype=np.float64)
    if means.shape != (shells.n_shells,):
        raise InputError(f"electrons_per_shell must give one mean per shell ({shells.n_shells}), got {list(np.ravel(means))}")
    if not np.all(np.isfinite(means) & (means >= 0)):
        raise InputError(f"electrons_per_shell must be finite and >= 0, got {list(means)}")
    if not 0.0 <= float(detection_loss) <= 1.0:
        raise InputError(f"detection_loss must be in [0, 1], got {detection_loss}")
    if int(n_frames) < 0:
        raise InputError(f"n_frames must be >= 0, got {n_frames}")
    return means, float(detection_loss), int(n_frames), _check_seed(seed)


def iter_frame_electrons(shells, settings):
    """Simulate frames chunk by chunk; the result does not depend on ``settings.chunk``.

    Parameters
    ----------
    shells : sevi_lib.core.shells.Shells
        The shells simulated (the shell fields ``R``, ``sigma_R``, ``beta`` of `settings` are not
        read: :meth:`~sevi_lib.simulate.settings.SimulationSettings.shells` builds these from them).
    settings : sevi_lib.simulate.settings.SimulationSettings
        What is read: ``n_frames``; ``electrons_per_shell`` (Poisson mean of electrons per frame,
        one per shell, or one for all); ``detection_loss`` (probability that an electron is not
        detected); ``seed`` (0 <= seed < 2**32); ``chunk`` (frames per yielded chunk);
        ``centre_offset`` (image centre minus screen centre, pixels (dx, dz): every shell
        electron's x, z is shifted by (dx, dz) / 512 screen units); ``stray_electrons`` (Poisson
        mean per frame of stray electrons, uniform on the screen, no detection loss).

    Yields
    ------
    FrameElectrons
        ElectronId counts electrons over the whole simulation (so detected rows link to
        generated rows); ImageId is the global frame index. Detected x, z are screen positions
        (centre offset included). A frame's stray electrons follow its shell electrons in
        ``detected`` with ElectronId -1 and ``detected_shell`` :data:`STRAY_SHELL`.
    """
    means, loss, n_frames, seed = check_args(shells, settings.n_frames, settings.electron_means(shells.n_shells),
                                             settings.detection_loss, settings.seed)
    (dx, dz), strays, _, _ = settings.camera()
    chunk = int(settings.chunk)
    smp = _Samplers(shells)
    model = FrameModel(means, loss, np.ascontiguousarray(shells.R), np.ascontiguousarray(shells.sigma_R),
                       smp.a, smp.alpha, smp.gamma, smp.table)
    next_id = 0
    for f0 in range(0, n_frames, chunk):
        nf = min(chunk, n_frames - f0)
        counts = _frame_counts(f0, nf, seed, means)
        per_frame = counts.sum(axis=1)
        offsets = np.zeros(nf + 1, dtype=np.int64)
        np.cumsum(per_frame, out=offsets[1:])
        n = int(offsets[-1])
        if next_id + n > np.iinfo(np.int32).max:
            raise InputError("more than 2**31 - 1 electrons: ElectronId (int32) would overflow")
        shell = np.empty(n, dtype=np.uint8)
        r, c, x, z = (np.empty(n) for _ in range(4))
        det = np.empty(n, dtype=np.bool_)
        _simulate_frames(f0, nf, seed, model, ElectronBuffers(offsets, shell, r, c, x, z, det))
        ids = np.arange(next_id, next_id + n, dtype=np.int32)
        frame_of = np.repeat(np.arange(f0, f0 + nf, dtype=np.int32), per_frame)
        gen = np.empty(n, dtype=GENERATED_DTYPE)
        gen["SphereId"] = shell
        gen["ElectronId"] = ids
        gen["r"] = r
        gen["cos_theta"] = c
        if dx != 0.0:
            x += dx / PIX_PER_UNIT
        if dz != 0.0:
            z += dz / PIX_PER_UNIT
        dtab = np.empty(int(det.sum()), dtype=DETECTED_DTYPE)
        dtab["ImageId"] = frame_of[det]
        dtab["ElectronId"] = ids[det]
        dtab["x"] = x[det]
        dtab["z"] = z[det]
        det_shell = shell[det]
        det_per_frame = np.add.reduceat(det.astype(np.int64), offsets[:-1]) if n else np.zeros(nf, np.int64)
        det_per_frame[per_frame == 0] = 0  # reduceat quirk: an empty segment returns the next value
        frame_offsets = np.zeros(nf + 1, dtype=np.int64)
        np.cumsum(det_per_frame, out=frame_offsets[1:])
        if strays > 0.0:
            stab, soffsets = stray_electrons_table(f0, nf, seed, strays)
            order = np.argsort(np.concatenate([dtab["ImageId"], stab["ImageId"]]), kind="stable")
            dtab = np.concatenate([dtab, stab])[order]
            det_shell = np.concatenate([det_shell, np.full(len(stab), STRAY_SHELL, np.uint8)])[order]
            frame_offsets += soffsets
        next_id += n
        yield FrameElectrons(f0, nf, gen, dtab, det_shell, frame_offsets)


def simulate_electrons(shells, settings):
    """Simulate all electrons of ``settings.n_frames`` frames at once (see :func:`iter_frame_electrons`).

    Parameters
    ----------
    shells : sevi_lib.core.shells.Shells
    settings : sevi_lib.simulate.settings.SimulationSettings
        As in :func:`iter_frame_electrons` (``chunk`` is not read).

    Returns
    -------
    FrameElectrons
        Same content as the concatenation of the chunks of :func:`iter_frame_electrons`.

    Examples
    --------
    >>> from sevi_lib.core.shells import Shells
    >>> from sevi_lib.simulate.settings import SimulationSettings
    >>> sh = Shells([0.5, 0.8], [0.007, 0.008], [[1.0, 0.5], [-0.3, 0.0]])
    >>> out = simulate_electrons(sh, SimulationSettings(n_frames=10, electrons_per_shell=[40, 40], seed=1))
    >>> out.generated.dtype.names
    ('SphereId', 'ElectronId', 'r', 'cos_theta')
    """
    whole = dataclasses.replace(settings, chunk=max(1, int(settings.n_frames)))
    return concatenate_chunks(list(iter_frame_electrons(shells, whole)), settings.n_frames)


def concatenate_chunks(chunks, n_frames=None):
    """Join consecutive :class:`FrameElectrons` chunks into one.

    Parameters
    ----------
    chunks : list of FrameElectrons
    n_frames : int, optional
        Total frames (used when `chunks` is empty).

    Returns
    -------
    FrameElectrons
    """
    if not chunks:
        return FrameElectrons(0, int(n_frames or 0), np.empty(0, GENERATED_DTYPE), np.empty(0, DETECTED_DTYPE),
                              np.empty(0, np.uint8), np.zeros(int(n_frames or 0) + 1, np.int64))
    offsets = [np.zeros(1, np.int64)]
    total = 0
    for ch in chunks:
        offsets.append(ch.frame_offsets[1:] + total)
        total += ch.frame_offsets[-1]
    return FrameElectrons(
        chunks[0].frame_start, sum(ch.n_frames for ch in chunks),
        np.concatenate([ch.generated for ch in chunks]), np.concatenate([ch.detected for ch in chunks]),
        np.concatenate([ch.detected_shell for ch in chunks]), np.concatenate(offsets),
    )
