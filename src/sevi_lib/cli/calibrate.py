"""``sevi calibrate FIT.h5 FIT.json --out CALIBRATED.h5``: correct the fit for the detector's response.

``sevi calibrate-shard FIT.h5 FIT.json --shard I --shards K --out SHARD.h5`` makes one frame range
of the calibration frames; ``sevi calibrate ... --shard-files SHARD.h5 ...`` then fits and
combines them instead of simulating the frames itself (the same answer, bit for bit).
"""

import sys

from sevi_lib.calibrate.settings import CalibrationSettings
from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.core.errors import InputError
from sevi_lib.detect.settings import DetectorParams


def _common(p):
    """Arguments of both commands: the fit, the data's frames, the camera, settings, detector."""
    p.add_argument("answer", help="the fit's Answer file (sevi fit --out)")
    p.add_argument("sidecar", help="the fit's JSON sidecar (sevi fit --sidecar)")
    p.add_argument("--electrons", default=None, help="the electron file the fit read (its n_frames attribute "
                   "is the number of frames of the data)")
    p.add_argument("--n-frames", type=int, default=None, help="frames of the data (instead of --electrons)")
    p.add_argument("--camera", default=None, metavar="CAMERA.json", help="the data's camera survey (sevi survey): "
                   "its read noise and hot pixels are rendered into the calibration frames, which are detected "
                   "with it (default: the published camera)")
    p.add_argument("--threads", type=int, default=1, help="detection threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_settings_arguments(p, CalibrationSettings, title="calibration settings (the workflow's 'calibrate:' section)")
    add_settings_arguments(p, DetectorParams, title="detector settings (the workflow's 'detect:' section)",
                           prefix="det_")


def register(sub):
    p = sub.add_parser(
        "calibrate", help="correct the fit for what detection does, measured on simulated frames",
        description="Simulate frames at the fitted parameters (same electrons per frame), detect them with the "
        "same detector settings, fit the detected electrons and the true positions of the simulated frames, and "
        "subtract the difference (the detector's bias) from the fit. The bias's statistical error (spread over "
        "independent blocks of calibration frames) is added in quadrature to the standard errors. Writes the "
        "corrected Answer table and a JSON sidecar (corrected answer, uncorrected fit, bias, its error, passes). "
        "With --shard-files the calibration frames of the first pass come from 'sevi calibrate-shard' files "
        "(made with the same fit, settings, detector and camera) instead of being simulated here.",
    )
    _common(p)
    p.add_argument("--shard-files", nargs="+", default=None, metavar="SHARD.h5",
                   help="all the shards of the calibration frames (sevi calibrate-shard --out), in any order")
    p.add_argument("--out", required=True, help="corrected Answer file to write (HDF5)")
    p.add_argument("--out-sidecar", required=True, help="JSON sidecar of the corrected answer")
    p.set_defaults(func=run)

    s = sub.add_parser(
        "calibrate-shard", help="simulate and detect one frame range of the calibration frames (one shard)",
        description="Simulate, render and detect shard I of K of the calibration frames (frames [I n / K, "
        "(I + 1) n / K) of the n that 'sevi calibrate' would simulate at the fitted parameters) and write their "
        "detected electrons and true positions. Every frame depends only on the seed and its index, so "
        "'sevi calibrate --shard-files' gives the same answer for any K.",
    )
    _common(s)
    s.add_argument("--shard", type=int, required=True, help="which shard, 0 <= I < K")
    s.add_argument("--shards", type=int, required=True, help="number of shards K")
    s.add_argument("--out", required=True, help="shard file to write (HDF5)")
    s.set_defaults(func=run_shard)


def _settings(args):
    if args.threads < 1:
        raise InputError("--threads must be >= 1")
    overrides = {"progress_seconds": 0.0} if args.quiet else {}
    settings = settings_from_args(CalibrationSettings, args, **overrides)
    detector = settings_from_args(DetectorParams, args, prefix="det_")
    return settings, detector


def run(args):
    from sevi_lib.calibrate.files import calibrate_files

    settings, detector = _settings(args)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    res = calibrate_files(args.answer, args.sidecar, args.out, args.out_sidecar, electrons=args.electrons,
                          n_frames=args.n_frames, detector=detector, settings=settings, threads=args.threads, log=log,
                          camera=args.camera, shard_files=args.shard_files)
    unc = res["uncorrected"]
    for j in range(len(res["R"])):
        print(f"shell {j}: R = {res['R'][j]:.6f} (bias {res['bias']['R'][j]:+.1e} +- {res['bias_se']['R'][j]:.1e}), "
              f"beta_2 = {res['beta'][j][0]:.4f} +- {res['se_beta'][j][0]:.4f} (uncorrected {unc['beta'][j][0]:.4f}), "
              f"expected distance {res['expected_distance'][j]:.4f} (uncorrected {unc['expected_distance'][j]:.4f})")
    return 0


def run_shard(args):
    from sevi_lib.calibrate.files import calibrate_shard_files

    settings, detector = _settings(args)
    sample = calibrate_shard_files(args.answer, args.sidecar, args.out, shard=args.shard, shards=args.shards,
                                   electrons=args.electrons, n_frames=args.n_frames, detector=detector,
                                   settings=settings, threads=args.threads, camera=args.camera)
    stop = sample.n_frames if sample.frame_stop is None else sample.frame_stop
    print(f"calibration shard {args.shard}/{args.shards}: frames {sample.frame_start} .. {stop - 1} of "
          f"{sample.n_frames}, {sample.true_x.size} electrons rendered, {sample.detected_x.size} detected "
          f"({sample.seconds:.1f} s)")
    return 0
