"""``sevi fit``: outputs, settings flags, and one clean error line for every user mistake."""

import hashlib
import json

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core import io
from sevi_lib.fit.settings import min_electrons
from sevi_lib.simulate.electrons import sample_shell

BETA0 = np.r_[0.6, 0.2, 0.05, np.zeros(3)]
BETA1 = np.r_[-0.3, 0.05, np.zeros(4)]


def _table(n_per_shell, seed=3):
    xs, zs = [], []
    for j, (R, s, beta) in enumerate([(0.5, 0.007, BETA0), (0.8, 0.008, BETA1)]):
        _, _, x, z = sample_shell(R, s, beta, n_per_shell, seed * 10 + j)
        xs.append(x)
        zs.append(z)
    x, z = np.concatenate(xs), np.concatenate(zs)
    table = np.zeros(len(x), dtype=io.DETECTED_DTYPE)
    table["x"], table["z"] = x, z
    return table


@pytest.fixture(scope="module")
def electrons(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "det.h5"
    io.write_h5(path, DetectedElectrons=_table(4000))
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(argv, capsys, inp, folder, fragment):
    """Exit 2, one line 'sevi: error: ...fragment...', input unchanged, no new file in `folder`."""
    before = _digest(inp)
    listing = sorted(p.name for p in folder.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sevi: error: ") and fragment in lines[0], err
    assert _digest(inp) == before
    assert sorted(p.name for p in folder.iterdir()) == listing
    return lines[0]


def test_writes_answer_sidecar_and_plot(tmp_path, electrons, capsys):
    out = tmp_path / "answer.h5"
    assert main(["fit", str(electrons), "--out", str(out), "--quiet", "--n-beta", "6"]) == 0
    with h5py.File(out) as f:
        ans = f["Answer"][()]
    assert ans.dtype == io.answer_dtype(6)
    assert list(ans["SphereId"]) == [0, 1] and ans["R"][0] < ans["R"][1]
    side = json.loads((tmp_path / "answer.json").read_text())
    for key in ("R", "sigma_R", "weights", "beta", "se_beta", "se_R", "floor", "constraint_active", "converged"):
        assert key in side
    assert side["diagnostics"]["input"] == str(electrons)
    assert (tmp_path / "answer.png").stat().st_size > 1000
    assert "shell 1: R = 0.8" in capsys.readouterr().out


def test_binned_method_on_a_table_and_no_plot(tmp_path, electrons):
    out = tmp_path / "a.h5"
    assert main(["fit", str(electrons), "--out", str(out), "--quiet", "--method", "binned", "--n-beta", "4",
                 "--plot", "none", "--sidecar", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["method"] == "binned"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "s.json"]


def test_bad_inputs(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "a.h5")]) == 2
    assert "missing.h5: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 10)))
    _refused(["fit", str(bad), "--out", str(tmp_path / "a.h5")], capsys, bad, tmp_path, "bad.npy")


def test_bad_setting_is_one_line(tmp_path, electrons, capsys):
    _refused(["fit", str(electrons), "--out", str(tmp_path / "a.h5"), "--method", "magic"], capsys, electrons,
             tmp_path, "method must be one of")
    _refused(["fit", str(electrons), "--out", str(tmp_path / "a.h5"), "--n-beta", "0"], capsys, electrons,
             tmp_path, "n_beta must be an integer >= 1")


@pytest.mark.parametrize("flag", ["--out", "--sidecar", "--plot"])
def test_output_equal_to_input_is_refused(tmp_path, capsys, flag):
    inp = tmp_path / "E.h5"
    io.write_h5(inp, DetectedElectrons=_table(100))
    argv = ["fit", str(inp), "--out", str(tmp_path / "a.h5")]
    argv = argv[:2] + [flag, str(inp)] + (argv[2:] if flag != "--out" else [])
    line = _refused(argv, capsys, inp, tmp_path, "is the input file")
    assert line.startswith(f"sevi: error: {inp}:")


@pytest.mark.parametrize("where", ["directory", "under_a_file", "proc"])
def test_unwritable_output_is_refused_before_the_work(tmp_path, capsys, where):
    inp = tmp_path / "E.h5"
    io.write_h5(inp, DetectedElectrons=_table(100))  # too few to fit: the output check must come first
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    out = {"directory": tmp_path / "adir", "under_a_file": tmp_path / "afile" / "a.h5",
           "proc": "/proc/sevi-test/a.h5"}[where]
    fragment = {"directory": "is a directory", "under_a_file": "is not a directory", "proc": "cannot write"}[where]
    line = _refused(["fit", str(inp), "--out", str(out)], capsys, inp, tmp_path, fragment)
    assert line.startswith(f"sevi: error: {out}:")
    assert list((tmp_path / "adir").iterdir()) == []


def test_input_directory_is_one_line(tmp_path, capsys):
    (tmp_path / "d.h5").mkdir()
    keep = tmp_path / "keep"
    keep.write_text("")
    _refused(["fit", str(tmp_path / "d.h5"), "--out", str(tmp_path / "a.h5")], capsys, keep, tmp_path,
             "d.h5: is a directory")


def test_too_few_electrons_names_file_and_minimum(tmp_path, capsys):
    inp = tmp_path / "E.h5"
    io.write_h5(inp, DetectedElectrons=_table(50))
    need = min_electrons(12, 1)  # shells found automatically: at least one
    line = _refused(["fit", str(inp), "--out", str(tmp_path / "a.h5")], capsys, inp, tmp_path,
                    f"too few electrons to fit: 100 (at least {need} needed")
    assert line.startswith(f"sevi: error: {inp}:")


def test_help_lists_shells_and_centre(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "--shells" in out and "--centre" in out and "--n-shells" not in out


def test_sidecar_has_centre_background_and_search(tmp_path, electrons, capsys):
    out = tmp_path / "answer.h5"
    assert main(["fit", str(electrons), "--out", str(out), "--quiet", "--n-beta", "4", "--plot", "none"]) == 0
    side = json.loads((tmp_path / "answer.json").read_text())
    assert len(side["centre"]) == 2 and len(side["centre_se"]) == 2 and side["centre_fixed"] is False
    assert "background" in side and "background_se" in side
    assert side["shell_search"]["n_found"] == 2
    printed = capsys.readouterr().out
    assert "centre: x0 =" in printed and "background:" in printed and "shell search: 2 shells found" in printed
    out2 = tmp_path / "fixed.h5"
    assert main(["fit", str(electrons), "--out", str(out2), "--quiet", "--n-beta", "4", "--plot", "none",
                 "--centre", "screen", "--shells", "2"]) == 0
    side = json.loads((tmp_path / "fixed.json").read_text())
    assert side["centre"] == [0.0, 0.0] and side["centre_fixed"] is True
    assert side["shell_search"]["n_shells_given"] == 2


def test_bad_centre_is_one_line(tmp_path, electrons, capsys):
    _refused(["fit", str(electrons), "--out", str(tmp_path / "a.h5"), "--centre", "middle"], capsys, electrons,
             tmp_path, "centre must be one of")


@pytest.fixture(scope="module")
def intensity_npy(tmp_path_factory):
    """An accumulated camera image: gamma gain (mean 50, cv 0.45) per electron, read noise 10 (at 30 the
    outer shell of 20000 electrons is below the shell search's Z of 5: one shell found)."""
    table = _table(20000, seed=5)
    rng = np.random.default_rng(5)
    gain = rng.gamma(1 / 0.45 ** 2, 50 * 0.45 ** 2, len(table))
    img = np.histogram2d(table["x"], table["z"], bins=1024, range=[[-1, 1], [-1, 1]], weights=gain)[0]
    path = tmp_path_factory.mktemp("intensity") / "image.npy"
    np.save(path, img + rng.normal(0.0, 10.0, img.shape))
    return path


@pytest.mark.slow  # about 1 min on a shared 2-core machine
def test_intensity_image_is_detected_and_reports_phi(tmp_path, intensity_npy, capsys):
    out = tmp_path / "a.h5"
    assert main(["fit", str(intensity_npy), "--out", str(out), "--quiet", "--n-beta", "4", "--centre", "screen",
                 "--plot", "none"]) == 0
    text = capsys.readouterr().out
    assert "intensity image (quasi-likelihood): phi = " in text and "warning" not in text
    side = json.loads(out.with_suffix(".json").read_text())
    d = side["dispersion"]
    assert d["quasi_likelihood"] and abs(d["phi"] - 50 * (1 + 0.45 ** 2)) < 4 * d["phi_se"]
    assert "g (1 + cv^2)" in d["meaning"] and len(side["R"]) == 2


def test_intensity_flags_refused_where_they_do_not_apply(tmp_path, electrons, intensity_npy, capsys):
    _refused(["fit", str(electrons), "--out", str(tmp_path / "a.h5"), "--intensity"], capsys, electrons,
             tmp_path, "apply to a map")
    _refused(["fit", str(intensity_npy), "--out", str(tmp_path / "b.h5"), "--counts"], capsys, intensity_npy,
             tmp_path, "negative")
    _refused(["fit", str(intensity_npy), "--out", str(tmp_path / "c.h5"), "--method", "sum", "--intensity"], capsys,
             intensity_npy, tmp_path, "binned fit of a map")
