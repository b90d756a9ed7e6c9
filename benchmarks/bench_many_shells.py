"""Benchmark of the fit's cost against the number of shells (a SEVI spectrum has 4-15).

Prints, on one core (set ``NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``):

``unbinned``
    CPU time per electron of the unbinned fit with 10 shells (radii 0.3 .. 0.9) against 2 shells
    (0.5, 0.8), the same number of electrons in both, the number of shells and start radii given
    (no search), the centre fixed at the screen centre (the alternation with the centre adds
    rounds that do not depend on the shells); also the time of one likelihood evaluation with
    gradient and Fisher matrix (a sampled Fisher matrix above 100000 points, as in the fit's
    iterations), and of one value-only evaluation (the line search's), per electron,
    each at a new geometry (the moment splines kept from the last call dropped: tables included).
``binned``
    The same for the count map of those electrons, per non-empty pixel.
``memory``
    Peak memory of the pieces of one step (point set, spline tables with second
    derivatives, the value, the gradient and Fisher matrix, the curvature of the standard errors)
    of the binned fit of a dense 1024 x 1024 map with 14 shells: ``tracemalloc`` (numpy arrays)
    and the process's maximum resident set (``resource.getrusage``, everything).

The full-size figures (10^6 electrons, 14 shells fitted to convergence) take tens of minutes on a
shared machine; ``--electrons`` sets the size (default 60000 for the timing, a few minutes on 2
cores). Per-electron figures include the spline tables, a fixed cost per evaluation that fewer
electrons weigh more, and the binned fit's expectation of all 1024 x 1024 pixels (its
dispersion), a fixed cost per map.

``fullmap`` (not in ``all``)
    The whole binned fit of a 1024 x 1024 map of 14 shells (3 million electrons; radii 0.3 .. 0.9,
    given; free centre; the dispersion's all-pixel expectations included; ``--search``: the number
    of shells and the start radii searched): wall and CPU time and the maximum resident set.

Times are CPU seconds of the process (``time.process_time``; wall times on the shared machine
varied by 2x with its load).

Figures (2-core machine shared with other jobs at a load of about 15, 2026-12-06, one thread:
``NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``; before = the code of commit d5e0144 with the
optimiser's Fisher scoring, run at the same time from a copy). Per electron (pixel), 2 shells /
10 shells, ratio:

=====================  ============================  ============================
                       before (Fisher scoring,       after (Newton block on R and
                       fine tables over the whole    sigma, coarse table rows
                       radius)                       inside the rim)
=====================  ============================  ============================
unbinned fit           10.8 / 99.8 us, 9.20          9.00 / 48.2 us, 5.36
unbinned derivatives   0.91 / 4.80 us, 5.25          0.66 / 4.83 us, 7.31
unbinned value         0.44 / 1.98 us, 4.48          0.28 / 1.41 us, 5.12
binned fit             35.4 / 202 us, 5.70           31.2 / 115 us, 3.70
binned derivatives     1.60 / 8.79 us, 5.51          1.33 / 7.58 us, 5.72
binned value           0.55 / 2.47 us, 4.46          0.40 / 1.89 us, 4.73
iterations             9 / 16 (both)                 8 / 7 unbinned, 7 / 7 binned
=====================  ============================  ============================

(The previous session's wall-time figures of the code before, at a lower load: 6.2-8.5 unbinned,
5.4-5.8 binned.) The ten-shell fit's iterations fell from 16 to 7: its Fisher matrix overstated
the information on R and sigma while electrons sat in a too narrow shell's tails and the ascent
crawled; the Newton block (the observed information of each shell's R and sigma) takes the
step. On 2026-12-07 it was turned off (from a start with a shell far off it let that shell
collapse at a wrong radius): Fisher scoring only, 9.44x / 6.14x, 16 iterations.

Then (2026-12-07, the same 2-core machine at a load near 7-8 with other tests running, one
thread; before = commit 10a0e53, Fisher scoring only, run from a copy just before; after = this
code): the Newton pieces are computed only where used (a derivative evaluation without them:
moment splines and contracted tables with first derivatives only), the Newton block is back but
safe (asked for only at the start and after a full step within twice the step limits; a Newton
step only within twice the limits, scaled into them, no shell's weight halved, the likelihood
rising by a quarter of the quadratic model's prediction, else the Fisher step;
``fit.optimise.maximise``), and the line search's value reads one table of all shells summed per
cell. Per electron (pixel), 2 shells / 10 shells, ratio:

=====================  ============================  ============================
                       before (10a0e53)              after
=====================  ============================  ============================
unbinned fit           10.02 / 90.1 us, 8.99         9.06 / 48.0 us, 5.29
unbinned derivatives   0.65 / 3.39 us, 5.23          0.58 / 3.45 us, 5.98
unbinned value         0.25 / 1.27 us, 5.18          0.18 / 0.85 us, 4.62
binned fit             33.9 / 185 us, 5.47           31.7 / 113 us, 3.58
binned derivatives     1.45 / 7.89 us, 5.45          1.42 / 7.62 us, 5.35
binned value           0.37 / 1.75 us, 4.78          0.36 / 1.02 us, 2.87
iterations             9 / 16 (both)                 8 / 7 unbinned, 7 / 7 binned
=====================  ============================  ============================

With the Newton block only after a full step within the step limits (not from the start; commit
397914e, same session) the ten-shell fit had kept 16 iterations (9.37x / 5.59x): its first step
was then Fisher scoring and from there the ascent crawled in the amplitudes under the positivity
constraints; the first Newton step from this start lies 1.16 times outside the limits. The
derivatives' ratio did not fall: their per-point work follows the shells that reach the point.
At 60000 electrons the issue's goal, 3x, was not reached: 5.29x unbinned, 3.58x binned. A
point's Jacobian row follows the shells that reach it (a projected shell covers the whole disc
inside its radius: 5.5 of 10 shells per electron here against 1.5 of 2, 3.7x), the Fisher rows'
BLAS product grows with the square of those shells, and the tables (moment splines, rows of up to
8 cells inside the rim) with the number of shells (5x).

Since commit d1312d7 (2026-12-07) the gradient and the curvature are the tables contracted with
per-cell sums over the points (a cost per point that does not grow with the shells), and with more
than 100000 groups the iterations' Fisher matrix is that of every k-th group (50000), the exact
one once at the end for the standard errors. Quiet 2-core machine, one thread, CPU seconds, per
electron (pixel) 2 / 10 shells, before = commit 9f7d40c from a copy right after:

=================  =============================  =============================
electrons          unbinned before -> after       binned before -> after
=================  =============================  =============================
600000             5.53 / 26.0 -> 2.15 / 8.29 us  17.9 / 67.5 -> 9.81 / 30.2 us
                   4.70x -> 3.86x                 3.78x -> 3.08x
3.6 million        5.28 / 21.4 -> 1.79 / 3.70 us  16.7 / 52.6 -> 6.75 / 13.1 us
                   4.06x -> **2.07x**             3.15x -> **1.94x**
=================  =============================  =============================

(The after figures at 600000 and 60000 electrons were taken beside running tests on the other
core; 60000: no sampling, 5.01x / 3.17x.) Iterations after: 8 / 10 and
8 / 12 at 600000, 11 / 9 and 9 / 8 at 3.6 million (7-8 before): the sampled metric converges
linearly near the end. Below about 10^6 electrons the tables, the shell search and the exact pass
at the end (fixed or per-shell costs) keep the ratio above 3; at the full-size job's 3.6 million
electrons it is about 2.

``fullmap`` (2026-12-07 after commit d1312d7, quiet, one thread, ``/usr/bin/time -v``): radii given,
23 s CPU, 10 iterations, 2 centre rounds, converged, maximum resident set 1229 MiB; ``memory``:
896 MiB. Before (2026-12-06, shared machine, commit 76707fb): radii given, 69 s CPU
(9 min wall at a 9 % share of a core), 8 iterations, 2 centre rounds, maximum resident set 1243
MiB (1734 MiB while the centre gradient kept P'_2m(c) per node); ``--search``: 98 s CPU, 1580
MiB (2167 MiB before), but the search found only 8 of the 14 shells. The code before (d5e0144,
searched) had used 281 s CPU and not finished after 31 minutes.
``--search`` since the shell search's whole-profile pass (2026-12-07, same machine, one thread,
commit aa3134b; /usr/bin/time -v): all 14 shells found and fitted, 95 s CPU (user + system; one
call of the search on this map 1.4 s, 0.06 s before; the fit makes up to four), 8 iterations, 2
centre rounds, converged, maximum resident set 1321 MiB, 7.3 min wall; the code before it
(8436521, the same optimiser, run at the same time): 8 shells, 417 s CPU, 125 iterations, 3
centre rounds, not converged, 1636 MiB, 21.6 min wall.
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
    """CPU seconds of the process per call (on one thread; less sensitive to a shared machine's load than
    wall time) and the last result."""
    f(*args, **kw)  # compile / warm up
    t0 = time.process_time()
    for _ in range(repeat):
        out = f(*args, **kw)
    return (time.process_time() - t0) / repeat, out


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


def bench_fullmap(n_total, K=14, search=False):
    """The whole binned fit of a 1024 x 1024 map of `K` shells, free centre: the shells given, or searched."""
    x, z = electrons(K, n_total, seed=7)
    img = count_map(x, z)
    t0 = time.perf_counter()
    shells = {} if search else {"n_shells": K, "R0": radii(K)}
    res = fit.fit_count_map(img, **shells,
                            log=lambda line: print(f"{time.perf_counter() - t0:7.0f} s  {line[:150]}", flush=True))
    dt = time.perf_counter() - t0
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(f"fullmap: {K} shells drawn, {len(res.R)} fitted ({'searched' if search else 'given'}), "
          f"{np.count_nonzero(img)} non-empty pixels of {img.sum():.0f} electrons: whole fit (free centre, "
          f"dispersion) {dt:.0f} s wall, {cpu.ru_utime + cpu.ru_stime:.0f} s CPU (whole process), {res.n_iter} "
          f"iterations, {res.diagnostics.get('centre_rounds')} centre rounds, converged {res.converged}; "
          f"max RSS {cpu.ru_maxrss / 1024:.0f} MiB")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", choices=["timing", "memory", "fullmap", "all"], default="all")
    p.add_argument("--electrons", type=int, default=60_000, help="electrons of the timing runs (all shells)")
    p.add_argument("--map-electrons", type=int, default=3_000_000, help="electrons of the 14-shell memory map")
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--search", action="store_true", help="fullmap: the number of shells and start radii searched")
    args = p.parse_args()
    if args.quick:
        args.electrons, args.map_electrons = 10_000, 100_000
    if args.part in ("timing", "all"):
        bench_timing(args.electrons)
    if args.part in ("memory", "all"):
        bench_memory(args.map_electrons)
    if args.part == "fullmap":  # not in "all": tens of minutes
        bench_fullmap(args.map_electrons, search=args.search)


if __name__ == "__main__":
    main()
