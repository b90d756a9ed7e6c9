"""Synthesis speed: the project's shard synthesis against the seed team's method, same process.

The seed team's method (team report, ``util/gen_my_pic_double.py``), reproduced in numpy: per
shell, tabulate the CDF of cos(theta) at 10^6 points (closed form, ``numpy.polynomial.legendre``),
map uniforms through it with ``np.interp``, draw r and phi, project, and bin with
``np.add.at`` into the 1024 x 1024 map; then normalise the map and scale to 255 (their full
view). The project: :func:`sevi_lib.nn.synth.simulate_maps` (numba, exact inverse CDF, binned in
the same kernel) and :func:`sevi_lib.nn.views.apply_view`, for the ``full`` view and for the
cheap default view (``fold`` + downsample 4).

Both run on the same parameter sets drawn from the pretraining prior. Printed: samples/s,
electrons/s and the ratio project / seed team. Run on a quiet machine for quotable figures::

    python benchmarks/bench_synth.py                    # 1 thread, 240k electrons per map
    python benchmarks/bench_synth.py --electrons 2000000 --samples 4 --threads 1
    python benchmarks/bench_synth.py --quick
"""

import argparse
import os
import time

import numpy as np


def seed_team_map(R, sigma_R, beta, n_electrons, rng, table_points=1_000_000):
    """One count map by the seed team's method (numpy): interp into a 10^6-point CDF table."""
    from numpy.polynomial import legendre as npleg

    m = np.zeros((1024, 1024))
    grid = np.linspace(-1.0, 1.0, table_points)
    for s in range(2):
        a = np.zeros(2 * beta.shape[1] + 1)
        a[0] = 0.5
        a[2::2] = beta[s]
        F = npleg.legval(grid, npleg.legint(a, lbnd=-1))
        n = int(n_electrons[s])
        c = np.interp(rng.random(n), F, grid)
        r = rng.normal(R[s], sigma_R[s], n)
        phi = rng.uniform(0, 2 * np.pi, n)
        x = r * np.sqrt(1 - c**2) * np.cos(phi)
        z = r * c
        ix = np.clip(((x + 1) * 512).astype(np.int64), 0, 1023)
        iz = np.clip(((z + 1) * 512).astype(np.int64), 0, 1023)
        np.add.at(m, (ix, iz), 1)
    return (m / m.sum() * 255).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=16, help="maps per method (default 16)")
    ap.add_argument("--electrons", type=int, default=120_000, help="electrons per shell (default 120000)")
    ap.add_argument("--threads", type=int, default=1, help="numba threads of the project's synthesis (default 1)")
    ap.add_argument("--quick", action="store_true", help="4 maps of 20000 electrons per shell")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.electrons = 4, 20_000

    from numba import set_num_threads

    from sevi_lib.nn.priors import pretrain_prior, sample
    from sevi_lib.nn.synth import simulate_maps
    from sevi_lib.nn.views import View, apply_view

    set_num_threads(args.threads)
    n = args.samples
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    draw = sample(pretrain_prior({"electrons": [args.electrons, args.electrons]}), n, rng)
    t_prior = time.perf_counter() - t0
    seeds = rng.integers(0, 2**32, size=(n, 2))
    electrons = int(draw.n_electrons.sum())

    # warm up (numba compilation / cache load) on one small sample
    simulate_maps(draw.R[:1], draw.sigma_R[:1], draw.beta[:1], np.full((1, 2), 100), seeds[:1])

    views = {"full": View("full"), "fold+downsample4": View("fold", 4)}
    results = {}
    for name, view in views.items():
        t0 = time.perf_counter()
        for i in range(0, n, 8):
            sl = slice(i, min(n, i + 8))
            for m in simulate_maps(draw.R[sl], draw.sigma_R[sl], draw.beta[sl], draw.n_electrons[sl], seeds[sl]):
                apply_view(m, view)
        results[name] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(n):
        seed_team_map(draw.R[i], draw.sigma_R[i], draw.beta[i], draw.n_electrons[i], rng)
    t_seed = time.perf_counter() - t0

    print(f"bench_synth: {n} maps of 2 x {args.electrons} electrons, project with {args.threads} numba thread(s), "
          f"{os.cpu_count()} CPUs visible")
    print(f"  prior draw (physical, exact check): {n / t_prior:10.1f} parameter sets/s")
    print(f"  seed team (np.interp 1e6 table + np.add.at, full view): {n / t_seed:8.2f} maps/s "
          f"{electrons / t_seed / 1e6:8.2f} M electrons/s")
    for name, t in results.items():
        print(f"  project ({name:>16} view):                 {n / t:8.2f} maps/s "
              f"{electrons / t / 1e6:8.2f} M electrons/s   ratio {t_seed / t:6.1f}x")


if __name__ == "__main__":
    main()
