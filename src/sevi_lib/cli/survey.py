"""``sevi survey``: estimate the camera (read noise, hot pixels, spot model, pile-up prior) from a sample of frames."""

import sys

from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.detect.settings import SurveySettings


def register(sub):
    p = sub.add_parser(
        "survey", help="estimate the camera: read noise, hot pixels, spot model, pile-up prior (JSON for 'sevi detect "
        "--camera')",
        description="Read a sample of frames spread over a FinalImage file and estimate the camera: the read "
        "noise (standard deviation, counts) and pedestal by maximum likelihood of the clipped, rounded normal "
        "fitted to the pixels far from any light, and the hot pixels (lit in most sampled frames, well above "
        "their neighbours), from n_sample frames; the spot model (width and its spread, correlation, gamma gain "
        "law, saturation) from the isolated spots of spot_fraction of the frames (64 to 1000); and, when the "
        "spot model is not the published one, the pile-up prior detection counts electrons with. Writes them "
        "as JSON with the detection threshold the noise implies (pedestal + noise_sigmas sd); 'sevi detect "
        "--camera' uses it. Published frames: noise 0, no hot pixels, the published spot model. The output is "
        "checked before any work and written atomically.",
    )
    p.add_argument("frames", help="HDF5 test file with a FinalImage dataset")
    p.add_argument("--out", required=True, metavar="CAMERA.json", help="survey to write (JSON)")
    p.add_argument("--threads", type=int,
                   help="threads: decompression, the spot sample's chunks in parallel, the pile-up measurement (default 1)")
    p.add_argument("--plot", metavar="CAMERA.png", help="also draw the measured spot model (as sevi plot-camera)")
    add_settings_arguments(p, SurveySettings, title="survey settings")
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.detect.camera import survey_file

    settings = settings_from_args(SurveySettings, args)
    if args.plot:
        from sevi_lib.core.io import check_outputs

        check_outputs([args.out, args.plot], [args.frames])
    survey = survey_file(args.frames, args.out, settings, threads=args.threads or 1, progress=10.0)
    if args.plot:
        from sevi_lib.cli.plot_camera import write_camera_png

        write_camera_png(survey, args.plot)
    print("\n".join(survey.summary_lines()) + f"\n-> {args.out}" + (f", {args.plot}" if args.plot else ""),
          file=sys.stderr)
    return 0
