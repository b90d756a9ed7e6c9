"""``sevi plot-camera CAMERA.json --out CAMERA.png``: the spot model a camera survey measured."""


def register(sub):
    p = sub.add_parser(
        "plot-camera", help="picture of the spot model a camera survey measured (gain law, radial profile)",
        description="Draw the spot model of a camera survey (sevi survey's JSON): left, the histogram of the "
        "isolated spots' gains (spots per count) with the fitted gamma law, its mean and cv with standard errors; "
        "right, the spots' mean radial profile (in widths) against the Gaussian model exp(-r^2/2), the width "
        "with its standard error in the title. A survey that measured no spot model gives a figure that says so. "
        "Written atomically; the output is checked before any work.",
    )
    p.add_argument("camera", help="camera survey (JSON, sevi survey --out)")
    p.add_argument("--out", required=True, help="picture to write (.png)")
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.core.io import check_outputs
    from sevi_lib.detect.camera import read_survey

    check_outputs([args.out], [args.camera])
    survey = read_survey(args.camera)
    write_camera_png(survey, args.out)
    print(f"{args.out}: spot model of {args.camera}" + ("" if survey.spot else " (none measured)"))
    return 0


def write_camera_png(survey, path):
    """Draw :func:`sevi_lib.report.plots.camera_figure` of `survey` and save it atomically at `path`."""
    from sevi_lib.report.plots import camera_figure, save_figure

    save_figure(camera_figure(survey), path)
