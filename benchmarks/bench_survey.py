"""The survey's isolated-spot search: numba kernels against whole-frame scipy.ndimage, same process.

On a lab camera the survey measures the spot model from up to 1000 frames
(:func:`~sevi_lib.detect.camera.spot_frames`), read 64 at a time; finding the isolated spots in
them (:func:`~sevi_lib.detect.spotmodel.isolated_spots`) was nearly all of its time, and every
detection shard waits for the survey. The search now runs as numba kernels
(:mod:`sevi_lib.detect._isolated`), chunks ``threads`` at a time
(:func:`~sevi_lib.detect.spotmodel.measure_spot_model`'s ``threads``).

The script renders ``--frames`` frames of a camera of ``bench_cameras.CAMERAS`` in memory and
times, on the same frames: the search as it was (:func:`reference_isolated_spots`, scipy.ndimage
over whole frames, one thread: the baseline), the kernels on one thread, and the spot model
measured in chunks of 64 on one thread and on ``--threads``; it prints milliseconds per frame and
the ratios, and checks that the kernels find the same spots as the baseline and that the
threaded model is the serial one.

Run:

    python benchmarks/bench_survey.py [--camera lab5] [--frames 256] [--threads 2]

Measured: docs/benchmarks.md, "Camera survey".
"""

import argparse
import math
import time

import numpy as np
from bench_cameras import CAMERAS, render
from scipy import ndimage

from sevi_lib.detect.camera import SPOT_CHUNK
from sevi_lib.detect.settings import DetectorParams
from sevi_lib.detect.spotmodel import _rough_width, isolated_spots, measure_spot_model


def _reference_blob_labels(lit, structure, join_px):
    """Labels of the lit pixels' blobs (0 elsewhere) and their number; with `join_px` > 0 lit
    pixels within ``2 join_px + 1`` pixels of one another (the lit mask dilated `join_px` times)
    share a label."""
    if join_px <= 0:
        return ndimage.label(lit, structure=structure)
    joined, n = ndimage.label(ndimage.binary_dilation(lit, structure=structure, iterations=int(join_px)),
                              structure=structure)
    joined[~lit] = 0  # every component of the dilated mask holds lit pixels: labels 1..n stay in use
    return joined, n


def reference_isolated_spots(frames, threshold, mask=None, half_width=None, max_spots=20000, *, join_px=0, rough_width=None):
    """:func:`sevi_lib.detect.spotmodel.isolated_spots` as whole-frame scipy.ndimage operations
    (the library's code until 2026-12-07): the baseline, and the tests' oracle."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    eight = np.ones((3, 3), dtype=bool)
    # rough width from the blobs of the first frames
    areas, peaks = [], []
    for f in frames[: 0 if rough_width is not None else min(len(frames), 16)]:
        lit = f >= threshold
        if mask is not None:
            lit &= ~mask
        lab, n = ndimage.label(lit, structure=eight)
        if n:
            idx = np.arange(1, n + 1)
            areas.append(ndimage.sum_labels(lit, lab, idx))
            peaks.append(ndimage.maximum(f, lab, idx))
    if rough_width is not None:
        s0 = float(rough_width)
    else:
        s0 = _rough_width(np.concatenate(areas), np.concatenate(peaks).astype(float), threshold) if areas else math.nan
    if half_width is None:
        half_width = int(math.ceil(3.0 * s0)) if math.isfinite(s0) else 12
    h = max(int(half_width), 3)
    # a neighbour's light falls below half a count about one width beyond its lit pixels
    tail = int(math.ceil(1.2 * s0)) if math.isfinite(s0) else 8
    # a spot of peak <= 400 is lit out to 2.8 widths (threshold >= 10): no other blob may come closer
    reach = max(int(math.ceil(4.0 * s0)) if math.isfinite(s0) else 32, h)
    d = np.arange(-reach, reach + 1)
    inside = d[:, None] ** 2 + d[None, :] ** 2 <= reach * reach
    disc_i, disc_j = [v[inside] for v in np.meshgrid(d, d, indexing="ij")]
    disc_i, disc_j = disc_i[:, None], disc_j[:, None]
    P = 2 * h + 1
    out, corners = [], []
    total = 0
    n_i, n_j = frames.shape[1:]
    for fi, f in enumerate(frames):
        if total >= max_spots:
            break
        fv = f.astype(np.float64)
        if mask is not None:
            fv[mask] = 0.0
        lit = fv >= threshold
        lab, n = _reference_blob_labels(lit, eight, join_px)
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        sm = ndimage.correlate(fv.astype(np.int32), np.ones((3, 3), dtype=np.int32), mode="constant")  # exact 3 x 3 sums
        # under noise (join_px > 0) a maximum of the 3 x 3 sums must hold over 5 x 5: the flat top of a
        # faint spot has spurious 3 x 3 maxima, which would reject faint spots more than bright ones
        size = 5 if join_px > 0 else 3
        locmax = (sm == ndimage.maximum_filter(sm, size=size, mode="constant")) & lit
        # maxima as connected plateaus (a saturated top is one plateau), counted per blob
        mlab, _ = ndimage.label(locmax, structure=eight)
        at = np.flatnonzero(locmax)  # few pixels: one blob label per plateau from any of its pixels
        _, first = np.unique(mlab.ravel()[at], return_index=True)
        nmax = np.bincount(lab.ravel()[at[first]], minlength=n + 1)[1:]
        # the patch is centred on the blob's intensity centroid (a saturated top has no single maximum)
        pos = np.floor(np.asarray(ndimage.center_of_mass(fv, lab, idx)).reshape(-1, 2)).astype(np.int64)
        ok = (nmax == 1) & (pos[:, 0] >= reach) & (pos[:, 0] < n_i - reach) & (pos[:, 1] >= reach) & (pos[:, 1] < n_j - reach)
        cand = np.flatnonzero(ok)
        # no lit pixel of another blob within `reach` px of the peak (a disc that does not depend on
        # the spot's own brightness, so that the sample is not biased towards faint spots)
        ci = pos[cand, 0, None, None] + disc_i[None]
        cj = pos[cand, 1, None, None] + disc_j[None]
        lc = lab[ci, cj]
        alone = np.all((lc == 0) | (lc == (cand + 1)[:, None, None]), axis=(1, 2))
        sel = pos[cand[alone]][: max_spots - total]
        if sel.size == 0:
            continue
        own = lab[sel[:, 0], sel[:, 1]]
        # every pixel's nearest lit pixel: those nearer to another blob than `tail` px are left out
        dist, (ni, nj) = ndimage.distance_transform_edt(~lit, return_indices=True)
        near = lab[ni, nj]
        ii = sel[:, 0, None, None] + np.arange(-h, h + 1)[None, :, None]
        jj = sel[:, 1, None, None] + np.arange(-h, h + 1)[None, None, :]
        patch = f[ii, jj].astype(np.float64)
        other = (near[ii, jj] != own[:, None, None]) & (dist[ii, jj] <= tail)
        if mask is not None:
            other |= mask[ii, jj]
        patch[other] = np.nan
        out.append(patch)
        corners.append(np.column_stack([np.full(len(sel), fi), sel - h]))
        total += len(sel)
    if not out:
        return np.empty((0, P, P)), np.empty((0, 3), dtype=np.int64), s0
    return np.concatenate(out), np.concatenate(corners).astype(np.int64), s0


# ------------------------------------------------------------------------------------ spot fit


def timed_model(frames, threads):
    """The spot model of `frames` in chunks of SPOT_CHUNK, `threads` at a time, and the seconds it took."""
    chunks = (frames[i: i + SPOT_CHUNK] for i in range(0, len(frames), SPOT_CHUNK))
    t0 = time.perf_counter()
    got = measure_spot_model(chunks, threshold=DetectorParams().threshold, threads=threads)
    return got, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camera", default="lab5", choices=list(CAMERAS))
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--electrons", type=float, default=80.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    model, noise = CAMERAS[args.camera]
    frames, _ = render(model, noise, args.frames, args.electrons, args.seed)
    threshold, join = DetectorParams().threshold, 2 if noise > 0 else 0
    timed_model(frames[:8], 1)  # compile the kernels outside the timing
    t0 = time.perf_counter()
    ref = reference_isolated_spots(frames, threshold, join_px=join)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = isolated_spots(frames, threshold, join_px=join)
    t_new = time.perf_counter() - t0
    one, t1 = timed_model(frames, 1)
    many, tn = timed_model(frames, args.threads)
    same_spots = np.array_equal(ref[1], new[1]) and ref[2] == new[2]
    both = np.isfinite(ref[0]) & np.isfinite(new[0])
    same_values = same_spots and np.array_equal(ref[0][both], new[0][both])
    ties = int(np.count_nonzero(np.isnan(ref[0]) != np.isnan(new[0]))) if same_spots else -1
    ms = 1e3 / args.frames
    print(f"{args.camera}: {args.frames} frames, {len(new[1])} isolated spots; search: scipy.ndimage "
          f"{t_ref * ms:.1f} ms/frame, kernels {t_new * ms:.1f} ms/frame (ratio {t_ref / t_new:.1f}); same spots: "
          f"{same_values} (pixels left out differently, at ties: {ties})")
    print(f"spot model in chunks of {SPOT_CHUNK}: 1 thread {t1 * ms:.1f} ms/frame, {args.threads} threads "
          f"{tn * ms:.1f} ms/frame (speed-up {t1 / tn:.2f}); identical: {many.to_dict() == one.to_dict()}")
    if not same_values or many.to_dict() != one.to_dict():
        raise SystemExit("bench_survey: the kernels' spots or the threaded model differ")


if __name__ == "__main__":
    main()
