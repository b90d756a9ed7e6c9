"""Detection shards: one job's electrons of a frame range, written to a file, and their accumulation.

A shard (``sevi detect --out``) holds the datasets :data:`SHARD_DATASETS` and, in its attributes,
where it came from: the frames file's identity (:func:`frames_identity`: resolved path, size,
modification time and a content fingerprint), its frame count, the range ``[start, stop)`` and
the detector parameters in use, and the camera survey when detection used one (``camera``, JSON
of :class:`~sevi_lib.detect.camera.CameraSurvey`). :func:`accumulate` gathers shards into one
electron table, count map and raw-frame sum, and refuses shards of different frames files,
parameters or camera surveys, overlapping ranges and gaps; the survey goes into the summary. The ``sevi detect`` and ``sevi accumulate`` commands are :func:`detect_shard`
and :func:`accumulate_files`; both check their outputs before any work
(:func:`sevi_lib.core.io.check_outputs`).
"""

import json
from pathlib import Path

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.io import FrameReader, check_outputs, file_fingerprint, open_h5, save_npy, write_h5, write_text
from sevi_lib.core.progress import ProgressLog
from sevi_lib.detect.blobs import ELECTRON_DTYPE, MAX_BLOB_HIST, FrameDetector
from sevi_lib.detect.camera import CameraSurvey, detected_gain_check, read_survey
from sevi_lib.detect.settings import DetectorParams

#: Datasets of a detection shard file (``sevi detect --out``).
SHARD_DATASETS = ("DetectedElectrons", "CountMap", "IntensitySum", "BlobMultiplicity")

#: Shard attributes that identify the frames file (see :func:`frames_identity`).
IDENTITY_ATTRS = ("frames_path", "frames_size", "frames_mtime_ns", "frames_fingerprint")


def frames_identity(path):
    """Identity of a frames file: resolved path, size, modification time and a content fingerprint.

    The fingerprint is :func:`sevi_lib.core.io.file_fingerprint` (sha256 of the first and last MiB
    and the size). Two shards come from the same file when size and fingerprint agree.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        ``frames_path`` (str), ``frames_size`` (int), ``frames_mtime_ns`` (int),
        ``frames_fingerprint`` (hex str).
    """
    p = Path(path).resolve()
    fingerprint = file_fingerprint(p)
    st = p.stat()
    return {"frames_path": str(p), "frames_size": int(st.st_size), "frames_mtime_ns": int(st.st_mtime_ns),
            "frames_fingerprint": fingerprint}


def shard_range(n_frames, shard, shards):
    """Frame range ``[shard * n // shards, (shard + 1) * n // shards)`` of one of `shards` shards.

    Contiguous, disjoint, covering ``[0, n_frames)``; empty for some shards when
    ``n_frames < shards``.

    Examples
    --------
    >>> [shard_range(3, i, 5) for i in range(5)]
    [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3)]
    """
    if not (0 <= shard < shards):
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return shard * n_frames // shards, (shard + 1) * n_frames // shards


def frame_range(path, n_frames, *, start=None, stop=None, shard=None, shards=None):
    """``(start, stop)`` from either a start/stop pair or a shard index of `shards`.

    Parameters
    ----------
    path : str or Path
        The frames file (named in errors).
    n_frames : int
        Frames in the file.
    start, stop : int, optional
        Explicit range (default the whole file); an empty or inverted range is an error.
    shard, shards : int, optional
        Shard i of K (:func:`shard_range`; may be empty).

    Returns
    -------
    tuple of int

    Raises
    ------
    sevi_lib.core.errors.InputError
    """
    if shard is not None or shards is not None:
        if start is not None or stop is not None:
            raise InputError("give either --start/--stop or --shard/--shards, not both")
        if shard is None or shards is None or shards < 1 or not 0 <= shard < shards:
            raise InputError(f"--shard {shard} --shards {shards}: need 0 <= shard < shards")
        return shard_range(n_frames, shard, shards)
    start = 0 if start is None else start
    stop = n_frames if stop is None else stop
    if not 0 <= start < stop <= n_frames:
        raise InputError(f"{path}: frame range [{start}, {stop}) is empty or outside the file's {n_frames} frames")
    return start, stop


def detect_file(path, start, stop, *, params=None, threads=1, chunk=64, progress=None, camera=None):
    """Detect the electrons of frames [start, stop) of a ``FinalImage`` file, streaming chunks.

    Parameters
    ----------
    path : str or Path
    start, stop : int
        Frame range (may be empty).
    params : DetectorParams, optional
    threads : int
        Detection threads (frames of a chunk in parallel) and decompression threads.
    chunk : int
        Frames read at a time (memory only; the result does not depend on it).
    progress : callable, optional
        Called with the number of frames done after each chunk.
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        Noise-implied thresholds and hot-pixel mask (see :class:`~sevi_lib.detect.blobs.FrameDetector`).

    Returns
    -------
    dict
        ``electrons`` (ELECTRON_DTYPE, ElectronId numbered from 0), ``count_map``,
        ``intensity_sum`` (float64 (1024, 1024)), ``blob_hist`` (int64), ``n_frames``,
        ``n_file_frames``, ``params`` (the DetectorParams in use).

    Raises
    ------
    sevi_lib.core.errors.InputError
        Missing or corrupt file, wrong layout, a frame that cannot be read (named), a range
        outside the file.
    """
    parts = []
    with FrameReader(path, threads=threads) as reader, FrameDetector(params, threads=threads, camera=camera) as det:
        for ids, frames in reader.iter_chunks(start, stop, chunk=chunk):
            try:
                parts.append(det.process(ids, frames))
            except OverflowError as exc:
                raise InputError(f"{path}: {exc}") from None
            if progress is not None:
                progress(det.n_frames)
        table = np.concatenate(parts) if parts else np.empty(0, dtype=ELECTRON_DTYPE)
        table["ElectronId"] = np.arange(table.size, dtype=np.int32)
        return {"electrons": table, "count_map": det.count_map, "intensity_sum": det.intensity_sum(),
                "blob_hist": det.blob_hist, "n_frames": det.n_frames, "n_file_frames": reader.n_frames,
                "params": det.params}


def write_shard(path, result, source, start, stop, params, *, identity=None, camera=None):
    """Write a detection shard atomically (datasets :data:`SHARD_DATASETS`, provenance in attributes).

    Parameters
    ----------
    path : str or Path
    result : dict
        From :func:`detect_file`.
    source : str or Path
        The frames file, as given.
    start, stop : int
        The frame range detected.
    params : DetectorParams
    identity : dict, optional
        :func:`frames_identity` of `source` (computed if not given).
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        The survey detection used (attribute ``camera``, JSON; absent without one).
    """
    identity = frames_identity(source) if identity is None else identity
    attrs = {"source": str(source), "start": int(start), "stop": int(stop), "n_frames": int(result["n_frames"]),
             "n_file_frames": int(result["n_file_frames"]), "params": json.dumps(params.to_dict()), **identity}
    if camera is not None:
        attrs["camera"] = json.dumps(camera.to_dict())
    write_h5(path, attrs=attrs, compression="gzip",
             DetectedElectrons=result["electrons"], CountMap=result["count_map"],
             IntensitySum=result["intensity_sum"], BlobMultiplicity=result["blob_hist"])


def read_shard(path):
    """Read a shard written by :func:`write_shard`, checking its layout.

    Returns
    -------
    dict
        The datasets by name plus ``start``, ``stop``, ``n_frames``, ``n_file_frames``,
        ``params`` (dict), ``camera`` (the survey's dict, None without one) and the
        :data:`IDENTITY_ATTRS`.

    Raises
    ------
    sevi_lib.core.errors.InputError
    """
    out = {}
    with open_h5(path) as f:
        missing = [n for n in SHARD_DATASETS if n not in f]
        if missing:
            raise InputError(f"{path}: not a detection shard (missing {', '.join(missing)})")
        absent = [a for a in ("n_file_frames", *IDENTITY_ATTRS) if a not in f.attrs]
        if absent:
            raise InputError(f"{path}: detection shard without the frames file's identity ({', '.join(absent)}); "
                             "rerun 'sevi detect'")
        try:
            for name in SHARD_DATASETS:
                out[name] = f[name][()]
            for key in ("start", "stop", "n_frames", "n_file_frames", "frames_size", "frames_mtime_ns"):
                out[key] = int(f.attrs[key])
            for key in ("frames_path", "frames_fingerprint"):
                out[key] = str(f.attrs[key])
            out["params"] = json.loads(f.attrs.get("params", "{}"))
            out["camera"] = json.loads(f.attrs["camera"]) if "camera" in f.attrs else None
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: corrupt detection shard ({exc})") from None
    e = out["DetectedElectrons"]
    if e.dtype.names is None or not {"ImageId", "x", "z"} <= set(e.dtype.names):
        raise InputError(f"{path}: DetectedElectrons lacks ImageId, x or z")
    for name in ("CountMap", "IntensitySum"):
        if out[name].shape != (N_PIX, N_PIX):
            raise InputError(f"{path}: {name} has shape {out[name].shape}, expected ({N_PIX}, {N_PIX})")
    if not 0 <= out["start"] <= out["stop"] <= out["n_file_frames"] or out["n_frames"] != out["stop"] - out["start"]:
        raise InputError(f"{path}: corrupt detection shard (range [{out['start']}, {out['stop']}), "
                         f"{out['n_frames']} frames, of {out['n_file_frames']})")
    return out


def detect_shard(frames, out, *, start=None, stop=None, shard=None, shards=None, params=None, threads=1, chunk=64,
                 progress=None, camera=None):
    """``sevi detect``: detect a frame range of `frames` and write the shard `out`.

    The output is checked first (not the input, not a directory, its folder writable), then the
    range; only then does detection start. Nothing is written on error.

    Parameters
    ----------
    frames : str or Path
        ``FinalImage`` file.
    out : str or Path
        Shard to write.
    start, stop, shard, shards : int, optional
        See :func:`frame_range`.
    params : DetectorParams, optional
    threads, chunk : int
        See :func:`detect_file`.
    progress : callable or float, optional
        Called with the frames done (see :func:`detect_file`); a number: progress lines
        (frames, frames/s, ETA) on stderr every that many seconds.
    camera : CameraSurvey or str or Path, optional
        The camera survey (``sevi survey``'s JSON): thresholds from the noise, hot pixels
        masked (see :class:`~sevi_lib.detect.blobs.FrameDetector`); recorded in the shard.
        Without it detection is exactly the published detector.

    Returns
    -------
    dict
        The :func:`detect_file` result plus ``start``, ``stop`` and ``camera``.
    """
    if threads < 1 or chunk < 1:
        raise InputError("--threads and --chunk must be >= 1")
    camera_path = camera if isinstance(camera, (str, Path)) else None
    check_outputs([out], [frames] + ([camera_path] if camera_path else []))
    params = params or DetectorParams()
    if camera_path:
        camera = read_survey(camera_path)
    if camera is not None:
        try:
            params = camera.detector_params(params).validate()
        except ValueError as exc:
            raise InputError(f"{camera_path or 'camera survey'}: {exc}") from None
    identity = frames_identity(frames)
    with FrameReader(frames) as reader:
        n_frames = reader.n_frames
    start, stop = frame_range(frames, n_frames, start=start, stop=stop, shard=shard, shards=shards)
    if progress is not None and not callable(progress):  # seconds between progress lines
        progress = ProgressLog(stop - start, f"detect {frames} [{start}, {stop})", every=float(progress))
    result = detect_file(frames, start=start, stop=stop, params=params, threads=threads, chunk=chunk, progress=progress,
                         camera=camera)
    write_shard(out, result, frames, start, stop, result["params"], identity=identity, camera=camera)
    return {**result, "start": start, "stop": stop, "camera": camera}


def _check_coverage(shards, partial):
    """Shards (sorted by range) must not overlap, leave gaps, or (unless `partial`) miss frames."""
    nonempty = [(p, s) for p, s in shards if s["stop"] > s["start"]]
    if not nonempty:
        return
    n = nonempty[0][1]["n_file_frames"]
    expected = nonempty[0][1]["start"] if partial else 0
    prev = None
    for p, s in nonempty:
        if s["start"] < expected:
            raise InputError(f"{p}: frames [{s['start']}, {s['stop']}) overlap {prev[0]}'s "
                             f"[{prev[1]['start']}, {prev[1]['stop']})")
        if s["start"] > expected:
            raise InputError(f"{p}: frames [{expected}, {s['start']}) before this shard's [{s['start']}, {s['stop']}) "
                             "are in no shard (a shard is missing)")
        expected = s["stop"]
        prev = (p, s)
    if expected < n and not partial:
        raise InputError(f"{prev[0]}: frames [{expected}, {n}) of {prev[1]['frames_path']} after this shard are in "
                         "no shard (a shard is missing)")


def accumulate(shard_paths, partial=False):
    """Read detection shards and combine them in frame order.

    Parameters
    ----------
    shard_paths : list of str or Path
    partial : bool
        Accept shards that cover a contiguous part of the frames file only (default: together
        they must cover all its frames).

    Returns
    -------
    dict
        ``electrons`` (ELECTRON_DTYPE, ElectronId renumbered), ``count_map``, ``intensity_sum``,
        ``blob_hist``, ``n_frames``, ``ranges``, ``frames_path``, ``camera`` (the survey's dict, or
        None when detection used none), ``params`` (the detector parameters used, a dict).

    Raises
    ------
    sevi_lib.core.errors.InputError
        A file that is not a shard, shards of different frames files, detector parameters or camera surveys,
        overlapping ranges, a gap, frames in no shard (one line naming the shard).
    """
    shards = [(p, read_shard(p)) for p in shard_paths]
    p0, s0 = shards[0]
    for p, s in shards[1:]:
        if (s["frames_size"], s["frames_fingerprint"], s["n_file_frames"]) != (
                s0["frames_size"], s0["frames_fingerprint"], s0["n_file_frames"]):
            raise InputError(f"{p}: made from {s['frames_path']} ({s['frames_size']} bytes), another frames file than "
                             f"{p0}'s {s0['frames_path']} ({s0['frames_size']} bytes)")
        if s["camera"] != s0["camera"]:  # first: a survey changes the parameters too
            if s["camera"] is None or s0["camera"] is None:
                what = f"{'without' if s['camera'] is None else 'with'} a camera survey, unlike {p0}"
            else:
                what = f"with another camera survey than {p0}"
            raise InputError(f"{p}: detected {what}")
        if s["params"] != s0["params"]:
            raise InputError(f"{p}: detected with other detector parameters than {p0}")
    shards.sort(key=lambda ps: (ps[1]["start"], ps[1]["stop"]))
    _check_coverage(shards, partial)
    tables = []
    count_map = np.zeros_like(s0["CountMap"], dtype=np.float64)
    raw_sum = np.zeros_like(count_map)
    hist = np.zeros(MAX_BLOB_HIST + 1, dtype=np.int64)
    n_frames = 0
    for _, s in shards:
        e = s["DetectedElectrons"]
        t = np.zeros(e.size, dtype=ELECTRON_DTYPE)
        for name in ELECTRON_DTYPE.names:
            if name in e.dtype.names:
                t[name] = e[name]
        tables.append(t)
        count_map += s["CountMap"]
        raw_sum += s["IntensitySum"]
        h = np.asarray(s["BlobMultiplicity"], dtype=np.int64)
        hist[: min(h.size, hist.size)] += h[: hist.size]
        n_frames += s["n_frames"]
    electrons = np.concatenate(tables)
    electrons["ElectronId"] = np.arange(electrons.size, dtype=np.int32)
    return {"electrons": electrons, "count_map": count_map, "intensity_sum": raw_sum, "blob_hist": hist,
            "n_frames": n_frames, "ranges": [(s["start"], s["stop"]) for _, s in shards],
            "frames_path": s0["frames_path"], "camera": s0["camera"], "params": s0["params"]}


def summary_text(acc):
    """Short plain-text detection summary: frames, electrons, per frame, blobs by multiplicity, and
    the camera survey (read noise, pedestal, threshold, hot pixels, spot model, detection
    efficiency, warnings) with the efficiency-corrected electron count
    (:meth:`~sevi_lib.detect.camera.CameraSurvey.corrected_count`, an estimate) and the check of
    the detected gains against the gain law (:func:`~sevi_lib.detect.camera.detected_gain_check`)
    when detection used one."""
    n = acc["electrons"].size
    f = acc["n_frames"]
    hist = acc["blob_hist"]
    lines = [
        f"frames: {f}",
        f"electrons: {n}",
        f"electrons per frame: {n / f:.3f}" if f else "electrons per frame: n/a (no frames)",
        f"blobs: {int(hist.sum())}",
        "blobs by multiplicity (electrons per blob: blobs, electrons):",
    ]
    for m in np.flatnonzero(hist):
        label = f"{m}+" if m == hist.size - 1 else f"{m}"
        lines.append(f"  {label:>4}: {int(hist[m])}, {int(hist[m]) * int(m)}")
    isolated = int(hist[1]) if hist.size > 1 else 0
    lines.append(f"electrons in isolated spots: {isolated} ({isolated / n:.1%})" if n else "electrons in isolated spots: 0")
    if acc.get("camera") is not None:
        survey = CameraSurvey.from_dict(acc["camera"])
        lines += survey.summary_lines()
        used = DetectorParams.from_config(acc["params"]) if acc.get("params") else None
        try:
            est, est_se = survey.corrected_count(n, used)
            lines.append(f"electrons, efficiency-corrected (an estimate; the electron list and the fit keep the "
                         f"detected ones): {est:.0f} +- {est_se:.0f}")
        except ValueError:
            pass
        check = detected_gain_check(acc["electrons"], survey, used)
        if check is not None:
            lines.append(f"gains of the electrons detected alone: {check['n']}, mean peak {check['mean']:.1f} counts "
                         f"(gain law {check['law_mean']:.1f}), total-variation distance to the law {check['tv']:.3f}")
            if check["warning"]:
                lines.append(f"WARNING: {check['warning']}")
    return "\n".join(lines) + "\n"


def accumulate_files(shard_paths, electrons, count_map, intensity_sum, *, summary=None, partial=False, also_writes=()):
    """``sevi accumulate``: gather shards (:func:`accumulate`) and write the results atomically.

    Every output is checked first (none equal to a shard or to another output, not a directory,
    its folder writable).

    Parameters
    ----------
    shard_paths : list of str or Path
    electrons : str or Path
        HDF5 electron table to write (``DetectedElectrons``, ``BlobMultiplicity``).
    count_map, intensity_sum : str or Path
        float64 .npy maps to write.
    summary : str or Path, optional
        Text summary.
    partial : bool
        See :func:`accumulate`.
    also_writes : sequence of str or Path
        Other outputs of the caller (``sevi accumulate``'s picture of the count map, drawn by the
        report layer), checked with these before any work.

    Returns
    -------
    acc : dict
        From :func:`accumulate`.
    text : str
        The summary.
    """
    check_outputs([electrons, count_map, intensity_sum, summary, *also_writes], shard_paths)
    acc = accumulate(shard_paths, partial=partial)
    text = summary_text(acc)
    attrs = {"n_frames": acc["n_frames"]}
    if acc["camera"] is not None:
        attrs["camera"] = json.dumps(acc["camera"])
    write_h5(electrons, attrs=attrs, compression="gzip",
             DetectedElectrons=acc["electrons"], BlobMultiplicity=acc["blob_hist"])
    save_npy(count_map, acc["count_map"])
    save_npy(intensity_sum, acc["intensity_sum"])
    if summary:
        write_text(summary, text)
    return acc, text
