"""The ``sevi`` command: a thin front end, one module per subcommand.

Each subcommand module exposes ``register(subparsers)`` (adds its parser) and a ``run`` function
that parses nothing itself: it calls one library function and prints. Only the module of the
subcommand that was chosen is imported, so ``sevi detect --help`` never pays for torch (only
``train``, ``checkpoints`` and ``nn predict`` import it). Errors a user can cause
(:class:`~sevi_lib.core.errors.SeviError`) print one line ``sevi: error: <message>`` and exit with
status 2; argparse errors exit 2 as well. A failed write (disk full, read-only place:
:class:`~sevi_lib.core.errors.OutputError`) is one such line too: the writers have removed their
temporary files and held back what HDF5 prints while it tears down a file it could not write
(:func:`sevi_lib.core.io.h5_create`), and the console command ends at once (``os._exit``),
before the HDF5 library's own shutdown can trip over that file.
"""

import argparse
import importlib
import os
import sys

from sevi_lib import __version__
from sevi_lib.core.errors import OutputError, SeviError

#: subcommand -> (module of this package that registers it, one-line help for ``sevi --help``)
COMMANDS = {
    "simulate": ("simulate", "simulate electrons and render camera frames (test file + truth file)"),
    "survey": ("survey", "estimate the camera's read noise, pedestal and hot pixels (JSON for 'sevi detect --camera')"),
    "detect": ("detect", "detect electrons in a frame range of a FinalImage file (one shard)"),
    "accumulate": ("accumulate", "gather detection shards into one electron table, count map and raw-frame sum"),
    "fit": ("fit", "fit the shells (R, sigma_R, weights, beta's) to electrons, a count map or a frame sum"),
    "spectrum": ("spectrum", "photoelectron spectrum I(R), beta_2(R), beta_4(R) with error bands (rBasex)"),
    "calibrate": ("calibrate", "correct the fit for the detector's response, measured on simulated frames"),
    "calibrate-shard": ("calibrate", "simulate and detect one frame range of the calibration frames (one shard)"),
    "score": ("score", "score an Answer file against a truth file"),
    "nn": ("nn", "network data: synthesis shards, priors, prediction, GPU slots"),
    "train": ("train", "train (or resume) a beta network on synthesis shards"),
    "checkpoints": ("train", "evaluate all checkpoints of a run, or compare two"),
    "plot-map": ("plot_map", "picture of a count map marking the fitted image centre and shell radii"),
    "plot-camera": ("plot_camera", "picture of the spot model a camera survey measured (gain law, radial profile)"),
    "watch": ("watch", "follow a FinalImage file (SWMR) or a folder of chunk files while the camera writes them"),
    "report": ("report", "Markdown report of a run (detection, answers side by side, score, training, timing)"),
}


def _chosen(argv):
    """The subcommand named in argv (the first word that is not an option), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv=None):
    """The argument parser; only the chosen subcommand's module is imported and registered.

    With ``argv=None`` every subcommand is registered fully (used by tests that inspect all parsers).
    """
    parser = argparse.ArgumentParser(
        prog="sevi", description="SEVI reconstruction: frames -> electrons -> angular distributions."
    )
    parser.add_argument("--version", action="version", version=f"sevi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if argv is None:
        modules = {module for module, _ in COMMANDS.values()}
    else:
        chosen = _chosen(argv)
        modules = {COMMANDS[chosen][0]} if chosen else set()
    registered = set()
    for module in modules:
        importlib.import_module(f"{__name__}.{module}").register(sub)
        registered.update(name for name, (m, _) in COMMANDS.items() if m == module)
    for name, (_, help_text) in COMMANDS.items():
        if name not in registered:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv=None):
    """Entry point of the ``sevi`` console script."""
    console = argv is None
    argv = sys.argv[1:] if console else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SeviError as exc:
        print(f"sevi: error: {exc}", file=sys.stderr)
        if console and isinstance(exc, OutputError):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        print("sevi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
