"""Electron detection: camera frames -> electron positions, one shard per frame range.

Modules (import the one you need; this package imports nothing, so ``sevi detect --help``
stays light):

- :mod:`sevi_lib.detect.settings` -- :class:`DetectorParams` (every detector setting and its
  default, the workflow's ``detect:`` section), :class:`SurveySettings` (``sevi survey``),
  :func:`spot_detector_params` (the settings for a camera's spot model) and
  :func:`kernel_params` (the namedtuple the kernels read).
- :mod:`sevi_lib.detect.camera` -- the camera survey (``sevi survey``): :func:`survey_frames`
  estimates the read noise, pedestal, hot pixels and the spot model from a sample of frames
  into a :class:`CameraSurvey` (JSON: :func:`write_survey`, :func:`read_survey`), whose
  :meth:`~CameraSurvey.detector_params` and mask ``sevi detect --camera`` uses;
  :func:`spot_model_checks` and :func:`detected_gain_check` (what the frames contradict).
- :mod:`sevi_lib.detect.spotmodel` -- the spot model measured from isolated spots:
  :func:`measure_spot_model` (:class:`SpotMeasurement`), :func:`isolated_spots`,
  :func:`fit_spots` (one numba kernel over all patches), :func:`fit_gain` (truncated gamma law).
- :mod:`sevi_lib.detect.blobs` -- the frame detector: :class:`FrameDetector` (chunks of frames,
  count map, raw-frame sum, blob statistics, threads), :func:`detect_frame`, ``ELECTRON_DTYPE``;
  the blob-scan kernel and, under read noise, the faint-spot pass (box sums of the frame less
  the found electrons' light; its settings :class:`~sevi_lib.detect.settings.FaintParams` from
  :meth:`CameraSurvey.faint_params`).
- :mod:`sevi_lib.detect.spotfit` -- the mixture fit of model spots to one blob, its phases
  (how many spots): :func:`decompose` (Python), the kernels :func:`decompose_blob` and
  :func:`blob_electrons`, the electron count :func:`n_electrons` (the posterior's mode) and
  :func:`n_electrons_drawn` (a draw from it, keyed by the light).
- :mod:`sevi_lib.detect.pileup` -- the pile-up prior of a camera, measured by the survey from
  its own frames re-rendered with its spot model: :func:`measure_pileup`.
- ``detect._lm`` -- the spot model and its Levenberg-Marquardt solver (kernels, the
  ``FitWorkspace`` of :func:`fit_workspace`); ``detect._peaks`` -- ``is_lattice_peak`` and its
  cases ``is_peak`` / ``is_patch_max`` (plateau-safe local maxima, shared by the blob scan, the
  faint-spot pass and the fit).
- :mod:`sevi_lib.detect.shards` -- files: :func:`detect_shard` (``sevi detect``),
  :func:`accumulate_files` / :func:`accumulate` (``sevi accumulate``: refuses shards of other
  frames files, overlaps and gaps), :func:`read_shard`, :func:`write_shard`,
  :func:`frames_identity`, :func:`shard_range`, :func:`summary_text`.
- :mod:`sevi_lib.detect.match` -- :func:`match_electrons`, one-to-one matching of true and
  detected electrons (tests, benchmarks).
"""
