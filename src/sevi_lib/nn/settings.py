"""Training settings (:class:`TrainConfig`) and the learning-rate schedule, without torch.

Everything the command line needs at parse time lives here, so that ``sevi train --help`` and
the workflow's parse-time code never import torch (the training itself is
:mod:`sevi_lib.nn.trainer`).

API
---
``TrainConfig``
    Frozen dataclass of every training hyper-parameter, with its one default (see its
    docstring). ``TrainConfig.from_dict(mapping)`` coerces values read from YAML / JSON
    (:func:`coerce`) and rejects unknown keys; ``.to_dict()``. It validates itself on construction
    (``__post_init__``, :func:`~sevi_lib.core.errors.check_settings`): a bad value raises
    :class:`~sevi_lib.core.errors.SettingsError` whose message starts with the field's name.
``SynthSettings``
    Frozen dataclass of the synthesis settings of one shard (validated the same way).
``coerce(settings)`` -> dict: values cast to the field types (``"1e-3"`` -> 0.001, ``2.0`` -> 2,
    ``"false"`` -> False); unknown keys are left for :meth:`TrainConfig.from_dict` to refuse.
``lr_factor(cfg, step, steps_per_epoch)``: the learning-rate multiplier at optimiser step
    ``step`` (a pure function: constant / step / cosine after a linear warm-up).
``RESUME_FREE``: the fields that may change between an interrupted run and its resumption.
``ARCHS``, ``FREEZE_PARTS``: accepted ``arch`` and ``freeze`` values.
"""

import dataclasses
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

from sevi_lib.core.errors import InputError, SettingsError, check_settings
from sevi_lib.core.shells import N_BETA

#: Network architectures accepted by ``arch`` (built by :func:`sevi_lib.nn.network.build_model`).
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")
#: Parts of the network that ``freeze`` may name.
FREEZE_PARTS = ("stem", "backbone")

#: Fields that may change between an interrupted run and its resumption.
RESUME_FREE = frozenset({
    "epochs", "patience", "min_delta", "num_workers", "pin_memory", "prefetch_factor",
    "log_every", "progress", "save_every_steps", "save_every_epochs", "threads", "device",
    "compile", "val_batch_size",
})

_BOOL = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a training run.

    Attributes
    ----------
    arch : resnet18 | resnet34 | resnet50 | resnet101
    optimizer : adam | nadam | sgd  (sgd uses ``momentum``, ``nesterov``)
    lr, momentum, nesterov, weight_decay : optimiser settings
    schedule : constant | step | cosine, after ``warmup_epochs`` (may be fractional) of linear
        warm-up from lr / warmup_steps to lr; ``step_size`` epochs and ``gamma`` for step;
        cosine decays to ``min_lr_ratio * lr`` at the last epoch. Applied per optimiser step.
    epochs : maximum number of epochs
    batch_size : training batch (the last incomplete batch of an epoch is dropped);
        ``val_batch_size`` (0: twice batch_size) for validation
    patience : stop after this many epochs without a validation improvement larger than
        ``min_delta`` (0: never stop early)
    seed : initial weights, sample order
    num_workers, pin_memory, prefetch_factor : DataLoader settings (pinning only on CUDA)
    amp : off | bf16 | fp16 (CUDA only; fp16 uses a GradScaler)
    compile : torch.compile the model (CUDA only)
    channels_last : channels-last memory format (CUDA only)
    device : auto | cpu | cuda | cuda:N  (auto: CUDA when a device is visible, honouring
        CUDA_VISIBLE_DEVICES, else CPU)
    deterministic : deterministic algorithms (cuDNN benchmark off)
    threads : torch CPU threads (0: leave torch's default)
    grad_clip : clip the gradient norm to this value (0: off)
    init_from : checkpoint whose weights start the run (fine-tuning; fresh optimiser and
        schedule); "" for random initial weights. A network with another number of shells (the
        two-shell pretrained network fine-tuned on K-shell shards) gives its backbone only: the
        final linear layer is re-initialised (from ``seed``), and the log says so
    freeze_epochs, freeze : keep ``freeze`` (stem | backbone) frozen for the first
        ``freeze_epochs`` epochs
    residual : predict the residual around the training shards' prior centre in units of the
        prior's width (output ``beta_mu + beta_sigma * net(x)``, the final linear layer starting
        at zero, so that the run starts at the prior centre); for fine-tuning shards, whose
        prior is centred on the first-pass estimate
    log_every : steps between TensorBoard step scalars / progress-bar updates
    save_every_epochs : write checkpoints/epoch_XXXX.pt every this many epochs (0: none)
    save_every_steps : also write last.pt every this many steps inside an epoch (0: only at
        epoch ends and on SIGTERM / SIGINT)
    progress : tqdm progress bar on stderr
    """

    arch: str = "resnet18"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    step_size: int = 10
    gamma: float = 0.5
    min_lr_ratio: float = 0.0
    epochs: int = 20
    batch_size: int = 32
    val_batch_size: int = 0
    patience: int = 0
    min_delta: float = 0.0
    seed: int = 0
    num_workers: int = 0
    pin_memory: bool = True
    prefetch_factor: int = 2
    amp: str = "off"
    compile: bool = False
    channels_last: bool = False
    device: str = "auto"
    deterministic: bool = True
    threads: int = 0
    grad_clip: float = 0.0
    init_from: str = ""
    freeze_epochs: int = 0
    freeze: str = "stem"
    residual: bool = False
    log_every: int = 10
    save_every_epochs: int = 1
    save_every_steps: int = 0
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        """Build from a mapping (e.g. a YAML config section); values are coerced with
        :func:`coerce`; unknown keys raise InputError, bad values SettingsError."""
        d = coerce(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown training setting(s): {', '.join(unknown)}")
        if d.get("init_from") is None:
            d.pop("init_from", None)
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise :class:`~sevi_lib.core.errors.SettingsError` naming the first bad setting; returns self.

        Construction runs it (``__post_init__``), so an existing object is valid (``init_from``,
        when given, names an existing file).
        """
        check_settings((_type_ok(f.type, getattr(self, f.name)),
                        f"{f.name} must be {_TYPE_WORDS[f.type]}, got {getattr(self, f.name)!r}")
                       for f in dataclasses.fields(self))
        choices = {"arch": ARCHS, "optimizer": ("adam", "nadam", "sgd"),
                   "schedule": ("constant", "step", "cosine"), "amp": ("off", "bf16", "fp16"),
                   "freeze": FREEZE_PARTS}
        check_settings((getattr(self, name) in allowed,
                        f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
                       for name, allowed in choices.items())
        positive = ("lr", "epochs", "batch_size", "step_size", "log_every", "prefetch_factor")
        check_settings((getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}") for name in positive)
        nonneg = ("momentum", "weight_decay", "warmup_epochs", "gamma", "min_lr_ratio", "val_batch_size",
                  "patience", "min_delta", "num_workers", "threads", "grad_clip", "freeze_epochs",
                  "save_every_epochs", "save_every_steps")
        check_settings((getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}") for name in nonneg)
        check_settings([
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
            (not self.init_from or Path(self.init_from).exists(), f"init_from: {self.init_from}: no such file"),
        ])
        return self


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _type_ok(kind, value):
    """Whether `value` is of the field type `kind` (bool, int, float or str; ints pass as floats)."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def coerce(settings: dict | None) -> dict:
    """Training settings with each value cast to its :class:`TrainConfig` field type.

    Values read from YAML or JSON arrive as whatever the parser made of them: PyYAML reads
    ``1e-3`` as a string, JSON writes ``2`` for ``2.0``. Booleans accept true/false/yes/no/1/0
    (any case), floats accept ints and numeric strings, ints accept integral floats and numeric
    strings (``2.5`` is refused). Keys that are not fields, and None values, are passed through
    unchanged.

    Parameters
    ----------
    settings : dict or None

    Returns
    -------
    dict
        A new dict.

    Raises
    ------
    SettingsError
        A value that cannot be cast (the message starts with the setting's name).
    """
    out = dict(settings or {})
    for key, value in list(out.items()):
        kind = _TYPES.get(key)
        if kind is None or value is None:
            continue
        try:
            if kind is bool and isinstance(value, str):
                out[key] = _BOOL[value.lower()]
            elif kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
                out[key] = float(value)
            elif kind is int and isinstance(value, (float, str)):
                number = float(value)
                if number != int(number):  # 2.5 epochs is refused, not truncated
                    raise ValueError(value)
                out[key] = int(number)
            elif kind is str:
                out[key] = str(value)
        except (KeyError, ValueError):
            raise SettingsError(f"{key} must be {_TYPE_WORDS[kind]}, got {value!r}") from None
    return out


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning-rate multiplier for optimiser step ``step`` (0-based, counted over the run).

    Linear warm-up over ``warmup_epochs * steps_per_epoch`` steps (from 1/W to 1), then
    ``constant`` (1), ``step`` (``gamma ** floor(epoch / step_size)``, epoch = 0-based epoch of
    the step) or ``cosine`` (from 1 at the end of the warm-up to ``min_lr_ratio`` at the end of
    ``epochs``).
    """
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (step // steps_per_epoch // cfg.step_size)
    total = cfg.epochs * steps_per_epoch - warm
    progress = min(max((step - warm) / total, 0.0), 1.0) if total > 0 else 1.0
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def config_conflicts(saved: dict, cfg: TrainConfig) -> list[str]:
    """Settings of `cfg` that differ from a saved run's (`saved`: its to_dict()) and may not change
    on resumption (all but :data:`RESUME_FREE`), as ``"name: old -> new"`` strings."""
    now = cfg.to_dict()
    return [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in now.items()
            if k not in RESUME_FREE and saved.get(k) != v]


@dataclass(frozen=True)
class SynthSettings:
    """Settings of the synthesis of one shard (``sevi nn synth``; ``sevi nn prior`` uses the prior's).

    Attributes
    ----------
    prior : dict
        The prior's config section ``nn.<stage>.prior`` (keys of
        :data:`sevi_lib.nn.priors.PRETRAIN_DEFAULTS` / ``FINETUNE_DEFAULTS``; missing keys take
        those defaults).
    n_beta : int
        Beta coefficients per shell (pretraining prior; the fine-tuning prior takes the first
        pass's, cut or zero-padded to this).
    view : dict
        The input view (``nn.view``, :meth:`sevi_lib.nn.views.View.from_config`).
    detector_fraction : float
        Expected fraction of samples rendered into frames and detected.
    electrons_per_frame : float
        Mean electrons per frame (both shells) of those samples.
    detector_params : dict
        Fields of :class:`sevi_lib.detect.settings.DetectorParams` for those samples (default: its
        defaults).
    threads : int
        numba threads of the simulation.
    """

    prior: dict = dataclasses.field(default_factory=dict)
    n_beta: int = N_BETA
    view: dict = dataclasses.field(default_factory=dict)
    detector_fraction: float = 0.0
    electrons_per_frame: float = 80.0
    detector_params: dict = dataclasses.field(default_factory=dict)
    threads: int = 1

    def __post_init__(self):
        self.validate()

    def validate(self) -> "SynthSettings":
        """Raise :class:`~sevi_lib.core.errors.SettingsError` naming the first bad setting; returns self.

        Construction runs it (``__post_init__``), so an existing object is valid.
        """
        check_settings((isinstance(getattr(self, name), dict),
                        f"{name} must be a JSON object, got {getattr(self, name)!r}")
                       for name in ("prior", "view", "detector_params"))
        check_settings((_type_ok(kind, getattr(self, name)),
                        f"{name} must be {_TYPE_WORDS[kind]}, got {getattr(self, name)!r}")
                       for name, kind in (("n_beta", int), ("threads", int), ("detector_fraction", float),
                                          ("electrons_per_frame", float)))
        check_settings([
            (self.n_beta >= 1, f"n_beta must be >= 1, got {self.n_beta}"),
            (0.0 <= self.detector_fraction <= 1.0, f"detector_fraction must be in [0, 1], got {self.detector_fraction}"),
            (self.electrons_per_frame > 0, f"electrons_per_frame must be > 0, got {self.electrons_per_frame}"),
            (self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
        ])
        return self


#: Fields of :class:`SynthSettings` that ``sevi nn prior`` uses.
PRIOR_FIELDS = ("prior", "n_beta")
