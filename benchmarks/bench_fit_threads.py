"""Benchmark of the fit on several cores: the unbinned fit on 1 and on 2 threads, in one process.

The likelihood kernels run their chunks of electrons in parallel (numba ``prange``) and add the
chunks' partial sums in chunk order, so the answer does not depend on the number of threads
(:mod:`sevi_lib.fit._kernels`). This benchmark fits the same electrons twice, with numba's
threads (``numba.set_num_threads``) set to 1 and then to `--threads`, and prints both wall
times, their ratio and the largest difference of the answers (R, sigma_R, beta's, weights,
background, centre). OpenBLAS (numpy's bundled library, set through ctypes when it exposes
``scipy_openblas_set_num_threads64_``) stays on one thread in both runs: its work in the fit is
small (the chunks' Fisher products, the centre's sums), its spinning threads compete with
numba's for the cores, and its multi-threaded sums (dot products split over threads) would
change the rounding with the thread count.

Data: ``--electrons`` true electron positions (default 3.6 million, the full-size job's count) of
three shells (0.3, 0.5, 0.8; sigma_R 0.006 .. 0.0085; beta's up to beta_16) on a uniform
background of 5 %, fitted like the workflow's default (N = 12, free centre) with the number of
shells and start radii given (the shell search is not timed). Run with ``NUMBA_NUM_THREADS`` at
least `--threads` (its default, the core count, is enough).

Figures (2-core machine shared with other jobs, 2026-12-06; noisy, compare the ratio printed
within one run): 3.6 million electrons, 8 iterations, 2 centre rounds: 1 thread 80.2 s, 2 threads
52.9 s (ratio 1.52, with a load of about 6 on the 2 cores); an earlier run at a heavier load
351.7 s / 159.9 s. The answers bit-identical in both runs. On 2026-12-07 (quiet, commit d1312d7:
the gradient from per-cell sums, the iterations' Fisher matrix from every 72nd electron): 12.7 s /
7.8 s (ratio 1.64; commit 9f7d40c from a copy right after: 30.3 s / 18.9 s), 8 / 8 iterations.
"""

import argparse
import ctypes
import glob
import os
import time

import numba
import numpy as np

from sevi_lib import fit
from sevi_lib.simulate.electrons import sample_shell

PEAKED = np.array([1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.0, 0.0, 0.0, 0.0])
SOFT = np.array([0.8, 0.6, 0.3, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
SHELLS = [(0.3, 0.006, SOFT, 0.25), (0.5, 0.0065, PEAKED, 0.35), (0.8, 0.0085, SOFT, 0.35)]
BACKGROUND = 0.05


def electrons(n_total, seed=3):
    """x, z of `n_total` electrons: the three shells' shares and a uniform background on the screen."""
    rng = np.random.default_rng(seed)
    xs, zs = [], []
    for j, (R, s, beta, share) in enumerate(SHELLS):
        _, _, x, z = sample_shell(R, s, beta, int(n_total * share * (1 - BACKGROUND)), seed * 100 + j)
        xs.append(x)
        zs.append(z)
    nb = n_total - sum(len(x) for x in xs)
    xs.append(rng.uniform(-1, 1, nb))
    zs.append(rng.uniform(-1, 1, nb))
    return np.concatenate(xs) + 0.002, np.concatenate(zs) - 0.001  # centre a pixel off the screen's


def _blas_setter():
    """A function setting OpenBLAS's threads (numpy's bundled library), or None."""
    import numpy

    for lib in glob.glob(os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs", "*openblas*")):
        handle = ctypes.CDLL(lib)
        if hasattr(handle, "scipy_openblas_set_num_threads64_"):
            f = handle.scipy_openblas_set_num_threads64_
            f.argtypes = [ctypes.c_int]
            return f
    return None


def answer(r):
    """The fit's answer as one vector."""
    return np.concatenate([r.R, r.sigma_R, r.beta.ravel(), r.weights, [r.background_density], r.centre])


def run(x, z, threads, blas):
    numba.set_num_threads(threads)
    if blas is not None:
        blas(1)
    t0 = time.perf_counter()
    r = fit.fit_electrons(x, z, n_beta=12, n_shells=len(SHELLS), R0=[s[0] for s in SHELLS], centre="free")
    return time.perf_counter() - t0, r


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--electrons", type=int, default=3_600_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small smoke run (100000 electrons)")
    args = p.parse_args()
    n = 100_000 if args.quick else args.electrons
    if numba.config.NUMBA_NUM_THREADS < args.threads:
        raise SystemExit(f"NUMBA_NUM_THREADS is {numba.config.NUMBA_NUM_THREADS}; set it to at least {args.threads}")
    blas = _blas_setter()
    x, z = electrons(n)
    run(x[:20000], z[:20000], 1, blas)  # compile
    t1, r1 = run(x, z, 1, blas)
    t2, r2 = run(x, z, args.threads, blas)
    a1, a2 = answer(r1), answer(r2)
    print(f"fit of {n} electrons ({len(SHELLS)} shells, N = 12, free centre; {r1.n_iter} / {r2.n_iter} iterations): "
          f"1 thread {t1:.1f} s, {args.threads} threads {t2:.1f} s, ratio 1 / {args.threads} = {t1 / t2:.2f} "
          f"(BLAS {'on 1 thread' if blas else 'threads not set: the library default'})")
    print(f"answers: max |difference| {np.max(np.abs(a1 - a2)):.3g}, bit-identical {bool(np.array_equal(a1, a2))}; "
          f"objective {r1.objective!r} / {r2.objective!r}")


if __name__ == "__main__":
    main()
