"""Benchmarks of the shell fit (issue 4).

Three parts, each printing ratios against a baseline run in the same process:

``speed``
    Wall time of the unbinned fit of 10^6 electrons (two shells, N = 12) on one core, against
    one exact (quadrature, no spline tables) evaluation of the projected basis at every electron.
``rbasex``
    Variance of beta_2 and beta_4 over repeated simulations: the binned fit of the standard
    1024 x 1024 count map against PyAbel's rBasex on a count map of the same electrons with the
    same pixel size but an odd number of pixels (rBasex wants the origin on a pixel centre; the
    standard map has it on a pixel corner). rBasex's beta's (I = 1 + sum b_l P_l) are averaged
    over the shell's radial peak (R +- 2 sigma_R, weighted by I(r)) and halved to this project's
    convention (I = 1/2 + sum beta_l P_l). PyAbel is a dependency of sevi.
``methods``
    The three estimators on the same simulated camera frames: unbinned fit of the detected
    electrons, binned fit of their count map, and the fit of the raw-frame sum; plus the unbinned
    fit of the true electron positions as the reference. Prints the per-shell distances to the
    truth, averaged over repetitions.

Run ``python benchmarks/bench_fit.py --quick`` for a small smoke run; the defaults reproduce the
figures of docs/benchmarks.md. Set ``NUMBA_NUM_THREADS=1`` for the one-core speed figure.
"""

import argparse
import time
import warnings

import numpy as np

from sevi_lib import fit
from sevi_lib.core.geometry import PIX_PER_UNIT
from sevi_lib.core.score import shell_distance
from sevi_lib.fit import projection
from sevi_lib.simulate.electrons import sample_shell

PEAKED = np.array([1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0])
SOFT = np.array([0.8, 0.6, 0.3, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
SHELLS = [(0.5, 0.0065, PEAKED), (0.8, 0.0085, SOFT)]


def electrons(n_per_shell, seed, shells=SHELLS):
    xs, zs = [], []
    for j, (R, s, beta) in enumerate(shells):
        _, _, x, z = sample_shell(R, s, beta, int(n_per_shell), 1000 * seed + j)
        xs.append(x)
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


def bench_speed(n_total):
    x, z = electrons(n_total // 2, 1)
    t0 = time.perf_counter()
    for j, (R, s, _) in enumerate(SHELLS):
        projection.projected_basis(x, z, R, s, 12)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = fit.fit_electrons(x, z)
    t_fit = time.perf_counter() - t0
    print(f"speed: unbinned fit of {n_total:.0e} electrons (N = 12): {t_fit:.1f} s, {res.n_iter} iterations; "
          f"one exact basis evaluation (both shells): {t_exact:.1f} s; ratio fit / exact evaluation = "
          f"{t_fit / t_exact:.2f}")


def rbasex_betas(img_odd, shells, order):
    import abel

    warnings.filterwarnings("ignore", module="abel")
    n = img_odd.shape[0]
    c = n // 2
    # rows = z (symmetry axis vertical), columns = x
    _, distr = abel.rbasex.rbasex_transform(img_odd.T, origin=(c, c), order=order, rmax=c)
    rib = distr.rIbeta()
    r, I, beta = rib[0], rib[1], rib[2:]
    out = []
    for R, s, _ in shells:
        rp = R * PIX_PER_UNIT
        sel = np.abs(r - rp) <= 2 * s * PIX_PER_UNIT
        w = np.maximum(I[sel], 0)
        out.append(0.5 * (beta[:, sel] @ w) / w.sum())
    return np.array(out)  # (S, order // 2)


def bench_rbasex(reps, n_per_shell, n_beta):
    shells = [(R, s, b[:n_beta]) for R, s, b in SHELLS]
    bf, br = [], []
    t_fit = t_rb = 0.0
    for rep in range(reps):
        x, z = electrons(n_per_shell, 100 + rep, shells)
        img, _, _ = np.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])
        half = 1025 / 1024.0
        odd, _, _ = np.histogram2d(x, z, bins=1025, range=[[-half, half], [-half, half]])
        t0 = time.perf_counter()
        res = fit.fit_count_map(img, n_beta=n_beta)
        t_fit += time.perf_counter() - t0
        t0 = time.perf_counter()
        rb = rbasex_betas(odd, shells, 2 * n_beta)
        t_rb += time.perf_counter() - t0
        bf.append(res.beta[:, :2])
        br.append(rb[:, :2])
    bf, br = np.array(bf), np.array(br)
    truth = np.array([b[:2] for _, _, b in shells])
    print(f"rbasex: {reps} simulations of {n_per_shell} electrons per shell, N = {n_beta} "
          f"(fit {t_fit / reps:.1f} s, rbasex {t_rb / reps:.1f} s per map)")
    for j in range(len(shells)):
        for i, name in enumerate(["beta_2", "beta_4"]):
            vf, vr = bf[:, j, i].var(ddof=1), br[:, j, i].var(ddof=1)
            print(f"  shell {j} {name}: fit mean {bf[:, j, i].mean():+.4f} sd {np.sqrt(vf):.4f} | rbasex mean "
                  f"{br[:, j, i].mean():+.4f} sd {np.sqrt(vr):.4f} | truth {truth[j, i]:+.4f} | "
                  f"variance ratio rbasex / fit = {vr / vf:.2f}")


def simulate_frames(n_frames, per_shell, seed):
    """Render frames from the published model; return raw sum, detected and true electrons."""
    from sevi_lib.detect import blobs as detect
    from sevi_lib.simulate import render

    rng = np.random.default_rng(seed)
    total = np.zeros((1024, 1024))
    frame = np.empty((1024, 1024), np.uint8)
    true_x, true_z, det_x, det_z = [], [], [], []
    saturated = 0
    detector = detect.FrameDetector()
    for k in range(n_frames):
        xs, zs = [], []
        for j, (R, s, beta) in enumerate(SHELLS):
            m = rng.poisson(per_shell)
            _, _, x, z = sample_shell(R, s, beta, m, int(rng.integers(2**31)))
            keep = rng.random(m) >= 0.1  # 10 % not detected (no spot), as the earlier stage
            xs.append(x[keep])
            zs.append(z[keep])
        x, z = np.concatenate(xs), np.concatenate(zs)
        A, sig, rho = render.draw_spot_params(len(x), rng)
        render.render_frame(x, z, A, sig, rho, out=frame)
        total += frame
        saturated += int(np.count_nonzero(frame == 255))
        d = detector.process([k], frame)
        true_x.append(x)
        true_z.append(z)
        det_x.append(d["x"])
        det_z.append(d["z"])
    return (total, np.concatenate(true_x), np.concatenate(true_z), np.concatenate(det_x),
            np.concatenate(det_z), saturated)


def bench_methods(reps, n_frames, per_shell, kernel_spots):
    kernel = fit.mean_spot(kernel_spots)
    names = ["true positions (unbinned)", "detected, unbinned", "detected, binned", "raw-frame sum"]
    dist = {k: [] for k in names}
    times = {k: 0.0 for k in names}
    for rep in range(reps):
        total, tx, tz, dx, dz, sat = simulate_frames(n_frames, per_shell, 500 + rep)
        print(f"methods rep {rep}: {len(tx)} electrons, {len(dx)} detected, {sat} saturated pixels in all frames")
        img, _, _ = np.histogram2d(dx, dz, bins=1024, range=[[-1, 1], [-1, 1]])
        for name, call in [
            (names[0], lambda: fit.fit_electrons(tx, tz)),
            (names[1], lambda: fit.fit_electrons(dx, dz)),
            (names[2], lambda: fit.fit_count_map(img)),
            (names[3], lambda: fit.fit_frame_sum(total, kernel)),
        ]:
            t0 = time.perf_counter()
            res = call()
            times[name] += time.perf_counter() - t0
            d = [shell_distance(res.beta[j], SHELLS[j][2]) for j in range(2)]
            dR = [res.R[j] - SHELLS[j][0] for j in range(2)]
            dist[name].append(d)
            print(f"  {name:28s} d = {d[0]:.4f} {d[1]:.4f}  dR = {dR[0]:+.5f} {dR[1]:+.5f}  "
                  f"expected d = {res.expected_distance[0]:.4f} {res.expected_distance[1]:.4f}")
    base = np.mean(dist[names[0]], axis=0)
    print(f"methods: {reps} x {n_frames} frames, {per_shell} electrons per shell per frame; mean distances "
          "(shell 0, shell 1) and ratio to the true-position fit")
    for name in names:
        m = np.mean(dist[name], axis=0)
        print(f"  {name:28s} {m[0]:.4f} {m[1]:.4f}   ratio {m[0] / base[0]:.2f} {m[1] / base[1]:.2f}   "
              f"{times[name] / reps:.1f} s per fit")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", default=["speed", "rbasex", "methods"])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--electrons", type=int, default=1_000_000, help="speed: electrons in all (default 1e6)")
    ap.add_argument("--reps", type=int, default=20, help="rbasex: simulations (default 20)")
    ap.add_argument("--rb-electrons", type=int, default=100_000, help="rbasex: electrons per shell (default 1e5)")
    ap.add_argument("--rb-nbeta", type=int, default=4, help="rbasex: orders in the truth and fitted by both (default 4)")
    ap.add_argument("--frames", type=int, default=2000, help="methods: frames per repetition (default 2000)")
    ap.add_argument("--method-reps", type=int, default=3, help="methods: repetitions (default 3)")
    ap.add_argument("--per-shell", type=float, default=40.0, help="methods: electrons per shell per frame")
    ap.add_argument("--kernel-spots", type=int, default=40_000)
    args = ap.parse_args()
    if args.quick:
        args.electrons, args.reps, args.rb_electrons = 100_000, 4, 20_000
        args.frames, args.method_reps, args.kernel_spots = 200, 1, 10_000
    if "speed" in args.parts:
        bench_speed(args.electrons)
    if "rbasex" in args.parts:
        bench_rbasex(args.reps, args.rb_electrons, args.rb_nbeta)
    if "methods" in args.parts:
        bench_methods(args.method_reps, args.frames, args.per_shell, args.kernel_spots)


if __name__ == "__main__":
    main()
