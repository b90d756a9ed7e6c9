"""``sevi simulate``: synthesise a test file (``FinalImage``) and its truth file."""

from sevi_lib.cli._settings import add_settings_arguments, given_settings
from sevi_lib.core.errors import InputError
from sevi_lib.core.spots import GAIN_LAWS, SpotModel
from sevi_lib.simulate.settings import SimulationSettings

#: Per-shell fields: one word per shell on the command line (or one JSON list).
_PER_SHELL_FLAGS = {
    "electrons_per_shell": ("MEAN", "Poisson mean of electrons per frame, one per shell (one value: all shells)"),
    "R": ("R", "shell radii, screen units"),
    "sigma_R": ("S", "radial standard deviations, screen units"),
    "beta": ("B2,B4,...", "angular coefficients per shell, one comma-separated list per shell (beta_2 first)"),
}

#: Spot-model flags ``--spot-<field>``: one per field of SpotModel (metavar, help).
_SPOT_FLAGS = {
    "sigma_px": ("PX", "mean spot width, pixels"),
    "sigma_sd_px": ("PX", "standard deviation of the spot width over electrons, pixels"),
    "rho_sd": ("SD", "standard deviation of the spot's correlation rho"),
    "gain": ("{" + ",".join(GAIN_LAWS) + "}", "law of the spot peak (gain)"),
    "gain_mean": ("COUNTS", "mean spot peak, counts"),
    "gain_cv": ("CV", "coefficient of variation of the spot peak"),
}


def register(sub):
    p = sub.add_parser(
        "simulate", help="simulate electrons and render camera frames (test file + truth file)",
        description="Simulate shells of photoelectrons, render them with a camera spot model (default: the "
        "published one) and write a FinalImage test file (gzip 9) and a first-kind truth file (Truth, "
        "GeneratedElectrons, DetectedElectrons). Settings come from a YAML file (the workflow config, or its "
        "'simulation:' section alone) and/or flags; flags win (--spot-* key by key over --spot and the "
        "section's 'spot:'); the defaults are the workflow's embedded default.",
    )
    p.add_argument("--frames", required=True, metavar="OUT.h5", help="test file to write (FinalImage)")
    p.add_argument("--truth", required=True, metavar="TRUTH.h5", help="truth file to write")
    p.add_argument("--params", metavar="YAML", help="YAML with a 'simulation:' section (or that section itself)")
    p.add_argument("--include-images-in-truth", action="store_true", help="also store FinalImage in the truth file")
    p.add_argument("--no-progress", action="store_true", help="no progress lines (default: one every 10 s on stderr)")
    add_settings_arguments(p, SimulationSettings, skip=tuple(_PER_SHELL_FLAGS))
    group = p.add_argument_group("per-shell settings (one value per shell, or one JSON list)")
    default = SimulationSettings()
    for name, (metavar, text) in _PER_SHELL_FLAGS.items():
        shown = getattr(default, name)
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"set_{name}", nargs="+", metavar=metavar,
                           default=None, help=text + (f" (default {' '.join(map(str, shown))})" if shown else ""))
    spot = p.add_argument_group("spot model (the section's 'spot:' mapping, key by key; default: the published model)")
    published = SpotModel()
    for name, (metavar, text) in _SPOT_FLAGS.items():
        spot.add_argument(f"--spot-{name.replace('_', '-')}", dest=f"spot_{name}", metavar=metavar, default=None,
                          help=f"{text} (default {getattr(published, name)})")
    p.set_defaults(func=run)


def given_spot(args):
    """The ``--spot`` JSON mapping updated with the ``--spot-*`` flags (None when neither is given).

    Numbers are checked here so that a bad one is a one-line :class:`InputError` naming its flag;
    the ranges are checked with the rest of the settings.
    """
    spot = getattr(args, "set_spot", None)
    flags = {name: getattr(args, f"spot_{name}", None) for name in _SPOT_FLAGS}
    flags = {k: v for k, v in flags.items() if v is not None}
    if spot is None and not flags:
        return None
    if spot is not None and not isinstance(spot, dict):
        raise InputError(f"--spot: expected a JSON mapping of spot-model values, got {spot!r}")
    out = dict(spot or {})
    for name, text in flags.items():
        flag = f"--spot-{name.replace('_', '-')}"
        if name == "gain":
            if text not in GAIN_LAWS:
                raise InputError(f"{flag}: must be one of {', '.join(GAIN_LAWS)}, got {text!r}")
            out[name] = text
            continue
        try:
            out[name] = float(text)
        except ValueError:
            raise InputError(f"{flag}: {text!r} is not a number") from None
    return out


def run(args):
    from sevi_lib.simulate.files import simulate_files
    from sevi_lib.simulate.settings import load_params, resolve_settings

    section = load_params(args.params) if args.params else None
    given = given_settings(SimulationSettings, args)
    spot = given_spot(args)
    if spot is not None:
        given["spot"] = spot
    settings, shells = resolve_settings(section, given, where=args.params)
    info = simulate_files(args.frames, args.truth, settings, shells,
                          include_images_in_truth=args.include_images_in_truth, progress=not args.no_progress)
    print(f"wrote {args.frames} ({info['n_frames']} frames) and {args.truth} "
          f"({info['n_generated']} electrons generated, {info['n_detected']} detected)")
    return 0
