"""``sevi train`` (train or resume a network on synthesis shards) and ``sevi checkpoints``.

``sevi train --train SHARD... --val SHARD... --run-dir DIR [--lr 1e-3 --arch resnet34 ...]``: every
field of :class:`sevi_lib.nn.settings.TrainConfig` is one option ``--field-name V`` (booleans as
``true``/``false``, e.g. ``--progress false``); the dataclass holds the only defaults.
Rerunning the same command on the same folder resumes from ``DIR/last.pt``.

``sevi checkpoints table RUN_DIR --val SHARD... [--out CSV]``: every checkpoint of a run on one
validation set, best marked. ``sevi checkpoints compare A.pt B.pt --val SHARD... [--top K]``:
where two checkpoints disagree most.

Parsing imports no torch (the settings live in the torch-free :mod:`sevi_lib.nn.settings`).
"""

import json
import logging

from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.nn.settings import TrainConfig


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
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    add_settings_arguments(p, TrainConfig, title="training settings (TrainConfig; the workflow's nn.train section)")
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
    cfg = settings_from_args(TrainConfig, args)
    result = train(cfg, args.train, args.val, args.run_dir)
    print(json.dumps(result, indent=2))
    return 0


def run_checkpoints(args):
    import pandas as pd

    from sevi_lib.core.io import atomic_path
    from sevi_lib.nn.checkpoints import checkpoint_table, compare_checkpoints

    kw = {"batch_size": args.batch_size, "device": args.device, "num_workers": args.num_workers}
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
