"""Tests of sevi_lib.simulate.settings: defaults agree with the workflow, YAML + flags merge."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from sevi_lib.core.errors import InputError, UnphysicalError
from sevi_lib.simulate.settings import SimulationSettings, resolve_settings

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
SECTION = {"n_frames": 7, "seed": 2, "shells": [{"R": 0.8, "sigma_R": 0.008, "beta": [0.5]},
                                                {"R": 0.5, "sigma_R": 0.007, "beta": [1.0, 0.2]}]}


def test_defaults_are_the_workflows_embedded_default():
    """Where the schema states a default, it is the dataclass's (3000 frames, 2 threads, ...)."""
    props = yaml.safe_load(SCHEMA.read_text())["properties"]["simulation"]["properties"]
    default = SimulationSettings()
    assert default.n_frames == 3000 and default.threads == 2
    for f in dataclasses.fields(SimulationSettings):
        if f.name in props and "default" in props[f.name]:
            value = getattr(default, f.name)
            assert (list(value) if isinstance(value, tuple) else value) == props[f.name]["default"], f.name
    assert set(props) - {"shells"} <= {f.name for f in dataclasses.fields(SimulationSettings)}


def test_section_then_flags():
    s, shells = resolve_settings(SECTION, {"seed": 5, "R": ["0.45", "0.75"]}, where="c.yaml")
    assert (s.n_frames, s.seed, s.R) == (7, 5, [0.45, 0.75])
    assert list(shells.R) == [0.45, 0.75] and shells.beta.shape == (2, 2)


def test_flags_only_and_json_lists():
    s, shells = resolve_settings(None, {"R": ["[0.5, 0.8]"], "sigma_R": ["0.007", "0.008"],
                                        "beta": ["[[1.0], [0.5, 0.1]]"], "electrons_per_shell": ["3"]})
    assert s.beta == [[1.0], [0.5, 0.1]] and list(s.electron_means(2)) == [3.0, 3.0]
    assert shells.n_shells == 2


@pytest.mark.parametrize("section, given, error, message", [
    ({"n_frame": 3, **SECTION}, {}, InputError, "c.yaml: unknown simulation setting(s) n_frame"),
    (SECTION, {"R": ["0.5"]}, InputError, "--R: 1 values given for 2 shells"),
    (SECTION, {"beta": ["1,x", "0"]}, InputError, "comma-separated"),
    (SECTION, {"chunk": 0}, InputError, "chunk must be >= 1"),
    ({**SECTION, "n_frames": 2.5}, {}, InputError, "n_frames must be an integer"),
    (None, {"R": ["0.5"]}, InputError, "shell 0 lacks sigma_R, beta"),
    ({"n_frames": 2}, {}, InputError, "no shells given"),
    (SECTION, {"beta": ["-1.0", "0"]}, UnphysicalError, "c.yaml"),
    ({**SECTION, "read_noise": -1}, {}, InputError, "c.yaml: read_noise must be >= 0"),
    (SECTION, {"read_noise": float("nan")}, InputError, "read_noise must be finite"),
    (SECTION, {"stray_electrons": float("inf")}, InputError, "stray_electrons must be finite"),
    ({**SECTION, "hot_pixels": -3}, {}, InputError, "hot_pixels must be in [0, 1024**2]"),
    ({**SECTION, "hot_pixels": 1.5}, {}, InputError, "hot_pixels must be an integer"),
    ({**SECTION, "centre_offset": [1, 2, 3]}, {}, InputError, "centre_offset must be two numbers"),
    (SECTION, {"centre_offset": 4}, InputError, "centre_offset must be two numbers"),
    (SECTION, {"centre_offset": [1, "a"]}, InputError, "centre_offset must be a number"),
    ({**SECTION, "gzip_level": 12}, {}, InputError, "gzip_level"),
])
def test_bad_values_name_their_source(section, given, error, message):
    with pytest.raises(error, match=None) as exc:
        resolve_settings(section, given, where="c.yaml")
    assert message in str(exc.value)


def test_lab_camera_from_the_section_and_flags():
    """The issue-13 keys of the simulation section, and their flags (which win)."""
    section = {**SECTION, "centre_offset": [3.4, -2.7], "stray_electrons": 3, "read_noise": 1.5, "hot_pixels": 12}
    s, _ = resolve_settings(section, {"read_noise": 2.0}, where="c.yaml")
    assert s.camera() == ((3.4, -2.7), 3.0, 2.0, 12)
    default = SimulationSettings()
    assert default.camera() == ((0.0, 0.0), 0.0, 0.0, 0) and default.gzip_level is None
    assert list(default.electron_means(3)) == [40.0] * 3  # one default serves any number of shells


@pytest.mark.parametrize("n_shells", [1, 3])
def test_any_number_of_shells(n_shells):
    shells = [{"R": 0.2 + 0.25 * j, "sigma_R": 0.007, "beta": [0.5 - 0.4 * j, 0.1]} for j in range(n_shells)]
    s, sh = resolve_settings({"shells": shells}, {})
    assert sh.n_shells == n_shells and list(s.electron_means(n_shells)) == [40.0] * n_shells
