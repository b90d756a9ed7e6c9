"""Tests of sevi_lib.report.plots: the count-map picture marks the fitted centre and radii; the camera
survey's spot-model figure."""

import numpy as np

from sevi_lib.core.maps import count_map
from sevi_lib.report.plots import camera_figure, count_map_figure, fit_centre, save_figure, spot_model_figure


def test_count_map_figure_marks_the_centre_and_radii(tmp_path):
    rng = np.random.default_rng(0)
    x, z = rng.uniform(-0.9, 0.9, (2, 5000))
    fig = count_map_figure(count_map(x, z), centre=(3 / 512, -2 / 512), radii=[0.3, 0.8], title="map")
    ax = fig.axes[0]
    lines = ax.get_lines()
    cross = [ln for ln in lines if ln.get_marker() == "+"]
    assert len(cross) == 1
    assert np.allclose(cross[0].get_xydata(), [[3 / 512, -2 / 512]])
    circles = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(circles) == 2
    r = np.hypot(circles[1].get_xdata() - 3 / 512, circles[1].get_ydata() + 2 / 512)
    assert np.allclose(r, 0.8)
    assert "+3.00, -2.00" in ax.get_legend().get_texts()[0].get_text()
    save_figure(fig, tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_centre_no_marks():
    fig = count_map_figure(np.ones((64, 64)), bin_px=4)
    assert not fig.axes[0].get_lines() and fig.axes[0].get_legend() is None


def test_fit_centre_of_results_and_sidecars():
    class R:
        centre = (0.01, -0.02)

    assert fit_centre(R()) == (0.01, -0.02)
    assert fit_centre({"centre": [0.5, 0.25]}) == (0.5, 0.25)
    assert fit_centre(object()) == (0.0, 0.0)


# ------------------------------------------------------------------ the camera survey's spot model
def _measurement():
    """A SpotMeasurement with a real gain fit (gamma gains, mean 120, cv 0.45) and the model's profile."""
    from sevi_lib.detect.spotmodel import PROFILE_BINS, SpotMeasurement, fit_gain

    rng = np.random.default_rng(3)
    g = fit_gain(rng.gamma(1 / 0.45**2, 120 * 0.45**2, 3000), 20.0)
    r = 0.5 * (PROFILE_BINS[1:] + PROFILE_BINS[:-1])
    mean = np.exp(-0.5 * r**2) + 0.003 * rng.standard_normal(r.size)
    return SpotMeasurement(
        n_spots=g["n"], sigma_px=5.0, sigma_px_se=0.02, sigma_sd_px=0.3, sigma_sd_px_se=0.01, rho_mean=0.0,
        rho_sd=0.1, rho_sd_se=0.005, gain_mean=g["mean"], gain_mean_se=g["mean_se"], gain_cv=g["cv"],
        gain_cv_se=g["cv_se"], gain_floor=20.0, gain_chi2=g["chi2"], gain_dof=g["dof"], gain_p=g["p"], fit_chi2=1.0,
        gain_hist={"edges": g["edges"], "counts": g["counts"], "expected": g["expected"]},
        profile={"r": r.tolist(), "mean": [None, *mean[1:].tolist()], "model": np.exp(-0.5 * r**2).tolist()})


def _texts(fig):
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), *(t.get_text() for t in ax.texts)]
        if ax.get_legend() is not None:
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(out)


def test_spot_model_figure_draws_the_gain_law_and_the_profile(tmp_path):
    m = _measurement()
    fig = spot_model_figure(m, title="camera")
    left, right = fig.axes
    text = _texts(fig)
    assert f"mean {m.gain_mean:.1f} +- {m.gain_mean_se:.1f} counts" in text and f"cv {m.gain_cv:.3f} +-" in text
    assert "width 5.000 +- 0.020 px" in right.get_title() and "camera" in text
    # the histogram as spots per count: its area is the number of spots
    hist = m.gain_hist
    assert np.isclose(np.sum(np.asarray(hist["counts"])), m.n_spots)
    curve = [ln for ln in left.get_lines() if ln.get_label().startswith("gamma law")][0]
    a, dens = curve.get_xdata(), curve.get_ydata()
    assert abs(np.trapezoid(dens, a) - m.n_spots) < 0.02 * m.n_spots  # the fitted law, scaled to the spots
    pts = [ln for ln in right.get_lines() if ln.get_marker() == "o"][0]
    assert np.isnan(pts.get_ydata()[0]) and np.allclose(pts.get_ydata()[1:], np.exp(-0.5 * pts.get_xdata()[1:] ** 2),
                                                         atol=0.02)
    save_figure(fig, tmp_path / "spot.png")
    data = (tmp_path / "spot.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # the JSON dict draws the same figure
    assert _texts(spot_model_figure(m.to_dict(), title="camera")) == text


def test_camera_figure_of_a_survey_without_a_spot_measurement_says_so(tmp_path):
    from sevi_lib.detect.camera import CameraSurvey

    survey = CameraSurvey(read_noise=1.5, read_noise_se=0.01, pedestal=2.0, pedestal_se=0.01, frames_sampled=(0, 1),
                          n_file_frames=2, warnings=("spot model not measured (only 3 isolated spots); the published "
                                                     "model is used unchecked", "another warning"))
    fig = camera_figure(survey)
    text = _texts(fig)
    assert "no spot model measured" in text and "only 3 isolated spots" in text and "another" not in text
    assert "in use (published): width 7.680 px" in text and "2 of 2 frames" in text
    save_figure(fig, tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # with a measurement: two panels, titled with the model in use
    d = {**survey.to_dict(), "spot": _measurement().to_dict(), "spot_model_source": "measured", "warnings": []}
    fig = camera_figure(d)
    assert len(fig.axes) == 2 and "in use (measured)" in _texts(fig)
    save_figure(spot_model_figure(None), tmp_path / "bare.png")
    assert (tmp_path / "bare.png").stat().st_size > 1000
