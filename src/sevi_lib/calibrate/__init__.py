"""calibrate: the detector's response measured by simulation and removed from the fit."""

from sevi_lib.calibrate.response import (
    PARAMETERS,
    CalibrationSettings,
    ResponseSample,
    calibrate,
    correct,
    expected_distance,
    fit_parameters,
    fit_standard_errors,
    physical_shells,
    response_bias,
    simulate_response,
)

__all__ = ["PARAMETERS", "CalibrationSettings", "ResponseSample", "calibrate", "correct", "expected_distance",
           "fit_parameters", "fit_standard_errors", "physical_shells", "response_bias", "simulate_response"]
