"""Sampler speed: exact numba inverse-CDF sampler vs the seed team's numpy table method.

Baseline (the seed team's ``gen_my_pic_double.py``): evaluate the closed-form CDF on a
10^6-segment grid of cos(theta), then map U(0, 1) draws through it with ``np.interp``. Both
methods run in this process on the same beta vector; the ratio is reported

- per distribution: drawing n electrons from a new beta vector, set-up included (the table on
  the baseline's side; physicality check + 1024-point quantile table on ours) -- the situation
  of every synthesised parameter set;
- per sample: the set-up excluded on both sides (table built once, many draws).

Run with one numba thread to compare one core with one core:

    NUMBA_NUM_THREADS=1 python benchmarks/bench_simulate.py [--n 1000000] [--repeat 5]
"""

import argparse
import time

import numpy as np

from sevi_lib.core.angular import cdf
from sevi_lib.simulate.electrons import make_sampler, sample_c_into, sample_cos_theta

BETA = np.array([1, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0, 0, 0.0])


def baseline_table(beta, segments=10**6):
    c = np.linspace(-1.0, 1.0, segments + 1)
    return c, cdf(c, beta)


def baseline_draw(table, n, rng):
    c, F = table
    return np.interp(rng.random(n), F, c)


def best(f, repeat):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10**5, 10**6, 2 * 10**6], help="electrons per draw")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions (best time kept)")
    ap.add_argument("--quick", action="store_true", help="n = 1e5 and 1e6, 2 repetitions")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat = [10**5, 10**6], 2
    rng = np.random.default_rng(0)
    sample_cos_theta(BETA, 1000, 0)  # compile / load the numba cache
    smp = make_sampler(BETA)
    t_table = best(lambda: baseline_table(BETA), args.repeat)
    table = baseline_table(BETA)
    print(f"baseline 10^6-segment CDF table: {t_table * 1e3:.1f} ms per beta vector")
    print(f"{'n':>9}  {'baseline e/s':>13}  {'numba e/s':>12}  {'ratio (per distribution)':>24}"
          f"  {'baseline e/s':>13}  {'numba e/s':>12}  {'ratio (per sample)':>18}")
    for n in args.n:
        tb_draw = best(lambda: baseline_draw(table, n, rng), args.repeat)
        tn_full = best(lambda: sample_cos_theta(BETA, n, 1), args.repeat)
        u = np.empty(n)
        out = np.empty(n)

        def ours_draw():
            u[:] = rng.random(n)
            sample_c_into(u, out, smp)

        tn_draw = best(ours_draw, args.repeat)
        tb_full = t_table + tb_draw
        print(f"{n:9d}  {n / tb_full:13.3g}  {n / tn_full:12.3g}  {tb_full / tn_full:23.1f}x"
              f"  {n / tb_draw:13.3g}  {n / tn_draw:12.3g}  {tb_draw / tn_draw:17.1f}x")


if __name__ == "__main__":
    main()
