"""Electron detection: from a uint8 camera frame to electron positions.

Each electron lights one spot of the published model (see the reference): a Gaussian of peak
``A ~ N(100, 10^2)`` and width ``sigma ~ 7.7 px``, sampled on a 5 x 5 sub-grid at 0 .. 0.8 px
from each pixel's lower edge, summed, rounded and clipped to 255. Near the poles of the angular
distributions spots pile up and saturate. The detector works blob by blob:

1. **Blobs.** One raster scan finds the 8-connected groups of pixels ``>= threshold`` (flood
   fill) and, in the same pass, adds every non-zero pixel to the running sum of raw frames.
   With a camera survey (:mod:`sevi_lib.detect.camera`) the hot pixels read 0 (a copy of the
   frame is scanned; the raw sum keeps them) and the thresholds and ``peak_radius`` follow the
   read noise.
2. **Isolated spots.** A blob with one local maximum, no saturated pixel, a peak and a flux
   compatible with one spot and a near-round shape is one electron, placed at its intensity
   centroid. A pixel's value is the spot's mean over sample points whose mean offset is
   ``subgrid_offset = 0.4`` px from the pixel's lower edge, so the centroid is computed with
   pixel coordinates ``i + 0.4``; this removes the generator's -0.1 px centroid shift.
3. **Everything else** (several maxima, saturation, too much flux or too elongated) is fitted
   by a mixture of spots of exactly the published form (:mod:`sevi_lib.detect.spotfit`: position,
   amplitude, width and correlation per spot; Levenberg-Marquardt on the blob's pixels with
   saturated pixels censored). Components are seeded at local maxima, grown where the residual
   keeps a peak of ``add_threshold`` counts, split when they hold the flux of two spots, merged
   when they converge onto each other, removed when faint and not worth ``removal_cost``; a
   component with the light of n spots ends as n components fitted together. Each final
   component is one electron (``multiplicity`` > 1 only where a component still holds the light
   of several spots).
4. **Faint spots** (only under the survey's read noise: :meth:`~sevi_lib.detect.camera.CameraSurvey.faint_params`).
   A spot of a broad or dim gain law can peak below ``peak_min`` (about ``k`` noise standard
   deviations, 16 counts at sd 1.5), yet its light summed over a box of about 3 widths stands
   far out of that box's noise. After the scan, the frame's sum over that box (an integral
   image), less the expected noise and less the light of the electrons found (Gaussian spots of
   the model's width, summed over the box analytically), is evaluated on a lattice of half a
   width; each maximum above ``k`` standard deviations of the summed noise, plus the uncertain
   light of the bright neighbours (their spread of widths), that lies in no blob the scan turned into electrons is one
   electron (:func:`_faint_spots`). Without read noise (the published frames) there is no such
   pass and the output is the scan's.

All work is done in numba (``nogil``) kernels over preallocated per-thread workspaces (one
:data:`FrameWorkspace` namedtuple per thread, built by :func:`frame_workspace`; the settings
travel as one :data:`~sevi_lib.detect.settings.KernelParams`), so :class:`FrameDetector` can run
frames in parallel threads. Detected electrons are binned with the project's one binner,
:func:`sevi_lib.core.maps.count_map`. ``DetectorParams`` is defined in
:mod:`sevi_lib.detect.settings` and re-exported here.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT
from sevi_lib.core.io import DETECTED_DTYPE
from sevi_lib.core.maps import count_map
from sevi_lib.detect.settings import NO_FAINT_PASS, DetectorParams, kernel_params
from sevi_lib.detect._lm import fit_workspace
from sevi_lib.detect._peaks import is_lattice_peak, is_peak
from sevi_lib.detect.spotfit import blob_electrons, decompose_blob

__all__ = ["ELECTRON_DTYPE", "MAX_BLOB_HIST", "DetectorParams", "FrameDetector", "detect_frame"]

#: Electron table of the detector: the published ``DetectedElectrons`` layout plus
#: ``amplitude`` (fitted spot peak per electron, counts), ``multiplicity`` (electrons assigned to
#: the same fitted component) and ``blob_size`` (electrons found in the same blob; 1 = isolated).
ELECTRON_DTYPE = np.dtype(
    DETECTED_DTYPE.descr + [("amplitude", "<f4"), ("multiplicity", "u1"), ("blob_size", "<u2")]
)

#: Longest multiplicity histogram kept (blobs of more electrons count in the last bin).
MAX_BLOB_HIST = 64

#: Buffers of one detection thread, built by :func:`frame_workspace`: ``label`` (pixels already
#: in a blob), ``pi``/``pj`` (the blobs' pixels), ``runs`` (flood-fill queue), ``isum`` (the
#: thread's raw-frame sum, uint32), ``pos``/``amp``/``mult``/``bsize`` (the frame's electrons),
#: ``blob_hist``, ``fit`` (the mixture fit's :data:`~sevi_lib.detect._lm.FitWorkspace`) and, for
#: the faint-spot pass, ``integ`` (the frame's integral image, int32, (1025, 1025)) and ``resp``
#: (the filter's value on its lattice, float64, (1024, 1024)); 1 x 1 without the pass.
FrameWorkspace = namedtuple("FrameWorkspace", "label pi pj runs isum pos amp mult bsize blob_hist fit integ resp")


def frame_workspace(params, faint=False):
    """The :data:`FrameWorkspace` of one detection thread for `params` (DetectorParams); `faint`:
    with the buffers of the faint-spot pass."""
    npx = N_PIX * N_PIX
    cap = int(params.max_per_frame)
    nf = N_PIX if faint else 0
    return FrameWorkspace(
        label=np.zeros((N_PIX, N_PIX), dtype=np.uint8),
        pi=np.empty(npx, dtype=np.int32),
        pj=np.empty(npx, dtype=np.int32),
        runs=np.empty((npx // 2 + 1, 3), dtype=np.int32),
        isum=np.zeros((N_PIX, N_PIX), dtype=np.uint32),
        pos=np.empty((cap, 2), dtype=np.float64),
        amp=np.empty(cap, dtype=np.float64),
        mult=np.empty(cap, dtype=np.int64),
        bsize=np.empty(cap, dtype=np.int64),
        blob_hist=np.zeros(MAX_BLOB_HIST + 1, dtype=np.int64),
        fit=fit_workspace(N_PIX, int(params.max_per_blob), sigma_max=params.sigma_px),
        integ=np.zeros((nf + 1, nf + 1), dtype=np.int32),
        resp=np.zeros((max(nf, 1), max(nf, 1)), dtype=np.float64),
    )


# ------------------------------------------------------------------------------- numba kernels
@njit(cache=True, nogil=True)
def _flood(frame, thr, label, pi, pj, runs, i, j, start):
    """8-connected flood fill of pixels >= thr from (i, j), run by run; appends to pi/pj, returns the new end.

    (i, j) is the first pixel of its blob in raster order, so its run starts there. A run
    (row, first, last) queued in `runs` is expanded by scanning the rows above and below it
    over [first - 1, last + 1] for unlabelled pixels >= thr, each extended to its whole run.
    """
    n = frame.shape[0]
    m = frame.shape[1]
    end = start
    e = j
    while e + 1 < m and frame[i, e + 1] >= thr and label[i, e + 1] == 0:
        e += 1
    for b in range(j, e + 1):
        label[i, b] = 1
        pi[end] = i
        pj[end] = b
        end += 1
    runs[0, 0] = i
    runs[0, 1] = j
    runs[0, 2] = e
    nr = 1
    q = 0
    while q < nr:
        a = runs[q, 0]
        lo = runs[q, 1]
        hi = runs[q, 2]
        q += 1
        for aa in range(a - 1, a + 2, 2):
            if aa < 0 or aa >= n:
                continue
            b = max(lo - 1, 0)
            bend = min(hi + 1, m - 1)
            while b <= bend:
                if frame[aa, b] < thr or label[aa, b] != 0:
                    b += 1
                    continue
                s0 = b
                while s0 > 0 and frame[aa, s0 - 1] >= thr and label[aa, s0 - 1] == 0:
                    s0 -= 1
                e = b
                while e + 1 < m and frame[aa, e + 1] >= thr and label[aa, e + 1] == 0:
                    e += 1
                for c in range(s0, e + 1):
                    label[aa, c] = 1
                    pi[end] = aa
                    pj[end] = c
                    end += 1
                runs[nr, 0] = aa
                runs[nr, 1] = s0
                runs[nr, 2] = e
                nr += 1
                b = e + 2
    return end


@njit(cache=True, nogil=True)
def _blob_stats(frame, bpi, bpj, off, peak_min, peak_radius):
    """Flux, centroid, principal-moment ratio, peak, #saturated, #local maxima (<= 2), edge, bbox."""
    n = frame.shape[0]
    m = frame.shape[1]
    flux = 0.0
    sx = 0.0
    sz = 0.0
    sxx = 0.0
    szz = 0.0
    sxz = 0.0
    vmax = 0
    nmax = 0
    nsat = 0
    bi = n
    bj = m
    ei = 0
    ej = 0
    for p in range(bpi.size):
        a = bpi[p]
        b = bpj[p]
        v = frame[a, b]
        w = float(v)
        x = a + off
        z = b + off
        flux += w
        sx += w * x
        sz += w * z
        sxx += w * x * x
        szz += w * z * z
        sxz += w * x * z
        vmax = max(vmax, v)
        bi = min(bi, a)
        bj = min(bj, b)
        ei = max(ei, a)
        ej = max(ej, b)
        if v == 255:
            nsat += 1
        elif v >= peak_min and nmax < 2 and is_peak(frame, a, b, n, m, peak_radius):
            nmax += 1
    edge = bi == 0 or bj == 0 or ei == n - 1 or ej == m - 1
    mx = sx / flux
    mz = sz / flux
    cxx = sxx / flux - mx * mx
    czz = szz / flux - mz * mz
    cxz = sxz / flux - mx * mz
    tr = 0.5 * (cxx + czz)
    det = np.sqrt(max(0.25 * (cxx - czz) ** 2 + cxz * cxz, 0.0))
    elong = (tr + det) / max(tr - det, 1e-9)
    return flux, mx, mz, elong, vmax, nsat, nmax, edge, bi, bj, ei, ej


@njit(cache=True, nogil=True)
def _integral(frame, integ):
    """Integral image of `frame` into `integ` ((n + 1, m + 1): ``integ[i, j]`` = the sum of ``frame[:i, :j]``)."""
    n = frame.shape[0]
    m = frame.shape[1]
    for j in range(m + 1):
        integ[0, j] = 0
    for i in range(n):
        integ[i + 1, 0] = 0
        row = 0
        for j in range(m):
            row += frame[i, j]
            integ[i + 1, j + 1] = integ[i, j + 1] + row


@njit(cache=True, nogil=True)
def _spot_box(x, i, h, r, c, n):
    """Sums over the pixels a = i - h .. i + h of a spot's profile ``g = exp(c (a - x)^2)`` (the spot
    cut at `r` pixels from ``int(x)`` and at the frame's `n` pixels) and of ``g (a - x)^2``."""
    s0 = 0.0
    s2 = 0.0
    for a in range(max(i - h, int(x) - r, 0), min(i + h + 1, int(x) + r + 1, n)):
        d2 = (a - x) * (a - x)
        g = np.exp(c * d2)
        s0 += g
        s2 += g * d2
    return s0, s2


@njit(cache=True, nogil=True)
def _model_box(pos, amp, ne, i, j, h, sigma, off, n, m):
    """The light in the box of half-width h about (i, j) of the electrons ``pos[:ne]`` (Gaussian spots
    of width `sigma` and peak `amp`, cut at 3 widths) and its change per unit relative change of
    their width (to first order)."""
    r = int(np.ceil(3.0 * sigma))
    c = -0.5 / (sigma * sigma)
    light = 0.0
    dlight = 0.0
    for e in range(ne):
        x = pos[e, 0] - off
        z = pos[e, 1] - off
        if abs(x - i) > r + h + 1 or abs(z - j) > r + h + 1:
            continue
        sx0, sx2 = _spot_box(x, i, h, r, c, n)
        if sx0 == 0.0:
            continue
        sz0, sz2 = _spot_box(z, j, h, r, c, m)
        light += amp[e] * sx0 * sz0
        dlight += amp[e] * (sx2 * sz0 + sx0 * sz2) / (sigma * sigma)
    return light, dlight


@njit(cache=True, nogil=True)
def _faint_value(integ, i, j, h, background):
    """The faint-spot filter at pixel (i, j): the sum over the box of half-width h about it less
    `background` (the box's expected read-noise sum)."""
    si = (integ[i + h + 1, j + h + 1] - integ[i - h, j + h + 1]
          - integ[i + h + 1, j - h] + integ[i - h, j - h])
    return si - background


@njit(cache=True, nogil=True)
def _faint_residual(integ, i, j, fp, ws, nscan, sigma, off, n, m):
    """The faint-spot filter at pixel (i, j) (:func:`_faint_value`) less the light of the electrons
    ``ws.pos[:nscan]`` in its box (:func:`_model_box`)."""
    return _faint_value(integ, i, j, fp.inner, fp.background) - _model_box(
        ws.pos, ws.amp, nscan, i, j, fp.inner, sigma, off, n, m)[0]


@njit(cache=True, nogil=True)
def _faint_spots(frame, fp, off, sigma, rel_sd, ws, nout):
    """The faint-spot pass: one electron at each maximum of the filter (:func:`_faint_value`) above
    ``fp.level`` that lies in no blob the scan counted (``label`` 2); returns the new electron
    count (-1 if the buffer is full).

    The filter sees the frame less the light of the electrons found so far (``ws.pos[:nout]``,
    spots of width `sigma`, box by box: :func:`_model_box`), so that a faint spot beside a bright one is
    not lost on its tail. It is evaluated on a lattice of every ``fp.step`` pixels (the spots are several
    steps wide); a lattice maximum within ``fp.radius`` above ``0.8 fp.level`` climbs to the
    filter's maximum over its 3 x 3 neighbours at full resolution, which must reach the level,
    lie outside the counted blobs and not be one found already; the electron sits there,
    refined by a parabola through its neighbours.
    """
    label, resp, integ = ws.label, ws.resp, ws.integ
    nscan = nout
    _integral(frame, integ)
    n = frame.shape[0]
    m = frame.shape[1]
    h = fp.inner
    bg = fp.background
    st = fp.step
    k = max(fp.radius // st, 1) * st
    lo = h + k + 8
    for i in range(lo - k, n - lo + k, st):
        for j in range(lo - k, m - lo + k, st):
            resp[i, j] = _faint_value(integ, i, j, h, bg)
    # less the light of the electrons found, spot by spot over the lattice points it reaches
    r = int(np.ceil(3.0 * sigma))
    c = -0.5 / (sigma * sigma)
    first_lat = lo - k
    last_lat = n - lo + k - 1
    sz = np.empty(2 * (r + h) // st + 3)  # one spot's box sums along the lattice's columns
    for e in range(nscan):
        x = ws.pos[e, 0] - off
        z = ws.pos[e, 1] - off
        ia = max(int(x) - r - h, first_lat)
        ia = first_lat + ((ia - first_lat + st - 1) // st) * st
        ja = max(int(z) - r - h, first_lat)
        ja = first_lat + ((ja - first_lat + st - 1) // st) * st
        jb = min(int(z) + r + h, last_lat) + 1
        for j in range(ja, jb, st):
            sz[(j - ja) // st] = _spot_box(z, j, h, r, c, m)[0]
        for i in range(ia, min(int(x) + r + h, last_lat) + 1, st):
            sx0 = ws.amp[e] * _spot_box(x, i, h, r, c, n)[0]
            if sx0 == 0.0:
                continue
            for j in range(ja, jb, st):
                resp[i, j] -= sx0 * sz[(j - ja) // st]
    cap = ws.pos.shape[0]
    first = nout
    for i in range(lo, n - lo, st):
        for j in range(lo, m - lo, st):
            if resp[i, j] <= 0.8 * fp.level or label[i, j] == 2 or not is_lattice_peak(resp, i, j, n, m, k, st):
                continue
            a = i
            b = j
            v = resp[i, j]
            for _ in range(16):  # climb to the full-resolution maximum
                ba = a
                bb = b
                for da in range(-1, 2):
                    for db in range(-1, 2):
                        w = _faint_residual(integ, a + da, b + db, fp, ws, nscan, sigma, off, n, m)
                        if w > v:
                            v = w
                            ba = a + da
                            bb = b + db
                if ba == a and bb == b:
                    break
                a = ba
                b = bb
            if v <= fp.level or label[a, b] == 2 or abs(a - i) > 7 or abs(b - j) > 7:
                continue
            # the uncertain light of the bright neighbours in the box: their spread of widths
            if v <= fp.level + rel_sd * _model_box(ws.pos, ws.amp, nscan, a, b, h, sigma, off, n, m)[1]:
                continue
            seen = False
            for e in range(first, nout):
                if abs(ws.pos[e, 0] - off - a) < 1.0 and abs(ws.pos[e, 1] - off - b) < 1.0:
                    seen = True
                    break
            if seen:
                continue
            if nout >= cap:
                return -1
            ws.pos[nout, 0] = a + off + _vertex(_faint_residual(integ, a - 1, b, fp, ws, nscan, sigma, off, n, m), v,
                                                _faint_residual(integ, a + 1, b, fp, ws, nscan, sigma, off, n, m))
            ws.pos[nout, 1] = b + off + _vertex(_faint_residual(integ, a, b - 1, fp, ws, nscan, sigma, off, n, m), v,
                                                _faint_residual(integ, a, b + 1, fp, ws, nscan, sigma, off, n, m))
            ws.amp[nout] = v / fp.scale
            ws.mult[nout] = 1
            ws.bsize[nout] = 1
            ws.blob_hist[1] += 1
            nout += 1
    return nout


@njit(cache=True, nogil=True)
def _vertex(a, b, c):
    """Offset (in [-0.5, 0.5]) of the vertex of the parabola through (-1, a), (0, b), (1, c) from 0."""
    curv = float(a) - 2.0 * float(b) + float(c)
    if curv >= 0.0:
        return 0.0
    return min(max(0.5 * (float(a) - float(c)) / curv, -0.5), 0.5)


@njit(cache=True, nogil=True)
def _detect_frame(frame, frame64, par, fp, ws):
    """Detect the electrons of one frame into ws (pos, amp, mult, bsize, blob_hist; frame added
    to isum); returns their number (or -1 if the buffer is full).

    `frame64` is `frame` viewed as uint64 (8 pixels a word), so empty stretches are skipped a
    word at a time, by the blob scan and by the raw-frame sum alike (one pass over the frame);
    `par` is the :data:`~sevi_lib.detect.settings.KernelParams`, `fp` the
    :data:`~sevi_lib.detect.settings.FaintParams` (with ``fp.on``, the faint-spot pass follows
    the scan: :func:`_faint_spots`; the blobs the scan counted are labelled 2 for it).
    """
    label, pi, pj, runs, out_pos, out_amp, out_mult, out_bsize, blob_hist = (
        ws.label, ws.pi, ws.pj, ws.runs, ws.pos, ws.amp, ws.mult, ws.bsize, ws.blob_hist)
    fit = ws.fit
    D = fit.D
    cand = fit.cand
    n = frame.shape[0]
    thr = par.threshold
    peak_min = par.peak_min
    off = par.subgrid_offset
    A0 = par.amplitude
    sigma = par.sigma_px
    cap = out_pos.shape[0]
    # expected flux of one spot above the threshold: 2 pi s^2 (A - T)
    flux1 = 2.0 * np.pi * sigma * sigma * (A0 - thr)
    isum = ws.isum
    nout = 0
    end = 0
    full = False
    nw = frame64.shape[1]
    for i in range(n):
        for w in range(nw):
            if frame64[i, w] == 0:
                continue
            for j in range(8 * w, 8 * w + 8):  # the raw sum in the same pass: only non-zero words add
                isum[i, j] += frame[i, j]
            if full:
                continue
            for j in range(8 * w, 8 * w + 8):
                if frame[i, j] < thr or label[i, j] != 0:
                    continue
                start = end
                end = _flood(frame, thr, label, pi, pj, runs, i, j, start)
                flux, mx, mz, elong, vmax, nsat, nmax, edge, bi, bj, ei, ej = _blob_stats(
                    frame, pi[start:end], pj[start:end], off, peak_min, par.peak_radius)
                if vmax < peak_min:
                    continue
                if (nsat == 0 and nmax <= 1 and not edge and vmax <= par.single_max_peak
                        and flux <= par.single_max_flux * flux1 and elong <= par.single_max_elongation):
                    if nout >= cap:
                        full = True
                        break
                    for p in range(start, end):
                        label[pi[p], pj[p]] = 2
                    out_pos[nout, 0] = mx
                    out_pos[nout, 1] = mz
                    out_amp[nout] = vmax
                    out_mult[nout] = 1
                    out_bsize[nout] = 1
                    nout += 1
                    blob_hist[1] += 1
                    continue
                nbi = ei - bi + 1
                nbj = ej - bj + 1
                for a in range(nbi):
                    for b in range(nbj):
                        D[a, b] = -1.0
                for p in range(start, end):
                    D[pi[p] - bi, pj[p] - bj] = frame[pi[p], pj[p]]
                K = decompose_blob(fit, par, nbi, nbj)
                first = nout
                ne = blob_electrons(fit, par, K, cand)
                if ne < 0 or nout + ne > cap:
                    full = True
                    break
                if ne > 0:  # a blob the fit found empty is left to the faint-spot pass
                    for p in range(start, end):
                        label[pi[p], pj[p]] = 2
                for e in range(ne):
                    out_pos[nout, 0] = cand[e, 0] + bi
                    out_pos[nout, 1] = cand[e, 1] + bj
                    out_amp[nout] = cand[e, 2]
                    out_mult[nout] = min(int(cand[e, 3]), 255)
                    nout += 1
                nb = ne
                for r in range(first, nout):
                    out_bsize[r] = min(nb, 65535)
                blob_hist[min(nb, blob_hist.shape[0] - 1)] += 1
    if fp.on and not full:
        nout = _faint_spots(frame, fp, off, sigma, 2.0 * par.sigma_sd_px / sigma, ws, nout)
        full = nout < 0
    # reset the labels we set
    for p in range(end):
        label[pi[p], pj[p]] = 0
    return -1 if full else nout


class _Thread:
    """One detection thread: its :data:`FrameWorkspace`, how many frames its uint32 sum holds and,
    with a hot-pixel mask, the buffer of the masked frame."""

    def __init__(self, params, masked=False, faint=False):
        self.ws = frame_workspace(params, faint=faint)
        self.frames_in_isum = 0
        self.clean = np.empty((N_PIX, N_PIX), dtype=np.uint8) if masked else None

    def detect(self, frame, par, fp, mask=None):
        """Detect one frame; `fp` the faint-spot pass; `mask` (index arrays of the hot pixels) reads 0 for the detector."""
        if mask is None:
            n = _detect_frame(frame, frame.view(np.uint64), par, fp, self.ws)
        else:
            clean = self.clean
            clean[:] = frame
            clean[mask] = 0
            n = _detect_frame(clean, clean.view(np.uint64), par, fp, self.ws)
            self.ws.isum[mask] += frame[mask]  # the raw-frame sum keeps the masked pixels
        self.frames_in_isum += 1
        return n

    def flush_sum(self, out):
        """Add the thread's raw-frame sum into `out` (float64) and clear it."""
        out += self.ws.isum
        self.ws.isum[:] = 0
        self.frames_in_isum = 0


def _check_frames(frames):
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.dtype != np.uint8 or frames.shape[1:] != (N_PIX, N_PIX):
        raise ValueError(f"frames must be uint8 of shape (k, {N_PIX}, {N_PIX}), got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)


class FrameDetector:
    """Detect electrons in frames, accumulating the count map, raw sum and blob statistics.

    Parameters
    ----------
    params : DetectorParams, optional
        Defaults to ``DetectorParams()``.
    threads : int
        Frames of a chunk are split among this many threads (numba kernels release the GIL).
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        The camera's survey: the thresholds become at least the noise-implied ones
        (:meth:`~sevi_lib.detect.camera.CameraSurvey.detector_params`) and the hot pixels read 0
        for the detector (no blob starts at or passes through one; inside a blob they are
        outside it for the spot fit, so they have zero weight in its residual). The raw-frame sum
        keeps them. Under the survey's read noise the blob scan is followed by the faint-spot pass
        (:meth:`~sevi_lib.detect.camera.CameraSurvey.faint_params`: the electrons whose spot
        peaks below ``peak_min``). A survey without noise or hot pixels changes nothing.
    faint_pass : bool
        False: no faint-spot pass even under read noise (for comparisons).

    Attributes
    ----------
    params : DetectorParams
        The parameters in use (with the camera's thresholds).
    count_map : ndarray of float64, shape (1024, 1024)
        Detected electrons binned as ``histogram2d(x, z)`` (``Image[ix, iz]``).
    blob_hist : ndarray of int64, shape (MAX_BLOB_HIST + 1,)
        ``blob_hist[n]``: blobs resolved into n electrons (last bin: n or more).
    n_frames : int
        Frames processed so far.

    Examples
    --------
    >>> det = FrameDetector(threads=2)                          # doctest: +SKIP
    >>> table = det.process(image_ids, frames)                   # doctest: +SKIP
    >>> raw_sum = det.intensity_sum()                            # doctest: +SKIP
    """

    _SUM_FLUSH = (2**32 - 1) // 255

    def __init__(self, params=None, threads=1, camera=None, *, faint_pass=True):
        params = params or DetectorParams()
        self.camera = camera
        self.params = (camera.detector_params(params) if camera is not None else params).validate()
        self._par = kernel_params(self.params)
        self._faint = camera.faint_params(self.params) if camera is not None and faint_pass else NO_FAINT_PASS
        self._mask = np.nonzero(camera.mask()) if camera is not None and camera.hot_pixels else None
        self.threads = max(1, int(threads))
        self._threads = [_Thread(self.params, masked=self._mask is not None, faint=bool(self._faint.on))
                         for _ in range(self.threads)]
        self._pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads)
        self.count_map = np.zeros((N_PIX, N_PIX), dtype=np.float64)
        self._sum = np.zeros((N_PIX, N_PIX), dtype=np.float64)
        self.n_frames = 0

    def close(self):
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _run(self, th, frames, ids, lo, hi):
        parts = []
        for f in range(lo, hi):
            if th.frames_in_isum >= self._SUM_FLUSH:
                th.flush_sum(self._sum)
            n = th.detect(frames[f], self._par, self._faint, self._mask)
            if n < 0:
                raise OverflowError(f"frame {ids[f]}: more than max_per_frame={self.params.max_per_frame} electrons")
            t = np.empty(n, dtype=ELECTRON_DTYPE)
            t["ImageId"] = ids[f]
            b = th.ws
            t["x"] = b.pos[:n, 0] / PIX_PER_UNIT - 1.0
            t["z"] = b.pos[:n, 1] / PIX_PER_UNIT - 1.0
            t["amplitude"] = b.amp[:n]
            t["multiplicity"] = b.mult[:n]
            t["blob_size"] = b.bsize[:n]
            parts.append(t)
        return parts

    def process(self, image_ids, frames):
        """Detect the electrons of a chunk of frames.

        Parameters
        ----------
        image_ids : array_like of int, shape (k,)
        frames : ndarray of uint8, shape (k, 1024, 1024) or (1024, 1024)

        Returns
        -------
        ndarray of ELECTRON_DTYPE
            One row per electron in frame order; ``ElectronId`` numbers them from 0 within the
            chunk (callers renumber when concatenating).
        """
        frames = _check_frames(frames)
        ids = np.atleast_1d(np.asarray(image_ids, dtype=np.int32))
        if ids.shape != (frames.shape[0],):
            raise ValueError(f"{ids.size} image ids for {frames.shape[0]} frames")
        k = frames.shape[0]
        if self._pool is None or k == 1:
            parts = self._run(self._threads[0], frames, ids, 0, k)
        else:
            bounds = np.linspace(0, k, min(self.threads, k) + 1).astype(int)
            futs = [self._pool.submit(self._run, self._threads[t], frames, ids, bounds[t], bounds[t + 1])
                    for t in range(len(bounds) - 1)]
            parts = [p for fut in futs for p in fut.result()]
        table = np.concatenate(parts) if parts else np.empty(0, dtype=ELECTRON_DTYPE)
        table["ElectronId"] = np.arange(table.size, dtype=np.int32)
        count_map(table["x"], table["z"], out=self.count_map)
        self.n_frames += k
        return table

    @property
    def blob_hist(self):
        return np.sum([t.ws.blob_hist for t in self._threads], axis=0)

    def intensity_sum(self):
        """Plain float64 sum of the raw frames processed so far (``Image[ix, iz]``)."""
        for th in self._threads:
            th.flush_sum(self._sum)
        return self._sum.copy()


def detect_frame(frame, params=None, camera=None):
    """Detect the electrons of one frame.

    Parameters
    ----------
    frame : ndarray of uint8, shape (1024, 1024)
        ``Image[ix, iz]``.
    params : DetectorParams, optional
    camera : sevi_lib.detect.camera.CameraSurvey, optional
        See :class:`FrameDetector`.

    Returns
    -------
    ndarray of ELECTRON_DTYPE
        ``x``, ``z`` in screen units (``ImageId`` 0).

    Examples
    --------
    >>> import numpy as np
    >>> detect_frame(np.zeros((1024, 1024), np.uint8)).size
    0
    """
    with FrameDetector(params, camera=camera) as det:
        return det.process([0], frame)
