"""Numba kernels of :func:`sevi_lib.detect.spotmodel.isolated_spots`, one frame at a time.

The same steps as the array operations they replace (scipy.ndimage over whole frames), with the
same results: blobs (8-connected lit pixels, or with ``join`` > 0 the 8-connected components of
the lit mask dilated ``join`` times, numbered in raster order of their first pixel as
``ndimage.label`` numbers them), each blob's area, peak and intensity centroid (sums in raster
order, as ``ndimage.center_of_mass``), the local maxima of the 3 x 3 box sums (``size`` x
``size`` neighbourhood, 0 outside the frame) counted as plateaus per blob, the isolation test
on a disc around each candidate and the patches, whose pixels whose nearest lit pixel within
``tail`` belongs to another blob are NaN (``ndimage.distance_transform_edt`` over the whole frame
before; here over each patch's neighbourhood only, which holds every lit pixel within ``tail``
of the patch). One difference: where a pixel's nearest lit pixels belong to two blobs at the
same distance, the pixel is left out (a tie is light from another blob as much as its own; the
distance transform picked one of them by its scan order, 6-19 pixels of a million in the
patches of 24 frames).

The buffers are one :data:`IsolatedWorkspace` (:func:`isolated_workspace`), one per thread.
"""

from collections import namedtuple

import numpy as np
from numba import njit

IsolatedWorkspace = namedtuple("IsolatedWorkspace", [
    "lit",     # (n, m) bool: pixels >= threshold (masked pixels never)
    "parent",  # (n * m,) int64: union-find forest of the labelling
    "lab",     # (n, m) int64: blob label of each lit pixel (0 elsewhere)
    "sm",      # (n, m) int64: 3 x 3 box sums of the frame (masked pixels 0)
    "rs",      # (n, m) int64: their row sums
    "grow",    # (n, m) bool: the lit mask dilated (join > 0)
    "rows",    # (n, m) bool: ... along rows only
    "area",    # (n * m // 2 + 2,) per blob (index = label): lit pixels
    "peak",    # ... largest pixel value
    "sw",      # ... sum of pixel values
    "si",      # ... sum of value x row
    "sj",      # ... sum of value x column
    "nmax",    # ... local-maximum plateaus
])


def isolated_workspace(shape):
    """Buffers of the kernels for frames of `shape` (rows, columns)."""
    n, m = shape
    nb = n * m // 2 + 2  # at most this many 8-connected blobs (a checkerboard of single pixels)
    return IsolatedWorkspace(
        lit=np.zeros((n, m), dtype=np.bool_), parent=np.zeros(n * m, dtype=np.int64),
        lab=np.zeros((n, m), dtype=np.int64), sm=np.zeros((n, m), dtype=np.int64),
        rs=np.zeros((n, m), dtype=np.int64), grow=np.zeros((n, m), dtype=np.bool_),
        rows=np.zeros((n, m), dtype=np.bool_),
        area=np.zeros(nb, dtype=np.int64), peak=np.zeros(nb, dtype=np.int64), sw=np.zeros(nb),
        si=np.zeros(nb), sj=np.zeros(nb), nmax=np.zeros(nb, dtype=np.int64))


@njit(cache=True, nogil=True)
def _find(parent, a):
    r = a
    while parent[r] != r:
        r = parent[r]
    while parent[a] != r:  # path compression
        nxt = parent[a]
        parent[a] = r
        a = nxt
    return r


@njit(cache=True, nogil=True)
def _union(parent, a, b):
    ra, rb = _find(parent, a), _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(cache=True, nogil=True)
def _components(fg, parent, out):
    """8-connected components of `fg` into `out` (1, 2, .. in raster order of their first pixel; 0
    elsewhere); returns their number. `parent` is scratch."""
    n, m = fg.shape
    for i in range(n):
        for j in range(m):
            if not fg[i, j]:
                continue
            p = i * m + j
            parent[p] = p
            if j > 0 and fg[i, j - 1]:
                _union(parent, p, p - 1)
            if i > 0:
                for dj in (-1, 0, 1):
                    jj = j + dj
                    if 0 <= jj < m and fg[i - 1, jj]:
                        _union(parent, p, p - m + dj)
    count = 0
    for i in range(n):
        for j in range(m):
            if not fg[i, j]:
                out[i, j] = 0
                continue
            p = i * m + j
            r = _find(parent, p)
            if r == p:  # the root (the smallest index) is the component's first pixel in raster order
                count += 1
                out[i, j] = count
            else:  # labelled already
                out[i, j] = out[r // m, r % m]
    return count


@njit(cache=True, nogil=True)
def _dilate_rows(src, dst, join):
    """dst[i, j] = any(src[i, j - join: j + join + 1]): `src` dilated along its rows."""
    n, m = src.shape
    for i in range(n):
        last = -(10 ** 9)  # the last True column seen
        for j in range(m + join):
            if j < m and src[i, j]:
                last = j
            jj = j - join
            if 0 <= jj < m:
                dst[i, jj] = last >= jj - join


@njit(cache=True, nogil=True)
def label_frame(ws, f, mask, threshold, join):
    """Blobs of frame `f` and their statistics into `ws`; returns their number.

    Lit pixels are ``f >= threshold`` outside `mask`; with `join` > 0, lit pixels whose dilated
    squares (half-width `join`) touch share a blob. Per blob (``ws.*[1:count + 1]``): area, peak,
    the sums of the centroid and the local-maximum plateaus of the 3 x 3 box sums (``5 x 5`` with
    `join` > 0, the maxima of a noisy flat top are not spots).
    """
    n, m = f.shape
    lit, lab, sm = ws.lit, ws.lab, ws.sm
    for i in range(n):
        for j in range(m):
            lit[i, j] = (not mask[i, j]) and f[i, j] >= threshold
    if join > 0:
        # the lit mask dilated by a square of half-width `join` (separable: rows, then columns),
        # labelled; the labels kept on the lit pixels
        _dilate_rows(lit, ws.rows, join)
        _dilate_rows(ws.rows.T, ws.grow.T, join)
        count = _components(ws.grow, ws.parent, lab)
        for i in range(n):
            for j in range(m):
                if not lit[i, j]:
                    lab[i, j] = 0
    else:
        count = _components(lit, ws.parent, lab)
    # 3 x 3 box sums (0 outside the frame; masked pixels 0): rows, then columns
    rs = ws.rs
    for i in range(n):
        for j in range(m):
            s = 0
            for dj in (-1, 0, 1):
                jj = j + dj
                if 0 <= jj < m and not mask[i, jj]:
                    s += f[i, jj]
            rs[i, j] = s
    for i in range(n):
        for j in range(m):
            s = rs[i, j]
            if i > 0:
                s += rs[i - 1, j]
            if i + 1 < n:
                s += rs[i + 1, j]
            sm[i, j] = s
    for k in range(count + 1):
        ws.area[k] = 0
        ws.peak[k] = 0
        ws.sw[k] = 0.0
        ws.si[k] = 0.0
        ws.sj[k] = 0.0
        ws.nmax[k] = 0
    r = 2 if join > 0 else 1
    parent = ws.parent
    for i in range(n):
        for j in range(m):
            b = lab[i, j]
            if b == 0:
                continue
            v = f[i, j]
            ws.area[b] += 1
            if v > ws.peak[b]:
                ws.peak[b] = v
            fv = float(v)
            ws.sw[b] += fv
            ws.si[b] += fv * i
            ws.sj[b] += fv * j
            # a local maximum of the box sums; 8-connected maxima are one plateau, one maximum.
            # parent[] is free now: for the lit pixels visited so far, >= 0 at a maximum (its
            # plateau's forest), -1 elsewhere
            p = i * m + j
            parent[p] = -1
            c = sm[i, j]
            top = True
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < n and 0 <= jj < m and sm[ii, jj] > c:
                        top = False
            if not top:
                continue
            parent[p] = p
            ws.nmax[b] += 1
            for di, dj in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):  # the neighbours visited before
                ii, jj = i + di, j + dj
                if 0 <= ii < n and 0 <= jj < m and lab[ii, jj] != 0 and parent[ii * m + jj] >= 0:
                    q = ii * m + jj
                    if _find(parent, q) != _find(parent, p):
                        _union(parent, p, q)
                        ws.nmax[b] -= 1  # joined an earlier plateau
    return count


@njit(cache=True, nogil=True)
def select_isolated(ws, count, reach, disc, take, pos, own):
    """The first `take` blobs (label order) with one local maximum whose centroid pixel lies
    `reach` px from the frame's edges and no lit pixel of another blob at the `disc` offsets
    around it: their centroid pixels into `pos` and the label there into `own`; returns how many."""
    n, m = ws.lab.shape
    lab = ws.lab
    got = 0
    for b in range(1, count + 1):
        if got >= take:
            break
        if ws.nmax[b] != 1:
            continue
        ci = np.floor(ws.si[b] / ws.sw[b])
        cj = np.floor(ws.sj[b] / ws.sw[b])
        if not (reach <= ci < n - reach and reach <= cj < m - reach):
            continue
        i, j = int(ci), int(cj)
        alone = True
        for k in range(disc.shape[0]):
            v = lab[i + disc[k, 0], j + disc[k, 1]]
            if v != 0 and v != b:
                alone = False
                break
        if alone:
            pos[got, 0] = i
            pos[got, 1] = j
            own[got] = lab[i, j]
            got += 1
    return got


@njit(cache=True, nogil=True)
def cut_patches(ws, f, mask, pos, own, count, h, tail, out):
    """Patches of half-width `h` around `pos[:count]` into `out[:count]` (float pixel values): NaN
    where masked or where the nearest lit pixel within `tail` px belongs to another blob than
    `own` (or one of the nearest, where lit pixels of two blobs lie at the same distance)."""
    n, m = f.shape
    P = 2 * h + 1
    t2 = tail * tail
    best = np.empty((P, P), dtype=np.int64)
    blab = np.empty((P, P), dtype=np.int64)
    for k in range(count):
        i0, j0 = pos[k, 0] - h, pos[k, 1] - h
        for a in range(P):
            for b in range(P):
                best[a, b] = t2 + 1
                blab[a, b] = 0
        # every lit pixel within `tail` of the patch stamps its distance on the patch's pixels
        for qi in range(max(i0 - tail, 0), min(i0 + P + tail, n)):
            for qj in range(max(j0 - tail, 0), min(j0 + P + tail, m)):
                if not ws.lit[qi, qj]:
                    continue
                ql = ws.lab[qi, qj]
                for a in range(max(qi - tail - i0, 0), min(qi + tail - i0 + 1, P)):
                    di = i0 + a - qi
                    for b in range(max(qj - tail - j0, 0), min(qj + tail - j0 + 1, P)):
                        dj = j0 + b - qj
                        d2 = di * di + dj * dj
                        if d2 < best[a, b] or (d2 == best[a, b] and ql != own[k]):
                            best[a, b] = d2
                            blab[a, b] = ql
        for a in range(P):
            for b in range(P):
                ii, jj = i0 + a, j0 + b
                if mask[ii, jj] or (best[a, b] <= t2 and blab[a, b] != own[k]):
                    out[k, a, b] = np.nan
                else:
                    out[k, a, b] = float(f[ii, jj])
