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
from sevi_lib.simulate.render import hot_pixel_table, iter_rendered_chunks
from sevi_lib.simulate.settings import gzip_level_for


def _progress(total, enabled):
    """Progress lines every 10 s (``enabled`` True) or every ``enabled`` seconds; None when off."""
    if not enabled:
        return None
    return ProgressLog(total, "simulate", every=10.0 if enabled is True else float(enabled))


def _append(ds, rows):
    n0 = ds.shape[0]
    ds.resize((n0 + len(rows),))
    ds[n0:] = rows


def write_test_file(frames_path, truth_path, shells, settings, *, include_images_in_truth=False, progress=True):
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
    atomically (only when complete). Memory does not grow with the number of frames: frames and
    electron tables are produced and written ``settings.chunk`` frames at a time. The output
    does not depend on ``settings.chunk`` or on the number of threads.

    Parameters
    ----------
    frames_path, truth_path : str or Path
    shells : sevi_lib.core.shells.Shells
        The shells simulated (the shell fields of `settings` are not read).
    settings : sevi_lib.simulate.settings.SimulationSettings
        Everything else: ``n_frames``, ``electrons_per_shell``, ``detection_loss``, ``seed``,
        ``chunk`` (about ``chunk`` MiB of frames in memory, plus 8 MiB per render thread),
        ``threads`` (gzip compression threads), the camera (``centre_offset``,
        ``stray_electrons``, ``read_noise``, ``hot_pixels``, ``spot``: see
        :func:`~sevi_lib.simulate.render.iter_rendered_chunks`) and ``gzip_level`` (None: 9,
        published, without read noise, 1 with it).
    include_images_in_truth : bool
        Also store the frames in the truth file.
    progress : bool or float
        Progress lines (frames, frames/s, ETA) on stderr every 10 s, or every `progress` seconds.

    Returns
    -------
    dict
        ``n_frames``, ``n_generated``, ``n_detected`` (stray electrons included).
    """
    means = settings.electron_means(shells.n_shells)
    check_args(shells, settings.n_frames, means, settings.detection_loss, settings.seed)
    camera = dict(zip(("centre_offset", "stray_electrons", "read_noise", "hot_pixels"), settings.camera()))
    level = gzip_level_for(settings.gzip_level, camera["read_noise"])
    model = settings.spot_model()
    n_frames, seed, threads = int(settings.n_frames), settings.seed, settings.threads
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
                    for attr, value in (("seed", seed), ("detection_loss", float(settings.detection_loss)),
                                        ("electrons_per_shell", means)):
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
                    for ids, out, ch in iter_rendered_chunks(shells, settings):
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
    try:
        return write_test_file(frames_path, truth_path, shells, settings,
                               include_images_in_truth=include_images_in_truth, progress=progress)
    except OutputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename or frames_path}: {exc.strerror or exc}") from None
