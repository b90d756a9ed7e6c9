"""The calibration's files: the fit it reads, the shard files, the corrected answer it writes.

The method (:mod:`~sevi_lib.calibrate.response`, :mod:`~sevi_lib.calibrate.shards`) works on
arrays and dicts; this module is what ``sevi calibrate-shard`` (:func:`calibrate_shard_files`) and
``sevi calibrate`` (:func:`calibrate_files`) call: it checks the outputs before any work, reads and
checks the inputs (:func:`read_fit`, :func:`read_shards`), and writes atomically.
"""

import json

import numpy as np

from sevi_lib.calibrate.response import ResponseSample, calibrate
from sevi_lib.calibrate.shards import SHARD_DATASETS, SHARD_FORMAT, combine_shards, simulate_shard
from sevi_lib.core.errors import InputError
from sevi_lib.core.io import check_outputs, open_h5, read_answer, write_answer, write_h5, write_text
from sevi_lib.detect.camera import read_survey


def read_fit(answer, sidecar):
    """The fit's JSON sidecar, checked against its Answer file.

    Raises
    ------
    InputError
        Unreadable files, a sidecar without the fitted parameters, a fit that is not the
        unbinned fit of electrons, or a sidecar whose R and beta differ from the Answer's.
    """
    try:
        with open(sidecar) as f:
            fit = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{sidecar}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{sidecar}: not a readable JSON fit sidecar ({exc})") from None
    missing = [k for k in ("R", "sigma_R", "weights", "beta", "se_R", "se_sigma_R", "se_weights", "se_beta")
               if k not in fit]
    if missing:
        raise InputError(f"{sidecar}: not a fit sidecar (missing {', '.join(missing)})")
    if fit.get("method", "unbinned") != "unbinned":
        raise InputError(f"{sidecar}: the calibration corrects the unbinned fit of electrons, not a "
                         f"{fit['method']!r} fit")
    table = read_answer(answer)
    try:
        same = np.allclose(np.sort(table["R"]), np.sort(fit["R"]), rtol=0, atol=1e-12) and \
            np.allclose(np.asarray(table["beta"])[np.argsort(table["R"])],
                        np.asarray(fit["beta"])[np.argsort(fit["R"])], rtol=0, atol=1e-12)
    except (ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise InputError(f"{sidecar}: R and beta differ from those of {answer} (a stale sidecar?)")
    return fit


def data_frames(electrons):
    """Frames of the data from the ``n_frames`` attribute of an accumulated electron file."""
    with open_h5(electrons) as f:
        if "n_frames" not in f.attrs:
            raise InputError(f"{electrons}: no n_frames attribute (give the number of frames instead)")
        return int(f.attrs["n_frames"])


def calibrate_files(answer, sidecar, out, out_sidecar, electrons=None, *, n_frames=None, detector=None,
                    settings=None, threads=1, log=None, camera=None, shard_files=None):
    """The ``calibrate`` stage: read the fit, calibrate it, write the corrected Answer and its sidecar.

    Parameters
    ----------
    answer, sidecar : str or Path
        The fit's Answer file and JSON sidecar (``sevi fit``).
    out, out_sidecar : str or Path
        Corrected Answer file and its JSON sidecar (see :func:`calibrate`), written atomically.
    electrons : str or Path, optional
        The accumulated electron file the fit read; its ``n_frames`` attribute is the data's
        frame count (unless `n_frames` is given).
    n_frames : int, optional
    detector : DetectorParams, optional
    settings : CalibrationSettings, optional
    threads : int
    log : callable, optional
    camera : str or Path, optional
        The data's camera survey (``sevi survey`` JSON).
    shard_files : sequence of str or Path, optional
        Pass 0's calibration frames as shard files (``sevi calibrate-shard``), instead of
        simulating them here; checked against the fit, the settings, the detector and the camera
        (:func:`sevi_lib.calibrate.shards.combine_shards`).

    Returns
    -------
    dict
        What :func:`calibrate` returned (as written to `out_sidecar`).
    """
    check_outputs([out, out_sidecar], [answer, sidecar, electrons, camera, *(shard_files or ())])
    fit, n_frames, survey = _inputs(answer, sidecar, electrons, n_frames, camera)
    if shard_files:
        samples, identities, names = read_shards(shard_files)
        result = combine_shards(fit, n_frames, samples, identities, detector=detector, settings=settings,
                                threads=threads, log=log, survey=survey, names=names)
    else:
        result = calibrate(fit, n_frames, detector=detector, settings=settings, threads=threads, log=log, survey=survey)
    result["input"] = {"answer": str(answer), "sidecar": str(sidecar),
                       "electrons": None if electrons is None else str(electrons),
                       "camera": None if camera is None else str(camera),
                       "shards": None if not shard_files else [str(f) for f in shard_files]}
    write_answer(out, result["R"], result["beta"])
    write_text(out_sidecar, json.dumps(result, indent=1) + "\n")
    return result


def write_shard(path, sample, identity, shard, shards):
    """Write a calibration shard file atomically (datasets :data:`SHARD_DATASETS`, attributes).

    Parameters
    ----------
    path : str or Path
    sample : ResponseSample
    identity : dict
        :func:`shard_identity` (stored as JSON in the ``identity`` attribute).
    shard, shards : int
    """
    attrs = {"format": SHARD_FORMAT, "identity": json.dumps(identity, sort_keys=True), "shard": int(shard),
             "shards": int(shards), "frame_start": int(sample.frame_start),
             "frame_stop": int(sample.n_frames if sample.frame_stop is None else sample.frame_stop),
             "n_frames": int(sample.n_frames), "blocks": int(sample.blocks), "seconds": float(sample.seconds)}
    write_h5(path, attrs=attrs, **{name: getattr(sample, name) for name in SHARD_DATASETS})


def read_shard(path):
    """A calibration shard file: its sample, identity and (shard, shards).

    Raises
    ------
    InputError
        A missing or unreadable file, or not a calibration shard.
    """
    with open_h5(path) as f:
        if f.attrs.get("format") != SHARD_FORMAT or any(name not in f for name in SHARD_DATASETS):
            raise InputError(f"{path}: not a calibration shard (sevi calibrate-shard --out)")
        data = {name: f[name][()] for name in SHARD_DATASETS}
        a = {k: f.attrs[k] for k in ("identity", "shard", "shards", "frame_start", "frame_stop", "n_frames",
                                     "blocks", "seconds")}
    sample = ResponseSample(**data, n_frames=int(a["n_frames"]), blocks=int(a["blocks"]), seconds=float(a["seconds"]),
                            frame_start=int(a["frame_start"]), frame_stop=int(a["frame_stop"]))
    return sample, json.loads(a["identity"]), (int(a["shard"]), int(a["shards"]))


def _inputs(answer, sidecar, electrons, n_frames, camera):
    """The fit, the data's frame count and the camera survey of a calibration job's files."""
    fit = read_fit(answer, sidecar)
    survey = None
    if camera is not None:
        survey = read_survey(camera)
    if n_frames is None:
        if electrons is None:
            raise InputError("calibration: give the electron file or the number of frames of the data")
        n_frames = data_frames(electrons)
    return fit, int(n_frames), survey


def calibrate_shard_files(answer, sidecar, out, *, shard, shards, electrons=None, n_frames=None, detector=None,
                          settings=None, threads=1, camera=None):
    """The ``calibrate_shard`` job: one shard of pass 0's calibration frames, written to `out`.

    Parameters
    ----------
    answer, sidecar : str or Path
        The fit's Answer file and JSON sidecar (``sevi fit``).
    out : str or Path
        The shard file (HDF5), written atomically.
    shard, shards : int
    electrons : str or Path, optional
        The accumulated electron file the fit read (its ``n_frames`` is the data's frame count).
    n_frames : int, optional
        Frames of the data (instead of `electrons`).
    detector : DetectorParams, optional
    settings : CalibrationSettings, optional
    threads : int
    camera : str or Path, optional
        The data's camera survey (``sevi survey`` JSON).

    Returns
    -------
    ResponseSample
        The shard's sample, as written.
    """
    check_outputs([out], [answer, sidecar, electrons, camera])
    fit, n_frames, survey = _inputs(answer, sidecar, electrons, n_frames, camera)
    sample, identity = simulate_shard(fit, n_frames, shard, shards, detector=detector, settings=settings,
                                      threads=threads, survey=survey)
    write_shard(out, sample, identity, shard, shards)
    return sample


def read_shards(paths):
    """Samples and identities of calibration shard files, checked to be one complete set.

    Raises
    ------
    InputError
        See :func:`read_shard`; a shard of another shard count, two files of one shard, a
        missing shard.
    """
    samples, identities, names, seen = [], [], [str(p) for p in paths], {}
    for path in paths:
        sample, identity, (shard, shards) = read_shard(path)
        if shards != len(paths):
            raise InputError(f"{path}: shard {shard} of {shards}, but {len(paths)} shard files are given")
        if shard in seen:
            raise InputError(f"{path}: shard {shard} again (also {seen[shard]})")
        seen[shard] = path
        samples.append(sample)
        identities.append(identity)
    return samples, identities, names
