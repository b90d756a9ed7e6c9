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
])
def test_bad_values_name_their_source(section, given, error, message):
    with pytest.raises(error, match=None) as exc:
        resolve_settings(section, given, where="c.yaml")
    assert message in str(exc.value)
