"""Electron detection: from a uint8 camera frame to electron positions.

Each electron lights one spot of the published model (see the reference): a Gaussian of peak
``A ~ N(100, 10^2)`` and width ``sigma ~ 7.7 px``, sampled on a 5 x 5 sub-grid at 0 .. 0.8 px
from each pixel's lower edge, summed, rounded and clipped to 255. Near the poles of the angular
distributions spots pile up and saturate. The detector works blob by blob:

1. **Blobs.** One raster scan finds the 8-connected groups of pixels ``>= threshold`` (flood
   fill) and, in the same pass, adds every non-zero pixel to the running sum of raw frames.
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

All work is done in numba (``nogil``) kernels over preallocated per-thread workspaces, so
:class:`FrameDetector` can run frames in parallel threads.
"""

from dataclasses import asdict, dataclass, fields

import numpy as np
from numba import njit

from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT
from sevi_lib.core.io import DETECTED_DTYPE
from sevi_lib.detect.spotfit import FitWorkspace, _decompose, _expand, _is_patch_max

#: Electron table of the detector: the published ``DetectedElectrons`` layout plus
#: ``amplitude`` (fitted spot peak per electron, counts), ``multiplicity`` (electrons assigned to
#: the same fitted component) and ``blob_size`` (electrons found in the same blob; 1 = isolated).
ELECTRON_DTYPE = np.dtype(
    DETECTED_DTYPE.descr + [("amplitude", "<f4"), ("multiplicity", "u1"), ("blob_size", "<u2")]
)

#: Longest multiplicity histogram kept (blobs of more electrons count in the last bin).
MAX_BLOB_HIST = 64


@dataclass(frozen=True)
class DetectorParams:
    """Detector parameters (the ``detect:`` section of the workflow config, minus ``shards``...).

    Attributes
    ----------
    threshold : int
        Pixel value (counts) from which a pixel belongs to a blob.
    peak_min : int
        Blobs whose brightest pixel is below this are ignored (no electron is that faint).
    amplitude : float
        Expected peak of one spot (counts); a fitted component of amplitude A is
        ``round(A / amplitude)`` electrons.
    sigma_px : float
        Spot width used by the mixture fit (pixels).
    subgrid_offset : float
        Mean sample offset of a pixel from its lower edge (pixels); 0.4 for the published
        5 x 5 sub-grid at 0, 0.2, .., 0.8.
    single_max_peak : float
        Largest peak of a blob accepted as one isolated spot without fitting.
    single_max_flux : float
        Largest blob flux, in units of one spot's expected flux above `threshold`, accepted as
        one isolated spot without fitting.
    single_max_elongation : float
        Largest ratio of the blob's principal second moments accepted as one isolated spot.
    add_threshold : float
        Residual peak (counts) at which the fit adds a component.
    min_amplitude : float
        Components fitted below this amplitude (counts) are dropped.
    split_ratio : float
        A component of flux >= ``split_ratio`` mean spots is tried as two.
    removal_cost : float
        A component fainter than 0.8 mean spots is kept only if removing it (and refitting)
        raises the squared residual of its blob by at least this much (counts^2).
    max_per_blob : int
        Most components fitted in one blob.
    max_iter : int
        Levenberg-Marquardt iterations per fit.
    max_per_frame : int
        Capacity of the per-frame electron buffer; a frame with more electrons is an error.
    """

    threshold: int = 10
    peak_min: int = 30
    amplitude: float = 100.0
    sigma_px: float = 7.68
    subgrid_offset: float = 0.4
    single_max_peak: float = 140.0
    single_max_flux: float = 1.45
    single_max_elongation: float = 1.6
    add_threshold: float = 25.0
    min_amplitude: float = 40.0
    split_ratio: float = 1.5
    removal_cost: float = 750.0
    max_per_blob: int = 32
    max_iter: int = 30
    max_per_frame: int = 4096

    @classmethod
    def from_config(cls, section):
        """Build from a config mapping, ignoring keys that are not detector parameters.

        Parameters
        ----------
        section : dict or None
            E.g. ``config["detect"]``.

        Returns
        -------
        DetectorParams
        """
        section = section or {}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in names})

    def to_dict(self):
        """Parameters as a plain dict."""
        return asdict(self)

    def validate(self):
        """Raise ``ValueError`` naming the first out-of-range parameter."""
        checks = [
            (1 <= self.threshold <= 254, "threshold must be in 1..254"),
            (self.threshold <= self.peak_min <= 255, "peak_min must be in threshold..255"),
            (self.amplitude > 0, "amplitude must be > 0"),
            (self.sigma_px > 0, "sigma_px must be > 0"),
            (0 <= self.subgrid_offset < 1, "subgrid_offset must be in [0, 1)"),
            (self.add_threshold > 0, "add_threshold must be > 0"),
            (0 <= self.min_amplitude < self.amplitude, "min_amplitude must be in [0, amplitude)"),
            (self.split_ratio > 1, "split_ratio must be > 1"),
            (1 <= self.max_per_blob <= 255, "max_per_blob must be in 1..255"),
            (self.max_iter >= 1, "max_iter must be >= 1"),
            (self.max_per_frame >= 1, "max_per_frame must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"detector parameter {msg}")
        return self

    def as_array(self):
        """Parameters packed for the numba kernels (order of ``_P_*`` indices)."""
        return np.array([getattr(self, n) for n in _PARAM_ORDER], dtype=np.float64)


_PARAM_ORDER = (
    "threshold", "peak_min", "amplitude", "sigma_px", "subgrid_offset", "single_max_peak",
    "single_max_flux", "single_max_elongation", "add_threshold", "min_amplitude", "split_ratio",
    "removal_cost", "max_per_blob", "max_iter",
)
(_P_THR, _P_PEAK, _P_AMP, _P_SIG, _P_OFF, _P_SPEAK, _P_SFLUX, _P_SELONG, _P_ADD, _P_MINA,
 _P_SPLIT, _P_RCOST, _P_KMAX, _P_ITER) = range(len(_PARAM_ORDER))


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
def _blob_stats(frame, bpi, bpj, off, peak_min):
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
        elif v >= peak_min and nmax < 2 and _is_patch_max(frame, a, b, n, m, 1):
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
def _detect_frame(frame, frame64, par, label, pi, pj, runs, isum, out_pos, out_amp, out_mult, out_bsize, blob_hist,
                  D, M, R, comp, flag, trial, win, twin, E, J, tz, H, Hc, g, step, cand, Rc, Wc, bsp, csp):
    """Detect the electrons of one frame; returns their number (or -1 if the buffer is full)."""
    n = frame.shape[0]
    m = frame.shape[1]
    thr = int(par[_P_THR])
    peak_min = par[_P_PEAK]
    off = par[_P_OFF]
    A0 = par[_P_AMP]
    sigma = par[_P_SIG]
    cap = out_pos.shape[0]
    # expected flux of one spot above the threshold: 2 pi s^2 (A - T)
    flux1 = 2.0 * np.pi * sigma * sigma * (A0 - thr)
    for i in range(n):
        for j in range(m):
            isum[i, j] += frame[i, j]
    nout = 0
    end = 0
    full = False
    nw = frame64.shape[1]
    for i in range(n):
        for w in range(nw):
            if frame64[i, w] == 0 or full:
                continue
            for j in range(8 * w, 8 * w + 8):
                if frame[i, j] < thr or label[i, j] != 0:
                    continue
                start = end
                end = _flood(frame, thr, label, pi, pj, runs, i, j, start)
                flux, mx, mz, elong, vmax, nsat, nmax, edge, bi, bj, ei, ej = _blob_stats(
                    frame, pi[start:end], pj[start:end], off, peak_min)
                if vmax < peak_min:
                    continue
                if (nsat == 0 and nmax <= 1 and not edge and vmax <= par[_P_SPEAK]
                        and flux <= par[_P_SFLUX] * flux1 and elong <= par[_P_SELONG]):
                    if nout >= cap:
                        full = True
                        break
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
                K = _decompose(nbi, nbj, off, sigma, A0, peak_min, par[_P_ADD], par[_P_MINA], par[_P_SPLIT],
                               par[_P_RCOST], int(par[_P_KMAX]), int(par[_P_ITER]), D, M, R, comp, flag, trial, win, twin, E, J, tz,
                               H, Hc, g, step, cand, Rc, Wc, bsp, csp)
                first = nout
                ne = _expand(D, M, comp, flag, K, win, E, csp, off, sigma, A0, par[_P_MINA], cand, cand.shape[0])
                if ne < 0 or nout + ne > cap:
                    full = True
                    break
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
    # reset the labels we set
    for p in range(end):
        label[pi[p], pj[p]] = 0
    return -1 if full else nout


@njit(cache=True, nogil=True)
def _bin_counts(x, z, count_map):
    """Add electrons to a histogram2d-convention count map (screen units, [-1, 1] on N px)."""
    n = count_map.shape[0]
    for k in range(x.size):
        a = int(np.floor((x[k] + 1.0) * (n / 2.0)))
        b = int(np.floor((z[k] + 1.0) * (n / 2.0)))
        if x[k] == 1.0:
            a = n - 1
        if z[k] == 1.0:
            b = n - 1
        if 0 <= a < n and 0 <= b < n:
            count_map[a, b] += 1.0


def count_map(x, z, out=None):
    """Histogram electrons into a 1024 x 1024 float64 count map.

    Same bins as ``numpy.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])``
    (``Image[ix, iz]``), without its overhead; electrons outside the screen are dropped.

    Parameters
    ----------
    x, z : ndarray
        Screen coordinates.
    out : ndarray of float64, shape (1024, 1024), optional
        Map to add to (in place).

    Returns
    -------
    ndarray of float64, shape (1024, 1024)
    """
    if out is None:
        out = np.zeros((N_PIX, N_PIX), dtype=np.float64)
    _bin_counts(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(z, dtype=np.float64), out)
    return out


class _Workspace:
    """Preallocated buffers of one detection thread."""

    def __init__(self, params):
        npx = N_PIX * N_PIX
        self.label = np.zeros((N_PIX, N_PIX), dtype=np.uint8)
        self.pi = np.empty(npx, dtype=np.int32)
        self.pj = np.empty(npx, dtype=np.int32)
        self.runs = np.empty((npx // 2 + 1, 3), dtype=np.int32)
        self.fit = FitWorkspace(N_PIX, int(params.max_per_blob), sigma_max=params.sigma_px)
        self.isum = np.zeros((N_PIX, N_PIX), dtype=np.uint32)
        cap = int(params.max_per_frame)
        self.pos = np.empty((cap, 2), dtype=np.float64)
        self.amp = np.empty(cap, dtype=np.float64)
        self.mult = np.empty(cap, dtype=np.int64)
        self.bsize = np.empty(cap, dtype=np.int64)
        self.blob_hist = np.zeros(MAX_BLOB_HIST + 1, dtype=np.int64)
        self.frames_in_isum = 0

    def detect(self, frame, par):
        n = _detect_frame(frame, frame.view(np.uint64), par, self.label, self.pi, self.pj, self.runs, self.isum, self.pos, self.amp, self.mult,
                          self.bsize, self.blob_hist, *self.fit.args())
        self.frames_in_isum += 1
        return n

    def flush_sum(self, out):
        """Add the thread's raw-frame sum into `out` (float64) and clear it."""
        out += self.isum
        self.isum[:] = 0
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

    Attributes
    ----------
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

    def __init__(self, params=None, threads=1):
        self.params = (params or DetectorParams()).validate()
        self._par = self.params.as_array()
        self.threads = max(1, int(threads))
        self._ws = [_Workspace(self.params) for _ in range(self.threads)]
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

    def _run(self, ws, frames, ids, lo, hi):
        parts = []
        for f in range(lo, hi):
            if ws.frames_in_isum >= self._SUM_FLUSH:
                ws.flush_sum(self._sum)
            n = ws.detect(frames[f], self._par)
            if n < 0:
                raise OverflowError(f"frame {ids[f]}: more than max_per_frame={self.params.max_per_frame} electrons")
            t = np.empty(n, dtype=ELECTRON_DTYPE)
            t["ImageId"] = ids[f]
            t["x"] = ws.pos[:n, 0] / PIX_PER_UNIT - 1.0
            t["z"] = ws.pos[:n, 1] / PIX_PER_UNIT - 1.0
            t["amplitude"] = ws.amp[:n]
            t["multiplicity"] = ws.mult[:n]
            t["blob_size"] = ws.bsize[:n]
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
            parts = self._run(self._ws[0], frames, ids, 0, k)
        else:
            bounds = np.linspace(0, k, min(self.threads, k) + 1).astype(int)
            futs = [self._pool.submit(self._run, self._ws[t], frames, ids, bounds[t], bounds[t + 1])
                    for t in range(len(bounds) - 1)]
            parts = [p for fut in futs for p in fut.result()]
        table = np.concatenate(parts) if parts else np.empty(0, dtype=ELECTRON_DTYPE)
        table["ElectronId"] = np.arange(table.size, dtype=np.int32)
        count_map(table["x"], table["z"], out=self.count_map)
        self.n_frames += k
        return table

    @property
    def blob_hist(self):
        return np.sum([ws.blob_hist for ws in self._ws], axis=0)

    def intensity_sum(self):
        """Plain float64 sum of the raw frames processed so far (``Image[ix, iz]``)."""
        for ws in self._ws:
            ws.flush_sum(self._sum)
        return self._sum.copy()


def detect_frame(frame, params=None):
    """Detect the electrons of one frame.

    Parameters
    ----------
    frame : ndarray of uint8, shape (1024, 1024)
        ``Image[ix, iz]``.
    params : DetectorParams, optional

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
    with FrameDetector(params) as det:
        return det.process([0], frame)


# ------------------------------------------------------------------------------ shards (files)
#: Datasets of a detection shard file (``sevi detect --out``).
SHARD_DATASETS = ("DetectedElectrons", "CountMap", "IntensitySum", "BlobMultiplicity")


def match_electrons(tx, tz, dx, dz, tol_px=3.0):
    """One-to-one matching of true and detected electrons within a distance, for scoring a detector.

    Parameters
    ----------
    tx, tz : array_like
        True positions, screen units.
    dx, dz : array_like
        Detected positions, screen units.
    tol_px : float
        Largest distance of a matched pair, in pixels.

    Returns
    -------
    matched_true, matched_detected : ndarray of bool
        Which true / detected electrons have a partner.
    pairs : tuple of ndarray of int
        Indices (true, detected) of the matched pairs; the assignment minimises the summed
        distance (``scipy.optimize.linear_sum_assignment``).
    """
    from scipy.optimize import linear_sum_assignment

    T = np.c_[tx, tz] * PIX_PER_UNIT
    D = np.c_[dx, dz] * PIX_PER_UNIT
    mt = np.zeros(len(T), bool)
    md = np.zeros(len(D), bool)
    if len(T) == 0 or len(D) == 0:
        return mt, md, (np.zeros(0, int), np.zeros(0, int))
    C = np.linalg.norm(T[:, None] - D[None], axis=2)
    C = np.where(C < tol_px, C, 1e6)
    r, c = linear_sum_assignment(C)
    ok = C[r, c] < tol_px
    mt[r[ok]] = True
    md[c[ok]] = True
    return mt, md, (r[ok], c[ok])


def shard_range(n_frames, shard, shards):
    """Frame range ``[shard * n // shards, (shard + 1) * n // shards)`` of one of `shards` shards.

    Contiguous, disjoint, covering ``[0, n_frames)``; empty for some shards when
    ``n_frames < shards``.

    Examples
    --------
    >>> [shard_range(3, i, 5) for i in range(5)]
    [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3)]
    """
    if not (0 <= shard < shards):
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return shard * n_frames // shards, (shard + 1) * n_frames // shards


def detect_file(path, start, stop, params=None, threads=1, chunk=64, progress=None):
    """Detect the electrons of frames [start, stop) of a ``FinalImage`` file, streaming chunks.

    Parameters
    ----------
    path : str or Path
    start, stop : int
        Frame range (may be empty).
    params : DetectorParams, optional
    threads : int
        Detection threads (frames of a chunk in parallel) and decompression threads.
    chunk : int
        Frames read at a time.
    progress : callable, optional
        Called with the number of frames done after each chunk.

    Returns
    -------
    dict
        ``electrons`` (ELECTRON_DTYPE, ElectronId numbered from 0), ``count_map``,
        ``intensity_sum`` (float64 (1024, 1024)), ``blob_hist`` (int64), ``n_frames``,
        ``n_file_frames``.

    Raises
    ------
    sevi_lib.core.errors.InputError
        Missing or corrupt file, wrong layout, a frame that cannot be read (named), a range
        outside the file.
    """
    from sevi_lib.core.errors import InputError
    from sevi_lib.core.io import FrameReader

    parts = []
    with FrameReader(path, threads=threads) as reader, FrameDetector(params, threads=threads) as det:
        for ids, frames in reader.iter_chunks(start, stop, chunk=chunk):
            try:
                parts.append(det.process(ids, frames))
            except OverflowError as exc:
                raise InputError(f"{path}: {exc}") from None
            if progress is not None:
                progress(det.n_frames)
        table = np.concatenate(parts) if parts else np.empty(0, dtype=ELECTRON_DTYPE)
        table["ElectronId"] = np.arange(table.size, dtype=np.int32)
        return {"electrons": table, "count_map": det.count_map, "intensity_sum": det.intensity_sum(),
                "blob_hist": det.blob_hist, "n_frames": det.n_frames, "n_file_frames": reader.n_frames}


def write_shard(path, result, source, start, stop, params):
    """Write a detection shard atomically (datasets :data:`SHARD_DATASETS`, range in attributes)."""
    import json

    from sevi_lib.core.io import write_h5

    write_h5(path, attrs={"source": str(source), "start": int(start), "stop": int(stop),
                          "n_frames": int(result["n_frames"]), "params": json.dumps(params.to_dict())},
             compression="gzip",
             DetectedElectrons=result["electrons"], CountMap=result["count_map"],
             IntensitySum=result["intensity_sum"], BlobMultiplicity=result["blob_hist"])


def read_shard(path):
    """Read a shard written by :func:`write_shard`, checking its layout.

    Returns
    -------
    dict
        The datasets by name plus ``start``, ``stop``, ``n_frames``, ``params`` (dict).

    Raises
    ------
    sevi_lib.core.errors.InputError
    """
    import json

    from sevi_lib.core.errors import InputError
    from sevi_lib.core.io import open_h5

    out = {}
    with open_h5(path) as f:
        missing = [n for n in SHARD_DATASETS if n not in f]
        if missing:
            raise InputError(f"{path}: not a detection shard (missing {', '.join(missing)})")
        try:
            for name in SHARD_DATASETS:
                out[name] = f[name][()]
            for key in ("start", "stop", "n_frames"):
                out[key] = int(f.attrs[key])
            out["params"] = json.loads(f.attrs.get("params", "{}"))
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: corrupt detection shard ({exc})") from None
    e = out["DetectedElectrons"]
    if e.dtype.names is None or not {"ImageId", "x", "z"} <= set(e.dtype.names):
        raise InputError(f"{path}: DetectedElectrons lacks ImageId, x or z")
    for name in ("CountMap", "IntensitySum"):
        if out[name].shape != (N_PIX, N_PIX):
            raise InputError(f"{path}: {name} has shape {out[name].shape}, expected ({N_PIX}, {N_PIX})")
    return out
