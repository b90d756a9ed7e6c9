"""Writing a simulated test file: the frames (``FinalImage``) and their truth, atomically.

:func:`write_test_file` streams the frames of :func:`sevi_lib.simulate.render.iter_rendered_chunks`
into a ``FinalImage`` file (:class:`~sevi_lib.core.io.FrameWriter`, gzip) and the truth file
(``Truth``, ``GeneratedElectrons``, ``DetectedElectrons``, the camera's attributes and hot
pixels); :func:`simulate_files` is ``sevi simulate`` (outputs checked before any work).
"""

from pathlib import Path

import h5py
import numpy as np

from sevi_lib.core.errors import InputError, OutputError
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.core.io import (
    DETECTED_DTYPE,
    GENERATED_DTYPE,
    FrameWriter,
    atomic_path,
    check_outputs,
    close_h5,
    truth_dtype,
)
from sevi_lib.core.progress import ProgressLog
from sevi_lib.simulate.electrons import check_args
from sevi_lib.simulate.render import hot_pixel_table, iter_rendered_chunks, spot_model
from sevi_lib.simulate.settings import check_camera, gzip_level_for


def _progress(total, enabled):
    """Progress lines every 10 s (``enabled`` True) or every ``enabled`` seconds; None when off."""
    if not enabled:
        return None
    return ProgressLog(total, "simulate", every=10.0 if enabled is True else float(enabled))


def _append(ds, rows):
    n0 = ds.shape[0]
    ds.resize((n0 + len(rows),))
    ds[n0:] = rows


def write_test_file(frames_path, truth_path, shells, n_frames, electrons_per_shell, *, detection_loss=0.1,
                    seed=0, chunk=64, include_images_in_truth=False, progress=True, threads=1,
                    centre_offset=(0.0, 0.0), stray_electrons=0.0, read_noise=0.0, hot_pixels=0,
                    gzip_level=None, spots=None):
    """Simulate and render a test file and its truth, streaming frames in chunks.

    Writes `frames_path` with the published ``FinalImage`` layout (gzip 9) and `truth_path`
    in the first-kind training layout: ``Truth``, ``GeneratedElectrons``,
    ``DetectedElectrons`` and, if `include_images_in_truth`, ``FinalImage``; and the camera
    (read back by :func:`sevi_lib.core.io.read_camera_truth`): root attributes ``centre_x``,
    ``centre_z`` (image centre, screen units), ``stray_electrons``, ``read_noise``, the spot
    model (``spot_sigma_px``, ``spot_sigma_sd_px``, ``spot_rho_sd``, ``spot_gain`` (string),
    ``spot_gain_mean``, ``spot_gain_cv``) and the dataset ``HotPixels``
    (:data:`~sevi_lib.core.io.HOT_PIXEL_DTYPE`; absent when none).
    DetectedElectrons holds screen positions (centre offset included) and the stray electrons
    (ElectronId -1). Both files appear
    atomically (only when complete). Memory does not grow with `n_frames`: frames and electron
    tables are produced and written `chunk` frames at a time. The output does not depend on
    `chunk` or on the number of threads.

    Parameters
    ----------
    frames_path, truth_path : str or Path
    shells : sevi_lib.core.shells.Shells
    n_frames : int
    electrons_per_shell : float or sequence of float
        Poisson mean per frame and shell.
    detection_loss : float
        Probability that an electron is not detected.
    seed : int
        0 <= seed < 2**32.
    chunk : int
        Frames per chunk (about `chunk` MiB of frames in memory, plus 8 MiB per render thread).
    include_images_in_truth : bool
        Also store the frames in the truth file.
    progress : bool or float
        Progress lines (frames, frames/s, ETA) on stderr every 10 s, or every `progress` seconds.
    threads : int
        gzip compression threads.
    centre_offset, stray_electrons, read_noise, hot_pixels
        The camera, as in :func:`iter_rendered_chunks` (defaults: the published camera).
    gzip_level : int or None
        gzip level of the frames; None: 9 (published) without read noise, 1 with it (see
        :class:`~sevi_lib.simulate.settings.SimulationSettings`).
    spots : SpotModel, mapping or None
        The camera's spot model (:func:`spot_model`); None: the published one.

    Returns
    -------
    dict
        ``n_frames``, ``n_generated``, ``n_detected`` (stray electrons included).
    """
    check_args(shells, n_frames, electrons_per_shell, detection_loss, seed)
    camera = dict(zip(("centre_offset", "stray_electrons", "read_noise", "hot_pixels"),
                      check_camera(centre_offset, stray_electrons, read_noise, hot_pixels)))
    level = gzip_level_for(gzip_level, camera["read_noise"])
    model = spot_model(spots)
    n_frames = int(n_frames)
    chunk = max(1, int(chunk))
    truth = np.zeros(shells.n_shells, dtype=truth_dtype(shells.n_beta))
    truth["SphereId"] = np.arange(shells.n_shells)
    truth["R"] = shells.R
    truth["sigma_R"] = shells.sigma_R
    truth["beta"] = shells.beta
    n_gen = n_det = 0
    bar = _progress(n_frames, progress)
    try:
        with FrameWriter(frames_path, n_frames, level=level, threads=threads) as fw:
            if include_images_in_truth:
                truth_writer = FrameWriter(truth_path, n_frames, level=level, threads=threads)
                truth_ctx = truth_writer
            else:
                truth_writer = None
                truth_ctx = atomic_path(truth_path)
            with truth_ctx as handle:
                tf = truth_writer.file if truth_writer is not None else h5py.File(handle, "w")
                try:
                    tf.create_dataset("Truth", data=truth)
                    gen_ds = tf.create_dataset("GeneratedElectrons", shape=(0,), maxshape=(None,),
                                               dtype=GENERATED_DTYPE, chunks=(65536,), compression="gzip")
                    det_ds = tf.create_dataset("DetectedElectrons", shape=(0,), maxshape=(None,),
                                               dtype=DETECTED_DTYPE, chunks=(65536,), compression="gzip")
                    for attr, value in (("seed", seed), ("detection_loss", float(detection_loss)),
                                        ("electrons_per_shell", np.broadcast_to(
                                            np.asarray(electrons_per_shell, dtype=np.float64), (shells.n_shells,)))):
                        tf.attrs[attr] = value
                    dx, dz = camera["centre_offset"]
                    for attr, value in (("centre_x", dx / PIX_PER_UNIT), ("centre_z", dz / PIX_PER_UNIT),
                                        ("stray_electrons", camera["stray_electrons"]),
                                        ("read_noise", camera["read_noise"])):
                        tf.attrs[attr] = float(value)
                    for name, value in model.to_dict().items():
                        tf.attrs[f"spot_{name}"] = value if name == "gain" else float(value)
                    if camera["hot_pixels"]:
                        tf.create_dataset("HotPixels", data=hot_pixel_table(seed, camera["hot_pixels"]))
                    for ids, out, ch in iter_rendered_chunks(shells, n_frames, electrons_per_shell,
                                                             detection_loss=detection_loss, seed=seed, chunk=chunk,
                                                             spots=model, **camera):
                        fw.write(ids, out)
                        if truth_writer is not None:
                            truth_writer.write(ids, out)
                        _append(gen_ds, ch.generated)
                        _append(det_ds, ch.detected)
                        n_gen += len(ch.generated)
                        n_det += len(ch.detected)
                        if bar is not None:
                            bar.update(ch.n_frames)
                finally:
                    if truth_writer is None:
                        close_h5(tf)
    finally:
        if bar is not None:
            bar.close()
    return {"n_frames": n_frames, "n_generated": n_gen, "n_detected": n_det}


def simulate_files(frames_path, truth_path, settings, shells, *, include_images_in_truth=False, progress=True):
    """``sevi simulate`` as one call: check the outputs, then write the test file and its truth.

    Parameters
    ----------
    frames_path, truth_path : str or Path
        Outputs (must differ and be writable; checked before any work).
    settings : sevi_lib.simulate.settings.SimulationSettings
    shells : sevi_lib.core.shells.Shells
        ``settings.shells()`` (resolved once by the caller).
    include_images_in_truth, progress : bool
        As in :func:`write_test_file`.

    Returns
    -------
    dict
        As :func:`write_test_file`.
    """
    if Path(frames_path).resolve() == Path(truth_path).resolve():
        raise InputError(f"--frames and --truth are the same file: {frames_path}")
    check_outputs([frames_path, truth_path])
    means = settings.electron_means(shells.n_shells)
    offset, strays, noise, hot = settings.camera()
    spots = settings.spot_model()
    try:
        return write_test_file(frames_path, truth_path, shells, settings.n_frames, means,
                               detection_loss=float(settings.detection_loss), seed=settings.seed,
                               chunk=settings.chunk, include_images_in_truth=include_images_in_truth,
                               progress=progress, threads=settings.threads, centre_offset=offset,
                               stray_electrons=strays, read_noise=noise, hot_pixels=hot,
                               gzip_level=settings.gzip_level, spots=spots)
    except OutputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename or frames_path}: {exc.strerror or exc}") from None
