"""Camera-frame renderer for any camera spot model (numba); by default the published generator's.

Each detected electron at screen position (x0, z0) lights a spot

    A exp(-[(x - x0)^2 + (z - z0)^2 + 2 rho (x - x0)(z - z0)] / (2 sigma^2))

with, independently per electron, the parameters of a :class:`~sevi_lib.core.spots.SpotModel`
(:func:`draw_spot_params`; the kernels take its :data:`~sevi_lib.core.spots.SpotKernel`):
the peak A ~ Normal(gain_mean, (gain_cv gain_mean)^2) clipped at 0 or Gamma(shape 1 / gain_cv^2,
scale gain_mean gain_cv^2), the width sigma ~ Normal(sigma_px, sigma_sd_px^2) / 512 screen units
clipped below at :data:`SIGMA_FLOOR` (0.1 px), and rho ~ Normal(0, rho_sd^2) clipped to [-1, 1].
The default model (``spots=None`` or ``SpotModel()``) is the published one: A ~ Normal(100, 10^2),
sigma ~ Normal(0.015, 0.001^2), rho ~ Normal(0, 0.1^2), drawn in the same order from the same
streams as before the model became a parameter, so its frames are bit-identical to those of
earlier versions.

How the model is discretised here (the published text fixes the ingredients; the exact pixel
bookkeeping is this module's reading of it):

- Continuous pixel coordinates ``p = (u + 1) * 512`` (pixel i covers [i, i + 1)), so the spot
  centre is ``(px0, pz0)`` and its width ``s = 512 sigma`` pixels.
- *Support aligned to pixel edges*: the square of half-width ``h = s sqrt(2 ln A)`` (where the
  spot is >= 1) is widened to whole pixels: every pixel that the closed square
  ``[px0 - h, px0 + h] x [pz0 - h, pz0 + h]`` touches, i.e. ``i = floor(px0 - h) .. floor(px0 + h)``
  (and likewise for z), clipped to the screen. Every sub-point of those pixels is evaluated, also
  the few that lie just outside the square. A spot with A < 1 is nowhere >= 1 and adds nothing.
- *Sub-grid*: a pixel's value is the mean of the spot at the 25 points
  ``(i + a/5, j + b/5)``, a, b = 0..4 (offsets 0, 0.2, .., 0.8 px from the pixel's lower
  edges). The pixel value therefore samples the spot 0.4 px above the pixel's lower edge, 0.1 px
  below its centre: with pixel centres at i + 0.5, a spot's intensity centroid lies +0.1 px
  (in pixel index, on each axis) from the electron's true position -- equivalently the true
  position is 0.1 px below the centroid (the reference's "-0.1 px shift").
- *Overlap and quantisation*: spots add in float64; the frame is rounded half to even
  (``numpy.rint``, like ``numpy.round``), clipped to [0, 255] and stored as uint8.

Lab-camera effects (issue 13; off by default, and then nothing of them runs, so the published
frames are unchanged): hot pixels (:func:`hot_pixel_table`: positions and levels drawn once
from the seed) add their level to the float frame before quantisation, in every frame; read
noise adds ``read_noise * N(0, 1)`` to every pixel before rounding and clipping
(:func:`quantize_noisy_into`, a per-frame stream of its own, :data:`STREAM_NOISE`). The centre
offset and the stray electrons are electrons like any other here (see
:func:`sevi_lib.simulate.electrons.iter_frame_electrons`).

For speed the Gaussian is factorised, ``exp(-dx^2/2s^2) exp(-dz^2/2s^2) exp(-rho dx dz/s^2)``,
with the cross factor advanced along x by a per-column ratio; the result equals the direct
formula to ~1e-13 relative (tests check this against a direct implementation).
"""

from collections import namedtuple
from collections.abc import Mapping

import numpy as np
from numba import get_num_threads, njit, prange

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT
from sevi_lib.core.spots import GAIN_LAWS, SpotKernel, SpotModel
from sevi_lib.core.io import HOT_PIXEL_DTYPE
from sevi_lib.simulate.electrons import (
    STREAM_NOISE,
    STREAM_SPOTS,
    check_args,
    frame_seed,
    iter_frame_electrons,
    splitmix64,
)
from sevi_lib.simulate.settings import check_camera

#: Published spot-parameter distributions (those of ``SpotModel()``; kept for their readers).
A_MEAN, A_SD = 100.0, 10.0
SIGMA_MEAN, SIGMA_SD = 0.015, 0.001
RHO_SD = 0.1
#: Smallest spot width drawn (screen units, 0.1 px): a wide width distribution gives no negative width.
SIGMA_FLOOR = 0.1 / PIX_PER_UNIT
#: Code of the gamma gain law in :data:`~sevi_lib.core.spots.SpotKernel` (numba reads it as a constant).
_GAMMA = GAIN_LAWS["gamma"]
#: Sub-grid points per pixel and axis, at offsets 0, 0.2, .., 0.8 px.
N_SUB = 5
#: Levels of hot pixels (counts), uniform in [HOT_LEVEL_MIN, HOT_LEVEL_MAX].
HOT_LEVEL_MIN, HOT_LEVEL_MAX = 64.0, 255.0
#: Mixed into the seed of the hot pixels' generator (keeps it apart from every frame stream).
_HOT_PIXEL_KEY = 0x484F54


def spot_kernel(spots=None):
    """The :data:`~sevi_lib.core.spots.SpotKernel` of a spot model (checked).

    Parameters
    ----------
    spots : SpotModel, SpotKernel, mapping or None
        A :class:`~sevi_lib.core.spots.SpotModel`, a mapping of some of its fields
        (:meth:`~sevi_lib.core.spots.SpotModel.from_dict`), an already built kernel, or None
        for the published model.

    Returns
    -------
    SpotKernel
    """
    if isinstance(spots, SpotKernel):
        return spots
    return spot_model(spots).kernel()


def spot_model(spots=None):
    """The :class:`~sevi_lib.core.spots.SpotModel` of `spots` (None: published; a mapping: its fields).

    A bad value or an unknown key raises :class:`~sevi_lib.core.errors.InputError` with a one-line
    message naming it (:meth:`~sevi_lib.core.spots.SpotModel.validate`).
    """
    if spots is None:
        return SpotModel()
    try:
        if isinstance(spots, SpotModel):
            return spots.validate()
        if isinstance(spots, Mapping):
            return SpotModel.from_dict(spots)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from None
    raise InputError(f"spot model must be a SpotModel or a mapping of its fields, got {spots!r}")


def draw_spot_params(n, rng, model=None):
    """Draw spot amplitudes, widths and correlations from a spot model (numpy's generator).

    The draws come in the order of the numba kernels (all A, then all sigma, then all rho); the
    normal law draws ``rng.normal(mean, sd, n)`` as before the model was a parameter, so the
    published model gives the same numbers as earlier versions for the same generator.

    Parameters
    ----------
    n : int
        Number of spots.
    rng : numpy.random.Generator or int
        Generator (or seed).
    model : SpotModel, mapping or None
        The spot model (see :func:`spot_model`); None: the published one.

    Returns
    -------
    A : ndarray, shape (n,)
        Peaks: Normal(gain_mean, gain_sd^2) clipped at 0, or Gamma of that mean and sd
        (published: Normal(100, 10^2)).
    sigma : ndarray, shape (n,)
        Widths, screen units: Normal(sigma_px, sigma_sd_px^2) / 512 clipped below at
        :data:`SIGMA_FLOOR` (published: Normal(0.015, 0.001^2)).
    rho : ndarray, shape (n,)
        Normal(0, rho_sd^2) clipped to [-1, 1] (published: rho_sd = 0.1).
    """
    k = spot_kernel(model)
    rng = np.random.default_rng(rng)
    if k.gain_law == _GAMMA:
        A = rng.gamma((k.gain_mean / k.gain_sd) ** 2, k.gain_sd * k.gain_sd / k.gain_mean, n)
    else:
        A = np.maximum(rng.normal(k.gain_mean, k.gain_sd, n), 0.0)
    sigma = np.maximum(rng.normal(k.sigma, k.sigma_sd, n), SIGMA_FLOOR)
    rho = np.clip(rng.normal(0.0, k.rho_sd, n), -1.0, 1.0)
    return A, sigma, rho


@njit(cache=True)
def _draw_spot_params_nb(n, A, sigma, rho, spots):
    """Draw `n` spots of the model `spots` (a SpotKernel) from numba's generator into A, sigma, rho.

    Same laws and order as :func:`draw_spot_params`: all A, then all sigma, then all rho, each
    normal drawn as ``np.random.normal(mean, sd)`` (the published draws of earlier versions).
    """
    gain_law, gain_mean, gain_sd, s_mean, s_sd, rho_sd = spots
    if gain_law == _GAMMA:
        shape = (gain_mean / gain_sd) ** 2
        scale = gain_sd * gain_sd / gain_mean
        for i in range(n):
            A[i] = np.random.gamma(shape, scale)
    else:
        for i in range(n):
            A[i] = max(np.random.normal(gain_mean, gain_sd), 0.0)
    for i in range(n):
        sigma[i] = max(np.random.normal(s_mean, s_sd), SIGMA_FLOOR)
    for i in range(n):
        rho[i] = min(max(np.random.normal(0.0, rho_sd), -1.0), 1.0)


def draw_spot_params_numba(n, seed, model=None):
    """Draw `n` spots with the renderer's own (numba) generator, seeded with `seed`.

    What a frame's spot parameters are drawn with (:func:`render_chunk` seeds numba's generator
    per frame); exposed so that tests can compare it with :func:`draw_spot_params`.

    Parameters
    ----------
    n : int
    seed : int
        Seed of numba's generator (0 <= seed < 2**32).
    model : SpotModel, mapping or None
        See :func:`spot_model`.

    Returns
    -------
    A, sigma, rho : ndarray, shape (n,)
    """
    A, sigma, rho = np.empty(n), np.empty(n), np.empty(n)
    _seeded_draw_nb(int(seed), int(n), A, sigma, rho, spot_kernel(model))
    return A, sigma, rho


@njit(cache=True)
def _seeded_draw_nb(seed, n, A, sigma, rho, spots):
    np.random.seed(seed)
    _draw_spot_params_nb(n, A, sigma, rho, spots)


@njit(cache=True)
def spot_support(x0, A, sigma):
    """First and last pixel (inclusive, before clipping) of a spot's support along one axis.

    Parameters
    ----------
    x0 : float
        Spot centre, screen units.
    A, sigma : float
        Amplitude and width (screen units).

    Returns
    -------
    lo, hi : int
        ``floor(p0 - h)`` and ``floor(p0 + h)`` with ``p0 = (x0 + 1) 512``,
        ``h = 512 sigma sqrt(2 ln A)``; ``hi < lo`` when A < 1 or sigma <= 0.
    """
    if not (A >= 1.0 and sigma > 0.0):
        return 0, -1
    h = sigma * PIX_PER_UNIT * np.sqrt(2.0 * np.log(A))
    p0 = (x0 + 1.0) * PIX_PER_UNIT
    return int(np.floor(p0 - h)), int(np.floor(p0 + h))


@njit(cache=True)
def add_spot(acc, x0, z0, A, sigma, rho):
    """Add one spot (pixel means over the 5 x 5 sub-grid) to the float frame `acc` (numba).

    Parameters
    ----------
    acc : ndarray of float64, shape (1024, 1024)
        ``acc[ix, iz]``, modified in place.
    x0, z0 : float
        Electron position, screen units.
    A, sigma, rho : float
        Spot amplitude, width (screen units), correlation.
    """
    n = acc.shape[0]
    ilo, ihi = spot_support(x0, A, sigma)
    jlo, jhi = spot_support(z0, A, sigma)
    ilo = max(ilo, 0)
    jlo = max(jlo, 0)
    ihi = min(ihi, n - 1)
    jhi = min(jhi, acc.shape[1] - 1)
    if ilo > ihi or jlo > jhi:
        return
    s = sigma * PIX_PER_UNIT
    inv2s2 = 1.0 / (2.0 * s * s)
    px0 = (x0 + 1.0) * PIX_PER_UNIT
    pz0 = (z0 + 1.0) * PIX_PER_UNIT
    nx = (ihi - ilo + 1) * N_SUB
    nz = (jhi - jlo + 1) * N_SUB
    step = 1.0 / N_SUB
    ex = np.empty(nx)
    for a in range(nx):
        dx = (ilo + (a // N_SUB)) + (a % N_SUB) * step - px0
        ex[a] = A * np.exp(-dx * dx * inv2s2) / (N_SUB * N_SUB)
    ez = np.empty(nz)
    cross = np.empty(nz)
    ratio = np.empty(nz)
    k = -2.0 * rho * inv2s2  # exp(-rho dx dz / s^2) = exp(k dx dz)
    dx0 = ilo - px0
    for b in range(nz):
        dz = (jlo + (b // N_SUB)) + (b % N_SUB) * step - pz0
        ez[b] = np.exp(-dz * dz * inv2s2)
        cross[b] = np.exp(k * dx0 * dz)
        ratio[b] = np.exp(k * step * dz)
    row = np.empty(nz)
    for pi in range(ihi - ilo + 1):
        row[:] = 0.0
        for sa in range(N_SUB):
            e = ex[pi * N_SUB + sa]
            if rho == 0.0:
                for b in range(nz):
                    row[b] += e * ez[b]
            else:
                for b in range(nz):
                    row[b] += e * ez[b] * cross[b]
                    cross[b] *= ratio[b]
        i = ilo + pi
        for pj in range(jhi - jlo + 1):
            b = pj * N_SUB
            acc[i, jlo + pj] += row[b] + row[b + 1] + row[b + 2] + row[b + 3] + row[b + 4]


@njit(cache=True)
def add_spots(acc, x, z, A, sigma, rho):
    """Add the spots of arrays x, z, A, sigma, rho to `acc` (see :func:`add_spot`)."""
    for k in range(x.shape[0]):
        add_spot(acc, x[k], z[k], A[k], sigma[k], rho[k])


@njit(cache=True)
def quantize_into(acc, out, reset):
    """``out = uint8(clip(rint(acc), 0, 255))``; zero `acc` on the way when `reset`."""
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            v = np.rint(acc[i, j])
            out[i, j] = np.uint8(min(max(v, 0.0), 255.0))
            if reset:
                acc[i, j] = 0.0


def _spot_arrays(x, z, A, sigma, rho):
    arrs = [np.ascontiguousarray(np.ravel(v), dtype=np.float64) for v in (x, z, A, sigma, rho)]
    n = arrs[0].shape[0]
    if any(v.shape[0] != n for v in arrs):
        raise ValueError("x, z, A, sigma and rho must have the same length")
    return arrs


def render_frame_float(x, z, A, sigma, rho, out=None):
    """Unrounded frame: the float64 sum of the spots (before round, clip and uint8).

    Parameters
    ----------
    x, z : array_like, shape (n,)
        Electron positions, screen units.
    A, sigma, rho : array_like, shape (n,)
        Spot parameters (see :func:`draw_spot_params`).
    out : ndarray of float64, shape (1024, 1024), optional
        Spots are added to it.

    Returns
    -------
    ndarray of float64, shape (1024, 1024)
    """
    if out is None:
        out = np.zeros((N_PIX, N_PIX))
    add_spots(out, *_spot_arrays(x, z, A, sigma, rho))
    return out


def render_frame(x, z, A, sigma, rho, out=None):
    """Render one camera frame from given spot parameters, discretised as the module docstring says.

    Parameters
    ----------
    x, z : array_like, shape (n,)
        Electron positions, screen units.
    A, sigma, rho : array_like, shape (n,)
        Spot parameters.
    out : ndarray of uint8, shape (1024, 1024), optional
        Receives the frame.

    Returns
    -------
    ndarray of uint8, shape (1024, 1024)
        ``frame[ix, iz]``.
    """
    acc = render_frame_float(x, z, A, sigma, rho)
    if out is None:
        out = np.empty((N_PIX, N_PIX), dtype=np.uint8)
    quantize_into(acc, out, False)
    return out


# ------------------------------------------------------------------------------ lab-camera effects
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S11 = np.uint64(11)
_S56 = np.uint64(56)
_TWO_M53 = 2.0**-53


def hot_pixel_table(seed, n):
    """The hot pixels of a simulation: `n` distinct pixels and their levels, drawn once from `seed`.

    Parameters
    ----------
    seed : int
    n : int
        Number of hot pixels (0 .. 1024**2).

    Returns
    -------
    structured ndarray, :data:`sevi_lib.core.io.HOT_PIXEL_DTYPE` (ix, iz, level), shape (n,)
        Positions uniform over the frame without repeats (sorted by ix, then iz), levels uniform
        in [64, 255] counts.
    """
    n = check_camera(hot_pixels=n)[3]
    rng = np.random.default_rng([int(seed), _HOT_PIXEL_KEY])
    flat = np.sort(rng.choice(N_PIX * N_PIX, size=n, replace=False))
    table = np.empty(n, dtype=HOT_PIXEL_DTYPE)
    table["ix"] = flat // N_PIX
    table["iz"] = flat % N_PIX
    table["level"] = rng.uniform(HOT_LEVEL_MIN, HOT_LEVEL_MAX, n)
    return table


#: What the camera adds to the spots (:func:`camera_effects` builds it): the read-noise sd, the
#: hot pixels (ix, iz, level), and the law of a noisy empty pixel for :func:`quantize_noisy_into`.
CameraEffects = namedtuple("CameraEffects", ["read_noise", "hot_ix", "hot_iz", "hot_level", "zero_cdf", "zero_guide"])


def camera_effects(read_noise=0.0, hot=None):
    """The camera record of :func:`render_camera_chunk`, or None for the published camera.

    Parameters
    ----------
    read_noise : float
        Read-noise sd (counts, >= 0).
    hot : structured ndarray (:data:`HOT_PIXEL_DTYPE`), optional
        Hot pixels (:func:`hot_pixel_table`).

    Returns
    -------
    CameraEffects or None
        None when there is neither noise nor a hot pixel. ``zero_cdf[k]`` is P(an empty pixel
        reads <= k) = Phi((k + 1/2) / read_noise) for k < 255 (``zero_cdf[255] = inf``), and
        ``zero_guide[b]`` the smallest k with ``zero_cdf[k] > b / 256`` (the search's start for a
        uniform in [b/256, (b+1)/256)).
    """
    read_noise = check_camera(read_noise=read_noise)[2]
    hot = np.zeros(0, dtype=HOT_PIXEL_DTYPE) if hot is None else np.asarray(hot)
    if read_noise == 0.0 and len(hot) == 0:
        return None
    zero_cdf = np.full(256, np.inf)
    if read_noise > 0.0:
        # local: scipy.special takes about a second to import and the simulation needs it only for read noise
        from scipy.special import ndtr

        zero_cdf[:255] = ndtr((np.arange(255) + 0.5) / read_noise)
    zero_guide = np.searchsorted(zero_cdf, np.arange(256) / 256.0, side="right").astype(np.int64)
    return CameraEffects(float(read_noise), np.ascontiguousarray(hot["ix"], dtype=np.int64),
                         np.ascontiguousarray(hot["iz"], dtype=np.int64),
                         np.ascontiguousarray(hot["level"], dtype=np.float64), zero_cdf, zero_guide)


@njit(cache=True, error_model="numpy")
def quantize_noisy_into(acc, out, sd, zero_cdf, zero_guide, key):
    """``out = uint8(clip(rint(acc + sd N(0, 1)), 0, 255))``, one independent normal per pixel; zero `acc`.

    Random numbers: SplitMix64 streams seeded from `key` (the frame's :data:`STREAM_NOISE`
    seed), so a frame's noise depends only on the seed and the frame index. An empty pixel
    (``acc == 0``, most of a frame) reads ``clip(rint(sd N(0, 1)), 0, 255)``, a law on 0..255
    drawn exactly by inversion of its CDF `zero_cdf` (one uniform, the guide table `zero_guide`
    for the start of the search; the uniform of pixel (i, j) is the (1024 i + j)-th of the
    first stream); a lit pixel gets a true normal (Marsaglia's polar method, second stream).

    Parameters
    ----------
    acc : ndarray of float64, shape (1024, 1024)
        Float frame; set to zero.
    out : ndarray of uint8, shape (1024, 1024)
    sd : float
        Noise standard deviation (> 0).
    zero_cdf, zero_guide : ndarray
        From :func:`camera_effects`.
    key : int
        Seed of the frame's noise.
    """
    su = splitmix64(np.uint64(key))
    sg = splitmix64(su ^ _GOLDEN)
    have = False
    spare = 0.0
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            a = acc[i, j]
            zu = splitmix64(su)
            su += _GOLDEN
            if a == 0.0:
                k = zero_guide[zu >> _S56]
                u = np.float64(zu >> _S11) * _TWO_M53
                while u >= zero_cdf[k]:
                    k += 1
                out[i, j] = np.uint8(k)
                continue
            if have:
                g = spare
                have = False
            else:
                while True:
                    v1 = 2.0 * np.float64(splitmix64(sg) >> _S11) * _TWO_M53 - 1.0
                    sg += _GOLDEN
                    v2 = 2.0 * np.float64(splitmix64(sg) >> _S11) * _TWO_M53 - 1.0
                    sg += _GOLDEN
                    s = v1 * v1 + v2 * v2
                    if 0.0 < s < 1.0:
                        break
                f = np.sqrt(-2.0 * np.log(s) / s)
                g = v1 * f
                spare = v2 * f
                have = True
            v = np.rint(a + sd * g)
            out[i, j] = np.uint8(min(max(v, 0.0), 255.0))
            acc[i, j] = 0.0


@njit(cache=True)
def _frame_spots(acc, frame, a, b, x, z, seed, spots):
    """Add the spots of electrons a..b-1 of global frame `frame` to `acc` (its STREAM_SPOTS parameters)."""
    np.random.seed(frame_seed(seed, frame, STREAM_SPOTS))
    m = b - a
    A = np.empty(m)
    sigma = np.empty(m)
    rho = np.empty(m)
    _draw_spot_params_nb(m, A, sigma, rho, spots)
    add_spots(acc, x[a:b], z[a:b], A, sigma, rho)


@njit(cache=True, parallel=True)
def _render_camera_chunk_nb(frames, frame_offsets, x, z, seed, out, n_workers, camera, spots):
    """Kernel of :func:`render_camera_chunk` (`spots` a SpotKernel)."""
    read_noise, hot_ix, hot_iz, hot_level, zero_cdf, zero_guide = camera
    nf = frames.shape[0]
    nw = max(1, min(nf, n_workers))
    for w in prange(nw):
        acc = np.zeros((out.shape[1], out.shape[2]))
        for k in range(w, nf, nw):
            _frame_spots(acc, frames[k], frame_offsets[k], frame_offsets[k + 1], x, z, seed, spots)
            for h in range(hot_ix.shape[0]):
                acc[hot_ix[h], hot_iz[h]] += hot_level[h]
            if read_noise > 0.0:
                quantize_noisy_into(acc, out[k], read_noise, zero_cdf, zero_guide,
                                    frame_seed(seed, frames[k], STREAM_NOISE))
            else:
                quantize_into(acc, out[k], True)


def render_camera_chunk(frames, frame_offsets, x, z, seed, out, *, n_workers, camera, spots=None):
    """:func:`render_chunk` through a lab camera: hot pixels and read noise (see :func:`camera_effects`).

    The spots are those of :func:`render_chunk`; then each hot pixel's level is added and the
    frame is quantised with read noise (:func:`quantize_noisy_into`, keyed by
    ``frame_seed(seed, frame, STREAM_NOISE)``) or without (no noise). A frame depends only on
    the seed and its index, not on its chunk or thread.

    Parameters
    ----------
    frames, frame_offsets, x, z, seed, out, n_workers
        As in :func:`render_chunk`.
    camera : CameraEffects
    spots : SpotModel, SpotKernel, mapping or None
        The spot model (:func:`spot_kernel`); None: the published one.
    """
    _render_camera_chunk_nb(frames, frame_offsets, x, z, seed, out, n_workers, camera, spot_kernel(spots))


@njit(cache=True, parallel=True)
def _render_chunk_nb(frames, frame_offsets, x, z, seed, out, n_workers, spots):
    """Kernel of :func:`render_chunk` (`spots` a SpotKernel)."""
    nf = frames.shape[0]
    nw = max(1, min(nf, n_workers))
    for w in prange(nw):
        acc = np.zeros((out.shape[1], out.shape[2]))
        for k in range(w, nf, nw):
            _frame_spots(acc, frames[k], frame_offsets[k], frame_offsets[k + 1], x, z, seed, spots)
            quantize_into(acc, out[k], True)


def render_chunk(frames, frame_offsets, x, z, seed, out, *, n_workers, spots=None):
    """Render consecutive frames with spot parameters from each frame's own random stream.

    Frame k (global index ``frames[k]``) shows electrons ``frame_offsets[k]:frame_offsets[k+1]``;
    its spot parameters are drawn from the spot model `spots` after seeding numba's generator
    with ``frame_seed(seed, frames[k], STREAM_SPOTS)``, so a frame does not depend on its chunk
    or thread. Parallel over frames (numba prange), one float buffer per worker.

    Parameters
    ----------
    frames : ndarray of int64, shape (k,)
    frame_offsets : ndarray of int64, shape (k + 1,)
    x, z : ndarray of float64
        Detected positions of the chunk.
    seed : int
    out : ndarray of uint8, shape (k, 1024, 1024)
    n_workers : int
        Float buffers (8 MiB each), normally ``numba.get_num_threads()``.
    spots : SpotModel, SpotKernel, mapping or None
        The spot model (:func:`spot_kernel`); None: the published one.
    """
    _render_chunk_nb(frames, frame_offsets, x, z, seed, out, n_workers, spot_kernel(spots))


def iter_rendered_chunks(shells, settings):
    """Simulate and render frames chunk by chunk: the one render loop of the project.

    Electrons come from :func:`sevi_lib.simulate.electrons.iter_frame_electrons`, frames from
    :func:`render_chunk` (no read noise, no hot pixels) or :func:`render_camera_chunk` (read
    noise or hot pixels) with numba's current thread count and the spot model of `settings`;
    the frames do not depend on ``settings.chunk`` or the thread count.

    Parameters
    ----------
    shells : sevi_lib.core.shells.Shells
        The shells rendered (the shell fields of `settings` are not read).
    settings : sevi_lib.simulate.settings.SimulationSettings
        What is read: ``n_frames``, ``electrons_per_shell``, ``detection_loss``, ``seed``,
        ``chunk`` (frames per chunk), ``centre_offset``, ``stray_electrons`` (see
        :func:`sevi_lib.simulate.electrons.iter_frame_electrons`), ``read_noise`` (sd, counts,
        added to every pixel before rounding and clipping), ``hot_pixels`` (their number,
        :func:`hot_pixel_table` of the seed) and ``spot`` (the camera's spot model; empty: the
        published one).

    Yields
    ------
    image_ids : ndarray of int32, shape (k,)
        Global frame indices.
    frames : ndarray of uint8, shape (k, 1024, 1024)
        The rendered frames. One buffer is reused for every chunk: use or copy it before the next.
    electrons : sevi_lib.simulate.electrons.FrameElectrons
        The chunk's generated and detected electrons.
    """
    check_args(shells, settings.n_frames, settings.electron_means(shells.n_shells), settings.detection_loss,
               settings.seed)
    _, _, read_noise, hot_pixels = settings.camera()
    camera = camera_effects(read_noise, hot_pixel_table(settings.seed, hot_pixels) if hot_pixels else None)
    kernel = spot_kernel(settings.spot_model())
    frames = np.empty((min(settings.chunk, max(int(settings.n_frames), 1)), N_PIX, N_PIX), dtype=np.uint8)
    seed = settings.seed
    for ch in iter_frame_electrons(shells, settings):
        ids = np.arange(ch.frame_start, ch.frame_start + ch.n_frames, dtype=np.int64)
        out = frames[: ch.n_frames]
        x, z = np.ascontiguousarray(ch.detected["x"]), np.ascontiguousarray(ch.detected["z"])
        if camera is None:
            render_chunk(ids, ch.frame_offsets, x, z, seed, out, n_workers=get_num_threads(), spots=kernel)
        else:
            render_camera_chunk(ids, ch.frame_offsets, x, z, seed, out, n_workers=get_num_threads(), camera=camera,
                                spots=kernel)
        yield ids.astype(np.int32), out, ch
