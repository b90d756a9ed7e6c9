"""The photoelectron spectrum (sevi_lib.fit.spectrum, ``sevi spectrum``) against the fit and rBasex.

Four shells (two 0.06 apart, beta_2 from -0.3 to 0.8, beta_4 up to 0.2), true electron
positions from the sampler. The spectrum's I(R) peak near each fitted radius must lie within one
and a half radius bins (the bins are one pixel wide; the peak of R^2 g(R) sits a fraction of a
bin above R) plus three standard errors of the fitted R, and the intensity-weighted rBasex beta's
over the peak (R +- 2 sigma_R) must agree with the fit's within three combined standard errors
(both in the 1/2 + sum beta P normalisation).
"""

import numpy as np
import pytest

from sevi_lib import fit
from sevi_lib.cli import main
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.fit.spectrum import centred_map, peak_radius, shell_average, spectrum
from sevi_lib.simulate.electrons import sample_shell

SHELLS = [(0.35, 0.006, np.r_[0.8, 0.2], 20_000), (0.50, 0.006, np.r_[-0.3, 0.0], 8_000),
          (0.56, 0.007, np.r_[0.4, 0.1], 20_000), (0.75, 0.008, np.r_[0.1, 0.0], 15_000)]


def electrons(seed, offset=(0.0, 0.0)):
    xs, zs = [], []
    for j, (R, s, beta, n) in enumerate(SHELLS):
        _, _, x, z = sample_shell(R, s, beta, n, seed * 10 + j)
        xs.append(x + offset[0])
        zs.append(z + offset[1])
    return np.concatenate(xs), np.concatenate(zs)


@pytest.fixture(scope="module")
def fitted():
    offset = (2.3 / PIX_PER_UNIT, -1.7 / PIX_PER_UNIT)
    x, z = electrons(3, offset)
    res = fit.fit_electrons(x, z, n_beta=2, n_shells=4, max_iter=40)
    return x, z, res, spectrum(x, z, centre=res.centre, n_boot=30)


def test_centred_map_puts_the_centre_on_a_pixel_centre():
    img = centred_map(np.array([0.1, 0.1 + 0.4 / PIX_PER_UNIT]), np.array([-0.2, -0.2]), (0.1, -0.2), half=8)
    assert img.shape == (17, 17) and img[8, 8] == 2 and img.sum() == 2


def test_spectrum_counts_electrons_and_marks_fitted_shells(fitted):
    x, _, res, spec = fitted
    assert abs(np.trapezoid(spec.I, spec.R) - len(x)) < 1e-4 * len(x)  # trapezoid ends
    assert np.all(np.isfinite(spec.I_se)) and np.all(spec.I_se >= 0)
    for j in range(len(SHELLS)):
        peak = peak_radius(spec, res.R[j], 3 * res.sigma_R[j])
        assert abs(peak - res.R[j]) <= 1.5 / PIX_PER_UNIT + 3 * res.se_R[j], (j, peak, res.R[j])


def test_fit_betas_agree_with_rbasex_at_the_peaks(fitted):
    _, _, res, spec = fitted
    for j in range(len(SHELLS)):
        b, se = shell_average(spec, res.R[j], res.sigma_R[j])
        tol = 3 * np.sqrt(se ** 2 + res.se_beta[j] ** 2)
        assert np.all(np.abs(b - res.beta[j]) <= tol), (j, b, res.beta[j], se, res.se_beta[j])
        # and both are close to the truth (rBasex's SE is the larger one)
        assert np.all(np.abs(b - SHELLS[j][2]) <= 3 * np.sqrt(se ** 2 + res.se_beta[j] ** 2) + 1e-3)


def test_sevi_spectrum_writes_table_and_figure(tmp_path, fitted, capsys):
    import json

    from sevi_lib.core.io import DETECTED_DTYPE, write_h5

    x, z, res, _ = fitted
    det = np.zeros(len(x), DETECTED_DTYPE)
    det["ElectronId"], det["x"], det["z"] = np.arange(len(x)), x, z
    table = tmp_path / "el.h5"
    write_h5(table, DetectedElectrons=det)
    side = tmp_path / "fit.json"
    side.write_text(json.dumps(res.to_dict()))
    out, png = tmp_path / "spectrum.tsv", tmp_path / "spectrum.png"
    assert main(["spectrum", str(table), "--tsv", str(out), "--plot", str(png), "--fit-sidecar", str(side),
                 "--bootstrap", "3"]) == 0
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines[0].split("\t") == ["R", "I", "I_se", "beta2", "beta2_se", "beta4", "beta4_se"]
    assert len(lines) > 400 and png.stat().st_size > 1000
    assert main(["spectrum", str(tmp_path / "missing.h5"), "--tsv", str(out)]) == 2
    assert "sevi: error:" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["spectrum", str(table), "--tsv", str(tmp_path / "o.tsv"), "--fit-sidecar", str(bad)]) == 2
    assert f"{bad}: not a fit sidecar" in capsys.readouterr().err
