"""The ``sevi`` command: one subcommand per module of this package.

Each module named in :data:`COMMANDS` exposes ``register(subparsers)`` (adds its parser) and
``run(args) -> int``. Errors a user can cause (:class:`~sevi_lib.errors.SeviError`) print one line
``sevi: error: <message>`` and exit with status 2; argparse errors exit 2 as well.
"""

import argparse
import importlib
import sys

from .. import __version__
from ..errors import SeviError

COMMANDS = [
    "detect",
    "accumulate",
    "fit",
    "score",
    "simulate",
    "train",
    "nn",
    "report",
]


def build_parser():
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="sevi", description="SEVI reconstruction: frames -> electrons -> angular distributions."
    )
    parser.add_argument("--version", action="version", version=f"sevi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    return parser


def main(argv=None):
    """Entry point of the ``sevi`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SeviError as exc:
        print(f"sevi: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sevi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
