"""The pile-up prior of a camera, measured from its own frames re-rendered with its spot model.

A fitted component whose light lies between one and two electrons' could be a bright electron or
an unresolved pair; under a broad gain law its light cannot tell, and its count rests on the prior
odds of a pair (``DetectorParams.pileup_odds``). How often spots pile up unresolved depends on
the camera (spot width in pixels, read noise, gain spread) and on the image (its density), so no
fixed number serves every camera: at one fixed prior the count of the simulated cameras of
``benchmarks/bench_cameras.py`` ranged from 0.98 to 1.02 of the truth.

:func:`measure_pileup` measures it where the answer is known: it detects the survey's sample of
frames and renders as many new frames with the survey's spot model, read noise and hot pixels
(the calibration's renderer), each with as many electrons as its original, drawn from all the
sample's detected electrons (:func:`resampled_electrons`), so the new frames have this camera's
spots at this image's density, with pairs as close as independent electrons fall. The prior is
solved for (bisection in log odds) at which the detector, drawing each ambiguous count from the
posterior (``count_draw``: :func:`~sevi_lib.detect.spotfit.n_electrons_drawn`), finds as many
electrons in the new frames as were rendered times the detection efficiency the gain law
predicts (the electrons too faint to see are not the prior's to restore). One odds serve the
whole image, so the count is right over the image, not shell by shell: on the peaked shells of
``bench_full_size.py`` the crowded inner shell still counts 2-4 % short and the outer one 1-2 %
over; the calibration corrects what that does to the answer.

Tried and not kept (2026-12-07, ``bench_full_size.py --frames 10000 --sets peaked``):

- rendering each frame's detected electrons as they were found: the detected frames lack the
  pairs detection merged and hold the pairs its draws placed a pixel apart, and the odds solved
  on them made lab4noisy's data count 1.0171 of the truth (resampled: 1.0022);
- odds scaled by a map of the local density (detected electrons in 8 px cells smoothed over 1.5
  widths): each shell's count came right (lab4noisy 1.0034 / 1.0064) and the uncorrected answer
  near its errors, but the map is the data's, so calibration frames rendered at other parameters
  were detected with a density that is not theirs, and the calibrated inner shell landed at
  1.6-1.9 expected distances on four files (lab4noisy, dim8, lab5 twice) against 1.0-1.3 with
  one odds. A map made from each calibration pass's own frames might keep it; not tried.

Decided here: the published camera (a narrow gain law, whose count hardly depends on the prior)
keeps the fixed prior and the posterior's mode, so its detections are what they were; every other
spot model (measured or given) gets the measured prior and the draw.
"""

import math
from dataclasses import replace

import numpy as np

from sevi_lib.core.geometry import PIX_PER_UNIT

__all__ = ["JITTER_PX", "PILEUP_BOUNDS", "PILEUP_SEED", "PILEUP_STEPS", "measure_pileup", "resampled_electrons"]

#: Bracket of the prior odds searched (the published default is 0.1).
PILEUP_BOUNDS = (0.003, 1.0)

#: Bisection steps in log odds after the bracket's ends: the bracket narrows by a factor of
#: 333 ** (1 / 2 ** 8), about 1.02.
PILEUP_STEPS = 8

#: Pixels (sd) by which a resampled electron is moved from the detected one it copies.
JITTER_PX = 0.5

#: Seed of the resampled electrons and of the rendered frames' spots and noise.
PILEUP_SEED = 20261207


def resampled_electrons(x, z, counts, seed):
    """Frames of electrons drawn from the pooled positions of all frames: frame f gets ``counts[f]``.

    Each frame's electrons are distinct electrons of the pool (any frame's), each moved by a
    Gaussian of :data:`JITTER_PX` pixels. So two electrons of a new frame are independent, as the
    electrons of a real frame are, and close pairs occur as often as the image's density makes
    them: the detected frames themselves lack the pairs detection merged and hold the pairs its
    draws placed a pixel apart.

    Returns
    -------
    x, z : ndarray of float64
        Screen units, frame by frame.
    offsets : ndarray of int64, shape (len(counts) + 1,)
        Frame f's electrons are ``offsets[f]:offsets[f + 1]``.
    """
    rng = np.random.default_rng(seed)
    counts = np.minimum(np.asarray(counts, dtype=np.int64), x.size)
    idx = np.concatenate([rng.choice(x.size, int(c), replace=False) for c in counts] or [np.zeros(0, np.int64)])
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    j = JITTER_PX / PIX_PER_UNIT
    return (np.clip(x[idx] + j * rng.standard_normal(idx.size), -1.0, 1.0 - 1e-9),
            np.clip(z[idx] + j * rng.standard_normal(idx.size), -1.0, 1.0 - 1e-9), offsets)


def _rerender(frames, survey, threads):
    """Detect `frames` with the survey's detector; render new frames of those electrons, resampled.

    Returns the rendered frames (uint8, like `frames`) and the number of electrons rendered
    (:func:`resampled_electrons`, as many per frame as detected).
    """
    # local: the survey imports this module only when it measures a prior
    from numba import get_num_threads

    from sevi_lib.detect.blobs import FrameDetector
    from sevi_lib.simulate.render import render_camera_chunk, render_chunk

    ids = np.arange(frames.shape[0], dtype=np.int32)
    with FrameDetector(replace(survey.detector_params(), count_draw=1), threads=threads, camera=survey) as det:
        found = det.process(ids, frames)
    px = np.asarray(found["x"], dtype=np.float64)
    pz = np.asarray(found["z"], dtype=np.float64)
    x, z, offsets = resampled_electrons(px, pz, np.bincount(found["ImageId"], minlength=frames.shape[0]),
                                        PILEUP_SEED)
    out = np.empty_like(frames)
    effects = survey.render_effects()
    frame_ids = ids.astype(np.int64)
    if effects is None:
        render_chunk(frame_ids, offsets, x, z, PILEUP_SEED, out, n_workers=get_num_threads(), spots=survey.spots())
    else:
        render_camera_chunk(frame_ids, offsets, x, z, PILEUP_SEED, out, n_workers=get_num_threads(),
                            camera=effects, spots=survey.spots())
    return out, int(x.size)


def measure_pileup(frames, survey, *, threads=1):
    """The prior odds of a pile-up at which this camera's detector counts its own frames right.

    Parameters
    ----------
    frames : ndarray of uint8, shape (k, 1024, 1024)
        The survey's sample of frames.
    survey : sevi_lib.detect.camera.CameraSurvey
        The survey of those frames, with its spot model (its ``pileup`` is ignored).
    threads : int
        Detection threads.

    Returns
    -------
    dict
        ``odds`` (the prior), ``ratio`` (detected / rendered electrons at it), ``target`` (the
        detection efficiency the ratio is solved to), ``electrons`` (rendered), ``frames``,
        ``ratio_low`` / ``ratio_high`` (the ratio at the bracket's ends, :data:`PILEUP_BOUNDS`)
        and ``at_bound`` (``low``/``high`` when the solution lies beyond the bracket, else
        ``""``). With no electron detected, ``odds`` is the default's and ``electrons`` 0.

    Notes
    -----
    Cost: the sample is detected once to find its electrons and the rendered frames
    ``2 + PILEUP_STEPS`` times (about 10 s for 64 frames of 80 electrons on one core).
    """
    survey = replace(survey, pileup=None)
    base = replace(survey.detector_params(), count_draw=1)
    rendered, n_true = _rerender(frames, survey, threads)
    target = float(survey.detection_efficiency(base)[0])
    result = {"odds": float(base.pileup_odds), "ratio": float("nan"), "target": target, "electrons": n_true,
              "frames": int(frames.shape[0]), "ratio_low": float("nan"), "ratio_high": float("nan"),
              "at_bound": ""}
    if n_true == 0:
        return result
    # local: the import pulls in the kernels, which the survey needs only here
    from sevi_lib.detect.blobs import FrameDetector

    ids = np.arange(rendered.shape[0], dtype=np.int32)

    def ratio(log_q):
        with FrameDetector(replace(base, pileup_odds=math.exp(log_q)), threads=threads, camera=survey) as det:
            return len(det.process(ids, rendered)) / n_true

    lo, hi = (math.log(b) for b in PILEUP_BOUNDS)
    r_lo, r_hi = ratio(lo), ratio(hi)
    result.update(ratio_low=r_lo, ratio_high=r_hi)
    if r_lo >= target:
        return {**result, "odds": PILEUP_BOUNDS[0], "ratio": r_lo, "at_bound": "low"}
    if r_hi <= target:
        return {**result, "odds": PILEUP_BOUNDS[1], "ratio": r_hi, "at_bound": "high"}
    for _ in range(PILEUP_STEPS):
        mid = 0.5 * (lo + hi)
        r = ratio(mid)
        if r < target:
            lo, r_lo = mid, r
        else:
            hi, r_hi = mid, r
    # the end whose count lies nearer the target
    log_q, r = (lo, r_lo) if target - r_lo <= r_hi - target else (hi, r_hi)
    return {**result, "odds": math.exp(log_q), "ratio": r}
