"""``sevi train`` (train or resume a network on synthesis shards) and ``sevi checkpoints``.

``sevi train --train SHARD... --val SHARD... --run-dir DIR [--config FILE] [--set KEY=VALUE]
[--lr 1e-3 --arch resnet34 ...]``: every field of :class:`sevi_lib.nn.trainer.TrainConfig` is
an option (``--batch-size``, ``--no-progress``, ...). Precedence: defaults < ``--config`` YAML
(a mapping of fields; ``--section`` picks a sub-mapping) < ``--set`` < explicit options.
Rerunning the same command on the same folder resumes from ``DIR/last.pt``.

``sevi checkpoints table RUN_DIR --val SHARD... [--out CSV]``: every checkpoint of a run on one
validation set, best marked. ``sevi checkpoints compare A.pt B.pt --val SHARD... [--top K]``:
where two checkpoints disagree most.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

import yaml

from sevi_lib.core.errors import InputError
from sevi_lib.nn.trainer import TrainConfig

_BOOL = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _field_type(f):
    t = f.type if isinstance(f.type, str) else f.type.__name__
    return {"bool": bool, "int": int, "float": float, "str": str}[t]


def register(sub):
    p = sub.add_parser(
        "train", help="train (or resume) a beta network on synthesis shards",
        description="Train a ResNet with the score as loss; run folder with checkpoints, best.pt, last.pt, "
        "metrics.csv, TensorBoard events and loss.png. Reruns resume from RUN_DIR/last.pt; SIGTERM/SIGINT "
        "save the state at the current step first.",
    )
    p.add_argument("--train", nargs="+", required=True, metavar="SHARD", help="training shards (HDF5)")
    p.add_argument("--val", nargs="+", required=True, metavar="SHARD", help="validation shards (HDF5)")
    p.add_argument("--run-dir", required=True, help="run folder")
    p.add_argument("--config", help="YAML file with training settings (TrainConfig fields)")
    p.add_argument("--section", help="dotted key of the settings mapping inside --config (e.g. nn.pretrain.train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="one setting (value parsed as YAML); repeatable")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    group = p.add_argument_group("training settings (default: TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f)
        if kind is bool:
            group.add_argument(flag, dest=f"opt_{f.name}", action=argparse.BooleanOptionalAction, default=None,
                               help=f"(default {f.default})")
        else:
            group.add_argument(flag, dest=f"opt_{f.name}", type=kind, default=None, help=f"(default {f.default!r})")
    p.set_defaults(func=run_train)

    c = sub.add_parser(
        "checkpoints", help="evaluate all checkpoints of a run, or compare two",
        description="'table': every checkpoint of a run folder on one validation set (best marked); "
        "'compare': two checkpoints on the same samples, largest disagreements first.",
    )
    csub = c.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = csub.add_parser("table", help="evaluate every checkpoint of RUN_DIR")
    t.add_argument("run_dir")
    t.add_argument("--extra", action="store_true", help="include best.pt and last.pt")
    cmp_ = csub.add_parser("compare", help="compare two checkpoints on the same samples")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    cmp_.add_argument("--top", type=int, default=10, help="rows to print (default 10)")
    for q in (t, cmp_):
        q.add_argument("--val", nargs="+", required=True, metavar="SHARD", help="labelled shards (HDF5)")
        q.add_argument("--out", help="write the full table to this CSV")
        q.add_argument("--batch-size", type=int, default=64)
        q.add_argument("--device", default="auto")
        q.add_argument("--num-workers", type=int, default=0)
    c.set_defaults(func=run_checkpoints)


def config_from_args(args) -> TrainConfig:
    """TrainConfig from --config / --section, --set and the explicit options."""
    settings = {}
    if args.config:
        try:
            with open(args.config) as fh:
                doc = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise InputError(f"{args.config}: cannot read ({exc.strerror})") from None
        for key in (args.section.split(".") if args.section else []):
            if not isinstance(doc, dict) or key not in doc:
                raise InputError(f"{args.config}: no section '{args.section}'")
            doc = doc[key]
        if not isinstance(doc, dict):
            raise InputError(f"{args.config}: training settings must be a mapping")
        settings.update(doc)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        settings[key.strip().replace("-", "_")] = yaml.safe_load(value)
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f"opt_{f.name}")
        if value is not None:
            settings[f.name] = value
    types = {f.name: _field_type(f) for f in dataclasses.fields(TrainConfig)}
    for key, value in list(settings.items()):
        kind = types.get(key)
        if kind is None or value is None:
            continue
        try:
            if kind is bool and isinstance(value, str):
                settings[key] = _BOOL[value.lower()]
            elif kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
                settings[key] = float(value)
            elif kind is int and isinstance(value, (float, str)) and float(value) == int(float(value)):
                settings[key] = int(float(value))
            elif kind is str:
                settings[key] = str(value)
        except (KeyError, ValueError):
            raise InputError(f"training setting {key}={value!r} is not a {kind.__name__}") from None
    return TrainConfig.from_dict(settings)


def _setup_logging(quiet):
    logger = logging.getLogger("sevi_lib")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def run_train(args):
    from sevi_lib.nn.trainer import train

    _setup_logging(args.quiet)
    cfg = config_from_args(args)
    result = train(cfg, args.train, args.val, args.run_dir)
    print(json.dumps(result, indent=2))
    return 0


def run_checkpoints(args):
    import pandas as pd

    from sevi_lib.core.io import atomic_path
    from sevi_lib.nn.checkpoints import checkpoint_table, compare_checkpoints

    kw = dict(batch_size=args.batch_size, device=args.device, num_workers=args.num_workers)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.5g}".format):
        if args.action == "table":
            table = checkpoint_table(args.run_dir, args.val, extra=args.extra, **kw)
            shown = table.assign(checkpoint=table["checkpoint"].map(lambda s: s.rsplit("/", 1)[-1]))
            print(shown.to_string(index=False))
            print(f"best: {table.loc[table['best'], 'checkpoint'].iloc[0]}")
        else:
            table, summary = compare_checkpoints(args.a, args.b, args.val, **kw)
            print(table.drop(columns=["shard"]).head(args.top).to_string(index=False))
            print(json.dumps(summary))
    if args.out:
        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.8g")
    return 0
