import dataclasses
import subprocess
import sys

import pytest

from sevi_lib.core.errors import InputError
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
    with pytest.raises(InputError, match="epochs=2.5 is not a int"):
        coerce({"epochs": 2.5})
    with pytest.raises(InputError, match="progress='maybe' is not a bool"):
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


def test_synth_settings_validate():
    SynthSettings().validate()
    for bad in ({"detector_fraction": 1.5}, {"n_beta": 0}, {"threads": 0}, {"electrons_per_frame": 0.0},
                {"prior": [1, 2]}):
        with pytest.raises(InputError):
            SynthSettings(**bad).validate()
