"""Renderer speed: frames/s at 80 electrons per frame, alone and with gzip-9 writing.

1. ``render_chunk`` alone (spot parameters drawn per frame, float accumulation, round/clip/uint8)
   on electrons simulated beforehand -- frames/s per core when run with NUMBA_NUM_THREADS=1;
2. the whole ``write_test_file`` (simulation + rendering + gzip-9 frames + truth tables) into a
   temporary folder -- what ``sevi simulate`` achieves end to end with one compression thread.

Goal: >= 20 frames/s per core for (1). Run:

    NUMBA_NUM_THREADS=1 python benchmarks/bench_render.py [--frames 128] [--electrons 80]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import get_num_threads

from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.shells import Shells
from sevi_lib.simulate.electrons import simulate_electrons
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.render import render_chunk
from sevi_lib.simulate.settings import SimulationSettings

PEAKED = [1, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0, 0, 0.0]
SHELLS = Shells([0.5, 0.8], [0.007, 0.008], [PEAKED, PEAKED])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=128, help="frames rendered (default 128)")
    ap.add_argument("--electrons", type=float, default=80.0, help="detected electrons per frame (default 80)")
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="32 frames")
    args = ap.parse_args()
    if args.quick:
        args.frames = 32
    loss = 0.1
    per_shell = args.electrons / 2 / (1 - loss)  # generated per shell so that `electrons` are detected
    threads = get_num_threads()
    sim = simulate_electrons(SHELLS, SimulationSettings(n_frames=args.frames, electrons_per_shell=[per_shell, per_shell],
                                                    detection_loss=loss, seed=1))
    x = np.ascontiguousarray(sim.detected["x"])
    z = np.ascontiguousarray(sim.detected["z"])
    out = np.empty((args.chunk, N_PIX, N_PIX), dtype=np.uint8)

    def render_all():
        for f0 in range(0, args.frames, args.chunk):
            nf = min(args.chunk, args.frames - f0)
            offs = sim.frame_offsets[f0:f0 + nf + 1]
            a, b = offs[0], offs[-1]
            render_chunk(np.arange(f0, f0 + nf), offs - a, x[a:b], z[a:b], 1, out[:nf], n_workers=threads)

    render_chunk(np.arange(1), sim.frame_offsets[:2], x, z, 1, out[:1], n_workers=threads)  # compile / load cache
    t0 = time.perf_counter()
    render_all()
    t_render = time.perf_counter() - t0
    mean_det = len(x) / args.frames
    print(f"numba threads: {threads}; {args.frames} frames, {mean_det:.1f} detected electrons per frame")
    fps = args.frames / t_render
    print(f"render only:          {fps:8.1f} frames/s  ({fps / threads:.1f} per thread)")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_test_file(Path(tmp) / "f.h5", Path(tmp) / "t.h5", SHELLS, SimulationSettings(
            n_frames=args.frames, electrons_per_shell=[per_shell, per_shell], detection_loss=loss, seed=1,
            chunk=args.chunk, threads=1), progress=False)
        t_all = time.perf_counter() - t0
        size = (Path(tmp) / "f.h5").stat().st_size / args.frames / 1e3
    print(f"simulate+render+gzip9: {args.frames / t_all:7.1f} frames/s  ({size:.0f} kB per compressed frame)")


if __name__ == "__main__":
    main()
