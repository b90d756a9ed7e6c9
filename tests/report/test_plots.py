"""Tests of sevi_lib.report.plots: the count-map picture marks the fitted centre and radii."""

import numpy as np

from sevi_lib.core.maps import count_map
from sevi_lib.report.plots import count_map_figure, fit_centre, save_figure


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
