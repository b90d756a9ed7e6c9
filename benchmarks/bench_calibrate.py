"""What the calibration's bias error is made of: shot noise of the simulated electrons or detection noise.

The calibration measures ``bias = fit(detected) - fit(true)`` on simulated frames; its error is
the spread of that paired difference over blocks of frames (``sevi_lib.calibrate.response_bias``).
This script splits that spread, per block of frames, for the peaked shell of the pull test
(``tests/calibrate/test_pulls.py``: I(c) ~ exp(6 (c^2 - 1)), R 0.5, sigma_R 0.007, 60 electrons
per frame, spots piling up at the poles), fits as the calibration does (image centre known):

- ``unpaired``  Var(d), d = fit(detected) - simulated parameters: the error if the truth were not
  used (shot noise of the electrons plus detection);
- ``paired``    Var(d - t), t = fit(true) - simulated parameters: the calibration's error;
- ``optimal``   Var(d) (1 - rho(d, t)^2) = Var(d - c t) with the best c = Cov(d, t) / Var(t): the
  error with all the shot noise that t can explain removed. ``paired - optimal`` = (c - 1)^2
  Var(t) is the shot noise the paired design leaves (c != 1 because detection loses and moves
  electrons: a detected fit follows the electrons' fluctuation by c, not by 1);
- ``render``    Var(d1 - d2) / 2, the same electrons rendered and detected twice with other render
  seeds (spot gains, shapes, noise): detection noise at fixed electrons. ``optimal - render`` is
  what depends on where the electrons fell (pile-up configurations) beyond t's linear part.

Each is summed over beta_2 .. beta_2n with the distance weights 2 / (4 i + 1) (the expected
squared distance of a block) and given per beta_2, beta_4; the spreads scale as 1 / frames, so
the ratios say how many calibration frames an estimator that removed the shot noise would need
for the paired design's error: optimal / paired of them. The variances come from ``--blocks``
blocks, so they carry about sqrt(2 / blocks) relative error.

Run (small sizes; the numbers below):

    NUMBA_NUM_THREADS=2 python benchmarks/bench_calibrate.py --frames 600 --blocks 30 --threads 2

Measured 2026-12-06, the 2-core development machine (heavily shared: load 8-11), 600 frames in
30 blocks of 20 (about 1190 electrons a block; detected / true 1.004), seed 1, default detector,
published camera; 492 s to simulate, render and detect twice, 701 s for the 90 fits:

    slope c = Cov(d, t) / Var(t), beta_2 .. beta_8: [0.975 0.983 0.972 0.968]
    variance per block    distance^2      beta_2      beta_4  / paired
    unpaired               1.401e-02   3.868e-04   3.717e-03     16.19
    paired                 8.657e-04   6.596e-06   8.904e-05      1.00
    optimal                8.521e-04   6.354e-06   8.801e-05      0.98
    render                 5.321e-04   5.745e-06   7.465e-05      0.61
    shot (true fit)        1.378e-02   3.999e-04   3.753e-03     15.92
    paired error^2 = shot noise left 2 % + detection 98 % (of which render/detect randomness at
    fixed electrons 61 %, electron configuration 37 %)

The paired design already removes the shot noise (its variance is 1/16 of the unpaired one, and
only 2 % of what is left is shot noise that a better use of the true fit could remove): the
calibration's error is detection noise, which only more calibration frames reduce, so fewer
frames give a proportionally larger bias error (variance D^2 / fraction). Here D^2, the
detection noise per frame, is 1/16 of the shot noise (distance^2), so the corrected answer's
expected distance would be sqrt(1 + D^2/P (1 + 1/fraction)) of the Poisson one: 1.06x at
fraction 1, 1.09x at 0.5, 1.15x at 0.25 (each variance above has about 26 % relative error).

``--compare-blocks SEED ...`` instead checks the calibration's block estimates: the bias's error
from the one-step block shifts (:func:`sevi_lib.calibrate.response.block_shifts`, what
``response_bias`` uses) against refits of every block, on `--frames` frames in `--blocks`
blocks per seed. Measured 2026-12-06, same machine (load 12-17), ``--frames 400 --blocks 8
--compare-blocks 1 2 3``: one-step / refits as a distance 1.011, 0.999, 1.001 (per coefficient
0.96-1.07); the block estimates 1.4-2.9 s against 143-233 s for the 16 refits.
"""

import argparse
import time

import numpy as np

from sevi_lib.core.angular import distance_weights
from sevi_lib.core.shells import Shells

PEAKED = [1.7789, 1.6244, 0.9107, 0.3719, 0.1197, 0.0318, 0.0072, 0.0014, 0.0002, 0.0, 0.0, 0.0]


def render_detect(ids_offsets_xz, render_seed, threads, chunk=16):
    """Detected (x, z, frame) of frames rendered from given electrons with `render_seed`."""
    from numba import get_num_threads

    from sevi_lib.detect.blobs import FrameDetector
    from sevi_lib.simulate.render import render_chunk, spot_kernel

    spots = spot_kernel(None)
    out = []
    buf = np.empty((chunk, 1024, 1024), dtype=np.uint8)
    with FrameDetector(None, threads=threads) as det:
        for ids, offsets, x, z in ids_offsets_xz:
            frames = buf[: len(ids)]
            render_chunk(ids, offsets, x, z, render_seed, frames, n_workers=get_num_threads(), spots=spots)
            found = det.process(ids.astype(np.int32), frames)
            out.append((found["x"].copy(), found["z"].copy(), found["ImageId"].astype(np.int64)))
    return [np.concatenate([o[i] for o in out]) for i in range(3)]


def compare_blocks(args):
    """The bias's error from one-step block estimates against refits of the blocks, per seed."""
    from sevi_lib.calibrate.response import expected_distance, response_bias, simulate_response
    from sevi_lib.detect.settings import DetectorParams

    shell = Shells([0.5], [0.007], [PEAKED])
    for seed in args.compare_blocks:
        sample = simulate_response(shell, args.frames, [args.per_frame], detector=DetectorParams(), seed=seed,
                                   threads=args.threads, blocks=args.blocks)
        kw = {"n_beta": shell.n_beta, "n_shells": 1, "centre": (0.0, 0.0)}
        one, fits = response_bias(sample, **kw), response_bias(sample, block_fits=True, **kw)
        d1, d2 = expected_distance(one["se"]["beta"])[0], expected_distance(fits["se"]["beta"])[0]
        ratio = {k: float(one["se"][k][0] / fits["se"][k][0]) for k in ("R", "sigma_R", "ln_weights")}
        print(f"seed {seed}: {args.frames} frames in {args.blocks} blocks; block estimates {one['block_seconds']:.1f} s "
              f"(one step) vs {fits['block_seconds']:.1f} s ({2 * args.blocks} fits); the two fits of all frames "
              f"{one['seconds'] - one['block_seconds']:.1f} s")
        print("  bias error one-step / block fits: " + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items())
              + f"; beta_2 .. beta_24 {np.round(one['se']['beta'][0] / fits['se']['beta'][0], 2).tolist()}")
        print(f"  as a distance: {d1:.3e} vs {d2:.3e} (ratio {d1 / d2:.3f})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--per-frame", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare-blocks", type=int, nargs="+", default=None, metavar="SEED",
                    help="instead: the bias's error from one-step block estimates vs block refits, these seeds")
    args = ap.parse_args()
    if args.compare_blocks:
        return compare_blocks(args)

    from sevi_lib.fit import fit_electrons
    from sevi_lib.simulate.electrons import iter_frame_electrons
    from sevi_lib.simulate.settings import SimulationSettings

    shell = Shells([0.5], [0.007], [PEAKED])
    n_beta = shell.n_beta
    t0 = time.perf_counter()
    chunks = []
    for ch in iter_frame_electrons(shell, SimulationSettings(n_frames=args.frames, electrons_per_shell=[args.per_frame],
                                                          detection_loss=0.0, seed=args.seed, chunk=16)):
        ids = np.arange(ch.frame_start, ch.frame_start + ch.n_frames, dtype=np.int64)
        chunks.append((ids, ch.frame_offsets, np.ascontiguousarray(ch.detected["x"]),
                       np.ascontiguousarray(ch.detected["z"]), ch.detected["ImageId"].astype(np.int64)))
    tx = np.concatenate([c[2] for c in chunks])
    tz = np.concatenate([c[3] for c in chunks])
    tf = np.concatenate([c[4] for c in chunks])
    dets = [render_detect([c[:4] for c in chunks], args.seed * 1000 + r, args.threads) for r in (1, 2)]
    t_sim = time.perf_counter() - t0

    def fit_beta(x, z):
        return fit_electrons(x, z, n_beta=n_beta, n_shells=1, centre=(0.0, 0.0)).beta[0]

    t0 = time.perf_counter()
    T, D1, D2 = [], [], []
    for b in range(args.blocks):
        sel = lambda f: (f * args.blocks // args.frames) == b  # noqa: E731
        T.append(fit_beta(tx[sel(tf)], tz[sel(tf)]))
        D1.append(fit_beta(dets[0][0][sel(dets[0][2])], dets[0][1][sel(dets[0][2])]))
        D2.append(fit_beta(dets[1][0][sel(dets[1][2])], dets[1][1][sel(dets[1][2])]))
    t_fit = time.perf_counter() - t0
    truth = np.asarray(PEAKED)
    t, d, d2 = np.array(T) - truth, np.array(D1) - truth, np.array(D2) - truth

    var = lambda a: np.var(a, axis=0, ddof=1)  # noqa: E731
    cov = np.array([np.cov(d[:, i], t[:, i])[0, 1] for i in range(n_beta)])
    c = cov / var(t)
    parts = {"unpaired": var(d), "paired": var(d - t), "optimal": var(d) - cov**2 / var(t),
             "render": var(d - d2) / 2, "shot (true fit)": var(t)}
    w = distance_weights(n_beta)
    n_e = tx.size / args.blocks
    print(f"peaked shell, {args.per_frame:g} electrons/frame, {args.frames} frames in {args.blocks} blocks "
          f"({args.frames // args.blocks} frames, ~{n_e:.0f} electrons each; detected/true "
          f"{dets[0][0].size / tx.size:.3f}); simulate+render+detect x2 {t_sim:.0f} s, "
          f"{3 * args.blocks} fits {t_fit:.0f} s")
    print(f"slope c = Cov(d, t) / Var(t), beta_2 .. beta_8: {np.round(c[:4], 3)}")
    print(f"{'variance per block':<20s}{'distance^2':>12s}{'beta_2':>12s}{'beta_4':>12s}{'/ paired':>10s}")
    for name, v in parts.items():
        share = np.sum(w * v) / np.sum(w * parts["paired"])
        print(f"{name:<20s}{np.sum(w * v):12.3e}{v[0]:12.3e}{v[1]:12.3e}{share:10.2f}")
    p, o, r = (np.sum(w * parts[k]) for k in ("paired", "optimal", "render"))
    print(f"paired error^2 = shot noise left {100 * (p - o) / p:.0f} % + detection {100 * o / p:.0f} % "
          f"(of which render/detect randomness at fixed electrons {100 * r / p:.0f} %, "
          f"electron configuration {100 * (o - r) / p:.0f} %)")
    print(f"the paired design's error needs {p / o:.2f}x the frames an estimator free of shot noise would")


if __name__ == "__main__":
    main()
