"""The config schema against the library's settings dataclasses: same keys, no second default."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from sevi_lib.calibrate.response import CalibrationSettings
from sevi_lib.detect.params import DetectorParams
from sevi_lib.fit import FitSettings
from sevi_lib.nn.config import TrainConfig
from sevi_lib.simulate.settings import SimulationSettings

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml").read_text())
PROPS = SCHEMA["properties"]


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("props, cls, layout", [
    (PROPS["detect"]["properties"], DetectorParams, {"shards", "threads", "chunk"}),
    (PROPS["calibrate"]["properties"], CalibrationSettings, {"enabled", "threads"}),
    (SCHEMA["$defs"]["train"]["properties"], TrainConfig, set()),
    (PROPS["fit"]["properties"], FitSettings, {"n_shells"}),
])
def test_schema_keys_are_the_dataclass_fields_and_give_no_default(props, cls, layout):
    keys = set(props)
    assert keys - layout == _fields(cls) - layout, "schema and dataclass list different settings"
    library = _fields(cls) & keys - {"method"}  # fit.method also chooses the workflow's input file
    assert not [k for k in library if "default" in props[k]], "a library value with a second default"


def test_detector_params_of_the_network_are_detector_fields():
    assert set(PROPS["nn"]["properties"]["detector_params"]["propertyNames"]["enum"]) == _fields(DetectorParams)


def test_simulation_keys_are_settings_and_give_no_default():
    props = PROPS["simulation"]["properties"]
    assert set(props) - {"shells"} <= _fields(SimulationSettings)
    assert not [k for k in props if "default" in props[k]]
