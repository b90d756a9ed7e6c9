"""Training harness: resumable runs, early stopping, checkpoints, logs.

Generic half of the network method (the data half, priors / shards / views, lives in the
synthesis and view modules). The loss is :mod:`sevi_lib.nn.loss`, the checkpoint files
:mod:`sevi_lib.nn.checkpoint_io`, the forward passes :mod:`sevi_lib.nn.inference` and the device
:mod:`sevi_lib.nn.device`; this module is the loop. Everything here works on CPU; CUDA, mixed precision and
``torch.compile`` are used only when asked for and present.

API
---
``train(cfg, train_paths, val_paths, run_dir, *, callback=None) -> dict``
    Train (or resume) into ``run_dir``; returns ``best_checkpoint``, ``best_val``,
    ``best_epoch``, ``last_checkpoint``, ``epochs_run``, ``steps``, ``stopped_early``,
    ``run_dir``, ``device``. The run is a :class:`_Run` object whose methods are its phases
    (setup, resume, open, run_epoch, validate, checkpoint, finish; one interrupt path).
``HEAD_PREFIX``: the final linear layer, re-initialised when ``init_from`` has another shell count
    (a K-shell fine-tuning run from the two-shell pretrained network keeps the backbone; logged).
``TrainingInterrupted``: raised by :func:`train` after SIGTERM / SIGINT once the state has been
    saved to ``run_dir/last.pt`` (rerun the same call to resume).

Run folder
----------
``run_dir/config.yaml``            the TrainConfig used
``run_dir/checkpoints/epoch_XXXX.pt``  weights after epoch XXXX (1-based; every
                                   ``save_every_epochs``)
``run_dir/best.pt``                weights of the epoch with the lowest validation distance
``run_dir/last.pt``                full state: weights, optimiser, AMP scaler, RNG states (torch,
                                   CUDA, DataLoader generator), epoch,
                                   batch within the epoch, partial epoch sums, early-stopping
                                   state, history
``run_dir/metrics.csv``            one row per epoch (see ``METRIC_COLUMNS``)
``run_dir/tb/``                    TensorBoard events
``run_dir/loss.png``               train / validation distance curves (redrawn at most every
                                   ``PLOT_SECONDS`` and at the end of the call)
``run_dir/result.yaml``            the dict returned by :func:`train`

Resume and determinism
----------------------
If ``run_dir/last.pt`` exists, :func:`train` continues from it. The order of samples in epoch
``e`` is a pure function of ``(seed, e)`` and the learning rate a pure function of the global
step, so a run resumed from any saved point (end of an epoch, the step at which SIGTERM /
SIGINT arrived, or every ``save_every_steps`` steps, which also covers SIGKILL) gives the
same weights as an uninterrupted run on CPU with the same config. Changing a hyper-parameter
that affects the result (anything but :data:`sevi_lib.nn.settings.RESUME_FREE`) while a ``last.pt`` exists is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sevi_lib.core.errors import InputError, SeviError
from sevi_lib.core.io import atomic_path, write_text
from sevi_lib.nn.checkpoint_io import load_payload, save_payload, weights_payload
from sevi_lib.nn.data import EpochSampler, ShardDataset
from sevi_lib.nn.device import autocast, resolve_device, sync
from sevi_lib.nn.inference import run_model
from sevi_lib.nn.loss import score_loss, shell_distances
from sevi_lib.nn.network import build_model, freeze_parameters
from sevi_lib.nn.settings import TrainConfig, config_conflicts, lr_factor

log = logging.getLogger(__name__)

# metrics.csv, one row per epoch: epoch (1-based), step (optimiser steps so far), lr (of the epoch's
# last step), train_mean / train_std (per-sample distance summed over shells, from the training
# forward passes, train mode), val_mean / val_std (same on the validation shards, eval mode),
# val_shell0 / val_shell1 (mean per-shell validation distance), best (new best validation),
# t_data / t_forward / t_backward / t_optimizer (seconds waiting for and moving batches, in the
# forward pass + loss, the backward pass, the optimiser step), t_val, t_epoch (seconds),
# samples_per_s (training samples over training time); networks with K > 2 shells add val_shell2 ..
# val_shell{K-1} after these columns.
METRIC_COLUMNS = [
    "epoch", "step", "lr", "train_mean", "train_std", "val_mean", "val_std",
    "val_shell0", "val_shell1", "best", "t_data", "t_forward", "t_backward", "t_optimizer",
    "t_val", "t_epoch", "samples_per_s",
]

PLOT_SECONDS = 60.0  # redraw loss.png at most this often during a run (and always at its end)

#: State-dict prefix of the final linear layer, the only part that depends on the shell count:
#: it is re-initialised when ``init_from`` has another number of shells (see ``_Run._init_from``).
HEAD_PREFIX = "net.fc."
#: Buffers of a ``residual`` network (:func:`sevi_lib.nn.network.build_model`), set from the prior.
RESIDUAL_BUFFERS = ("offset", "scale")

class TrainingInterrupted(SeviError):
    """Training stopped on SIGTERM / SIGINT after saving its state to ``last.pt``."""


# --------------------------------------------------------------------------- signals

class _StopFlag:
    """SIGTERM / SIGINT set a flag checked between optimiser steps (main thread only)."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum
        # A signal sent to the whole process group also ends the DataLoader workers, and
        # PyTorch's SIGCHLD handler would then raise at a random point (e.g. while last.pt is
        # written). Let the loader find its dead workers itself; the loop saves and stops.
        if hasattr(signal, "SIGCHLD") and signal.SIGCHLD not in self._old:
            self._old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _worker_ignores_sigint(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which saves and stops. (SIGTERM
    stays fatal: the DataLoader itself terminates its workers with it.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --------------------------------------------------------------------------- training

@dataclass
class _State:
    epoch: int = 0            # epochs completed
    batch: int = 0            # batches completed in the current epoch
    step: int = 0             # optimiser steps over the run
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    acc: dict = field(default_factory=dict)   # partial sums of the current epoch
    history: list = field(default_factory=list)


def _new_acc() -> dict:
    return {"n": 0, "sum": 0.0, "sumsq": 0.0, "t_data": 0.0, "t_forward": 0.0, "t_backward": 0.0,
            "t_optimizer": 0.0, "t_train": 0.0}


def _make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_metrics(run_dir: Path, history: list) -> None:
    import pandas as pd  # local: ~1 s, only when the metrics are written
    extra = [k for k in (history[0] if history else {}) if k not in METRIC_COLUMNS]
    with atomic_path(run_dir / "metrics.csv") as tmp:
        pd.DataFrame(history, columns=METRIC_COLUMNS + extra).to_csv(tmp, index=False, float_format="%.8g")


def _plot(run_dir: Path, history: list) -> None:
    import matplotlib  # local: ~0.5 s, only for the run's figure
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    ep = np.array([h["epoch"] for h in history])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key, label in (("train", "train"), ("val", "validation")):
        m = np.array([h[f"{key}_mean"] for h in history], dtype=float)
        s = np.array([h[f"{key}_std"] for h in history], dtype=float)
        ax.plot(ep, m, marker="o", ms=3, label=f"{label} (mean)")
        ax.fill_between(ep, np.maximum(m - s, 1e-12), m + s, alpha=0.2)
    best = [h["epoch"] for h in history if h["best"]]
    if best:
        ax.axvline(best[-1], color="grey", ls=":", label=f"best (epoch {best[-1]})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("distance (sum over shells)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(run_dir / "loss.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _check_datasets(train_ds, val_ds) -> None:
    if (train_ds.input_shape, train_ds.label_shape) != (val_ds.input_shape, val_ds.label_shape):
        raise InputError(f"validation shards have inputs {val_ds.input_shape} / labels {val_ds.label_shape} but "
                         f"training shards {train_ds.input_shape} / {train_ds.label_shape}")
    if getattr(train_ds, "view", None) != getattr(val_ds, "view", None):
        raise InputError(f"validation shards have view {val_ds.view} but training shards {train_ds.view}")


class _Run:
    """One call of :func:`train`: the model, optimiser, loaders and loop state of a run folder.

    The phases are methods, called in this order by :func:`train`: ``__init__`` (data, device,
    model, optimiser; no file written), :meth:`resume` (from ``last.pt`` if present),
    :meth:`open` (config.yaml, loaders, TensorBoard), then per epoch :meth:`run_epoch`,
    :meth:`validate` and :meth:`checkpoint`, and :meth:`finish` whatever happened.
    :meth:`interrupt` is the one way out on SIGTERM / SIGINT.
    """

    def __init__(self, cfg: TrainConfig, train_paths, val_paths, run_dir, *, callback=None):
        cfg.validate()
        self.cfg, self.callback = cfg, callback
        self.run_dir = Path(run_dir)
        self.last_path = self.run_dir / "last.pt"
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.train_ds = train_paths if isinstance(train_paths, Dataset) else ShardDataset(train_paths)
        self.val_ds = val_paths if isinstance(val_paths, Dataset) else ShardDataset(val_paths)
        _check_datasets(self.train_ds, self.val_ds)
        self.view = getattr(self.train_ds, "view", None)
        self._setup_device()
        self._setup_model()
        self.state = _State(acc=_new_acc())
        self.train_state = None   # the loop state read from last.pt, if resumed
        self.stop = _StopFlag()
        self.writer = None
        self.lr = cfg.lr

    # ------------------------------------------------------------------ setup

    def _setup_device(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.deterministic_before = (torch.are_deterministic_algorithms_enabled(),
                                     torch.is_deterministic_algorithms_warn_only_enabled())
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cudnn.deterministic = cfg.deterministic
        self.amp = cfg.amp if self.cuda else "off"
        if cfg.amp != "off" and not self.cuda:
            log.warning("amp=%s ignored on %s", cfg.amp, self.device)
        self.channels_last = cfg.channels_last and self.cuda

    def _setup_model(self) -> None:
        cfg = self.cfg
        n_shells, n_beta = self.train_ds.label_shape
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.arch, n_beta=n_beta, n_shells=n_shells, in_channels=self.train_ds.input_shape[0],
                                 **({"residual": True} if cfg.residual else {}))
        if cfg.init_from:
            self._init_from(load_payload(cfg.init_from))
        if cfg.residual:
            self._residual_around_prior()
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = _make_optimizer(cfg, self.model.parameters())
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")

    def _init_from(self, src: dict) -> None:
        """Start from the weights of ``init_from``: all of them if the networks match; the backbone
        alone (the final linear layer keeps its fresh, seeded initialisation) if they differ only in
        the number of shells or in ``residual`` (a two-shell pretrained network fine-tuned on
        K-shell shards, or as a residual around the prior centre); logged."""
        cfg, spec = self.cfg, self.model.spec
        if src["spec"] == spec:
            self.model.load_state_dict(src["state_dict"])
            return
        free = ("n_shells", "residual")
        if {k: v for k, v in src["spec"].items() if k not in free} != {k: v for k, v in spec.items() if k not in free}:
            raise InputError(f"{cfg.init_from}: network {src['spec']} does not match this run's {spec}")
        head = [k for k in self.model.state_dict() if k.startswith(HEAD_PREFIX) or k in RESIDUAL_BUFFERS]
        backbone = {k: v for k, v in src["state_dict"].items() if not k.startswith(HEAD_PREFIX)}
        missing, unexpected = self.model.load_state_dict(backbone, strict=False)
        if sorted(missing) != sorted(head) or unexpected:
            raise InputError(f"{cfg.init_from}: weights do not fit this run's network (missing {missing}, "
                             f"unexpected {unexpected})")
        log.info("init from %s: %d-shell network, this run has %d shells%s: backbone loaded, final linear layer "
                 "(%s) re-initialised (seed %d)", cfg.init_from, src["spec"]["n_shells"], spec["n_shells"],
                 " and predicts residuals" if cfg.residual else "", ", ".join(head), cfg.seed)

    def _residual_around_prior(self) -> None:
        """``residual``: offset and scale from the training shards' prior (centre, width), the final
        linear layer zeroed so that the run starts at the prior centre."""
        from sevi_lib.nn.synth import read_shard_attrs  # local: its prior needs scipy.stats (~1 s), residual runs only

        paths = getattr(self.train_ds, "paths", None)
        prior = read_shard_attrs(paths[0]).get("prior_json") if paths else None
        if not prior or "beta_mu" not in prior:
            raise InputError("training setting residual: the training shards record no prior (beta_mu, beta_sigma)")
        mu = torch.as_tensor(prior["beta_mu"], dtype=torch.float32)
        sigma = torch.as_tensor(prior["beta_sigma"], dtype=torch.float32)
        if tuple(mu.shape) != (self.model.n_shells, self.model.n_beta):
            raise InputError(f"training setting residual: the shards' prior has {tuple(mu.shape)} betas, the network "
                             f"{(self.model.n_shells, self.model.n_beta)}")
        with torch.no_grad():
            self.model.offset.copy_(mu)
            self.model.scale.copy_(torch.where(sigma > 0, sigma, torch.full_like(sigma, 1e-6)))
            self.model.net.fc.weight.zero_()
            self.model.net.fc.bias.zero_()
        log.info("residual: output = prior centre + prior width x network, starting at the centre (%s)", paths[0])

    def resume(self) -> bool:
        """Continue from ``last.pt`` if it exists (refusing other settings or data); True if resumed."""
        if not self.last_path.exists():
            return False
        payload = load_payload(self.last_path)
        conflicts = config_conflicts(payload["meta"]["config"], self.cfg)
        if conflicts:
            raise InputError(f"{self.last_path} was written with other settings ({'; '.join(conflicts)}); "
                             "use another run folder or remove it")
        st = payload["train_state"]
        if st.get("n_train", len(self.train_ds)) != len(self.train_ds):
            raise InputError(f"{self.last_path} was trained on {st['n_train']} samples, the training shards now "
                             f"hold {len(self.train_ds)}; use another run folder or remove it")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(st["optimizer"])
        if st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        _set_rng_state(st["rng"])
        self.state = _State(**st["loop"])
        self.train_state = st
        log.info("resuming %s at epoch %d, batch %d (step %d)", self.run_dir, self.state.epoch + 1,
                 self.state.batch, self.state.step)
        return True

    def open(self) -> None:
        """Write config.yaml, build the loaders (sample order, worker seeds) and the TensorBoard writer."""
        cfg = self.cfg
        with atomic_path(self.run_dir / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        n_train = len(self.train_ds)
        drop_last = n_train >= cfg.batch_size
        self.steps_per_epoch = n_train // cfg.batch_size if drop_last else 1
        self.sampler = EpochSampler(n_train, cfg.seed)
        workers = cfg.num_workers
        self.loader_gen = torch.Generator().manual_seed(cfg.seed)  # worker base seeds (shards need none)
        if self.train_state is not None and "loader_rng" in self.train_state:
            self.loader_gen.set_state(self.train_state["loader_rng"])
        # Workers are started per epoch (not persistent): an idle persistent pool left to the garbage
        # collector was seen to stall its owner for seconds per worker at shutdown.
        loader_kw = {"num_workers": workers, "pin_memory": cfg.pin_memory and self.cuda, "generator": self.loader_gen,
                     "worker_init_fn": _worker_ignores_sigint if workers else None}
        if workers:
            loader_kw["prefetch_factor"] = cfg.prefetch_factor
        self.train_loader = DataLoader(self.train_ds, batch_size=cfg.batch_size, sampler=self.sampler,
                                       drop_last=drop_last, **loader_kw)
        self.val_loader = DataLoader(self.val_ds, batch_size=cfg.val_batch_size or 2 * cfg.batch_size,
                                     shuffle=False, **{**loader_kw, "generator": None})
        self.fwd_model = torch.compile(self.model) if (cfg.compile and self.cuda) else self.model
        if cfg.compile and not self.cuda:
            log.warning("compile ignored on %s", self.device)
        self.autocast = autocast(self.device, self.amp)
        from torch.utils.tensorboard import SummaryWriter  # local: ~0.4 s, only when a run starts
        self.writer = SummaryWriter(str(self.run_dir / "tb"),
                                    purge_step=self.state.step if self.train_state is not None else None)
        self.last_plot = time.monotonic()

    # ------------------------------------------------------------------ state on disk

    def save_last(self) -> None:
        """Write ``last.pt``: weights and everything needed to continue at the current step."""
        state = self.state
        st = {"optimizer": self.optimizer.state_dict(),
              "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
              "rng": _rng_state(), "loader_rng": self.loader_gen.get_state(), "n_train": len(self.train_ds),
              "loop": dataclasses.asdict(state)}
        payload = weights_payload(self.model, self.train_ds.input_shape, self.view, epoch=state.epoch,
                                   step=state.step,
                                   val_distance=state.history[-1]["val_mean"] if state.history else None,
                                   config=self.cfg.to_dict())
        payload["train_state"] = st
        save_payload(payload, self.last_path)

    def interrupt(self) -> TrainingInterrupted:
        """The one interrupt path: save ``last.pt`` at the current step, return the error to raise."""
        self.save_last()
        s = self.state
        where = f"after epoch {s.epoch}" if s.batch == 0 and s.epoch else f"at epoch {s.epoch + 1}, batch {s.batch}"
        return TrainingInterrupted(f"training interrupted by {signal.Signals(self.stop.signum).name} {where}; "
                                   f"state saved to {self.last_path}, rerun to resume")

    def done(self) -> bool:
        return self.state.epoch >= self.cfg.epochs or self.state.stopped_early

    # ------------------------------------------------------------------ one epoch

    def _batches(self):
        """The epoch's batches; a loader that fails after SIGTERM (its workers were signalled too)
        ends the run through :meth:`interrupt` at the last completed step."""
        batches = iter(self.train_loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception:
                if self.stop.signum is None:
                    raise
                raise self.interrupt() from None
            yield batch

    def _prepare_epoch(self) -> None:
        cfg, epoch = self.cfg, self.state.epoch
        frozen = epoch < cfg.freeze_epochs
        frozen_modules = freeze_parameters(self.model, cfg.freeze, frozen) if cfg.freeze_epochs else []
        self.model.train()
        if frozen:
            for m in frozen_modules:
                m.eval()
        self.sampler.set_epoch(epoch, start=self.state.batch * cfg.batch_size)
        self.lr = cfg.lr * lr_factor(cfg, max(self.state.step - 1, 0), self.steps_per_epoch)

    def _step(self, x, y, t_mark: float) -> float:
        """One optimiser step on a batch; returns the loss. Timings go to the epoch's sums."""
        cfg, device, acc = self.cfg, self.device, self.state.acc
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        sync(device)
        t1 = time.perf_counter()
        self.lr = cfg.lr * lr_factor(cfg, self.state.step, self.steps_per_epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr
        with self.autocast():
            pred = self.fwd_model(x)
        loss, per_sample = score_loss(pred.float(), y, per_sample=True)
        sync(device)
        t2 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        sync(device)
        t3 = time.perf_counter()
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        sync(device)
        t4 = time.perf_counter()
        d = per_sample.detach().double().cpu()
        acc["n"] += int(d.numel())
        acc["sum"] += float(d.sum())
        acc["sumsq"] += float((d * d).sum())
        acc["t_data"] += t1 - t_mark
        acc["t_forward"] += t2 - t1
        acc["t_backward"] += t3 - t2
        acc["t_optimizer"] += t4 - t3
        acc["t_train"] += t4 - t_mark
        self.state.step += 1
        self.state.batch += 1
        return float(loss.detach())

    def run_epoch(self) -> None:
        """The training batches of the current epoch (from the current batch on, when resumed)."""
        cfg, state = self.cfg, self.state
        epoch = state.epoch
        self._prepare_epoch()
        bar = tqdm(total=self.steps_per_epoch, initial=state.batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   file=sys.stderr, disable=not cfg.progress, leave=False, dynamic_ncols=True)
        try:
            t_mark = time.perf_counter()
            for x, y in self._batches():
                loss = self._step(x, y, t_mark)
                if state.step % cfg.log_every == 0:
                    self.writer.add_scalar("train/loss_step", loss, state.step)
                    self.writer.add_scalar("lr", self.lr, state.step)
                    bar.set_postfix(loss=f"{loss:.4g}", lr=f"{self.lr:.3g}")
                bar.update(1)
                if self.callback is not None:
                    self.callback({"epoch": epoch, "batch": state.batch, "step": state.step, "loss": loss})
                if self.stop.signum is not None:
                    raise self.interrupt()
                if cfg.save_every_steps and state.step % cfg.save_every_steps == 0:
                    self.save_last()
                t_mark = time.perf_counter()
        finally:
            bar.close()

    def validate(self) -> tuple[dict, bool]:
        """Validation of the epoch just trained; closes the epoch in the loop state.

        Returns the epoch's metrics row (``METRIC_COLUMNS``) and whether it is a new best.
        """
        cfg, state, acc = self.cfg, self.state, self.state.acc
        epoch = state.epoch
        t_v = time.perf_counter()
        self.model.eval()
        pred, label = run_model(self.fwd_model, self.val_loader, self.device, self.amp, self.channels_last)
        dist = shell_distances(pred, label).numpy()
        t_val = time.perf_counter() - t_v
        total = dist.sum(axis=1)
        val_mean, val_std = float(total.mean()), float(total.std())
        n = max(acc["n"], 1)
        train_mean = acc["sum"] / n
        train_std = math.sqrt(max(acc["sumsq"] / n - train_mean ** 2, 0.0))
        improved = val_mean < state.best_val - cfg.min_delta
        if improved:
            state.best_val, state.best_epoch, state.bad_epochs = val_mean, epoch + 1, 0
        else:
            state.bad_epochs += 1
        row = {"epoch": epoch + 1, "step": state.step, "lr": self.lr, "train_mean": train_mean,
               "train_std": train_std, "val_mean": val_mean, "val_std": val_std,
               "val_shell0": float(dist[:, 0].mean()),
               "val_shell1": float(dist[:, 1].mean()) if dist.shape[1] > 1 else float("nan"),
               "best": bool(improved), "t_data": acc["t_data"], "t_forward": acc["t_forward"],
               "t_backward": acc["t_backward"], "t_optimizer": acc["t_optimizer"], "t_val": t_val,
               "t_epoch": acc["t_train"] + t_val, "samples_per_s": acc["n"] / max(acc["t_train"], 1e-12),
               **{f"val_shell{j}": float(dist[:, j].mean()) for j in range(2, dist.shape[1])}}
        state.history.append(row)
        state.epoch += 1
        state.batch = 0
        state.acc = _new_acc()
        if cfg.patience and state.bad_epochs >= cfg.patience:
            state.stopped_early = True
        return row, improved

    def checkpoint(self, row: dict, improved: bool) -> None:
        """Epoch checkpoint, best.pt, TensorBoard scalars, metrics.csv and (at most every
        ``PLOT_SECONDS``) loss.png for the epoch just validated; ``last.pt`` is written by the caller."""
        cfg, epoch = self.cfg, row["epoch"]
        meta = {"epoch": epoch, "step": row["step"], "val_distance": row["val_mean"], "config": cfg.to_dict()}
        weights = weights_payload(self.model, self.train_ds.input_shape, self.view, **meta)
        if cfg.save_every_epochs and epoch % cfg.save_every_epochs == 0:
            save_payload(weights, self.run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt")
        if improved:
            save_payload(weights, self.run_dir / "best.pt")
        for key in ("train_mean", "val_mean", "val_shell0", "val_shell1", "samples_per_s"):
            self.writer.add_scalar(f"epoch/{key}", row[key], row["step"])
        for key in ("t_data", "t_forward", "t_backward", "t_optimizer", "t_val"):
            self.writer.add_scalar(f"time/{key[2:]}", row[key], row["step"])
        self.writer.flush()
        _write_metrics(self.run_dir, self.state.history)
        if time.monotonic() - self.last_plot > PLOT_SECONDS:
            _plot(self.run_dir, self.state.history)
            self.last_plot = time.monotonic()

    def log_epoch(self, row: dict) -> None:
        state = self.state
        log.info("epoch %d/%d  train %.4g +- %.3g  val %.4g +- %.3g%s  lr %.3g  %.1f samples/s",
                 row["epoch"], self.cfg.epochs, row["train_mean"], row["train_std"], row["val_mean"],
                 row["val_std"], "  (best)" if row["best"] else "", row["lr"], row["samples_per_s"])
        if state.stopped_early:
            log.info("early stop: no improvement for %d epochs (best %.4g at epoch %d)",
                     state.bad_epochs, state.best_val, state.best_epoch)

    def finish(self) -> None:
        """Close TensorBoard, restore torch's determinism setting, draw loss.png (never raises for the plot)."""
        if self.writer is not None:
            self.writer.close()
        torch.use_deterministic_algorithms(self.deterministic_before[0], warn_only=self.deterministic_before[1])
        if self.state.history:
            try:
                _plot(self.run_dir, self.state.history)
            except Exception as exc:  # noqa: BLE001 (never hide the training outcome behind a plotting failure)
                log.warning("could not draw %s: %s", self.run_dir / "loss.png", exc)

    def result(self) -> dict:
        """The summary returned by :func:`train`, also written to ``result.yaml``."""
        s = self.state
        out = {"best_checkpoint": str(self.run_dir / "best.pt"), "best_val": s.best_val, "best_epoch": s.best_epoch,
               "last_checkpoint": str(self.last_path), "epochs_run": s.epoch, "steps": s.step,
               "stopped_early": s.stopped_early, "run_dir": str(self.run_dir), "device": str(self.device)}
        write_text(self.run_dir / "result.yaml", yaml.safe_dump(out, sort_keys=False))
        return out


def train(cfg: TrainConfig, train_paths, val_paths, run_dir, *, callback=None) -> dict:
    """Train a network on synthesis shards, or resume the run in ``run_dir``.

    Parameters
    ----------
    cfg : TrainConfig
    train_paths, val_paths : sequence of str or Path (or a ShardDataset)
        Training and validation shards (see :class:`ShardDataset`).
    run_dir : str or Path
        Run folder (layout in the module docstring); created if needed.
    callback : callable(dict) or None
        Called after every optimiser step with ``epoch`` (0-based), ``batch`` (batches done in
        the epoch), ``step`` (steps done in the run) and ``loss``; for tests and monitoring.

    Returns
    -------
    dict
        ``best_checkpoint``, ``best_val``, ``best_epoch``, ``last_checkpoint``, ``epochs_run``,
        ``steps``, ``stopped_early``, ``run_dir``, ``device``.

    Raises
    ------
    TrainingInterrupted
        On SIGTERM / SIGINT, after saving ``last.pt`` at the current step.
    InputError
        Bad shards, bad settings, or a ``last.pt`` written with other settings.
    """
    run = _Run(cfg, train_paths, val_paths, run_dir, callback=callback)
    try:
        run.resume()
        run.open()
        with run.stop:
            while not run.done():
                run.run_epoch()
                row, improved = run.validate()
                run.checkpoint(row, improved)
                run.log_epoch(row)
                if run.stop.signum is not None and not run.done():
                    raise run.interrupt()
                run.save_last()
    finally:
        run.finish()
    return run.result()
