"""The config schema against the library's settings dataclasses: same keys, no second default."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from sevi_lib.calibrate.response import CalibrationSettings
from sevi_lib.detect.settings import DetectorParams, SurveySettings
from sevi_lib.fit import FitSettings
from sevi_lib.nn.settings import TrainConfig
from sevi_lib.simulate.settings import SimulationSettings

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml").read_text())
PROPS = SCHEMA["properties"]


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("props, cls, layout", [
    # detect.spot_model and spot_fraction are the survey's (SurveySettings), not the detector's
    (PROPS["detect"]["properties"], DetectorParams, {"shards", "threads", "chunk", "spot_model", "spot_fraction"}),
    (PROPS["calibrate"]["properties"], CalibrationSettings, {"enabled", "threads", "shards"}),
    (SCHEMA["$defs"]["train"]["properties"], TrainConfig, set()),
    (PROPS["fit"]["properties"], FitSettings, {"n_shells", "threads"}),
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


# ------------------------------------------------------------------ detect.spot_model (the survey's)
def _config_with(spot_model):
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/config.yaml").read_text())
    config["detect"]["spot_model"] = spot_model
    return config


@pytest.mark.parametrize("value", [
    "measured", "published", {"sigma_px": 5}, {"sigma_px": 5, "gain": "gamma", "gain_mean": 120, "gain_cv": 0.45},
])
def test_schema_accepts_the_spot_models_the_survey_accepts(value):
    import json

    from jsonschema import Draft202012Validator

    Draft202012Validator(SCHEMA).validate(_config_with(value))
    # and the survey takes it as the workflow passes it (a mapping as JSON)
    text = value if isinstance(value, str) else json.dumps(value)
    SurveySettings(spot_model=text).validate()


@pytest.mark.parametrize("value", ["wide", {"sigma_px": 5, "colour": "red"}, {"gain": "poisson"}, {"sigma_px": 0}, 3])
def test_schema_refuses_other_spot_models(value):
    from jsonschema import Draft202012Validator

    assert list(Draft202012Validator(SCHEMA).iter_errors(_config_with(value)))


def test_spot_model_fields_are_the_dataclass_fields():
    from sevi_lib.core.spots import SpotModel

    assert set(SCHEMA["$defs"]["spot_model"]["properties"]) == _fields(SpotModel)
    assert PROPS["simulation"]["properties"]["spot"]["$ref"] == "#/$defs/spot_model"
    assert set(PROPS["detect"]["properties"]) - set(_fields(DetectorParams)) - {"shards", "threads", "chunk"} == {
        f.name for f in dataclasses.fields(SurveySettings) if f.name in ("spot_model", "spot_fraction")}
