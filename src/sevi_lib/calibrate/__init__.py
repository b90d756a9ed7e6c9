"""calibrate: the detector's response measured by simulation and removed from the fit.

Modules
-------
``settings``   :class:`CalibrationSettings` (the defaults of every calibration value; import-light)
``response``   :func:`simulate_response` (simulate, render and detect frames at given parameters,
               streaming, through the data's camera: :class:`LabCamera`, :func:`lab_camera`), :func:`response_bias` (fit detected and true electrons: the bias and its
               error over blocks), :func:`top_up_frames` and :func:`pool_samples` (more frames
               where the camera's detection noise needs them), :func:`correct`,
               :func:`calibrate` (the stage, one or more passes)
``shards``     pass 0's calibration frames over frame ranges: :func:`simulate_shard`,
               :func:`join_samples`, :func:`combine_shards`; the answer does not depend on the
               shard count
``files``      the files: :func:`calibrate_files` (what ``sevi calibrate`` calls),
               :func:`calibrate_shard_files` (``sevi calibrate-shard``), :func:`read_fit`,
               :func:`read_shard` / :func:`read_shards` / :func:`write_shard`

The public names are loaded lazily, so importing the package (e.g. for its settings) does not
load the numba kernels.
"""

from sevi_lib._lazy import lazy_names

_PUBLIC = {
    "CalibrationSettings": "settings",
    **{name: "response" for name in (
        "LabCamera", "PARAMETERS", "ResponseSample", "calibrate", "correct", "expected_distance",
        "fit_parameters", "fit_standard_errors", "lab_camera", "pass_inputs", "physical_shells", "pool_samples",
        "response_bias", "simulate_response", "top_up_frames")},
    **{name: "shards" for name in ("combine_shards", "join_samples", "shard_identity", "simulate_shard")},
    **{name: "files" for name in (
        "calibrate_files", "calibrate_shard_files", "data_frames", "read_fit", "read_shard", "read_shards",
        "write_shard")},
}

__getattr__, __dir__, __all__ = lazy_names(__name__, _PUBLIC)
