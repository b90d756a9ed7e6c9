"""Calibration shards: pass 0's calibration frames simulated and detected over frame ranges.

The calibration's longest step -- simulating, rendering and detecting as many frames as the data
-- is split like detection: shard i of K makes frames ``[i n / K, (i + 1) n / K)`` of the ``n``
calibration frames (:func:`simulate_shard`, ``sevi calibrate-shard``) and keeps their detected
electrons and true positions; one job joins the shards (:func:`join_samples`), fits them and
corrects the fit (:func:`sevi_lib.calibrate.response.calibrate` with ``sample=``,
``sevi calibrate --shard-files``). Every frame depends only on (seed, its index), so the joined
sample, and hence the answer, is the same bit for bit for any number of shards.

A shard file records what it simulated (:func:`shard_identity`: frames, blocks, seed, shells,
electrons per frame, camera, detector, data frames); the combining job refuses shards whose
identity differs from the one its own inputs give, shards of another shard count, gaps and
overlaps. Passes >= 1 (``iterations``) depend on pass 0's result and run in the combining job.
"""

import json

import numpy as np

from sevi_lib.calibrate.response import (
    ResponseSample,
    calibrate,
    fit_parameters,
    lab_camera,
    pass_inputs,
    simulate_response,
)
from sevi_lib.calibrate.settings import CalibrationSettings
from sevi_lib.core.errors import InputError
from sevi_lib.detect.shards import shard_range

#: Value of a calibration shard file's ``format`` attribute.
SHARD_FORMAT = "sevi calibration shard 1"

#: Datasets of a calibration shard file, in :class:`ResponseSample` terms.
SHARD_DATASETS = ("detected_x", "detected_z", "detected_block", "true_x", "true_z", "true_block")


def shard_identity(fit, n_data_frames, detector=None, settings=None, survey=None):
    """What pass 0's calibration frames are made of: the record every shard must share.

    Parameters
    ----------
    fit : FitResult or dict
        The fit of the data (or its JSON sidecar).
    n_data_frames : int
    detector : DetectorParams, optional
    settings : CalibrationSettings, optional
    survey : sevi_lib.detect.camera.CameraSurvey, optional

    Returns
    -------
    dict
        JSON-ready: ``frames`` (calibration frames), ``blocks``, ``seed`` (pass 0's),
        ``data_frames``, ``R``, ``sigma_R``, ``beta`` (the simulated shells),
        ``electrons_per_frame``, ``camera`` (:meth:`LabCamera.to_dict` and the whole survey,
        spot model included) and ``detector`` (its fields, or None).
    """
    settings = (settings or CalibrationSettings()).validate()
    n_data_frames = int(n_data_frames)
    if n_data_frames < 1:
        raise InputError(f"calibration: the data must have frames (got {n_data_frames})")
    params = fit_parameters(fit)
    shells, per_frame, seed = pass_inputs(params, params, n_data_frames, settings, 0)
    camera = lab_camera(fit, n_data_frames, survey)
    cam = {**camera.to_dict(), "survey": None if survey is None else survey.to_dict()}
    identity = {"frames": settings.n_frames_for(n_data_frames), "blocks": int(settings.blocks), "seed": int(seed),
                "data_frames": n_data_frames, "R": shells.R.tolist(), "sigma_R": shells.sigma_R.tolist(),
                "beta": shells.beta.tolist(), "electrons_per_frame": np.asarray(per_frame).tolist(),
                "camera": cam, "detector": None if detector is None else detector.to_dict()}
    return json.loads(json.dumps(identity))  # as a shard file stores it


def simulate_shard(fit, n_data_frames, shard, shards, *, detector=None, settings=None, threads=1, survey=None):
    """Shard `shard` of `shards` of pass 0's calibration frames, simulated, rendered and detected.

    The frames are those :func:`sevi_lib.calibrate.response.calibrate` makes in pass 0 (at the
    fitted parameters, through the data's camera), restricted to the range
    :func:`sevi_lib.detect.shards.shard_range` gives for this shard.

    Parameters
    ----------
    fit : FitResult or dict
        The fit of the data (or its JSON sidecar).
    n_data_frames : int
    shard, shards : int
        0 <= shard < shards.
    detector : DetectorParams, optional
    settings : CalibrationSettings, optional
    threads : int
        Detection threads.
    survey : sevi_lib.detect.camera.CameraSurvey, optional

    Returns
    -------
    sample : ResponseSample
        The shard's frames (``frame_start``, ``frame_stop``; ``n_frames`` counts all of them).
    identity : dict
        :func:`shard_identity`.
    """
    shard, shards = int(shard), int(shards)
    if shards < 1 or not 0 <= shard < shards:
        raise InputError(f"calibration: shard {shard} of {shards} does not exist (0 <= shard < shards)")
    settings = (settings or CalibrationSettings()).validate()
    identity = shard_identity(fit, n_data_frames, detector, settings, survey)
    params = fit_parameters(fit)
    shells, per_frame, seed = pass_inputs(params, params, n_data_frames, settings, 0)
    start, stop = shard_range(identity["frames"], shard, shards)
    sample = simulate_response(shells, identity["frames"], per_frame, detector=detector, seed=seed, threads=threads,
                               chunk=settings.chunk,
                               blocks=settings.blocks, progress_seconds=settings.progress_seconds,
                               what=f"calibrate shard {shard}/{shards} [{start}, {stop})",
                               camera=lab_camera(fit, n_data_frames, survey), start=start, stop=stop)
    return sample, identity


def join_samples(samples, names=None):
    """The samples of contiguous frame ranges joined into the sample of all calibration frames.

    Parameters
    ----------
    samples : sequence of ResponseSample
        In any order; together they must cover ``[0, n_frames)`` once.
    names : sequence of str, optional
        Names of the samples in error messages (e.g. their files).

    Returns
    -------
    ResponseSample
        ``frame_start`` 0, ``frame_stop`` ``n_frames``; ``seconds`` is the sum of the samples'.

    Raises
    ------
    InputError
        No samples, samples of different frame counts or blocks, a gap or an overlap.
    """
    if not samples:
        raise InputError("calibration: no calibration shards to join")
    names = list(names) if names is not None else [f"sample {i}" for i in range(len(samples))]
    ranges = [(s.frame_start, s.n_frames if s.frame_stop is None else s.frame_stop) for s in samples]
    first = samples[0]
    for s, name in zip(samples, names):
        if (s.n_frames, s.blocks) != (first.n_frames, first.blocks):
            raise InputError(f"{name}: a shard of {s.n_frames} calibration frames in {s.blocks} blocks, not "
                             f"{first.n_frames} in {first.blocks} like {names[0]}")
    order = sorted(range(len(samples)), key=lambda i: ranges[i])
    at = 0
    for i in order:
        start, stop = ranges[i]
        if start != at:
            what = "overlaps the shard before it" if start < at else f"leaves frames {at} .. {start - 1} missing"
            raise InputError(f"{names[i]}: frames {start} .. {stop - 1} {what}")
        at = stop
    if at != first.n_frames:
        raise InputError(f"{names[order[-1]]}: the shards end at frame {at}, not at {first.n_frames} "
                         "(a shard is missing)")

    def cat(field, dtype):
        return np.concatenate([getattr(samples[i], field) for i in order]).astype(dtype, copy=False)

    return ResponseSample(cat("detected_x", np.float64), cat("detected_z", np.float64),
                          cat("detected_block", np.int16), cat("true_x", np.float64), cat("true_z", np.float64),
                          cat("true_block", np.int16), first.n_frames, first.blocks,
                          float(sum(s.seconds for s in samples)), 0, first.n_frames)


def combine_shards(fit, n_data_frames, samples, identities, *, detector=None, settings=None, threads=1, log=None,
                   survey=None, names=None):
    """Check the shards against the fit and the settings, join them and calibrate the fit.

    Parameters
    ----------
    fit : FitResult or dict
    n_data_frames : int
    samples : sequence of ResponseSample
        The shards' samples (:func:`simulate_shard`).
    identities : sequence of dict
        Their :func:`shard_identity` records.
    detector, settings, threads, log, survey
        As in :func:`sevi_lib.calibrate.response.calibrate`.
    names : sequence of str, optional
        Names of the shards in error messages.

    Returns
    -------
    dict
        What :func:`sevi_lib.calibrate.response.calibrate` returns; ``calibration`` also holds
        ``shards`` (their count) and ``shard_seconds`` (simulation and detection, summed).

    Raises
    ------
    InputError
        A shard made of other inputs (the keys that differ are named), or see :func:`join_samples`.
    """
    settings = (settings or CalibrationSettings()).validate()
    names = list(names) if names is not None else [f"shard {i}" for i in range(len(samples))]
    want = shard_identity(fit, n_data_frames, detector, settings, survey)
    for ident, name in zip(identities, names):
        differ = sorted(k for k in set(want) | set(ident) if want.get(k) != ident.get(k))
        if differ:
            raise InputError(f"{name}: a calibration shard of other inputs or settings (differs in: "
                             f"{', '.join(differ)})")
    sample = join_samples(samples, names)
    out = calibrate(fit, n_data_frames, detector=detector, settings=settings, threads=threads, log=log, survey=survey,
                    sample=sample)
    out["calibration"]["shards"] = len(samples)
    out["calibration"]["shard_seconds"] = sample.seconds
    return out
