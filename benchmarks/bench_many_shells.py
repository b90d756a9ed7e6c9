"""Benchmark of the fit's cost against the number of shells (a SEVI spectrum has 4-15).

Prints, on one core (set ``NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``):

``unbinned``
    Wall time per electron of the unbinned fit with 10 shells (radii 0.3 .. 0.9) against 2 shells
    (0.5, 0.8), the same number of electrons in both, the number of shells and start radii given
    (no search), the centre fixed at the screen centre (the alternation with the centre adds
    rounds that do not depend on the shells); also the time of one likelihood evaluation with
    gradient and Fisher matrix, and of one value-only evaluation (the line search's), per electron,
    each at a new geometry (the moment splines kept from the last call dropped: tables included).
``binned``
    The same for the count map of those electrons, per non-empty pixel.
``memory``
    Peak memory of the pieces of one Fisher-scoring step (point set, spline tables with second
    derivatives, the value, the gradient and Fisher matrix, the curvature of the standard errors)
    of the binned fit of a dense 1024 x 1024 map with 14 shells: ``tracemalloc`` (numpy arrays)
    and the process's maximum resident set (``resource.getrusage``, everything).

The full-size figures (10^6 electrons, 14 shells fitted to convergence) take tens of minutes on a
shared machine; ``--electrons`` sets the size (default 60000 for the timing, a few minutes on 2
cores). Per-electron figures include the spline tables, a fixed cost per evaluation that fewer
electrons weigh more, and the binned fit's expectation of all 1024 x 1024 pixels (its
dispersion), a fixed cost per map.

Figures (2-core machine shared with other jobs, 2026-12-06, one core: ``NUMBA_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1``, defaults; the previous code run from a worktree of it just before, under
a similar load; loads varied, an earlier pair of runs gave 16.1 / 10.6 for the unbinned ratio).
Per electron (pixel), 2 shells / 10 shells, ratio:

=====================  ===========================  ===========================  ===========================
                       before (tables over the      after, run 1                 after, run 2 (derivatives
                       whole radius range, all                                   and value at a new
                       shells' tables per point)                                 geometry, tables included)
=====================  ===========================  ===========================  ===========================
unbinned fit           57.0 / 316 us, 5.55          10.9 / 92.3 us, 8.51         17.5 / 108 us, 6.17
unbinned derivatives   2.63 / 12.0 us, 4.55         (tables reused)              1.23 / 5.38 us, 4.38
unbinned value         2.11 / 9.47 us, 4.49         (tables reused)              0.61 / 2.24 us, 3.67
binned fit             74.9 / 457 us, 6.10          35.5 / 190 us, 5.37          36.9 / 213 us, 5.77
binned derivatives     4.09 / 20.5 us, 5.01         (tables reused)              2.52 / 10.2 us, 4.04
binned value           2.58 / 9.36 us, 3.64         (tables reused)              0.78 / 2.28 us, 2.91
=====================  ===========================  ===========================  ===========================

9 iterations with 2 shells, 16 with 10 (both): with the work per point following the shells that
reach it (on average 1.5 of 2, 5.5 of 10 here), about 1.8 x 3.7 = 6.5 is what a fit whose cost
is all per point gives; the tables and the per-map cost (all 1024 x 1024 pixels' expectations)
weigh more in the two-shell fit. ``memory`` (14 shells, 610007 non-empty pixels of 3 million
electrons): one step's pieces 42.4 s, tracemalloc peak 1053 MiB, maximum RSS 1248 MiB (294 MiB
before the step); before, the whole 14-shell map fit took 6.7 GB.
"""

import argparse
import resource
import time
import tracemalloc

import numpy as np

from sevi_lib import fit
from sevi_lib.core.maps import count_map
from sevi_lib.fit.layout import ParamLayout
from sevi_lib.fit.points import PointSet, pixel_nodes
from sevi_lib.simulate.electrons import sample_shell

SIGMA = 0.006
N_BETA = 12


def radii(K):
    return np.array([0.5, 0.8]) if K == 2 else np.linspace(0.3, 0.9, K)


def betas(j):
    return np.r_[(0.9, -0.3, 0.5, 0.1)[j % 4], 0.2 if j % 2 == 0 else 0.0, np.zeros(N_BETA - 2)]


def electrons(K, n_total, seed=1):
    xs, zs = [], []
    for j, R in enumerate(radii(K)):
        _, _, x, z = sample_shell(R, SIGMA, betas(j), n_total // K, seed * 100 + j)
        xs.append(x)
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


def theta_of(K, n_total):
    a = np.zeros((K, N_BETA + 1))
    a[:, 0] = n_total / (2.0 * K)
    a[:, 1] = 0.2 * a[:, 0]
    return ParamLayout(K, N_BETA).pack(a, radii(K), np.full(K, SIGMA), 1.0)


def timed(f, *args, repeat=1, **kw):
    f(*args, **kw)  # compile / warm up
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = f(*args, **kw)
    return (time.perf_counter() - t0) / repeat, out


def one_case(K, n_total, binned):
    x, z = electrons(K, n_total)
    theta = theta_of(K, len(x))
    if binned:
        img = count_map(x, z)
        ix, iz = np.nonzero(img)
        o = np.argsort(np.hypot(ix - 511.5, iz - 511.5))  # the fit's order (radius)
        ix, iz = ix[o], iz[o]
        counts = img[ix, iz]
        px, pz = pixel_nodes(ix, iz)
        pts = PointSet(px, pz, 4, np.full(len(ix), (1 / 512) ** 2 / 4), N_BETA, SIGMA / 24)
        t_fit, res = timed(fit.fit_count_map, img, n_beta=N_BETA, n_shells=K, R0=radii(K), centre="screen")
        units = len(ix)
    else:
        counts = np.ones(len(x))
        o = np.argsort(np.hypot(x, z))  # the fit's order (radius)
        pts = PointSet(x[o], z[o], 1, counts, N_BETA, SIGMA / 24)
        t_fit, res = timed(fit.fit_electrons, x, z, n_beta=N_BETA, n_shells=K, R0=radii(K), centre="screen")
        units = len(x)

    def fresh(want):  # a new geometry's cost: without the moment splines kept from the last call
        pts._splines = {}
        return pts.loglike(theta, counts, K, want=want)

    t_d, _ = timed(fresh, 2, repeat=2)
    t_v, _ = timed(fresh, 0, repeat=2)
    return {"fit": t_fit / units, "derivs": t_d / units, "value": t_v / units, "iter": res.n_iter, "units": units}


def bench_timing(n_total):
    for kind, binned in (("unbinned", False), ("binned", True)):
        per = "electron" if not binned else "pixel"
        two, ten = one_case(2, n_total, binned), one_case(10, n_total, binned)
        for k in ("fit", "derivs", "value"):
            print(f"{kind}: {k:6s} per {per}: 2 shells {two[k] * 1e6:7.2f} us, 10 shells {ten[k] * 1e6:7.2f} us, "
                  f"ratio 10 / 2 = {ten[k] / two[k]:.2f}")
        print(f"{kind}: iterations 2 shells {two['iter']}, 10 shells {ten['iter']}; {per}s {two['units']} / {ten['units']}")


def bench_memory(n_total, K=14):
    x, z = electrons(K, n_total, seed=7)
    img = count_map(x, z)
    ix, iz = np.nonzero(img)
    counts = img[ix, iz]
    theta = theta_of(K, counts.sum())
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    px, pz = pixel_nodes(ix, iz)
    pts = PointSet(px, pz, 4, np.full(len(ix), (1 / 512) ** 2 / 4), N_BETA, SIGMA / 24)
    mu = np.empty(len(ix))
    pts.loglike(theta, counts, K, want=0, mu_out=mu)
    pts.loglike(theta, counts, K, want=2)
    pts.curvature(theta, counts / mu, K)
    pts.shift_gradient(theta, K)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory: {K} shells, {len(ix)} non-empty pixels of a 1024 x 1024 map ({counts.sum():.0f} electrons): "
          f"one step's pieces {dt:.1f} s; tracemalloc peak {peak / 2**20:.0f} MiB; max RSS {rss:.0f} MiB "
          f"(before the step {base:.0f} MiB)")


def bench_fullmap(n_total, K=14):
    """The whole binned fit of a 1024 x 1024 map of `K` shells with the defaults (shell search, free centre)."""
    x, z = electrons(K, n_total, seed=7)
    img = count_map(x, z)
    t0 = time.perf_counter()
    res = fit.fit_count_map(img, log=lambda line: print(f"{time.perf_counter() - t0:7.0f} s  {line[:150]}", flush=True))
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fullmap: {K} shells drawn, {len(res.R)} fitted, {np.count_nonzero(img)} non-empty pixels of "
          f"{img.sum():.0f} electrons: whole fit (defaults: search, free centre) {dt:.0f} s, {res.n_iter} iterations, "
          f"{res.diagnostics.get('centre_rounds')} centre rounds, converged {res.converged}; max RSS {rss:.0f} MiB")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", choices=["timing", "memory", "fullmap", "all"], default="all")
    p.add_argument("--electrons", type=int, default=60_000, help="electrons of the timing runs (all shells)")
    p.add_argument("--map-electrons", type=int, default=3_000_000, help="electrons of the 14-shell memory map")
    p.add_argument("--quick", action="store_true", help="small smoke run")
    args = p.parse_args()
    if args.quick:
        args.electrons, args.map_electrons = 10_000, 100_000
    if args.part in ("timing", "all"):
        bench_timing(args.electrons)
    if args.part in ("memory", "all"):
        bench_memory(args.map_electrons)
    if args.part == "fullmap":  # not in "all": tens of minutes
        bench_fullmap(args.map_electrons)


if __name__ == "__main__":
    main()
