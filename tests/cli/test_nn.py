import json
import sys

import h5py
import numpy as np
import pytest

from sevi_lib.cli import main
from sevi_lib.core.io import write_answer


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
