import hashlib
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.io import read_answer, write_answer


def test_synth_cli_writes_a_shard(tmp_path, capsys):
    out = tmp_path / "s.h5"
    rc = main(["nn", "synth", str(out), "--stage", "pretrain", "--n", "3", "--seed", "2", "--key", "pretrain/val/0",
               "--prior", '{"electrons": [1000, 2000]}', "--view", '{"name": "fold", "downsample": 8}'])
    assert rc == 0 and "acceptance" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert f["inputs"].shape == (3, 1, 64, 64) and f.attrs["key"] == "pretrain/val/0"


def test_finetune_synth_from_first_pass_and_map(tmp_path):
    beta = np.zeros((2, 12))
    beta[:, 0] = [0.5, -0.3]
    write_answer(tmp_path / "fit.h5", [0.8, 0.45], beta)
    np.save(tmp_path / "map.npy", np.full((1024, 1024), 0.01))  # total 10486 electrons
    out = tmp_path / "f.h5"
    rc = main(["nn", "synth", str(out), "--stage", "finetune", "--n", "4", "--key", "k",
               "--first-pass", str(tmp_path / "fit.h5"), "--count-map", str(tmp_path / "map.npy"),
               "--prior", '{"electrons": "map", "R_width": 0.01}', "--view", '{"name": "fold", "downsample": 8}'])
    assert rc == 0
    with h5py.File(out) as f:
        R, n_el, labels = f["R"][()], f["n_electrons"][()], f["labels"][()]
    assert np.all(np.abs(R - [0.45, 0.8]) <= 0.01)
    assert np.all((n_el >= 0.4 * 10486 - 1) & (n_el <= 0.6 * 10486 + 1))
    assert np.all(np.abs(labels[:, 0, 0] + 0.3) < 3 * 0.25 * 0.65 + 1e-12)


def test_bad_inputs_exit_2(tmp_path, capsys):
    assert main(["nn", "synth", str(tmp_path / "x.h5"), "--stage", "finetune", "--n", "2", "--key", "k"]) == 2
    assert "--first-pass" in capsys.readouterr().err
    assert main(["nn", "synth", str(tmp_path / "x.h5"), "--stage", "pretrain", "--n", "2", "--key", "k",
                 "--view", '{"name": "side"}']) == 2
    assert "unknown name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["nn", "synth", str(tmp_path / "x.h5"), "--stage", "pretrain", "--n", "2", "--key", "k",
              "--prior", "{not json"])
    assert exc.value.code == 2
    assert not list(tmp_path.iterdir())


def test_prior_cli_reports_acceptance(capsys):
    assert main(["nn", "prior", "--stage", "pretrain", "--n", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.5 < out["acceptance"] < 1 and out["acceptance"] == pytest.approx(
        out["beta_acceptance"] ** 2 * out["R_acceptance"])


def test_run_dir_keeps_or_clears(tmp_path, capsys):
    run, data = tmp_path / "run", tmp_path / "a.h5"
    data.write_bytes(b"x")
    args = ["nn", "run-dir", str(run), "--key", "lr=1", "--inputs", str(data)]
    assert main(args) == 0
    (run / "last.pt").write_bytes(b"state")
    assert main(args) == 0 and (run / "last.pt").exists()  # same settings and data: resume
    assert "resuming" in capsys.readouterr().out
    assert main(["nn", "run-dir", str(run), "--key", "lr=2", "--inputs", str(data)]) == 0
    assert not (run / "last.pt").exists()  # changed settings: fresh
    (run / "last.pt").write_bytes(b"state")
    data.write_bytes(b"yy")
    assert main(["nn", "run-dir", str(run), "--key", "lr=2", "--inputs", str(data)]) == 0
    assert not (run / "last.pt").exists()  # changed data: fresh


def test_gpu_run_without_devices_runs_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    out = tmp_path / "ran"
    rc = main(["nn", "gpu-run", "--lock-dir", str(tmp_path / "locks"), "--", sys.executable, "-c",
               f"open({str(out)!r}, 'w').write('ok')"])
    assert rc == 0 and out.read_text() == "ok"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    rc = main(["nn", "gpu-run", "--lock-dir", str(tmp_path / "locks"), "--", sys.executable, "-c",
               f"import os; open({str(out)!r}, 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"])
    assert rc == 0 and out.read_text() == "5" and (tmp_path / "locks" / "gpu5.lock").exists()


# ----------------------------------------------------------------------------- issue 11: bad inputs

def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sevi: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _first_pass(path, R, beta0):
    beta = np.zeros((2, 6))
    beta[:, 0] = beta0
    write_answer(path, R, beta)
    return path


@pytest.mark.parametrize("R, beta0, words", [
    ([0.45, np.nan], [0.5, 0.3], "R is not finite"),
    ([0.45, 1.3], [0.5, 0.3], "R must lie in (0, 1)"),
    ([0.45, 0.7], [np.nan, 0.3], "beta is not finite"),
    ([0.45, 0.7], [3.0, 0.3], "unphysical beta"),
])
def test_synth_refuses_a_bad_first_pass(tmp_path, capsys, R, beta0, words):
    fp = _first_pass(tmp_path / "A.h5", np.array(R), beta0)
    before = _digest(fp)
    out = tmp_path / "s.h5"
    rc = main(["nn", "synth", str(out), "--stage", "finetune", "--n", "2", "--key", "k", "--first-pass", str(fp),
               "--prior", '{"electrons": [100, 200]}', "--view", '{"name": "fold", "downsample": 8}'])
    assert rc == 2
    line = _one_error_line(capsys)
    assert str(fp) in line and words in line
    assert _digest(fp) == before and sorted(p.name for p in tmp_path.iterdir()) == ["A.h5"]


def test_synth_refuses_its_input_as_output(tmp_path, capsys):
    fp = _first_pass(tmp_path / "A.h5", np.array([0.45, 0.7]), [0.5, 0.3])
    before = _digest(fp)
    rc = main(["nn", "synth", str(fp), "--stage", "finetune", "--n", "2", "--key", "k", "--first-pass", str(fp)])
    assert rc == 2
    assert "output is the input file" in _one_error_line(capsys)
    assert _digest(fp) == before and sorted(p.name for p in tmp_path.iterdir()) == ["A.h5"]


def test_prior_refuses_a_nan_first_pass(tmp_path, capsys):
    fp = _first_pass(tmp_path / "A.h5", np.array([np.nan, 0.7]), [0.5, 0.3])
    assert main(["nn", "prior", "--stage", "finetune", "--first-pass", str(fp), "--n", "10"]) == 2
    assert "R is not finite" in _one_error_line(capsys)


def test_predict_refuses_bad_radii_and_same_paths(tmp_path, capsys):
    """Refused before the network is loaded: the checkpoint need not even be one."""
    ckpt = tmp_path / "net.pt"
    ckpt.write_bytes(b"not read")
    np.save(tmp_path / "map.npy", np.full((1024, 1024), 0.01))
    for R, words in (([np.nan, 0.7], "R is not finite"), ([0.0, 0.7], "R must lie in (0, 1)")):
        radii = _first_pass(tmp_path / "fit.h5", np.array(R), [0.5, 0.3])
        files = {p.name: _digest(p) for p in tmp_path.iterdir()}
        rc = main(["nn", "predict", str(ckpt), str(tmp_path / "map.npy"), "--out", str(tmp_path / "nn.h5"),
                   "--radii-from", str(radii), "--device", "cpu"])
        assert rc == 2
        line = _one_error_line(capsys)
        assert words in line and str(radii) in line
        assert {p.name: _digest(p) for p in tmp_path.iterdir()} == files  # nothing changed, nothing left
    for out in (tmp_path / "map.npy", ckpt, tmp_path / "fit.h5"):
        files = {p.name: _digest(p) for p in tmp_path.iterdir()}
        rc = main(["nn", "predict", str(ckpt), str(tmp_path / "map.npy"), "--out", str(out),
                   "--radii-from", str(tmp_path / "fit.h5"), "--device", "cpu"])
        assert rc == 2 and "output is the input file" in _one_error_line(capsys)
        assert {p.name: _digest(p) for p in tmp_path.iterdir()} == files


def test_synth_refuses_a_directory_as_output(tmp_path, capsys):
    (tmp_path / "d.h5").mkdir()
    rc = main(["nn", "synth", str(tmp_path / "d.h5"), "--stage", "pretrain", "--n", "2", "--key", "k"])
    assert rc == 2 and "is a directory" in _one_error_line(capsys)


# ----------------------------------------------------------------------------- one way in, no torch

def test_settings_are_flags_only(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--train", "a.h5", "--val", "b.h5", "--run-dir", str(tmp_path), "--set", "lr=1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["train", "--train", "a.h5", "--val", "b.h5", "--run-dir", str(tmp_path), "--config", "c.yaml"])
    assert exc.value.code == 2


@pytest.mark.parametrize("argv", [["train", "--help"], ["nn", "synth", "--help"], ["nn", "prior", "--help"],
                                  ["nn", "predict", "--help"], ["nn", "centre-map", "--help"],
                                  ["checkpoints", "--help"]])
def test_parsing_imports_no_torch(argv):
    code = ("import sys; from sevi_lib.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_prior_without_torch(tmp_path):
    code = ("import sys; from sevi_lib.cli import main\n"
            "assert main(['nn', 'prior', '--stage', 'pretrain', '--n', '20']) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- issue 13: lab data

def _electrons_file(path, x, z):
    from sevi_lib.core.io import write_h5

    table = np.zeros(len(x), dtype=[("ImageId", "<i4"), ("x", "<f8"), ("z", "<f8")])
    table["x"], table["z"] = x, z
    write_h5(path, DetectedElectrons=table)
    return path


def test_centre_map_cli(tmp_path, capsys):
    from sevi_lib.core.maps import count_map

    rng = np.random.default_rng(4)
    q = 2.0 ** -30  # positions on a grid: shifting by a dyadic offset and back is exact
    x, z = (np.round(rng.uniform(-0.8, 0.8, 3000) / q) * q for _ in range(2))
    x0, z0 = -4.0 / 512, 1.5 / 512
    el = _electrons_file(tmp_path / "electrons.h5", x + x0, z + z0)
    (tmp_path / "fit.json").write_text(json.dumps({"centre": [x0, z0], "centre_se": [1e-5, 2e-5]}))
    rc = main(["nn", "centre-map", str(el), "--fit-sidecar", str(tmp_path / "fit.json"),
               "--out", str(tmp_path / "map.npy")])
    assert rc == 0
    assert "3000 electrons recentred on (-0.007812, 0.002930) = pixel (508.00, 513.50)" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "map.npy"), count_map(x, z))


@pytest.mark.parametrize("doc, words", [
    ({"R": [0.4, 0.7], "beta": [[0.0], [0.0]]}, "records no image centre"),
    ({"centre": [float("nan"), 0.0]}, "not finite"),
])
def test_centre_map_refuses_a_sidecar_without_a_finite_centre(tmp_path, capsys, doc, words):
    el = _electrons_file(tmp_path / "electrons.h5", np.zeros(3), np.zeros(3))
    (tmp_path / "fit.json").write_text(json.dumps(doc))
    rc = main(["nn", "centre-map", str(el), "--fit-sidecar", str(tmp_path / "fit.json"),
               "--out", str(tmp_path / "map.npy")])
    assert rc == 2
    line = _one_error_line(capsys)
    assert words in line and "fit.json" in line
    assert not (tmp_path / "map.npy").exists()


def _k_answer(path, R, beta0, n=12):
    beta = np.zeros((len(R), n))
    beta[:, 0] = beta0
    write_answer(path, R, beta)
    return path


@pytest.mark.parametrize("R, beta0, words", [
    ([], [], "no rows"),
    ([0.3, 0.55, 0.8], [0.5, np.nan, 0.2], "beta is not finite"),
    ([0.3, np.nan, 0.8], [0.5, 0.1, 0.2], "R is not finite"),
])
def test_synth_refuses_a_bad_k_shell_first_pass(tmp_path, capsys, R, beta0, words):
    fp = _k_answer(tmp_path / "A.h5", np.array(R, dtype=float), np.array(beta0, dtype=float))
    rc = main(["nn", "synth", str(tmp_path / "s.h5"), "--stage", "finetune", "--n", "2", "--key", "k",
               "--first-pass", str(fp), "--prior", '{"electrons": [100, 200]}'])
    assert rc == 2
    line = _one_error_line(capsys)
    assert words in line and str(fp) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.h5"]


def test_three_shell_fine_tuning_from_a_two_shell_network(tmp_path, capsys):
    """Lab data with three shells: first pass (3 rows) -> 3-shell shards -> fine-tune the 2-shell
    pretrained network (new head) -> predict writes 3 rows."""
    import torch

    torch.set_num_threads(1)
    view = '{"name": "fold", "downsample": 16}'
    small = '{"electrons": [1000, 2000]}'
    for split, n in (("round0", 8), ("val", 4)):
        assert main(["nn", "synth", str(tmp_path / f"pre_{split}.h5"), "--stage", "pretrain", "--n", str(n),
                     "--key", f"pretrain/{split}/0", "--prior", small, "--view", view, "--progress", "0"]) == 0
    fp = _k_answer(tmp_path / "fit.h5", np.array([0.8, 0.3, 0.55]), np.array([0.2, 0.5, 1.0]))
    for split, n in (("round0", 8), ("val", 4)):
        assert main(["nn", "synth", str(tmp_path / f"ft_{split}.h5"), "--stage", "finetune", "--n", str(n),
                     "--key", f"finetune/{split}/0", "--first-pass", str(fp), "--prior", small, "--view", view,
                     "--progress", "0"]) == 0
    with h5py.File(tmp_path / "ft_round0.h5") as f:
        assert f["labels"].shape == (8, 3, 12) and f["R"].shape == (8, 3)
    tiny = ["--epochs", "1", "--batch-size", "4", "--threads", "1", "--progress", "false", "--device", "cpu"]
    assert main(["train", "--train", str(tmp_path / "pre_round0.h5"), "--val", str(tmp_path / "pre_val.h5"),
                 "--run-dir", str(tmp_path / "pre"), "--quiet", *tiny]) == 0
    assert main(["train", "--train", str(tmp_path / "ft_round0.h5"), "--val", str(tmp_path / "ft_val.h5"),
                 "--run-dir", str(tmp_path / "ft"), "--init-from", str(tmp_path / "pre" / "best.pt"), *tiny]) == 0
    assert "final linear layer" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    np.save(tmp_path / "map.npy", rng.poisson(0.01, (1024, 1024)).astype(float))
    assert main(["nn", "predict", str(tmp_path / "ft" / "best.pt"), str(tmp_path / "map.npy"),
                 "--out", str(tmp_path / "nn.h5"), "--radii-from", str(fp), "--device", "cpu"]) == 0
    got = read_answer(tmp_path / "nn.h5")
    assert list(got["SphereId"]) == [0, 1, 2] and list(got["R"]) == [0.3, 0.55, 0.8]
    assert got["beta"].shape == (3, 12) and np.all(np.isfinite(got["beta"]))
    # radii from a two-shell answer do not fit a three-shell network: one line, nothing written
    two = _k_answer(tmp_path / "two.h5", np.array([0.3, 0.8]), np.array([0.0, 0.0]))
    capsys.readouterr()
    assert main(["nn", "predict", str(tmp_path / "ft" / "best.pt"), str(tmp_path / "map.npy"),
                 "--out", str(tmp_path / "nn2.h5"), "--radii-from", str(two), "--device", "cpu"]) == 2
    assert "3 shells but 2 radii" in _one_error_line(capsys)
    assert not (tmp_path / "nn2.h5").exists()
