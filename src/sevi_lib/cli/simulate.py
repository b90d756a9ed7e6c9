"""``sevi simulate``: synthesise a test file (``FinalImage``) and its truth file."""

from pathlib import Path

import numpy as np
import yaml

from sevi_lib.core.errors import InputError, SeviError
from sevi_lib.core.shells import Shells
from sevi_lib.simulate.render import write_test_file

#: Values used when neither the YAML file nor a flag gives one.
DEFAULTS = {"seed": 0, "n_frames": 1000, "electrons_per_shell": [40.0, 40.0], "detection_loss": 0.1}


def register(sub):
    p = sub.add_parser(
        "simulate", help="simulate electrons and render camera frames (test file + truth file)",
        description="Simulate two shells of photoelectrons, render them with the published spot model and "
        "write a FinalImage test file (gzip 9) and a first-kind truth file (Truth, GeneratedElectrons, "
        "DetectedElectrons). Parameters come from a YAML file (the workflow config, or its 'simulation:' "
        "section alone) and/or flags; flags win.",
    )
    p.add_argument("--frames", required=True, metavar="OUT.h5", help="test file to write (FinalImage)")
    p.add_argument("--truth", required=True, metavar="TRUTH.h5", help="truth file to write")
    p.add_argument("--params", metavar="YAML", help="YAML with a 'simulation:' section (or that section itself)")
    p.add_argument("--n-frames", type=int, help=f"number of frames (default {DEFAULTS['n_frames']})")
    p.add_argument("--electrons-per-shell", type=float, nargs="+", metavar="MEAN",
                   help="Poisson mean of electrons per frame, one per shell (default 40 40)")
    p.add_argument("--detection-loss", type=float, help="probability an electron is not detected (default 0.1)")
    p.add_argument("--seed", type=int, help="random seed, 0 <= seed < 2**32 (default 0)")
    p.add_argument("--R", type=float, nargs="+", metavar="R", help="shell radii, screen units")
    p.add_argument("--sigma-R", type=float, nargs="+", metavar="S", help="radial standard deviations")
    p.add_argument("--beta", nargs="+", metavar="B2,B4,...",
                   help="angular coefficients per shell, one comma-separated list per shell (beta_2 first)")
    p.add_argument("--chunk", type=int, default=64, help="frames rendered and written at a time (default 64)")
    p.add_argument("--threads", type=int, default=1, help="gzip compression threads (default 1)")
    p.add_argument("--include-images-in-truth", action="store_true", help="also store FinalImage in the truth file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_params(path):
    """The ``simulation`` section of a YAML file (or the whole file if it has no such key).

    Parameters
    ----------
    path : str

    Returns
    -------
    dict
    """
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(doc, dict) and "simulation" in doc:
        doc = doc["simulation"]
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping with simulation parameters ('simulation:' section)")
    return doc


def _parse_beta(text, j):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--beta: shell {j}: '{text}' is not a comma-separated list of numbers") from None


def resolve(args):
    """Merge YAML parameters and flags into the arguments of :func:`write_test_file`.

    Returns
    -------
    dict
        ``shells``, ``n_frames``, ``electrons_per_shell``, ``detection_loss``, ``seed``.
    """
    where = args.params or "flags"
    sim = load_params(args.params) if args.params else {}
    shells_cfg = [dict(s) for s in sim.get("shells") or [] if isinstance(s, dict)]
    if sim.get("shells") is not None and (not isinstance(sim["shells"], list) or len(shells_cfg) != len(sim["shells"])):
        raise InputError(f"{where}: 'shells' must be a list of mappings with R, sigma_R and beta")
    overrides = {"R": args.R, "sigma_R": args.sigma_R,
                 "beta": [_parse_beta(t, j) for j, t in enumerate(args.beta)] if args.beta else None}
    for key, values in overrides.items():
        if values is None:
            continue
        if not shells_cfg:
            shells_cfg = [{} for _ in values]
        if len(values) != len(shells_cfg):
            raise InputError(f"--{key.replace('_', '-')}: {len(values)} values given for {len(shells_cfg)} shells")
        for s, v in zip(shells_cfg, values):
            s[key] = v
    if not shells_cfg:
        raise InputError("no shells given: use --params YAML (simulation: shells: ...) or --R, --sigma-R and --beta")
    for j, s in enumerate(shells_cfg):
        missing = [k for k in ("R", "sigma_R", "beta") if k not in s]
        if missing:
            raise InputError(f"{where}: shell {j} lacks {', '.join(missing)}")
    try:
        shells = Shells.from_config(shells_cfg)
    except SeviError as exc:  # InputError or UnphysicalError: name the source
        raise type(exc)(f"{where}: {exc}") from None

    def pick(name, flag):
        return flag if flag is not None else sim.get(name, DEFAULTS[name])

    out = {
        "shells": shells,
        "n_frames": pick("n_frames", args.n_frames),
        "electrons_per_shell": pick("electrons_per_shell", args.electrons_per_shell),
        "detection_loss": pick("detection_loss", args.detection_loss),
        "seed": pick("seed", args.seed),
    }
    for name in ("n_frames", "seed"):
        if isinstance(out[name], bool) or not isinstance(out[name], (int, np.integer)):
            raise InputError(f"{where}: {name} must be an integer, got {out[name]!r}")
    try:
        out["electrons_per_shell"] = np.atleast_1d(np.asarray(out["electrons_per_shell"], dtype=np.float64))
        out["detection_loss"] = float(out["detection_loss"])
    except (TypeError, ValueError):
        raise InputError(f"{where}: electrons_per_shell and detection_loss must be numbers") from None
    if len(out["electrons_per_shell"]) == 1:
        out["electrons_per_shell"] = np.repeat(out["electrons_per_shell"], shells.n_shells)
    return out


def run(args):
    params = resolve(args)
    if args.chunk < 1:
        raise InputError(f"--chunk must be >= 1, got {args.chunk}")
    if Path(args.frames).resolve() == Path(args.truth).resolve():
        raise InputError(f"--frames and --truth are the same file: {args.frames}")
    try:
        info = write_test_file(args.frames, args.truth, chunk=args.chunk,
                               include_images_in_truth=args.include_images_in_truth,
                               progress=not args.no_progress, threads=args.threads, **params)
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename or args.frames}: {exc.strerror or exc}") from None
    print(f"wrote {args.frames} ({info['n_frames']} frames) and {args.truth} "
          f"({info['n_generated']} electrons generated, {info['n_detected']} detected)")
    return 0
