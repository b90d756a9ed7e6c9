"""``sevi fit INPUT --out ANSWER``: maximum-likelihood fit of the projected shell model."""

from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.fit.settings import FitSettings


def register(sub):
    p = sub.add_parser(
        "fit", help="fit the shells (R, sigma_R, weights, beta's), the image centre and the background to "
        "electrons, a count map or a frame sum",
        description="Fit the projected shell model. The number of shells is found from the radial profile "
        "(significant peaks; --shells N fixes it), the image centre (x0, z0) is fitted (--centre screen fixes "
        "it at the screen centre) and a uniform background of stray electrons is reported as a rate. INPUT is an HDF5 electron table (DetectedElectrons, "
        "the project's own or a published file), or a 1024 x 1024 .npy map: a count map "
        "(numpy.histogram2d convention, Image[ix, iz]) or, with --method sum, the sum of raw frames. "
        "Writes the Answer table (one row per shell, smallest radius first), a JSON sidecar (R, sigma_R, "
        "weights, beta's, centre, background with standard errors, the shell search, diagnostics) and a PNG "
        "report. --method: unbinned (electron table; default for .h5), binned "
        "(count map; default for .npy, electron tables are histogrammed), sum (raw-frame sum .npy). A map "
        "fitted binned is an accumulated camera image (intensities: counts per electron and gain spread) with "
        "--intensity, or when it holds a negative or non-integer value: then it is divided by its dispersion "
        "phi, estimated from the fit's residuals (pixel variance over mean, g (1 + cv^2)), standard errors "
        "and the shell search's significance follow, and the sidecar reports phi. --counts fits such a map "
        "as Poisson counts.",
    )
    p.add_argument("input", help="electron table (.h5) or map (.npy)")
    p.add_argument("--out", required=True, help="Answer file to write (HDF5)")
    p.add_argument("--sidecar", default=None, help="JSON sidecar (default: ANSWER with suffix .json)")
    p.add_argument("--plot", default=None, help="PNG report (default: ANSWER with suffix .png; 'none' to skip)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--intensity", dest="intensity", action="store_const", const=True, default=None,
                      help="the map is an accumulated camera image (quasi-likelihood; default: when it holds a "
                      "negative or non-integer value)")
    kind.add_argument("--counts", dest="intensity", action="store_const", const=False,
                      help="the map holds electron counts (Poisson; default for integer maps)")
    add_settings_arguments(p, FitSettings)
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from sevi_lib.fit.files import fit_file, output_paths

    settings = settings_from_args(FitSettings, args)
    log = None if args.quiet else (lambda line: print(line, flush=True))
    _, _, plot = output_paths(args.out, args.sidecar, args.plot)
    result, (x, z, w), method = fit_file(args.input, args.out, args.sidecar, settings, log=log,
                                         intensity=args.intensity,
                                         also_writes=[plot] if plot else [])
    if plot is not None:
        from sevi_lib.report.plots import fit_report, save_figure

        save_figure(fit_report(result, x, z, w, title=f"{Path(args.input).name}: {method} fit"), plot)
    for line in result.summary_lines():
        print(line)
    if not result.converged:
        print("sevi fit: warning: the optimiser did not converge; see the sidecar diagnostics")
    if not_poisson(result.dispersion):
        print(f"sevi fit: warning: the map's pixels vary {result.dispersion['phi']:.3g} times their mean, not "
              "as Poisson counts; if it is an accumulated camera image, fit it with --intensity")
    return 0


def not_poisson(dispersion):
    """Whether a count-map fit's dispersion (:attr:`FitResult.dispersion`) rules out Poisson counts:
    phi above :data:`~sevi_lib.fit.dispersion.PHI_WARN` and above 1 by five standard errors."""
    from sevi_lib.fit.dispersion import PHI_WARN

    if not dispersion or dispersion.get("quasi_likelihood"):
        return False
    phi, se = dispersion.get("phi", float("nan")), dispersion.get("phi_se", float("nan"))
    return bool(phi > PHI_WARN and phi - 1.0 > 5.0 * se)
