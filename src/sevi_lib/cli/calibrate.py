"""``sevi calibrate FIT.h5 FIT.json --out CALIBRATED.h5``: correct the fit for the detector's response."""

import sys

from sevi_lib.calibrate.settings import CalibrationSettings
from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.core.errors import InputError
from sevi_lib.detect.params import DetectorParams


def register(sub):
    p = sub.add_parser(
        "calibrate", help="correct the fit for what detection does, measured on simulated frames",
        description="Simulate frames at the fitted parameters (same electrons per frame), detect them with the "
        "same detector settings, fit the detected electrons and the true positions of the simulated frames, and "
        "subtract the difference (the detector's bias) from the fit. The bias's statistical error (spread over "
        "independent blocks of calibration frames) is added in quadrature to the standard errors. Writes the "
        "corrected Answer table and a JSON sidecar (corrected answer, uncorrected fit, bias, its error, passes).",
    )
    p.add_argument("answer", help="the fit's Answer file (sevi fit --out)")
    p.add_argument("sidecar", help="the fit's JSON sidecar (sevi fit --sidecar)")
    p.add_argument("--electrons", default=None, help="the electron file the fit read (its n_frames attribute "
                   "is the number of frames of the data)")
    p.add_argument("--n-frames", type=int, default=None, help="frames of the data (instead of --electrons)")
    p.add_argument("--camera", default=None, metavar="CAMERA.json", help="the data's camera survey (sevi survey): "
                   "its read noise and hot pixels are rendered into the calibration frames, which are detected "
                   "with it (default: the published camera)")
    p.add_argument("--out", required=True, help="corrected Answer file to write (HDF5)")
    p.add_argument("--out-sidecar", required=True, help="JSON sidecar of the corrected answer")
    p.add_argument("--threads", type=int, default=1, help="detection threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_settings_arguments(p, CalibrationSettings, title="calibration settings (the workflow's 'calibrate:' section)")
    add_settings_arguments(p, DetectorParams, title="detector settings (the workflow's 'detect:' section)",
                           prefix="det_")
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.calibrate.response import calibrate_files

    if args.threads < 1:
        raise InputError("--threads must be >= 1")
    settings = settings_from_args(CalibrationSettings, args)
    if args.quiet:
        settings = settings_from_args(CalibrationSettings, args, progress_seconds=0.0)
    detector = settings_from_args(DetectorParams, args, prefix="det_")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    res = calibrate_files(args.answer, args.sidecar, args.out, args.out_sidecar, electrons=args.electrons,
                          n_frames=args.n_frames, detector=detector, settings=settings, threads=args.threads, log=log,
                          camera=args.camera)
    unc = res["uncorrected"]
    for j in range(len(res["R"])):
        print(f"shell {j}: R = {res['R'][j]:.6f} (bias {res['bias']['R'][j]:+.1e} +- {res['bias_se']['R'][j]:.1e}), "
              f"beta_2 = {res['beta'][j][0]:.4f} +- {res['se_beta'][j][0]:.4f} (uncorrected {unc['beta'][j][0]:.4f}), "
              f"expected distance {res['expected_distance'][j]:.4f} (uncorrected {unc['expected_distance'][j]:.4f})")
    return 0
