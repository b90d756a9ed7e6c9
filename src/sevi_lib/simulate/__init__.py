"""Synthesis of test files with known truth (the workflow's ``simulate`` rule, the embedded default).

Modules
-------
``settings``   :class:`~sevi_lib.simulate.settings.SimulationSettings` (the defaults of every
               simulation value, those of the workflow's embedded default), ``load_params`` (the
               YAML section), ``resolve_settings`` (section + command-line values, checked once),
               ``check_camera`` (the lab-camera values), ``check_spot`` (the spot model)
``electrons``  the electron sampler (numba): exact inverse-CDF cos(theta), per-frame random
               streams (``frame_seed``), ``iter_frame_electrons`` / ``simulate_electrons`` (with
               the image centre offset and stray electrons), ``sample_shell``, ``check_args``
``render``     the renderer of any camera spot model (numba; default the published one,
               ``draw_spot_params``, ``spot_kernel``): ``render_frame``, ``render_chunk``,
               ``render_camera_chunk`` (hot pixels, read noise: ``hot_pixel_table``,
               ``camera_effects``, ``quantize_noisy_into``), ``iter_rendered_chunks`` (the one
               simulate-then-render loop, also used by the network's training synthesis)
``files``      ``write_test_file`` (frames and truth, atomically) and ``simulate_files``
               (``sevi simulate``)

The lab camera of issue 13 (centre offset, stray electrons, read noise, hot pixels) is off by
default; then none of its code runs and the files are those of the published model. The spot
model (:class:`~sevi_lib.core.spots.SpotModel`, the ``spot:`` setting) defaults to the published
one, whose frames are bit-identical to those of the versions before it was a setting.

Nothing is imported here, so ``import sevi_lib.simulate.settings`` does not compile kernels.
"""
