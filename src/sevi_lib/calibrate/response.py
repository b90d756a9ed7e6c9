"""Detector calibration by simulation: what detection does to the fitted answer, and its removal.

The project has an exact renderer of the published spot model and the detector itself, so the
detector's effect on the fit can be measured the way particle physicists calibrate a detector
they can simulate: frames are simulated at the parameters the fit found on the real data (same
shells, same electrons per frame), rendered, detected with the *same* detector settings, and
fitted twice with the *same* fit -- once on the detected electrons, once on the true positions of
the very electrons that were rendered. The paired difference

    bias = fit(detected) - fit(true)

is what detection adds to the answer (per shell: R, sigma_R, ln of the electron number, every
beta). Because both fits see the same electrons, the shot noise cancels in the difference; what
remains is detection noise (pile-ups whose electrons are misplaced, lost or split together). The
corrected answer is ``fit(real) - bias``. The spread of the biases of ``blocks`` independent
blocks of calibration frames measures that noise per frame; it gives the bias's own error and the
detection noise of the data's fit (which the fit's Poisson errors do not hold), both added in
quadrature to the fit's standard errors. Optionally the calibration is repeated at the corrected
parameters (``iterations``), since the bias depends on the parameters (on the density at the
poles above all); a bias of more than ``second_pass_above`` expected distances gets that second
pass by itself.

The bias's error falls as one over the square root of the calibration frames, and what it adds
to the answer depends on the camera's detection noise: a last pass whose first estimate says its
own error raises a shell's expected distance by more than ``max_added_error`` simulates the frames
that bring it there (:func:`top_up_frames`, :func:`pool_samples`), up to ``max_frames_fraction``
of the data's frames.

Everything streams: frames are simulated, rendered and detected a chunk at a time, never written
to disk; only the detected and the true electron positions are kept.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import get_num_threads

from sevi_lib.calibrate.settings import CalibrationSettings  # noqa: F401  (re-exported)
from sevi_lib.core.angular import distance_weights, legendre_even, min_density
from sevi_lib.core.errors import InputError
from sevi_lib.core.progress import ProgressLog
from sevi_lib.core.shells import Shells
from sevi_lib.detect.blobs import FrameDetector
from sevi_lib.fit import fit_electrons
from sevi_lib.fit.binned import result_theta
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.points import PointSet
from sevi_lib.fit.result import user_jacobian
from sevi_lib.simulate.electrons import iter_frame_electrons
from sevi_lib.simulate.render import render_camera_chunk, render_chunk, spot_kernel
from sevi_lib.simulate.settings import SimulationSettings

#: Per-shell parameters the bias is measured for; ``ln_weights`` is the log of the fitted electron
#: number, so its bias is the log of the detection efficiency (it does not scale with the number
#: of frames). ``beta`` is a (S, N) block, the others (S,).
PARAMETERS = ("R", "sigma_R", "ln_weights", "beta")

#: Frames whose electrons are simulated at a time by :func:`simulate_response` (electrons only:
#: about 60 kB per 1000 frames of 60 electrons; rendering and detection go ``chunk`` at a time).
_SIMULATE_CHUNK = 1024


# ---------------------------------------------------------------------------------- parameters
def fit_parameters(fit):
    """The per-shell parameters of a fit, as :data:`PARAMETERS` -> ndarray.

    Parameters
    ----------
    fit : FitResult or dict
        A :class:`sevi_lib.fit.result.FitResult` or its ``to_dict()`` (the fit's JSON sidecar).

    Returns
    -------
    dict
        ``R``, ``sigma_R``, ``ln_weights`` (S,) and ``beta`` (S, N), float64.
    """
    get = fit.get if isinstance(fit, dict) else (lambda k: getattr(fit, k))
    weights = np.asarray(get("weights"), dtype=np.float64)
    return {"R": np.asarray(get("R"), dtype=np.float64), "sigma_R": np.asarray(get("sigma_R"), dtype=np.float64),
            "ln_weights": np.log(np.maximum(weights, 1e-300)),
            "beta": np.atleast_2d(np.asarray(get("beta"), dtype=np.float64))}


def fit_standard_errors(fit):
    """Standard errors of :func:`fit_parameters` (``ln_weights``: se_weights / weights)."""
    get = fit.get if isinstance(fit, dict) else (lambda k: getattr(fit, k))
    weights = np.asarray(get("weights"), dtype=np.float64)
    return {"R": np.asarray(get("se_R"), dtype=np.float64), "sigma_R": np.asarray(get("se_sigma_R"), dtype=np.float64),
            "ln_weights": np.asarray(get("se_weights"), dtype=np.float64) / np.maximum(weights, 1e-300),
            "beta": np.atleast_2d(np.asarray(get("se_beta"), dtype=np.float64))}


def _combine(a, b, op):
    return {k: op(a[k], b[k]) for k in PARAMETERS}


def expected_distance(se_beta):
    """Per-shell distance expected from beta standard errors: sqrt(sum 2/(4i+1) se_i^2)."""
    se_beta = np.atleast_2d(se_beta)
    return np.sqrt(np.sum(distance_weights(se_beta.shape[1]) * se_beta**2, axis=1))


def physical_shells(params, anchor=None):
    """Shells at `params`, each unphysical beta row moved towards `anchor` just far enough.

    The angular density is linear in beta, so the segment from a physical anchor to the wanted
    row is physical up to some fraction; the largest one (bisection) is used. The anchor is the
    uncorrected fit (physical by the fit's constraint); without one, or if it is unphysical
    too, the isotropic distribution.

    Parameters
    ----------
    params : dict
        :func:`fit_parameters` layout.
    anchor : ndarray, shape (S, N), optional

    Returns
    -------
    Shells
    """
    beta = np.array(params["beta"], dtype=np.float64)
    for j in range(beta.shape[0]):
        a = np.zeros(beta.shape[1]) if anchor is None else np.asarray(anchor[j], dtype=np.float64)
        if min_density(a)[0] < 0:
            a = np.zeros(beta.shape[1])
        if min_density(beta[j])[0] >= 0:
            continue
        lo, hi = 0.0, 1.0
        for _ in range(40):
            t = 0.5 * (lo + hi)
            lo, hi = (t, hi) if min_density(a + t * (beta[j] - a))[0] >= 0 else (lo, t)
        beta[j] = a + lo * (beta[j] - a)
    return Shells(params["R"], np.maximum(params["sigma_R"], 0.0), beta)


# ---------------------------------------------------------------------------- simulated response
@dataclass
class ResponseSample:
    """Detected and true electron positions of simulated calibration frames.

    Attributes
    ----------
    detected_x, detected_z : ndarray
        Detected electrons, screen units.
    detected_block : ndarray of int16
        Block of each detected electron.
    true_x, true_z : ndarray
        Every rendered electron (the truth of the same frames).
    true_block : ndarray of int16
    n_frames, blocks : int
        Calibration frames in all and blocks they are split into.
    seconds : float
        Wall time of simulation, rendering and detection.
    frame_start, frame_stop : int
        The frames this sample holds (``frame_stop`` None: all ``n_frames``).
    """

    detected_x: np.ndarray
    detected_z: np.ndarray
    detected_block: np.ndarray
    true_x: np.ndarray
    true_z: np.ndarray
    true_block: np.ndarray
    n_frames: int
    blocks: int
    seconds: float
    frame_start: int = 0
    frame_stop: int = None


@dataclass(frozen=True)
class LabCamera:
    """What the calibration frames share with the data besides the shells (lab cameras, issue 13).

    Attributes
    ----------
    centre : (float, float)
        Image centre (x0, z0) the fit found, screen units.
    stray_electrons : float
        Stray electrons per frame (the fit's flat background per frame).
    survey : sevi_lib.detect.camera.CameraSurvey or None
        The data's camera survey: its read noise and hot pixels (at their measured levels) are
        rendered into the calibration frames, and they are detected with it, as the data was.
    spots : sevi_lib.core.spots.SpotModel or None
        The data camera's spot model, with which the calibration frames are rendered (None: the
        published model).
    """

    centre: tuple = (0.0, 0.0)
    stray_electrons: float = 0.0
    survey: object = None
    spots: object = None

    def effects(self):
        """The renderer's camera record (:func:`sevi_lib.simulate.render.camera_effects`), or None."""
        return None if self.survey is None else self.survey.render_effects()

    def to_dict(self):
        """JSON-ready summary."""
        return {"centre": [float(v) for v in self.centre], "stray_electrons": float(self.stray_electrons),
                "read_noise": None if self.survey is None else float(self.survey.read_noise),
                "hot_pixels": 0 if self.survey is None else len(self.survey.hot_pixels)}


def simulate_response(shells, n_frames, electrons_per_frame, *, detector=None, seed=0, threads=1, chunk=32,
                      blocks=1, progress_seconds=0.0, what="calibrate", camera=None, start=0, stop=None):
    """Simulate, render and detect frames, keeping the detected and the true electron positions.

    Frames are made by :func:`sevi_lib.simulate.electrons.iter_frame_electrons` with no
    detection loss (every electron is rendered) and :func:`sevi_lib.simulate.render.render_chunk`
    (numba threads), and detected by :class:`sevi_lib.detect.blobs.FrameDetector` with `detector`
    and `threads` threads, `chunk` frames at a time; no frame is kept. With a `camera`, the
    shells sit at its centre, its stray electrons are added (they are among the true positions
    too), its read noise and hot pixels are rendered
    (:func:`sevi_lib.simulate.render.render_camera_chunk`), its spot model (``camera.spots``)
    draws the spots, and the detector uses its survey.

    Only frames ``start .. stop - 1`` of the `n_frames` are made (a calibration shard). Every
    frame's electrons, spots, noise and detection depend only on (`seed`, its index), never on
    the range or the chunks, so the samples of contiguous ranges joined in order
    (:func:`sevi_lib.calibrate.shards.join_samples`) are the sample of all frames, bit for bit.

    Parameters
    ----------
    shells : Shells
    n_frames : int
        Calibration frames in all (the blocks are fractions of them).
    electrons_per_frame : sequence of float
        Poisson mean of the electrons per frame, one per shell.
    detector : DetectorParams, optional
    seed : int
    threads : int
        Detection threads.
    chunk : int
    blocks : int
        Frames are split into this many contiguous blocks (``block = frame * blocks // n_frames``).
    progress_seconds : float
        Seconds between progress lines on stderr (0: none).
    what : str
        Prefix of the progress lines.
    camera : LabCamera, optional
        Centre, stray electrons, camera survey and spot model of the data (default: the published
        camera).
    start, stop : int, optional
        The frame range (default: all `n_frames`).

    Returns
    -------
    ResponseSample

    Raises
    ------
    InputError
        A frame with more electrons than the detector's ``max_per_frame``.
    """
    camera = camera or LabCamera()
    effects = camera.effects()
    spots = spot_kernel(camera.spots)
    offset_px = (512.0 * float(camera.centre[0]), 512.0 * float(camera.centre[1]))
    n_frames, blocks, chunk = int(n_frames), int(blocks), int(chunk)
    start, stop = int(start), n_frames if stop is None else int(stop)
    if blocks < 1 or n_frames < blocks:
        raise InputError(f"calibration: {n_frames} frames cannot form {blocks} blocks")
    if not 0 <= start <= stop <= n_frames:
        raise InputError(f"calibration: frames {start} .. {stop} are not a range of the {n_frames} frames")
    t0 = time.perf_counter()
    if start == stop:  # an empty shard (fewer frames than shards)
        empty = np.empty(0, np.float64)
        return ResponseSample(empty, empty.copy(), np.empty(0, np.int16), empty.copy(), empty.copy(),
                              np.empty(0, np.int16), n_frames, blocks, 0.0, start, stop)
    progress = ProgressLog(stop - start, what, every=progress_seconds)
    det_parts, true_parts = [], []
    buf = np.empty((max(1, min(chunk, stop - start)), 1024, 1024), dtype=np.uint8)
    with FrameDetector(detector, threads=threads, camera=camera.survey) as det:
        # electrons are simulated _SIMULATE_CHUNK frames at a time from frame 0 (cheap: those before
        # `start` are only skipped), then rendered and detected `chunk` frames at a time
        for big in iter_frame_electrons(shells, SimulationSettings(
                n_frames=stop, electrons_per_shell=electrons_per_frame, detection_loss=0.0, seed=seed,
                chunk=_SIMULATE_CHUNK, centre_offset=offset_px, stray_electrons=float(camera.stray_electrons))):
            lo = max(start, big.frame_start)
            hi = big.frame_start + big.n_frames
            for f0 in range(lo, hi, chunk):
                f1 = min(f0 + chunk, hi)
                k0, k1 = f0 - big.frame_start, f1 - big.frame_start
                e0, e1 = int(big.frame_offsets[k0]), int(big.frame_offsets[k1])
                offsets = big.frame_offsets[k0:k1 + 1] - e0
                ids = np.arange(f0, f1, dtype=np.int64)
                frames = buf[: f1 - f0]
                tx = np.ascontiguousarray(big.detected["x"][e0:e1])
                tz = np.ascontiguousarray(big.detected["z"][e0:e1])
                if effects is None:
                    render_chunk(ids, offsets, tx, tz, seed, frames, n_workers=get_num_threads(), spots=spots)
                else:
                    render_camera_chunk(ids, offsets, tx, tz, seed, frames, n_workers=get_num_threads(), camera=effects,
                                        spots=spots)
                try:
                    found = det.process(ids.astype(np.int32), frames)
                except OverflowError as exc:
                    raise InputError(f"calibration: {exc}") from None
                block_of = (ids * blocks // n_frames).astype(np.int16)
                det_parts.append((found["x"].copy(), found["z"].copy(), block_of[found["ImageId"] - f0]))
                true_parts.append((tx, tz, np.repeat(block_of, np.diff(offsets))))
                progress(f1 - start)

    def join(parts, i, dtype):
        return np.concatenate([p[i] for p in parts]).astype(dtype, copy=False) if parts else np.empty(0, dtype)

    return ResponseSample(join(det_parts, 0, np.float64), join(det_parts, 1, np.float64), join(det_parts, 2, np.int16),
                          join(true_parts, 0, np.float64), join(true_parts, 1, np.float64),
                          join(true_parts, 2, np.int16), n_frames, blocks, time.perf_counter() - t0,
                          start, stop)


def pool_samples(first, more):
    """Two independent calibration samples of the same blocks as one: block b of the pool is
    block b of each (so the blocks stay alike when each sample's are).

    Parameters
    ----------
    first, more : ResponseSample
        Whole samples (not shards) with the same ``blocks``.

    Returns
    -------
    ResponseSample
        ``n_frames`` and ``seconds`` the sums; ``frame_start`` 0, ``frame_stop`` ``n_frames``.
    """
    if first.blocks != more.blocks:
        raise ValueError(f"samples of {first.blocks} and {more.blocks} blocks cannot be pooled")

    def cat(field):
        return np.concatenate([getattr(first, field), getattr(more, field)])

    n = int(first.n_frames) + int(more.n_frames)
    return ResponseSample(cat("detected_x"), cat("detected_z"), cat("detected_block"), cat("true_x"), cat("true_z"),
                          cat("true_block"), n, first.blocks, float(first.seconds + more.seconds), 0, n)


def top_up_frames(bias_se_beta, rest_se_beta, n_frames, n_data_frames, settings):
    """Frames a pass of `n_frames` calibration frames adds so that its own error raises no shell's
    expected distance by more than ``settings.max_added_error``.

    With per-shell expected distances b of the bias's error and r of the rest (the fit's and the
    data's detection noise, which do not depend on the calibration frames), the bias's error
    raises the answer's expected distance by ``sqrt(1 + (b / r)^2) - 1``; b falls as one over
    the square root of the frames, so ``n (b / r)^2 / ((1 + max_added_error)^2 - 1)`` frames reach
    the goal on every shell. The pass grows to that, at most to
    :meth:`CalibrationSettings.top_up_cap` frames; fewer new frames than ``blocks`` are not worth
    a top-up (0 returned).

    Parameters
    ----------
    bias_se_beta, rest_se_beta : ndarray, shape (S, N)
        The bias's standard errors of the betas and those of the rest.
    n_frames, n_data_frames : int
    settings : CalibrationSettings

    Returns
    -------
    int
        Frames to add (0: none).

    Examples
    --------
    >>> s = CalibrationSettings(blocks=2)
    >>> top_up_frames([[0.2]], [[0.1]], 1000, 10000, s)  # b / r = 2: 4 / 0.21 = 19.05 times the frames
    9000
    >>> top_up_frames([[0.02]], [[0.1]], 1000, 10000, s)  # b / r = 0.2: a rise of 2 %
    0
    """
    cap = settings.top_up_cap(n_data_frames)
    if cap <= n_frames:
        return 0
    b = expected_distance(np.asarray(bias_se_beta, dtype=np.float64))
    r = np.maximum(expected_distance(np.asarray(rest_se_beta, dtype=np.float64)), 1e-300)
    need = n_frames * float(np.max((b / r) ** 2)) / ((1.0 + settings.max_added_error) ** 2 - 1.0)
    extra = min(math.ceil(need), cap) - int(n_frames)
    return extra if extra >= settings.blocks else 0


def _fit(x, z, n_beta, n_shells, what, centre="free"):
    """One fit of the calibration; a fit about a fixed centre that does not converge is redone
    with the centre free.

    The constrained ascent can stall about a fixed centre (seen on the true positions of a
    sharply peaked shell: the angular constraint active from the first step, 40 iterations, the
    shell's electron number 0.56 of the truth); with the centre free the same data converge, and
    the free centre does not bias the shells (see :func:`calibrate`), it only costs time. The
    result's ``diagnostics["centre_fallback"]`` says when that happened.
    """
    try:
        res = fit_electrons(x, z, n_beta=n_beta, n_shells=n_shells, centre=centre)
        if not res.converged and not isinstance(centre, str):
            res = fit_electrons(x, z, n_beta=n_beta, n_shells=n_shells, centre="free")
            res.diagnostics["centre_fallback"] = True
        return res
    except InputError as exc:
        raise InputError(f"calibration {what}: {exc} (use more calibration frames or fewer blocks)") from None


def block_shifts(fit, x, z, block, blocks):
    """One-step estimates of each block's fit minus the fit of all electrons (the blocks' influence).

    The fit maximises ``sum_e log mu(x_e; theta) - total(theta)``. Counting block b's electrons
    `blocks` times (the others not at all) moves the maximum, to first order (one Newton step
    from the fit's optimum theta*, the fit's observed information as the curvature), by

        d_b = C (blocks * s_b - s),    s_b = sum over block b of grad log mu(x_e; theta*),

    with C the fit's covariance and s the sum of all s_b, so the d_b average to zero exactly. They
    stand for refits of the blocks (:func:`response_bias` with ``block_fits=True``) at the cost of
    one gradient pass over the electrons; the spread of the d_b over sqrt(blocks) is the
    influence-function (grouped jackknife) standard error of the fit of all electrons. The
    constraints active at the optimum hold in every step (equality-constrained Newton steps), as
    in the refitted blocks: a background at its bound 0 stays 0, a shell whose fitted density
    touches zero keeps touching zero at that point.

    Parameters
    ----------
    fit : FitResult
        The unbinned fit of (x, z) (its ``table_step`` diagnostic and centre are used; a free
        centre is taken as fixed at its fitted value, which by symmetry does not inform the shells).
    x, z : ndarray
        The fitted electrons.
    block : ndarray of int
        Block of each electron, 0 .. blocks - 1.
    blocks : int

    Returns
    -------
    dict
        :data:`PARAMETERS` -> ndarray with a leading axis of `blocks` (``ln_weights``: the
        first-order shift d n / n).
    """
    S, N = fit.beta.shape
    theta = result_theta(fit)
    layout = ParamLayout(S, N)
    h = float(fit.diagnostics["table_step"])
    x = np.asarray(x, dtype=np.float64) - float(fit.centre[0])
    z = np.asarray(z, dtype=np.float64) - float(fit.centre[1])
    rho = np.hypot(x, z)
    rho_max = float(rho.max(initial=0.0)) + 2 * h  # one table length for every block (shared tables)
    score = np.zeros((int(blocks), theta.size))
    ws = None
    for b in range(int(blocks)):
        sel = np.flatnonzero(block == b)
        sel = sel[np.argsort(rho[sel], kind="stable")]  # radius order, as the fit (cache-friendly)
        if sel.size == 0:
            continue
        pts = PointSet(x[sel], z[sel], 1, np.ones(sel.size), N, h, rho_max=rho_max)
        if ws is None:
            ws = pts.workspace(theta, S)
        ll, score[b], _ = pts.loglike(theta, np.ones(sel.size), S, want=1, like=ws)
        if not np.isfinite(ll):
            raise InputError("calibration: an electron where the fitted model is zero (block errors)")
    g = blocks * score - score.sum(axis=0)
    # user-parameter shifts T C g = U T^-T g (U = T C T^T, the fit's covariance of n, beta, R, sigma)
    T = user_jacobian(theta, S)
    U = np.asarray(fit.cov)
    du = np.linalg.solve(T.T, g.T).T @ U.T
    # constraints active at the optimum stay active in the step: a background at its bound 0 stays
    # there, and a shell whose density touches zero keeps it at zero where it touches (to first
    # order the touching point does not move): sum_l dbeta_l P_2l(c*) = 0
    rows = []
    if fit.background <= 1e-6 * max(fit.n_data, 1.0):
        rows.append(np.eye(theta.size)[-1])
    for j in np.flatnonzero(fit.constraint_active):
        row = np.zeros(theta.size)
        row[layout.betas(j)] = legendre_even(np.array([min_density(fit.beta[j])[1]]), N)[0]
        rows.append(row)
    if rows:
        A = np.array(rows)
        du = du - (du @ A.T) @ np.linalg.solve(A @ U @ A.T, A @ U)
    blk = du[:, :-1].reshape(int(blocks), S, layout.stride)
    n1 = layout.n1
    return {"R": blk[:, :, n1], "sigma_R": blk[:, :, n1 + 1],
            "ln_weights": blk[:, :, 0] / np.maximum(fit.weights, 1e-300), "beta": blk[:, :, 1:n1]}


def response_bias(sample, n_beta, n_shells, centre="free", block_fits=False):
    """Bias of the fit from detection, ``fit(detected) - fit(true)``, and its standard error.

    The bias is measured on all calibration frames at once; its standard error is the standard
    deviation of the biases of the ``sample.blocks`` blocks over sqrt(blocks). The block biases
    are one-step estimates from the two fits of all frames (:func:`block_shifts`: two gradient
    passes instead of ``2 * blocks`` fits), or, with `block_fits`, fits of every block.

    Parameters
    ----------
    sample : ResponseSample
    n_beta, n_shells : int
        As in the fit of the data (which :func:`sevi_lib.fit.fit_electrons` runs with its defaults
        otherwise, as the workflow's fit does).
    centre : str or (float, float)
        The fits' centre: ``free``, ``screen`` or a fixed (x0, z0) (:func:`calibrate` gives the
        centre the calibration frames were rendered about).
    block_fits : bool
        Fit every block (detected and true) instead of the one-step block estimates.

    Returns
    -------
    dict
        ``bias`` and ``se`` (:data:`PARAMETERS` -> ndarray), ``block_bias`` (list of such
        dicts), ``detected`` and ``true`` (the two FitResults of all frames),
        ``centre_fallbacks`` (fits redone with the centre free, see :func:`_fit`), ``seconds``,
        ``block_seconds`` (of the block estimates).
    """
    t0 = time.perf_counter()
    kw = {"n_beta": n_beta, "n_shells": n_shells, "centre": centre}
    f_det = _fit(sample.detected_x, sample.detected_z, what="fit of the detected electrons", **kw)
    f_true = _fit(sample.true_x, sample.true_z, what="fit of the true positions", **kw)
    bias = _combine(fit_parameters(f_det), fit_parameters(f_true), np.subtract)
    t1 = time.perf_counter()
    blocks, fits = [], [f_det, f_true]
    if block_fits:
        for b in range(sample.blocks):
            d, t = sample.detected_block == b, sample.true_block == b
            fd = _fit(sample.detected_x[d], sample.detected_z[d], what=f"block {b} (detected)", **kw)
            ft = _fit(sample.true_x[t], sample.true_z[t], what=f"block {b} (true)", **kw)
            blocks.append(_combine(fit_parameters(fd), fit_parameters(ft), np.subtract))
            fits += [fd, ft]
    else:
        sd = block_shifts(f_det, sample.detected_x, sample.detected_z, sample.detected_block, sample.blocks)
        st = block_shifts(f_true, sample.true_x, sample.true_z, sample.true_block, sample.blocks)
        blocks = [{k: bias[k] + sd[k][b] - st[k][b] for k in PARAMETERS} for b in range(sample.blocks)]
    se = {k: np.std([blk[k] for blk in blocks], axis=0, ddof=1) / np.sqrt(len(blocks)) for k in PARAMETERS}
    fallbacks = sum(bool(f.diagnostics.get("centre_fallback")) for f in fits)
    t2 = time.perf_counter()
    return {"bias": bias, "se": se, "block_bias": blocks, "detected": f_det, "true": f_true,
            "centre_fallbacks": fallbacks, "seconds": t2 - t0, "block_seconds": t2 - t1}


def correct(params, se, bias, bias_se, noise_se=None):
    """Corrected parameters ``params - bias`` and standard errors ``sqrt(se^2 + bias_se^2 + noise_se^2)``.

    Parameters
    ----------
    params, se : dict
        The fit and its standard errors (:data:`PARAMETERS` -> ndarray).
    bias, bias_se : dict
        The measured bias and its standard error.
    noise_se : dict, optional
        The data's own detection noise (see :func:`calibrate`).

    Returns
    -------
    corrected, corrected_se : dict
        :data:`PARAMETERS` -> ndarray.
    """
    total = _combine(se, bias_se, np.hypot)
    if noise_se is not None:
        total = _combine(total, noise_se, np.hypot)
    return _combine(params, bias, np.subtract), total


# ------------------------------------------------------------------------------------ the stage
def _plain(d):
    return {k: np.asarray(v).tolist() for k, v in d.items()}


def _user_view(params, se):
    """JSON-ready answer in the fit sidecar's terms (weights instead of ln_weights)."""
    w = np.exp(params["ln_weights"])
    return {"R": params["R"].tolist(), "sigma_R": params["sigma_R"].tolist(), "weights": w.tolist(),
            "beta": params["beta"].tolist(), "se_R": se["R"].tolist(), "se_sigma_R": se["sigma_R"].tolist(),
            "se_weights": (w * se["ln_weights"]).tolist(), "se_beta": se["beta"].tolist(),
            "expected_distance": expected_distance(se["beta"]).tolist(),
            "min_density": [float(min_density(b)[0]) for b in params["beta"]]}


def lab_camera(fit, n_data_frames, survey=None):
    """The :class:`LabCamera` of a fit: its centre, its flat background per frame, the survey (and its spot model in use).

    Parameters
    ----------
    fit : FitResult or dict
        The fit of the data (or its JSON sidecar); a fit without a centre or a background (an
        older sidecar) gives the published geometry: centre (0, 0), no strays.
    n_data_frames : int
    survey : sevi_lib.detect.camera.CameraSurvey, optional

    Returns
    -------
    LabCamera
    """
    get = fit.get if isinstance(fit, dict) else (lambda k, d=None: getattr(fit, k, d))
    centre = get("centre", None)
    centre = (0.0, 0.0) if centre is None else (float(centre[0]), float(centre[1]))
    per_frame = get("background_per_frame", None)
    if per_frame is None:
        per_frame = float(get("background", 0.0) or 0.0) / max(int(n_data_frames), 1)
    spots = None if survey is None else survey.spots()
    return LabCamera(centre, max(float(per_frame), 0.0), survey, spots=spots)


def pass_inputs(at, params, n_data_frames, settings, p):
    """What pass `p` simulates: its shells, electrons per frame and shell, and seed.

    Parameters
    ----------
    at : dict
        The parameters the pass is simulated at (:data:`PARAMETERS`; pass 0: the fit's).
    params : dict
        The fit's parameters (their betas anchor :func:`physical_shells`).
    n_data_frames : int
    settings : CalibrationSettings
    p : int

    Returns
    -------
    shells : Shells
    electrons_per_frame : ndarray
        ``exp(ln_weights) / n_data_frames``.
    seed : int
        ``settings.pass_seed(p)``.
    """
    shells = physical_shells(at, anchor=params["beta"])
    return shells, np.exp(at["ln_weights"]) / int(n_data_frames), settings.pass_seed(p)


def calibrate(fit, n_data_frames, *, detector=None, settings=None, threads=1, log=None, simulate=None, survey=None,
              sample=None):
    """Correct a fit of detected electrons for what detection does, by simulation.

    Pass 0 simulates ``settings.n_frames_for(n_data_frames)`` frames at the fitted parameters
    with ``weights / n_data_frames`` electrons per shell and frame (around the fitted image
    centre, with the fitted flat background as stray electrons, through the data's camera:
    :func:`lab_camera`), detects them with `detector` (and the camera `survey`),
    and measures :func:`response_bias`. Pass p >= 1 (``settings.iterations``, or one more pass
    when pass 0's bias exceeds ``settings.second_pass_above`` expected distances) repeats this at
    the parameters corrected by pass p - 1. Where the bias's error would raise a shell's expected
    distance by more than ``settings.max_added_error``, the last pass simulates the frames
    :func:`top_up_frames` asks for (seed ``settings.top_up_seed(p)``), pools them with its first
    ones (:func:`pool_samples`) and measures again. The answer is the fit minus the last pass's bias,
    with two errors added in quadrature: the bias's own (the spread of the block biases over
    sqrt(blocks)) and the data's detection noise -- the same per-frame spread of detected - true,
    over the data's frames (``bias_se * sqrt(calibration frames / data frames)``). The fit's
    Poisson standard errors do not hold the latter: detection misplaces, loses and splits the
    electrons of a pile-up together.

    Parameters
    ----------
    fit : FitResult or dict
        The fit of the data's detected electrons (or its JSON sidecar).
    n_data_frames : int
        Frames of the data.
    detector : DetectorParams, optional
        The detector settings the data was detected with.
    settings : CalibrationSettings, optional
    threads : int
        Detection threads.
    log : callable, optional
        Receives one summary line per pass.
    simulate : callable, optional
        Replaces :func:`simulate_response` (same signature and result), e.g. to calibrate a
        response model other than the project's renderer and detector.
    survey : sevi_lib.detect.camera.CameraSurvey, optional
        The data's camera survey (``sevi survey``): read noise and hot pixels of the simulated
        frames, and the detector's thresholds and mask, as for the data.
    sample : ResponseSample, optional
        Pass 0's calibration frames, already simulated and detected (the joined calibration
        shards: :func:`sevi_lib.calibrate.shards.join_samples`; their inputs are
        :func:`pass_inputs` of pass 0); its top-up and passes >= 1 are simulated here.

    Returns
    -------
    dict
        JSON-ready: the corrected answer in the fit sidecar's terms (``R``, ``sigma_R``,
        ``weights``, ``beta``, ``se_*``, ``expected_distance``, ``min_density``),
        ``uncorrected`` (the same for the fit), ``bias``, ``bias_se``, ``detection_noise_se``
        (:data:`PARAMETERS`; ``ln_weights`` is the log detection efficiency), ``fit_se`` and
        ``passes`` (per pass: frames, of them top-up frames, parameters simulated, bias, its
        error, the detected and true fits' betas, timing) and
        ``calibration`` (settings, frames, electrons per frame, detector, seconds).
    """
    settings = (settings or CalibrationSettings()).validate()
    n_data_frames = int(n_data_frames)
    if n_data_frames < 1:
        raise InputError(f"calibration: the data must have frames (got {n_data_frames})")
    params, se = fit_parameters(fit), fit_standard_errors(fit)
    S, N = params["beta"].shape
    n_cal = settings.n_frames_for(n_data_frames)
    camera = lab_camera(fit, n_data_frames, survey)
    # the calibration frames are rendered about the fitted centre, so their fits take it as known:
    # the centre's freedom does not bias the shells (even orders only: no cross-information by
    # symmetry), and a free centre on a small calibration block only costs time
    centre_mode = tuple(camera.centre)
    at = params
    passes = []
    t0 = time.perf_counter()
    given = sample
    if given is not None and (given.n_frames != n_cal or given.blocks != settings.blocks
                              or given.frame_start != 0 or given.frame_stop not in (None, n_cal)):
        raise InputError(f"calibration: the given sample holds frames {given.frame_start} .. {given.frame_stop} of "
                         f"{given.n_frames} in {given.blocks} blocks, not the {n_cal} frames in {settings.blocks} "
                         "blocks of these settings")
    def frames(shells, n, per_frame, seed, what):
        return (simulate or simulate_response)(shells, n, per_frame, detector=detector, seed=seed, threads=threads,
                                               chunk=settings.chunk, blocks=settings.blocks,
                                               progress_seconds=settings.progress_seconds, what=what, camera=camera)

    n_passes = settings.iterations + 1
    p = 0
    while p < n_passes:
        shells, per_frame, seed = pass_inputs(at, params, n_data_frames, settings, p)
        if p == 0 and given is not None:
            sample = given
        else:
            sample = frames(shells, n_cal, per_frame, seed, f"calibrate pass {p}")
        res = response_bias(sample, N, S, centre=centre_mode)
        rest = np.hypot(se["beta"], res["se"]["beta"] * np.sqrt(n_cal / n_data_frames))
        if p == 0 and n_passes == 1 and settings.second_pass_above > 0:
            size = expected_distance(res["bias"]["beta"]) / np.maximum(
                expected_distance(np.hypot(rest, res["se"]["beta"])), 1e-300)
            if np.max(size) > settings.second_pass_above:
                n_passes = 2
                if log is not None:
                    log(f"pass 0: the bias is {np.max(size):.1f} expected distances (second_pass_above "
                        f"{settings.second_pass_above:g}): a second pass at the corrected parameters")
        extra = top_up_frames(res["se"]["beta"], rest, n_cal, n_data_frames, settings) if p + 1 == n_passes else 0
        if extra:
            if log is not None:
                ratio = np.max(expected_distance(res["se"]["beta"]) / np.maximum(expected_distance(rest), 1e-300))
                log(f"pass {p}: the bias's error on {n_cal} frames would raise the expected distance by up to "
                    f"{100 * (np.sqrt(1 + ratio ** 2) - 1):.0f} % (max_added_error {settings.max_added_error:g}): "
                    f"{extra} frames more")
            more = frames(shells, extra, per_frame, settings.top_up_seed(p), f"calibrate pass {p} top-up")
            sample = pool_samples(sample, more)
            res = response_bias(sample, N, S, centre=centre_mode)
        n_used = int(sample.n_frames)
        # the data's own detection noise: the per-frame spread of detected - true, over its frames
        noise_se = {k: v * np.sqrt(n_used / n_data_frames) for k, v in res["se"].items()}
        corrected, corrected_se = correct(params, se, res["bias"], res["se"], noise_se)
        passes.append({"seed": seed, "frames": n_used, "top_up_frames": int(extra),
                       "top_up_seed": settings.top_up_seed(p) if extra else None, "simulated": {"R": shells.R.tolist(), "sigma_R": shells.sigma_R.tolist(),
                                                   "beta": shells.beta.tolist(),
                                                   "electrons_per_frame": per_frame.tolist()},
                       "bias": _plain(res["bias"]), "bias_se": _plain(res["se"]),
                       "detected_electrons": int(sample.detected_x.size), "true_electrons": int(sample.true_x.size),
                       "centre_fallbacks": res["centre_fallbacks"],
                       "simulate_detect_seconds": sample.seconds, "fit_seconds": res["seconds"],
                       "frames_per_second": n_used / max(sample.seconds, 1e-9),
                       "true_fit_beta": res["true"].beta.tolist(), "detected_fit_beta": res["detected"].beta.tolist()})
        if log is not None:
            ratio = np.sqrt(np.sum(distance_weights(N) * res["se"]["beta"] ** 2, axis=1)) / \
                np.maximum(expected_distance(se["beta"]), 1e-300)
            log(f"pass {p}: {n_used} frames ({n_used / max(sample.seconds, 1e-9):.1f} frames/s), detection efficiency "
                + ", ".join(f"{e:.4f}" for e in np.exp(res["bias"]["ln_weights"]))
                + "; bias distance " + ", ".join(f"{v:.4f}" for v in expected_distance(res["bias"]["beta"]))
                + "; its error / the fit's " + ", ".join(f"{v:.2f}" for v in ratio))
        at = corrected
        p += 1
    out = _user_view(corrected, corrected_se)
    out.update({
        "method": "calibrated", "uncorrected": _user_view(params, se), "bias": _plain(res["bias"]),
        "bias_se": _plain(res["se"]), "detection_noise_se": _plain(noise_se), "fit_se": _plain(se),
        "passes": passes,
        "camera": camera.to_dict(),
        "calibration": {"settings": settings.to_dict(), "frames_per_pass": n_cal, "data_frames": n_data_frames,
                        "detector": None if detector is None else detector.to_dict(), "threads": int(threads),
                        "seconds": time.perf_counter() - t0},
    })
    return out
