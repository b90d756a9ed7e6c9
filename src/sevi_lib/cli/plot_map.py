"""``sevi plot-map COUNT_MAP.npy --out MAP.png``: the count map, with the fitted centre and radii."""


def register(sub):
    p = sub.add_parser(
        "plot-map", help="picture of a count map, marking the fitted image centre and shell radii",
        description="Draw a count map (.npy, Image[ix, iz]) on a log colour scale, x horizontal and z (the "
        "polarisation axis) vertical. With --fit-sidecar, the image centre the fit found is marked with a cross "
        "(its offset from the screen centre in pixels in the legend) and every fitted shell radius is drawn as a "
        "circle around it. Written atomically; the output is checked before any work.",
    )
    p.add_argument("count_map", help="count map (.npy, sevi accumulate --count-map)")
    p.add_argument("--fit-sidecar", help="JSON sidecar of sevi fit (its centre and R)")
    p.add_argument("--out", required=True, help="picture to write (.png)")
    p.add_argument("--bin-px", type=int, default=4, help="pixels summed per side before drawing (default 4)")
    p.set_defaults(func=run)


def run(args):
    import json

    import numpy as np

    from sevi_lib.core.errors import InputError
    from sevi_lib.core.io import check_outputs, read_map
    from sevi_lib.report.plots import count_map_figure, save_figure

    if args.bin_px < 1:
        raise InputError(f"--bin-px must be >= 1, got {args.bin_px}")
    check_outputs([args.out], [args.count_map, args.fit_sidecar])
    image = read_map(args.count_map)
    centre, radii = None, None
    if args.fit_sidecar:
        try:
            with open(args.fit_sidecar) as fh:
                side = json.load(fh)
        except (OSError, ValueError) as exc:
            raise InputError(f"{args.fit_sidecar}: cannot read the fit sidecar ({exc})") from None
        try:
            centre = tuple(float(v) for v in side.get("centre", (0.0, 0.0)))
            radii = [float(r) for r in side["R"]]
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{args.fit_sidecar}: not a fit sidecar (no R list or centre pair)") from None
        if len(centre) != 2 or not np.all(np.isfinite([*centre, *radii])):
            raise InputError(f"{args.fit_sidecar}: centre and R must be finite (centre {centre}, R {radii})")
    title = f"{float(np.sum(image)):.0f} electrons" + ("" if radii is None else f", {len(radii)} shell(s) fitted")
    save_figure(count_map_figure(image, centre=centre, radii=radii, title=title, bin_px=args.bin_px), args.out)
    print(f"{args.out}: count map" + ("" if centre is None else
                                      f", centre ({512 * centre[0]:+.2f}, {512 * centre[1]:+.2f}) px marked"))
    return 0
