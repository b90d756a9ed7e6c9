"""``sevi simulate``: synthesise a test file (``FinalImage``) and its truth file."""

from sevi_lib.cli._settings import add_settings_arguments, given_settings
from sevi_lib.simulate.settings import SimulationSettings

#: Per-shell fields: one word per shell on the command line (or one JSON list).
_PER_SHELL_FLAGS = {
    "electrons_per_shell": ("MEAN", "Poisson mean of electrons per frame, one per shell (one value: all shells)"),
    "R": ("R", "shell radii, screen units"),
    "sigma_R": ("S", "radial standard deviations, screen units"),
    "beta": ("B2,B4,...", "angular coefficients per shell, one comma-separated list per shell (beta_2 first)"),
}


def register(sub):
    p = sub.add_parser(
        "simulate", help="simulate electrons and render camera frames (test file + truth file)",
        description="Simulate shells of photoelectrons, render them with the published spot model and "
        "write a FinalImage test file (gzip 9) and a first-kind truth file (Truth, GeneratedElectrons, "
        "DetectedElectrons). Settings come from a YAML file (the workflow config, or its 'simulation:' "
        "section alone) and/or flags; flags win; the defaults are the workflow's embedded default.",
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
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.simulate.render import simulate_files
    from sevi_lib.simulate.settings import load_params, resolve_settings

    section = load_params(args.params) if args.params else None
    settings, shells = resolve_settings(section, given_settings(SimulationSettings, args), where=args.params)
    info = simulate_files(args.frames, args.truth, settings, shells,
                          include_images_in_truth=args.include_images_in_truth, progress=not args.no_progress)
    print(f"wrote {args.frames} ({info['n_frames']} frames) and {args.truth} "
          f"({info['n_generated']} electrons generated, {info['n_detected']} detected)")
    return 0
