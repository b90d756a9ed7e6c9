"""``sevi fit INPUT --out ANSWER``: maximum-likelihood fit of the projected two-shell model."""

import json
from pathlib import Path

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT
from sevi_lib.core.io import read_detected, read_map, write_answer, write_text
from sevi_lib.fit import model as fit


def register(sub):
    p = sub.add_parser(
        "fit", help="fit both shells (R, sigma_R, weights, beta's) to electrons, a count map or a frame sum",
        description="Fit the projected two-shell model. INPUT is an HDF5 electron table (DetectedElectrons, "
        "the project's own or a published file), or a 1024 x 1024 .npy map: a count map "
        "(numpy.histogram2d convention, Image[ix, iz]) or, with --method sum, the sum of raw frames. "
        "Writes the Answer table, a JSON sidecar (R, sigma_R, weights, beta's with standard errors, "
        "diagnostics) and a PNG report.",
    )
    p.add_argument("input", help="electron table (.h5) or map (.npy)")
    p.add_argument("--out", required=True, help="Answer file to write (HDF5)")
    p.add_argument("--method", choices=fit.METHODS, default=None,
                   help="unbinned (electron table; default for .h5), binned (count map; default for .npy, "
                   "electron tables are histogrammed), sum (raw-frame sum .npy)")
    p.add_argument("--n-beta", type=int, default=12, help="beta's per shell, beta_2 .. beta_2N (default 12)")
    p.add_argument("--n-shells", type=int, default=2, help="number of shells (default 2)")
    p.add_argument("--sidecar", default=None, help="JSON sidecar (default: ANSWER with suffix .json)")
    p.add_argument("--plot", default=None, help="PNG report (default: ANSWER with suffix .png; 'none' to skip)")
    p.add_argument("--kernel-spots", type=int, default=40000,
                   help="spots rendered for the mean spot of --method sum (default 40000)")
    p.add_argument("--max-iter", type=int, default=60, help="iterations of the optimiser (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _pixel_points(img):
    ix, iz = np.nonzero(img)
    hp = 1.0 / PIX_PER_UNIT
    return -1.0 + (ix + 0.5) * hp, -1.0 + (iz + 0.5) * hp, img[ix, iz].astype(np.float64)


def run(args):
    path = Path(args.input)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if args.n_beta < 1 or args.n_shells < 1:
        raise InputError("--n-beta and --n-shells must be >= 1")
    log = None if args.quiet else (lambda line: print(line, flush=True))
    kw = dict(n_beta=args.n_beta, n_shells=args.n_shells, max_iter=args.max_iter, log=log)
    if path.suffix == ".npy":
        method = args.method or "binned"
        img = read_map(path)
        if method == "unbinned":
            raise InputError(f"{path}: --method unbinned needs an electron table, not a map")
        if method == "sum":
            kernel = fit.mean_spot(args.kernel_spots)
            result = fit.fit_frame_sum(img, kernel, what=str(path), **kw)
            x, z, w = _pixel_points(img)
            w = w / kernel.total
        else:
            result = fit.fit_count_map(img, what=str(path), **kw)
            x, z, w = _pixel_points(img)
    else:
        method = args.method or "unbinned"
        det = read_detected(path)
        x, z, w = det["x"], det["z"], None
        if method == "unbinned":
            result = fit.fit_electrons(x, z, **kw)
        elif method == "binned":
            img, _, _ = np.histogram2d(x, z, bins=N_PIX, range=[[-1, 1], [-1, 1]])
            result = fit.fit_count_map(img, what=str(path), **kw)
        else:
            raise InputError(f"{path}: --method sum needs the sum of raw frames (.npy), not an electron table")
    result.diagnostics["input"] = str(path)
    out = Path(args.out)
    write_answer(out, result.R, result.beta)
    sidecar = Path(args.sidecar) if args.sidecar else out.with_suffix(".json")
    write_text(sidecar, json.dumps(result.to_dict(), indent=1) + "\n")
    if (args.plot or "").lower() != "none":
        from sevi_lib.report.plots import fit_report, save_figure

        plot = Path(args.plot) if args.plot else out.with_suffix(".png")
        save_figure(fit_report(result, x, z, w, title=f"{path.name}: {method} fit"), plot)
    for j in range(len(result.R)):
        act = ", constraint I >= 0 active" if result.constraint_active[j] else ""
        print(f"shell {j}: R = {result.R[j]:.6f} +- {result.se_R[j]:.1e}, sigma_R = {result.sigma_R[j]:.5f} "
              f"+- {result.se_sigma_R[j]:.1e}, n = {result.weights[j]:.0f}, beta_2 = {result.beta[j, 0]:.4f} "
              f"+- {result.se_beta[j, 0]:.4f}, expected distance {result.expected_distance[j]:.4f} "
              f"(floor {result.floor[j]:.4f}){act}")
    if not result.converged:
        print("sevi fit: warning: the optimiser did not converge; see the sidecar diagnostics")
    return 0
