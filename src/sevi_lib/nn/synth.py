"""Synthetic training shards for the network: prior -> electrons -> count map -> view.

A *shard* is one HDF5 file of ``n`` samples drawn from a prior (:mod:`sevi_lib.nn.priors`) and
simulated with the project's numba simulator (:func:`sevi_lib.simulate.electrons.sample_shell`: exact
inverse-transform sampling of cos(theta), r ~ N(R, sigma_R^2), projection), binned into a
1024 x 1024 count map exactly as ``numpy.histogram2d`` and transformed by an input view
(:mod:`sevi_lib.nn.views`). Layout (read by :class:`sevi_lib.nn.data.ShardDataset`):

==============  =======================  ===================================================
dataset         shape, dtype             content
==============  =======================  ===================================================
``inputs``      (n, C, H, W) float32     the view of each count map (chunked per sample)
``labels``      (n, K, N) float64        beta_2 .. beta_2N of each shell (shell 0 smaller R)
``R``           (n, K) float64           radii
``sigma_R``     (n, K) float64           radial widths
``n_electrons`` (n, K) int64             electrons of each shell in the map
``detector``    (n,) bool                sample went through frame renderer and detector
==============  =======================  ===================================================

Attributes: ``view`` (JSON of the view), ``seed``, ``key``, ``prior`` (its name),
``prior_json`` (all its parameters), ``beta_acceptance``, ``R_acceptance``,
``acceptance`` (fractions of candidates accepted by the physical prior), ``detector_fraction``,
``electrons_per_frame``, ``n_beta``, ``camera`` (JSON, see :func:`camera_attrs`: the camera the
detector-like samples went through; the published one unless a survey was given).

Reproducibility: everything in a shard is a function of ``(seed, key)`` and the arguments: the
prior draw uses ``numpy.random.default_rng(SeedSequence([seed, crc32(key)]))``, and every
sample and shell reseeds numba's generator with its own 32-bit seed drawn from that generator,
so the result depends neither on the number of threads nor on how samples are batched.

Shells: K is the prior's (:attr:`sevi_lib.nn.priors.Prior.n_shells`): two for pretraining, the
first pass's K (any K >= 1) for fine-tuning. The generator is called in the same order for any
K, so two-shell shards are what they always were. Every map is centred on the screen centre
(0, 0): the real map is recentred on the fitted centre instead (:mod:`sevi_lib.nn.centre`).

Detector-like samples (a configurable fraction): the sample's parameters are simulated and rendered
frame by frame by the project's one render loop (:func:`sevi_lib.simulate.render.iter_rendered_chunks`,
``electrons_per_frame`` electrons per frame in total, 10 % undetected), and every frame is passed
through the project's detector (:mod:`sevi_lib.detect.blobs`), and the count map is built from the
*detected* positions, so the network also sees the detector's imperfections (merged spots,
position errors). The camera is the data's when a camera survey is given
(:class:`sevi_lib.detect.camera.CameraSurvey`, ``sevi nn synth --camera``): its read noise and
spot model are rendered and its thresholds and hot-pixel mask detect; without one it is the
published camera (its spot model, no read noise, the default detector), and the maps are those
of before surveys existed, bit for bit. Hot pixels are not rendered: the detector masks them.
They cost about as much as real frames (one frame per ``electrons_per_frame`` electrons), so
keep the fraction small.
"""

import json
import zlib
from os import PathLike

import h5py
import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.io import atomic_path, check_outputs
from sevi_lib.core.maps import count_map_kernel
from sevi_lib.core.progress import ProgressLog
from sevi_lib.core.shells import Shells
from sevi_lib.core.spots import SpotModel
from sevi_lib.nn.inputs import stage_prior
from sevi_lib.nn.priors import sample as sample_prior
from sevi_lib.nn.settings import SynthSettings
from sevi_lib.nn.views import View, apply_view
from sevi_lib.simulate.electrons import sample_shell

#: Samples simulated together (in parallel) before their views are written.
BATCH = 8


@njit(cache=True, parallel=True)
def _maps_kernel(R, sigma_R, beta, n_el, seeds, out):
    """Count maps of a batch of K-shell samples (numba, parallel over samples).

    out[k] (zeroed here) receives the counts of sample k: for each shell s, ``n_el[k, s]``
    electrons drawn by ``sample_shell`` seeded with ``seeds[k, s]``.
    """
    for k in prange(out.shape[0]):
        out[k] = 0.0
        for s in range(R.shape[1]):
            _, _, x, z = sample_shell(R[k, s], sigma_R[k, s], beta[k, s], n_el[k, s], seeds[k, s])
            count_map_kernel(x, z, out[k])


def shard_rng(seed, key):
    """The generator of a shard: ``default_rng(SeedSequence([seed, crc32(key)]))``.

    Parameters
    ----------
    seed : int
        Base seed (>= 0).
    key : str
        Shard name, e.g. ``"pretrain/train/3"``; distinct keys give independent shards.
    """
    if int(seed) < 0:
        raise InputError(f"synthesis: seed {seed} must be >= 0")
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(str(key).encode())]))


def simulate_maps(R, sigma_R, beta, n_electrons, seeds):
    """Count maps of K-shell samples with the numba simulator.

    Parameters
    ----------
    R, sigma_R : array_like, shape (m, K)
    beta : array_like, shape (m, K, N)
        Physical beta vectors (not checked here; :func:`sevi_lib.nn.priors.sample` only returns
        physical ones).
    n_electrons : array_like of int, shape (m, K)
    seeds : array_like of int, shape (m, K)
        Seeds of numba's generator, one per sample and shell, in [0, 2**32).

    Returns
    -------
    ndarray of float64, shape (m, 1024, 1024)
        ``Image[ix, iz]`` counts (``numpy.histogram2d`` convention).
    """
    R = np.ascontiguousarray(R, dtype=np.float64)
    m = R.shape[0]
    out = np.empty((m, N_PIX, N_PIX))
    _maps_kernel(
        R,
        np.ascontiguousarray(sigma_R, dtype=np.float64),
        np.ascontiguousarray(beta, dtype=np.float64),
        np.ascontiguousarray(n_electrons, dtype=np.int64),
        np.ascontiguousarray(seeds, dtype=np.int64),
        out,
    )
    return out


def camera_attrs(camera=None):
    """What a shard records of the camera of its detector-like samples (its ``camera`` attribute).

    Parameters
    ----------
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        None: the published camera.

    Returns
    -------
    dict
        ``source`` (the survey's frames file; '' for the published camera or frames given as an
        array), ``spot_model_source`` (``published``, ``measured`` or ``given``), ``spot_model``
        (every :class:`~sevi_lib.core.spots.SpotModel` field), ``read_noise`` (counts) and
        ``hot_pixels`` (the number masked).
    """
    if camera is None:
        return {"source": "", "spot_model_source": "published", "spot_model": SpotModel().to_dict(),
                "read_noise": 0.0, "hot_pixels": 0}
    return {"source": str(camera.source), "spot_model_source": str(camera.spot_model_source),
            "spot_model": camera.spots().to_dict(), "read_noise": float(camera.read_noise),
            "hot_pixels": len(camera.hot_pixels)}


def detector_map(R, sigma_R, beta, n_electrons, seed, *, electrons_per_frame=80.0, detection_loss=0.1,
                 detector_params=None, chunk=32, camera=None):
    """Count map of one sample built frame by frame through the renderer and the detector.

    The frames are rendered with the camera's read noise and spot model and detected with the
    camera (its thresholds and hot-pixel mask, :class:`sevi_lib.detect.blobs.FrameDetector`);
    hot pixels are not rendered, since the detector masks them (they read 0) anyway.

    Parameters
    ----------
    R, sigma_R : array_like, shape (K,)
    beta : array_like, shape (K, N)
    n_electrons : array_like of int, shape (K,)
        Expected number of *detected* electrons of each shell (the frame count is chosen so;
        the realised numbers are Poisson around them).
    seed : int
        Seed of the frame simulation and rendering, in [0, 2**32).
    electrons_per_frame : float
        Mean number of generated electrons per frame, all shells together; the shells share
        it in proportion to `n_electrons`.
    detection_loss : float
        Fraction of electrons that never reach the screen.
    detector_params : dict, optional
        Fields of :class:`sevi_lib.detect.settings.DetectorParams` (default: its defaults).
    chunk : int
        Frames rendered and detected at a time.
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        The data's camera survey. None: the published camera (its spot model, no read noise,
        the detector without a survey), the map of before surveys existed, bit for bit.

    Returns
    -------
    ndarray of float64, shape (1024, 1024)
        Count map of the detected positions.
    """
    # local: detection and rendering kernels (~0.15 s), only for detector-like maps (detector_fraction, default 0)
    from sevi_lib.detect.blobs import DetectorParams, FrameDetector
    from sevi_lib.simulate.render import iter_rendered_chunks
    from sevi_lib.simulate.settings import SimulationSettings

    n_el = np.asarray(n_electrons, dtype=np.float64)
    seen = (1.0 - detection_loss) * float(electrons_per_frame)
    n_frames = max(1, int(np.ceil(n_el.sum() / seen)))
    means = n_el / ((1.0 - detection_loss) * n_frames)
    shells = Shells(R, sigma_R, beta)
    render = {} if camera is None else {"read_noise": float(camera.read_noise), "spot": camera.spots().to_dict()}
    settings = SimulationSettings(n_frames=n_frames, electrons_per_shell=means, detection_loss=detection_loss,
                                  seed=seed, chunk=chunk, **render)
    with FrameDetector(DetectorParams(**(detector_params or {})), camera=camera) as det:
        for ids, frames, _ in iter_rendered_chunks(shells, settings):
            det.process(ids, frames)
        return det.count_map.copy()


def synthesize(path, prior, view, n, *, seed, key, detector_fraction=0.0, electrons_per_frame=80.0,
               detector_params=None, threads=None, progress=False, camera=None):
    """Write one synthesis shard (atomically; see the module docstring for the layout).

    Parameters
    ----------
    path : str or Path
        Output HDF5 file.
    prior : sevi_lib.nn.priors.Prior
    view : sevi_lib.nn.views.View
    n : int
        Number of samples (>= 1).
    seed : int
    key : str
        Shard name mixed into the seed (see :func:`shard_rng`).
    detector_fraction : float
        Expected fraction of samples synthesised through the renderer and the detector.
    electrons_per_frame : float
        Mean electrons per frame (all shells) of those samples.
    detector_params : dict, optional
        Fields of :class:`sevi_lib.detect.settings.DetectorParams` for those samples.
    threads : int, optional
        numba threads for the simulation (default: numba's current setting).
    progress : bool or float
        Progress lines (maps, maps/s, ETA) on stderr every 10 s, or every `progress` seconds.
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        The camera of those samples (:func:`detector_map`); None: the published one. Recorded
        in the ``camera`` attribute (:func:`camera_attrs`); the other samples do not use it.

    Returns
    -------
    dict
        The shard's attributes (acceptance rates etc.).
    """
    n = int(n)
    if n < 1:
        raise InputError(f"synthesis: number of samples {n} must be >= 1")
    if not 0.0 <= float(detector_fraction) <= 1.0:
        raise InputError(f"synthesis: detector_fraction {detector_fraction} must be in [0, 1]")
    rng = shard_rng(seed, key)
    draw = sample_prior(prior, n, rng)
    sim_seeds = rng.integers(0, 2**32, size=(n, prior.n_shells), dtype=np.int64)
    use_detector = rng.random(n) < float(detector_fraction)
    attrs = {
        "view": json.dumps(view.to_config()),
        "seed": int(seed),
        "key": str(key),
        "prior": prior.name,
        "prior_json": json.dumps(prior.describe()),
        "beta_acceptance": draw.beta_acceptance,
        "R_acceptance": draw.R_acceptance,
        "acceptance": draw.acceptance,
        "detector_fraction": float(detector_fraction),
        "electrons_per_frame": float(electrons_per_frame),
        "n_beta": prior.n_beta,
        "camera": json.dumps(camera_attrs(camera)),
    }
    old_threads = get_num_threads()
    if threads:
        set_num_threads(int(threads))
    bar = None
    if progress:
        bar = ProgressLog(n, f"synth {key}", unit="maps", every=10.0 if progress is True else float(progress))
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            inputs = f.create_dataset("inputs", shape=(n,) + view.shape, dtype=np.float32,
                                      chunks=(1,) + view.shape, compression="gzip", compression_opts=1,
                                      shuffle=True)
            f["labels"] = draw.beta
            f["R"] = draw.R
            f["sigma_R"] = draw.sigma_R
            f["n_electrons"] = draw.n_electrons
            f["detector"] = use_detector
            for k, v in attrs.items():
                f.attrs[k] = v
            plain = np.flatnonzero(~use_detector)
            for start in range(0, len(plain), BATCH):
                idx = plain[start : start + BATCH]
                maps = simulate_maps(draw.R[idx], draw.sigma_R[idx], draw.beta[idx], draw.n_electrons[idx],
                                     sim_seeds[idx])
                for i, m in zip(idx, maps):
                    inputs[i] = apply_view(m, view)
                if bar is not None:
                    bar.update(len(idx))
            for i in np.flatnonzero(use_detector):
                m = detector_map(draw.R[i], draw.sigma_R[i], draw.beta[i], draw.n_electrons[i],
                                 int(sim_seeds[i, 0]), electrons_per_frame=electrons_per_frame,
                                 detector_params=detector_params, camera=camera)
                inputs[i] = apply_view(m, view)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        set_num_threads(old_threads)
    return attrs


def write_shard(out, stage, n, *, seed, key, settings=None, first_pass=None, count_map=None, progress=False,
                camera=None, first_pass_se=None):
    """One synthesis shard from the command's settings and input files (``sevi nn synth``).

    The output path is checked first (not an input, writable), then the camera survey is read,
    the prior resolved (:func:`sevi_lib.nn.inputs.stage_prior`, which validates the first pass)
    and the view built, and :func:`synthesize` writes the shard.

    Parameters
    ----------
    out : str or Path
        Output shard.
    stage : {"pretrain", "finetune"}
    n, seed, key : as in :func:`synthesize`
    settings : sevi_lib.nn.settings.SynthSettings, optional
        Default: ``SynthSettings()``.
    first_pass, count_map : str or Path, optional
        As in :func:`sevi_lib.nn.inputs.stage_prior`.
    progress : bool
    first_pass_se : str or Path, optional
        The fit's sidecar whose ``se_beta`` set the prior's widths with ``beta_width_se``.
    camera : str, Path or sevi_lib.detect.camera.CameraSurvey, optional
        The data's camera survey (``sevi survey``'s JSON, read with
        :func:`sevi_lib.detect.camera.read_survey`, or a survey) for the detector-like samples;
        None: the published camera.

    Returns
    -------
    attrs : dict
        The shard's attributes.
    prior : sevi_lib.nn.priors.Prior
    view : sevi_lib.nn.views.View
    """
    settings = SynthSettings() if settings is None else settings
    settings.validate()
    camera_file = camera if isinstance(camera, (str, PathLike)) else None
    check_outputs([out], [first_pass, count_map, camera_file, first_pass_se])
    if camera_file is not None:
        from sevi_lib.detect.camera import read_survey  # local: ~0.08 s, only with a camera survey file

        camera = read_survey(camera_file)
    prior = stage_prior(stage, settings, first_pass=first_pass, count_map=count_map, first_pass_se=first_pass_se)
    view = View.from_config(settings.view)
    attrs = synthesize(out, prior, view, n, seed=seed, key=key, detector_fraction=settings.detector_fraction,
                       electrons_per_frame=settings.electrons_per_frame, detector_params=settings.detector_params,
                       threads=settings.threads, progress=progress, camera=camera)
    return attrs, prior, view


def read_shard_attrs(path):
    """Attributes of a shard (view and prior decoded from JSON).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
    """
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the shard ({exc})") from None
    for k in ("view", "prior_json", "camera"):
        if k in attrs:
            attrs[k] = json.loads(attrs[k])
    return attrs
