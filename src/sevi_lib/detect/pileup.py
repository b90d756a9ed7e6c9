"""The pile-up prior of a camera, measured from its own frames re-rendered with its spot model.

A fitted component whose light lies between one and two electrons' could be a bright electron or
an unresolved pair; under a broad gain law its light cannot tell, and its count rests on the prior
odds of a pair (``DetectorParams.pileup_odds``). How often spots pile up unresolved depends on
the camera (spot width in pixels, read noise, gain spread) and on the image (its density), so no
fixed number serves every camera: at one fixed prior the count of the simulated cameras of
``benchmarks/bench_cameras.py`` ranged from 0.98 to 1.02 of the truth.

:func:`measure_pileup` measures it where the answer is known: the electrons detected in the
survey's sample of frames are rendered again with the survey's spot model, read noise and hot
pixels (the calibration's renderer), so the new frames have this camera's spots at this image's
density, and the prior is solved for (bisection in log odds) at which the detector, drawing each
ambiguous count from the posterior (``count_draw``: :func:`~sevi_lib.detect.spotfit.n_electrons_drawn`),
finds as many electrons as were rendered times the detection efficiency the gain law predicts
(the electrons too faint to see are not the prior's to restore). The rendered electrons are the
detected ones, slightly fewer than arrived where spots crowd; the prior that counts them right
counts the data right to well within the 1 % asked of it (``benchmarks/bench_cameras.py``).

Decided here: the published camera (a narrow gain law, whose count hardly depends on the prior)
keeps the fixed prior and the posterior's mode, so its detections are what they were; every other
spot model (measured or given) gets the measured prior and the draw.
"""

import math
from dataclasses import replace

import numpy as np

__all__ = ["PILEUP_BOUNDS", "PILEUP_SEED", "PILEUP_STEPS", "measure_pileup"]

#: Bracket of the prior odds searched (the published default is 0.1).
PILEUP_BOUNDS = (0.003, 3.0)

#: Bisection steps in log odds after the bracket's ends: the bracket narrows by a factor of
#: 1000 ** (1 / 2 ** 8), about 1.03.
PILEUP_STEPS = 8

#: Seed of the re-rendered frames' spots and noise.
PILEUP_SEED = 20261207


def _rerender(frames, survey, threads):
    """Detect `frames` with the survey's detector; render those electrons again with its camera.

    Returns the rendered frames (uint8, like `frames`) and the number of electrons rendered.
    """
    # local: the survey imports this module only when it measures a prior
    from numba import get_num_threads

    from sevi_lib.detect.blobs import FrameDetector
    from sevi_lib.simulate.render import render_camera_chunk, render_chunk

    ids = np.arange(frames.shape[0], dtype=np.int32)
    with FrameDetector(replace(survey.detector_params(), count_draw=1), threads=threads, camera=survey) as det:
        found = det.process(ids, frames)
    order = np.argsort(found["ImageId"], kind="stable")
    x = np.ascontiguousarray(found["x"][order], dtype=np.float64)
    z = np.ascontiguousarray(found["z"][order], dtype=np.float64)
    offsets = np.searchsorted(found["ImageId"][order], np.arange(frames.shape[0] + 1)).astype(np.int64)
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
