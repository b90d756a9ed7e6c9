import dataclasses
import subprocess
import sys

import pytest

from sevi_lib.cli import main
from sevi_lib.core.errors import InputError, SettingsError
from sevi_lib.nn.settings import (
    ARCHS,
    FREEZE_PARTS,
    SynthSettings,
    TrainConfig,
    coerce,
    config_conflicts,
)


def test_config_module_imports_no_torch():
    code = "import sys, sevi_lib.nn, sevi_lib.nn.settings, sevi_lib.cli.train, sevi_lib.cli.nn; " \
           "assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=120, check=False).returncode == 0


def test_names_agree_with_the_network():
    from sevi_lib.nn import network

    assert tuple(network.ARCHS) == ARCHS and network.FREEZE_PARTS == FREEZE_PARTS


def test_coerce_values_from_yaml_and_json():
    got = coerce({"lr": "1e-3", "epochs": 2.0, "batch_size": "8", "nesterov": "Yes", "progress": "false",
                  "warmup_epochs": 1, "arch": "resnet18", "init_from": None, "unknown": "x"})
    assert got == {"lr": 1e-3, "epochs": 2, "batch_size": 8, "nesterov": True, "progress": False,
                   "warmup_epochs": 1.0, "arch": "resnet18", "init_from": None, "unknown": "x"}
    assert isinstance(got["warmup_epochs"], float) and isinstance(got["epochs"], int)
    with pytest.raises(SettingsError, match="^epochs must be an integer, got 2.5$"):
        coerce({"epochs": 2.5})
    with pytest.raises(SettingsError, match="^progress must be true or false, got 'maybe'$"):
        coerce({"progress": "maybe"})


def test_from_dict_coerces_validates_and_round_trips():
    cfg = TrainConfig.from_dict({"lr": "2e-3", "epochs": 3.0, "init_from": None})
    assert cfg.lr == 2e-3 and cfg.epochs == 3 and cfg.init_from == ""
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown training setting"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0


def test_conflicts_ignore_resume_free_fields():
    saved = TrainConfig().to_dict()
    assert config_conflicts(saved, TrainConfig(epochs=50, threads=3)) == []
    assert config_conflicts(saved, TrainConfig(lr=0.5)) == ["lr: 0.001 -> 0.5"]


@pytest.mark.parametrize("bad, message", [
    ({"arch": "vgg16"}, "arch must be one of resnet18"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of adam"),
    ({"lr": 0.0}, "lr must be > 0, got 0.0"),
    ({"epochs": 0}, "epochs must be > 0"),
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
    ({"batch_size": True}, "batch_size must be an integer, got True"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"progress": "maybe"}, "progress must be true or false"),
    ({"patience": -1}, "patience must be >= 0"),
    ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
    ({"init_from": "/nonexistent/best.pt"}, "init_from: /nonexistent/best.pt: no such file"),
])
def test_train_config_refuses_a_bad_value_on_construction(bad, message):
    name = next(iter(bad))
    with pytest.raises(SettingsError) as exc:
        TrainConfig(**bad)
    assert str(exc.value).startswith(name) and message in str(exc.value)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)
    with pytest.raises(SettingsError, match=f"^{name}"):
        TrainConfig.from_dict(bad)


@pytest.mark.parametrize("bad, message", [
    ({"detector_fraction": 1.5}, "detector_fraction must be in [0, 1], got 1.5"),
    ({"n_beta": 0}, "n_beta must be >= 1"),
    ({"n_beta": 2.0}, "n_beta must be an integer"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"electrons_per_frame": 0.0}, "electrons_per_frame must be > 0"),
    ({"prior": [1, 2]}, "prior must be a JSON object"),
    ({"view": "full"}, "view must be a JSON object"),
])
def test_synth_settings_refuse_a_bad_value_on_construction(bad, message):
    assert SynthSettings().validate() == SynthSettings()
    with pytest.raises(SettingsError) as exc:
        SynthSettings(**bad)
    assert str(exc.value).startswith(next(iter(bad))) and message in str(exc.value)


def _one_error_line(argv, capsys, fragment):
    """Exit 2 and one line 'sevi: error: ...fragment...' on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sevi: error: ") and fragment in lines[0], err


def test_commands_turn_a_bad_setting_into_one_line(tmp_path, capsys):
    out = tmp_path / "shard.h5"
    _one_error_line(["nn", "synth", str(out), "--stage", "pretrain", "--n", "2", "--key", "k",
                     "--detector-fraction", "1.5"], capsys, "detector_fraction must be in [0, 1], got 1.5")
    _one_error_line(["nn", "prior", "--stage", "pretrain", "--n", "2", "--n-beta", "0"], capsys,
                    "n_beta must be >= 1")
    _one_error_line(["train", "--train", str(out), "--val", str(out), "--run-dir", str(tmp_path / "run"),
                     "--lr", "0"], capsys, "lr must be > 0")
    _one_error_line(["train", "--train", str(out), "--val", str(out), "--run-dir", str(tmp_path / "run"),
                     "--optimizer", "rmsprop"], capsys, "optimizer must be one of adam, nadam, sgd")
    assert list(tmp_path.iterdir()) == []
