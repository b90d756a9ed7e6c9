"""Shared test helpers."""

import h5py
import numpy as np
import pytest


def write_shard(path, n, seed, shape=(1, 16, 16), n_beta=12, n_shells=2, view=None):
    """A synthesis-shard-shaped HDF5 file of random arrays (inputs, labels, R, sigma_R).

    ``view``: optional JSON string stored as the ``view`` attribute, as sevi_lib.nn.synth does.
    """
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", data=rng.random((n, *shape), dtype=np.float32), chunks=(1, *shape))
        f["labels"] = 0.3 * rng.standard_normal((n, n_shells, n_beta))
        f["R"] = np.sort(rng.uniform(0.3, 0.9, (n, n_shells)), axis=1)
        f["sigma_R"] = rng.uniform(0.005, 0.0095, (n, n_shells))
        if view is not None:
            f.attrs["view"] = view
    return path


@pytest.fixture(scope="session")
def shard_writer():
    """:func:`write_shard` itself, for module-scoped fixtures (tests import no helper modules)."""
    return write_shard


@pytest.fixture
def make_shard(tmp_path):
    """``make_shard(name, n, seed, shape=(1, 16, 16), n_beta=12)`` -> path of a random shard in tmp_path."""

    def make(name, n, seed, **kw):
        return write_shard(tmp_path / name, n, seed, **kw)

    return make


# ------------------------------------------------------------------------------- the fast subset
#: ``pytest -m fast``: a subset that covers every stage in well under a minute (numba caches
#: warm), for the edit-test loop. Module -> test names (None: the whole module). A listed test that
#: is renamed or removed fails the collection, so the subset cannot silently shrink.
FAST = {
    "tests/core/test_geometry.py": None,
    "tests/core/test_score.py": None,
    "tests/core/test_maps.py": None,
    "tests/core/test_io.py": None,
    "tests/core/test_errors.py": None,
    "tests/simulate/test_settings.py": None,
    "tests/simulate/test_render.py": None,
    "tests/simulate/test_spots.py": None,
    "tests/detect/test_spotfit.py": None,
    "tests/detect/test_shards.py": None,
    "tests/detect/test_camera.py": ["test_corrected_count_recovers_the_electrons",
                                   "test_corrected_count_is_the_count_when_nothing_is_lost",
                                   "test_detection_summary_gives_the_corrected_count",
                                   "test_faint_spot_pass_finds_the_electrons_below_the_floor"],
    "tests/fit/test_layout.py": None,
    "tests/fit/test_centre.py": None,
    "tests/fit/test_optimise.py": ["test_constraint_rows_are_the_density_at_the_grid_and_the_background",
                                   "test_qp_step_is_the_newton_step_when_feasible_and_stays_feasible_otherwise",
                                   "test_newton_step_keeps_weights_and_stays_within_the_step_limits",
                                   "test_a_collapsed_shell_is_not_a_clean_convergence"],
    "tests/fit/test_projection.py": ["test_basis_integrates_to_two_and_zero", "test_spline_table_matches_exact_evaluation"],
    "tests/fit/test_search.py": ["test_close_pair_either_order", "test_no_shell_in_uniform_background",
                                 "test_search_finds_fourteen_evenly_spaced_shells",
                                 "test_start_radii_of_an_offset_intensity_image_skip_the_screen_edge"],
    "tests/calibrate/test_response.py": ["test_settings_frames_and_validation",
                                         "test_correct_subtracts_and_adds_errors_in_quadrature",
                                         "test_physical_shells_moves_an_unphysical_row_just_inside"],
    "tests/nn/test_settings.py": None,
    "tests/nn/test_inputs.py": None,
    "tests/nn/test_views.py": None,
    "tests/nn/test_centre.py": None,
    "tests/nn/test_loss.py": None,
    "tests/nn/test_checkpoint_io.py": None,
    "tests/nn/test_ensemble.py": None,
    "tests/report/test_tables.py": None,
    "tests/report/test_markdown.py": None,
    "tests/report/test_plots.py": None,
    "tests/cli/test_score.py": None,
    "tests/cli/test_plot_map.py": None,
    "tests/workflow/test_schema.py": None,
    "tests/workflow/test_checks.py": None,
    "tests/test_layers.py": None,
    "tests/watch/test_live.py": ["test_projection_scales_as_one_over_sqrt_frames",
                                 "test_status_says_when_the_target_is_reached",
                                 "test_settings_refuse_a_bad_value_on_construction"],
    "tests/cli/test_watch.py": ["test_live_page_reloads_itself"],
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    seen = {}
    for item in items:
        module = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else None
        if module not in FAST:
            continue
        name = item.originalname if hasattr(item, "originalname") else item.name
        seen.setdefault(module, set()).add(name)
        if FAST[module] is None or name in FAST[module]:
            item.add_marker(pytest.mark.fast)
    for module, names in FAST.items():
        if module in seen and names is not None and set(names) - seen[module]:
            raise pytest.UsageError(f"tests/conftest.py FAST: {module} has no test {sorted(set(names) - seen[module])}")
