"""One validation style for the stages' settings (:func:`sevi_lib.core.errors.check_settings`)."""

import pytest

from sevi_lib.calibrate.settings import CalibrationSettings
from sevi_lib.core.errors import InputError, SettingsError, check_settings
from sevi_lib.detect.settings import DetectorParams, SurveySettings
from sevi_lib.fit.settings import FitSettings
from sevi_lib.simulate.settings import SimulationSettings


def test_check_settings_raises_the_first_failing_message():
    check_settings([(True, "a must be > 0")])
    with pytest.raises(SettingsError, match="^b must be > 1$"):
        check_settings([(True, "a must be > 0"), (False, "b must be > 1"), (False, "c must be > 2")])


def test_a_settings_error_is_a_user_error_and_a_value_error():
    assert issubclass(SettingsError, InputError) and issubclass(SettingsError, ValueError)


@pytest.mark.parametrize("cls, field, value", [
    (DetectorParams, "threshold", 0),
    (DetectorParams, "max_per_blob", 256),
    (SurveySettings, "bright_floor", 0),
    (SurveySettings, "spot_model", "wide"),
    (CalibrationSettings, "blocks", 1),
    (CalibrationSettings, "seed", -1),
    (FitSettings, "centre", "middle"),
    (FitSettings, "max_iter", 0),
    (SimulationSettings, "chunk", 0),
    (SimulationSettings, "read_noise", -1.0),
    (SimulationSettings, "gzip_level", 10),
])
def test_every_stage_refuses_a_bad_value_on_construction_naming_the_field(cls, field, value):
    """The settings validate in __post_init__: an object that exists is valid, and the error's
    message starts with the field's name (the command line prefixes the class)."""
    with pytest.raises(SettingsError, match=f"^{field}"):
        cls(**{field: value})
    cls()  # the defaults are valid
