"""``sevi plot-map``: the count map with the fitted centre, and one-line refusals."""

import json

import numpy as np
import pytest

from sevi_lib.cli import main


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "map.npy", np.ones((1024, 1024)))
    (tmp_path / "fit.json").write_text(json.dumps({"R": [0.3, 0.55, 0.8], "centre": [3 / 512, -2 / 512]}))
    return tmp_path


def test_writes_the_png_and_names_the_centre(files, capsys):
    assert main(["plot-map", str(files / "map.npy"), "--fit-sidecar", str(files / "fit.json"),
                 "--out", str(files / "map.png")]) == 0
    assert (files / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert "centre (+3.00, -2.00) px marked" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("no sidecar", "cannot read the fit sidecar"),
    ("bad sidecar", "not a fit sidecar"),
    ("nan centre", "must be finite"),
    ("out is input", "map.npy"),
    ("bad map", "expected a 1024 x 1024 numeric map"),
])
def test_refusals_are_one_line_and_write_nothing(files, capsys, case, message):
    out, sidecar, image = files / "map.png", files / "fit.json", files / "map.npy"
    if case == "no sidecar":
        sidecar = files / "none.json"
    elif case == "bad sidecar":
        sidecar.write_text("{}")
    elif case == "nan centre":
        sidecar.write_text(json.dumps({"R": [0.5], "centre": [float("nan"), 0.0]}))
    elif case == "out is input":
        out = image
    elif case == "bad map":
        np.save(image, np.ones((4, 4)))
    before = image.read_bytes()
    assert main(["plot-map", str(image), "--fit-sidecar", str(sidecar), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sevi: error:") and message in err[0]
    assert image.read_bytes() == before and not (files / "map.png").exists()
