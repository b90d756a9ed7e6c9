"""``sevi spectrum INPUT --tsv SPECTRUM.tsv``: photoelectron spectrum I(R), beta_2(R), beta_4(R)."""


def register(sub):
    p = sub.add_parser(
        "spectrum", help="photoelectron spectrum I(R) and beta_2(R), beta_4(R) with error bands (rBasex)",
        description="Invert the projected image about the fitted image centre with PyAbel's rBasex and write "
        "the photoelectron spectrum: electrons per unit radius I(R) and the anisotropy beta_2(R), beta_4(R) "
        "(this project's normalisation I(c) = 1/2 + sum beta P: the usual beta_2 is twice it), per one-pixel "
        "radius bin, with standard errors from Poisson-resampled count maps. INPUT is an electron table (.h5) "
        "or a count map (.npy). With --fit-sidecar the fit's centre is used and its shells are marked.",
    )
    p.add_argument("input", help="electron table (.h5) or count map (.npy)")
    p.add_argument("--tsv", required=True, help="spectrum table to write (R, I, I_se, beta2, beta2_se, beta4, beta4_se)")
    p.add_argument("--plot", default=None, help="figure to write (.png)")
    p.add_argument("--fit-sidecar", default=None, help="JSON sidecar of sevi fit (centre, fitted shells)")
    p.add_argument("--order", type=int, default=4, help="highest even Legendre order (default 4)")
    p.add_argument("--bootstrap", type=int, default=40, help="Poisson-resampled maps for the errors (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from sevi_lib.fit.files import spectrum_file

    spec, shells = spectrum_file(args.input, args.tsv, args.fit_sidecar, order=args.order, n_boot=args.bootstrap,
                                 seed=args.seed,
                                 also_writes=[args.plot] if args.plot else [])
    if args.plot:
        from sevi_lib.report.plots import save_figure, spectrum_figure

        save_figure(spectrum_figure(spec, shells, title=f"{Path(args.input).name}: photoelectron spectrum"),
                    args.plot)
    print(f"{args.tsv}: {len(spec.R)} radii, {spec.n_boot} resampled maps, centre "
          f"({512 * spec.centre[0]:+.2f}, {512 * spec.centre[1]:+.2f}) px")
    return 0
