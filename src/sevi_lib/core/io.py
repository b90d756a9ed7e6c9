"""HDF5 layouts of the task, streaming frame I/O and atomic writes.

Every writer here is atomic: it writes a temporary file beside the target and renames it onto
the target only when the write completed, so an interrupted or failed job never leaves an
output that looks complete. Every reader checks layout and dtype and raises
:class:`~sevi_lib.core.errors.InputError` with one line naming the file (and frame) and the problem.

Published layouts (see the reference): ``FinalImage`` rows ``(ImageId <i4, Image u1 (1024, 1024))``
gzip 9; ``Truth`` / ``DistributionParameters``; ``GeneratedElectrons``; ``DetectedElectrons``;
``Answer``. Readers accept the field spellings ``sigma_R``/``sigmaR``/``\\sigma_R`` and
``cos_theta``/``costheta`` (case and punctuation are ignored when matching field names).
"""

import contextlib
import errno as errno_codes
import hashlib
import os
import re
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from sevi_lib.core.errors import InputError, OutputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.shells import Shells
from sevi_lib.core.spots import SpotModel

FINAL_IMAGE_DTYPE = np.dtype([("ImageId", "<i4"), ("Image", "u1", (N_PIX, N_PIX))])
GENERATED_DTYPE = np.dtype([("SphereId", "u1"), ("ElectronId", "<i4"), ("r", "<f8"), ("cos_theta", "<f8")])
DETECTED_DTYPE = np.dtype([("ImageId", "<i4"), ("ElectronId", "<i4"), ("x", "<f8"), ("z", "<f8")])


#: Largest radius a shell may have (screen units; the screen's corner is at sqrt(2)).
R_MAX = 1.5


def truth_dtype(n):
    """Published ``Truth`` dtype with `n` beta coefficients."""
    return np.dtype([("SphereId", "u1"), ("R", "<f8"), ("sigma_R", "<f8"), ("beta", "<f8", (n,))])


def distribution_dtype(n):
    """Published ``DistributionParameters`` dtype (training files of the second kind)."""
    return np.dtype([("DistributionId", "<i4"), ("R", "<f8"), ("sigma_R", "<f8"), ("beta", "<f8", (n,))])


def answer_dtype(n):
    """Published ``Answer`` dtype with `n` beta coefficients (beta_2 first)."""
    return np.dtype([("SphereId", "u1"), ("R", "<f8"), ("beta", "<f8", (n,))])


# ----------------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the suffix of `path` (so ``np.save`` and ``savefig`` infer the format)
    and is removed on any exception, including KeyboardInterrupt. An operating-system failure of
    the write (disk full, quota, permission, I/O error; also when HDF5 reports it as a
    ``RuntimeError`` with its ``errno``) is raised as :class:`~sevi_lib.core.errors.OutputError`
    naming `path` and the reason, in one line.

    Parameters
    ----------
    path : str or Path
        Final destination; its folder is created if needed.

    Yields
    ------
    Path
        Where to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        reason = write_failure(exc)
        if reason is None:
            raise
        raise OutputError(f"{path}: cannot write: {reason}") from None


_ERRNO = re.compile(r"errno\s*=\s*(\d+)")

#: The operating-system errors that mean "this output cannot be written".
WRITE_ERRNOS = frozenset({errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EROFS, errno_codes.EACCES,
                          errno_codes.EPERM, errno_codes.EIO, errno_codes.EFBIG})


def write_failure(exc):
    """The operating system's reason why a write failed, or None if `exc` is not such a failure.

    Parameters
    ----------
    exc : BaseException
        What a write raised: an ``OSError`` with an ``errno`` (Python's own writes), or the
        ``OSError`` / ``RuntimeError`` by which h5py reports a failed HDF5 write, whose message
        holds ``errno = N``.

    Returns
    -------
    str or None
        E.g. ``"No space left on device"``.
    """
    if isinstance(exc, OutputError):
        return str(exc).split("cannot write: ", 1)[-1]
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return os.strerror(exc.errno)  # h5py's strerror is HDF5's whole error stack
    if isinstance(exc, (OSError, RuntimeError)):
        m = _ERRNO.search(str(exc))
        if m and int(m.group(1)) in WRITE_ERRNOS:
            return os.strerror(int(m.group(1)))
    return None


def _same_file(a, b):
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_input(path):
    """Refuse an input path that does not exist or is a directory (one-line InputError).

    Parameters
    ----------
    path : str or Path
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not path.exists():
        raise InputError(f"{path}: no such file")


#: bytes hashed at each end of a file by :func:`file_fingerprint`
FINGERPRINT_BYTES = 1 << 20


def file_fingerprint(path):
    """A cheap fingerprint of a file's contents: sha256 of its first and last MiB and its size.

    Cheap on a 2.7 GB frames file, and it changes when the file is replaced by another (gzip
    chunks differ from the first frame on). Detection shards record it, and the workflow makes
    it a param of detection, so new contents at the same path rerun detection.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str
        Hex digest.

    Raises
    ------
    InputError
        If the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            h.update(f.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                f.seek(max(size - FINGERPRINT_BYTES, FINGERPRINT_BYTES))
                h.update(f.read(FINGERPRINT_BYTES))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    h.update(str(size).encode())
    return h.hexdigest()


def check_outputs(outputs, inputs=()):
    """Refuse, before any work, outputs that would replace an input or cannot be written.

    Each output must differ from every input and from the other outputs, must not be an existing
    directory, and its folder (or the nearest existing folder above it, since writers create
    missing folders) must accept a new file: this is probed by creating and removing a temporary
    file there, so permissions, read-only file systems and a file in place of a folder are all
    caught. Nothing is left behind.

    Parameters
    ----------
    outputs : iterable of str or Path or None
        Files a command will write (None entries are skipped).
    inputs : iterable of str or Path
        Files it reads.

    Raises
    ------
    InputError
        ``"OUTPUT: problem"``, one line.
    """
    inputs = [Path(p) for p in inputs if p is not None]
    seen = []
    for out in outputs:
        if out is None:
            continue
        out = Path(out)
        for inp in inputs:
            if _same_file(out, inp):
                raise InputError(f"{out}: output is the input file {inp}; refusing to overwrite it")
        for other in seen:
            if _same_file(out, other):
                raise InputError(f"{out}: given for two outputs")
        seen.append(out)
        if out.is_dir():
            raise InputError(f"{out}: is a directory; give a file name")
        folder = out.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise InputError(f"{out}: cannot write here ({folder} is not a directory)")
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
        except OSError as exc:
            raise InputError(f"{out}: cannot write in {folder} ({exc.strerror or exc})") from None
        os.close(fd)
        os.unlink(probe)


@contextlib.contextmanager
def _stderr_held():
    """Hold back what C code writes to file descriptor 2 in the block; replay it unless it raised.

    HDF5 (through h5py's Cython deallocators) prints a traceback for every object it cannot close
    on a failed write; those are noise beside the one-line error the caller raises.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                buf.seek(0)
                text = buf.read()
                if text:
                    sys.stderr.write(text.decode(errors="replace"))


@contextlib.contextmanager
def h5_create(path):
    """Open a new HDF5 file at `path` for writing, with the C library's stderr held back.

    Use it on the temporary path of :func:`atomic_path`, for a block that only writes (what C
    code prints in it appears when the block ends well). A write that fails (disk full) makes
    HDF5 print a traceback for every object it then cannot flush or close; those are dropped,
    so the caller's one-line error is all the user sees.

    Parameters
    ----------
    path : str or Path

    Yields
    ------
    h5py.File
    """
    with _stderr_held():
        f = h5py.File(path, "w")
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                f.close()
            raise
        f.close()


def close_h5(f):
    """Close an h5py file that was written to, with what HDF5 prints held back if the close fails
    (see :func:`h5_create`; for files written in a block that also prints progress)."""
    with _stderr_held():
        f.close()


def write_h5(path, attrs=None, compression=None, **datasets):
    """Write named arrays as datasets of one HDF5 file, atomically.

    Parameters
    ----------
    path : str or Path
    attrs : dict, optional
        File attributes (numbers, strings).
    compression : str, optional
        h5py compression filter for every dataset (e.g. ``"gzip"``).
    **datasets : ndarray
        Dataset name -> array (structured arrays keep their dtype).
    """
    with atomic_path(path) as tmp:
        with h5_create(tmp) as f:
            for name, value in datasets.items():
                value = np.asarray(value)
                f.create_dataset(name, data=value, compression=compression if value.size else None)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value


def write_text(path, text):
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def save_npy(path, array):
    """``numpy.save`` atomically."""
    with atomic_path(path) as tmp:
        np.save(tmp, np.asarray(array))


def write_answer(path, R, beta):
    """Write an ``Answer`` table in exactly the published layout, smaller radius first.

    Parameters
    ----------
    path : str or Path
    R : array_like, shape (S,)
        Shell radii.
    beta : array_like, shape (S, N)
        beta_2 .. beta_2N per shell.

    Returns
    -------
    ndarray
        The structured array written.
    """
    R = np.asarray(R, dtype=np.float64)
    beta = np.atleast_2d(np.asarray(beta, dtype=np.float64))
    order = np.argsort(R, kind="stable")
    table = np.zeros(len(R), dtype=answer_dtype(beta.shape[1]))
    table["SphereId"] = np.arange(len(R))
    table["R"] = R[order]
    table["beta"] = beta[order]
    write_h5(path, Answer=table)
    return table


class FrameWriter:
    """Write frames to a ``FinalImage`` dataset (published layout), chunk by chunk, atomically.

    Each frame is one HDF5 chunk, gzip-compressed at `level`; compression runs in `threads`
    threads (zlib releases the GIL) and the compressed chunks are written directly. The file
    appears at `path` only when all `n_frames` frames were written and the block exited cleanly.

    Parameters
    ----------
    path : str or Path
    n_frames : int
        Number of frames the file will hold.
    level : int
        gzip level (published files use 9).
    threads : int
        Compression threads.

    Examples
    --------
    >>> with FrameWriter("frames.h5", 10) as w:            # doctest: +SKIP
    ...     w.write(np.arange(10), frames)
    """

    def __init__(self, path, n_frames, level=9, threads=1):
        self.path = Path(path)
        self.n_frames = int(n_frames)
        self.level = int(level)
        self.threads = max(1, int(threads))
        self.written = 0

    def __enter__(self):
        self._ctx = atomic_path(self.path)
        self.tmp = self._ctx.__enter__()
        try:
            with _stderr_held():
                self.file = h5py.File(self.tmp, "w")
                self.dataset = self.file.create_dataset(
                    "FinalImage", shape=(self.n_frames,), dtype=FINAL_IMAGE_DTYPE, chunks=(1,),
                    compression="gzip", compression_opts=self.level,
                )
        except BaseException as exc:
            if not self._ctx.__exit__(type(exc), exc, exc.__traceback__):  # OutputError, or this one
                raise
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        return self

    def _compress(self, row):
        return zlib.compress(row.tobytes(), self.level)

    def write(self, image_ids, frames):
        """Append frames.

        Parameters
        ----------
        image_ids : array_like of int, shape (k,)
        frames : ndarray of uint8, shape (k, 1024, 1024)
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.shape[1:] != (N_PIX, N_PIX):
            raise InputError(f"{self.path}: frames must be uint8 (k, {N_PIX}, {N_PIX}), got {frames.dtype} {frames.shape}")
        k = len(frames)
        if self.written + k > self.n_frames:
            raise InputError(f"{self.path}: more than the announced {self.n_frames} frames written")
        rows = np.empty(k, dtype=FINAL_IMAGE_DTYPE)
        rows["ImageId"] = image_ids
        rows["Image"] = frames
        mapper = self._pool.map if self._pool else map
        with _stderr_held():
            for i, blob in enumerate(mapper(self._compress, rows)):
                self.dataset.id.write_direct_chunk((self.written + i,), blob)
        self.written += k

    def __exit__(self, exc_type, exc, tb):
        if self._pool:
            self._pool.shutdown()
        try:
            close_h5(self.file)
        except Exception as failed:
            if exc_type is None:
                exc_type, exc, tb = type(failed), failed, failed.__traceback__
        if exc_type is None and self.written != self.n_frames:
            err = InputError(f"{self.path}: only {self.written} of {self.n_frames} frames were written")
            self._ctx.__exit__(InputError, err, None)  # removes the temporary file
            raise err
        return self._ctx.__exit__(exc_type, exc, tb)


# ----------------------------------------------------------------------------------------- reading
def _norm(name):
    name = name.replace("σ", "sigma").replace("θ", "theta")
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _field(arr, path, dataset, want):
    """Field `want` of structured `arr`, matched tolerant of spelling."""
    for name in arr.dtype.names or ():
        if _norm(name) == _norm(want):
            return arr[name]
    raise InputError(f"{path}: dataset '{dataset}' has no field '{want}' (fields: {', '.join(arr.dtype.names or ())})")


#: What h5py raises on a damaged file (corrupt metadata, chunk index or data): never a user's bug,
#: always reported as one InputError line naming the file.
_H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError, OverflowError)


def _one_line(exc):
    """The first line of an exception's message (h5py's can span several)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_h5(path):
    """Open an HDF5 file for reading, with one-line errors for missing or corrupt files.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    h5py.File
    """
    path = Path(path)
    check_input(path)
    try:
        return h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({_one_line(exc)})") from None


def read_dataset(path, names):
    """Read the first dataset of `names` that exists in file `path`.

    Returns
    -------
    name : str
    data : ndarray
    """
    with open_h5(path) as f:
        for name in names:
            if name in f and isinstance(f[name], h5py.Dataset):
                try:
                    return name, f[name][()]
                except _H5_ERRORS as exc:
                    raise InputError(f"{path}: dataset '{name}' is corrupt ({_one_line(exc)})") from None
        raise InputError(f"{path}: no dataset {' or '.join(repr(n) for n in names)} (found: {', '.join(f.keys()) or 'nothing'})")


def read_truth(path):
    """Read the shells of a truth file (``Truth`` or ``DistributionParameters``).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Shells
        Sorted by radius. Every number is checked where it enters: finite R in (0, 1.5), finite
        sigma_R >= 0, finite and physical beta (UnphysicalError), each error naming the file.
    """
    name, t = read_dataset(path, ["Truth", "DistributionParameters"])
    R = _field(t, path, name, "R")
    sigma_R = _field(t, path, name, "sigma_R")
    beta = _field(t, path, name, "beta")
    if beta.ndim != 2:
        raise InputError(f"{path}: field 'beta' of '{name}' must be a vector per row, got shape {beta.shape}")
    try:
        shells = Shells(R, sigma_R, beta)
    except Exception as exc:  # SeviError subclasses: add the file name
        raise type(exc)(f"{path}: {exc}") from None
    for j, r in enumerate(shells.R):
        if not r < R_MAX:
            raise InputError(f"{path}: shell {j}: radius R = {r:g} is outside (0, {R_MAX:g}) (screen units)")
    return shells


def read_detected(path):
    """Read a ``DetectedElectrons`` table (project's own or published).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of ndarray
        ``x`` and ``z`` (float64, screen units) and, when present, ``ImageId`` and ``ElectronId``;
        extra fields of the project's own tables are passed through under their names.
    """
    name, t = read_dataset(path, ["DetectedElectrons"])
    if t.dtype.names is None:
        raise InputError(f"{path}: dataset '{name}' is not a table (dtype {t.dtype})")
    out = {n: np.asarray(t[n]) for n in t.dtype.names}
    out["x"] = np.asarray(_field(t, path, name, "x"), dtype=np.float64)
    out["z"] = np.asarray(_field(t, path, name, "z"), dtype=np.float64)
    if not (np.all(np.isfinite(out["x"])) and np.all(np.isfinite(out["z"]))):
        raise InputError(f"{path}: '{name}' holds non-finite x or z")
    return out


def read_map(path):
    """Read a 1024 x 1024 numeric map (count map or raw-frame sum) from a ``.npy`` file.

    Raises
    ------
    InputError
        Naming the file when it cannot be read or is not a 1024 x 1024 numeric array.
    """
    try:
        img = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as .npy ({exc})") from None
    if img.shape != (N_PIX, N_PIX) or not np.issubdtype(img.dtype, np.number):
        raise InputError(f"{path}: expected a {N_PIX} x {N_PIX} numeric map, got {img.dtype} {img.shape}")
    return img


def read_answer(path):
    """Read an ``Answer`` table as stored (no conversion; :func:`sevi_lib.core.score.check_answer` validates).

    Returns
    -------
    ndarray
        Structured array.
    """
    return read_dataset(path, ["Answer"])[1]


class FrameReader:
    """Stream frames of a ``FinalImage`` file without loading it.

    Parameters
    ----------
    path : str or Path
    threads : int
        Decompression threads. When the file stores one frame per gzip chunk (as the published
        and the project's files do), chunks are read raw and decompressed in parallel threads;
        otherwise h5py reads them.

    Attributes
    ----------
    n_frames : int

    Examples
    --------
    >>> with FrameReader("finaltest.h5") as r:               # doctest: +SKIP
    ...     for ids, frames in r.iter_chunks(0, r.n_frames, chunk=64):
    ...         ...
    """

    def __init__(self, path, threads=1):
        self.path = Path(path)
        self.threads = max(1, int(threads))

    def __enter__(self):
        self.file = open_h5(self.path)
        try:
            self._open_dataset()
        except BaseException:
            self.file.close()
            raise
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        return self

    def _open_dataset(self):
        """Check the layout of FinalImage; every h5py failure on a damaged file becomes one InputError."""
        try:
            # indexing (not .get) so that a damaged object header raises instead of reading as absent
            obj = self.file["FinalImage"] if "FinalImage" in list(self.file.keys()) else None
            if isinstance(obj, h5py.Group):
                raise InputError(f"{self.path}: 'FinalImage' is a group, not a dataset of frames")
            if not isinstance(obj, h5py.Dataset):
                raise InputError(f"{self.path}: no dataset 'FinalImage' (found: {', '.join(self.file.keys()) or 'nothing'})")
            ds = obj
            names = ds.dtype.names or ()
            if "Image" not in names or "ImageId" not in names:
                raise InputError(f"{self.path}: 'FinalImage' must have fields ImageId and Image, has {names or ds.dtype}")
            sub = ds.dtype["Image"]
            if sub.shape != (N_PIX, N_PIX) or sub.base != np.uint8:
                raise InputError(f"{self.path}: 'FinalImage' frames must be uint8 ({N_PIX}, {N_PIX}), are {sub.base} {sub.shape}")
            if ds.ndim != 1:
                raise InputError(f"{self.path}: 'FinalImage' must be one row per frame, has shape {ds.shape}")
            self.dataset = ds
            self.n_frames = ds.shape[0]
            self._direct = (
                ds.chunks == (1,) and ds.dtype == FINAL_IMAGE_DTYPE and ds.compression == "gzip"
                and not ds.shuffle and not ds.fletcher32 and ds.scaleoffset is None
            )
        except _H5_ERRORS as exc:
            raise InputError(f"{self.path}: 'FinalImage' is unreadable (corrupt file: {_one_line(exc)})") from None

    def __exit__(self, *exc):
        if self._pool:
            self._pool.shutdown()
        self.file.close()
        return False

    def _read_one(self, i):
        try:
            mask, blob = self.dataset.id.read_direct_chunk((i,))
            if mask:
                raise OSError("filter was skipped for this chunk")
            data = zlib.decompress(blob)
        except (*_H5_ERRORS, zlib.error) as exc:
            raise InputError(f"{self.path}: frame {i} is unreadable (corrupt or truncated file: {_one_line(exc)})") from None
        if len(data) != FINAL_IMAGE_DTYPE.itemsize:
            raise InputError(f"{self.path}: frame {i} decompresses to {len(data)} bytes, expected {FINAL_IMAGE_DTYPE.itemsize}")
        return np.frombuffer(data, dtype=FINAL_IMAGE_DTYPE)[0]

    def read(self, start, stop):
        """Frames [start, stop) as ``(image_ids int32 (k,), frames uint8 (k, 1024, 1024))``."""
        self._check_range(start, stop)
        k = stop - start
        ids = np.empty(k, dtype=np.int32)
        frames = np.empty((k, N_PIX, N_PIX), dtype=np.uint8)
        if self._direct:
            mapper = self._pool.map if self._pool else map
            for j, row in enumerate(mapper(self._read_one, range(start, stop))):
                ids[j] = row["ImageId"]
                frames[j] = row["Image"]
        else:
            try:
                rows = self.dataset[start:stop]
            except _H5_ERRORS as exc:
                raise InputError(f"{self.path}: frames {start}..{stop - 1} are unreadable "
                                 f"(corrupt or truncated file: {_one_line(exc)})") from None
            ids[:] = rows["ImageId"]
            frames[:] = rows["Image"]
        return ids, frames

    def _check_range(self, start, stop):
        if not (0 <= start <= stop <= self.n_frames):
            raise InputError(f"{self.path}: frame range [{start}, {stop}) is outside the file's {self.n_frames} frames")

    def iter_chunks(self, start=0, stop=None, chunk=64):
        """Yield consecutive chunks of frames [start, stop).

        Parameters
        ----------
        start, stop : int
            Frame range; ``stop=None`` means the end of the file. An empty range yields nothing.
        chunk : int
            Frames per chunk (memory is about ``chunk`` MiB).

        Yields
        ------
        image_ids : ndarray of int32, shape (k,)
        frames : ndarray of uint8, shape (k, 1024, 1024)
        """
        stop = self.n_frames if stop is None else stop
        self._check_range(start, stop)
        for a in range(start, stop, chunk):
            yield self.read(a, min(a + chunk, stop))


# ------------------------------------------------------------------------------- lab-camera truth
#: A simulated camera's hot pixels (truth file dataset ``HotPixels``): pixel ``frame[ix, iz]`` and
#: the level (counts) added to it in every frame before noise, rounding and clipping.
HOT_PIXEL_DTYPE = np.dtype([("ix", "<i4"), ("iz", "<i4"), ("level", "<f8")])


def read_camera_truth(path):
    """The simulated camera of a truth file (root attributes and ``HotPixels``, issue 13).

    Files written before these existed, and published truth files, give the published camera:
    centre (0, 0), no stray electrons, no read noise, no hot pixels, the published spot model
    (each ``spot_*`` attribute left out keeps the published model's value).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        ``centre`` (x, z) of the image centre, screen units (attributes ``centre_x``,
        ``centre_z``); ``stray_electrons`` (Poisson mean per frame) and ``read_noise`` (counts)
        as float; ``hot_pixels`` float64 array (n, 3) of ix, iz, level (dataset ``HotPixels``);
        ``spot`` the :class:`~sevi_lib.core.spots.SpotModel` (attributes ``spot_sigma_px``,
        ``spot_sigma_sd_px``, ``spot_rho_sd``, ``spot_gain``, ``spot_gain_mean``, ``spot_gain_cv``).
    """
    spot_keys = [f"spot_{k}" for k in SpotModel().to_dict()]
    with open_h5(path) as f:
        try:
            attrs = {k: f.attrs[k] for k in ("centre_x", "centre_z", "stray_electrons", "read_noise", *spot_keys)
                     if k in f.attrs}
            hot = f["HotPixels"][()] if isinstance(f.get("HotPixels"), h5py.Dataset) else None
        except _H5_ERRORS as exc:
            raise InputError(f"{path}: camera truth is unreadable ({_one_line(exc)})") from None
    out = {}
    for key in ("centre_x", "centre_z", "stray_electrons", "read_noise"):
        try:
            out[key] = float(np.asarray(attrs.get(key, 0.0)).reshape(()))
        except (TypeError, ValueError):
            raise InputError(f"{path}: attribute '{key}' is not a number ({attrs[key]!r})") from None
        if not np.isfinite(out[key]) or (key in ("stray_electrons", "read_noise") and out[key] < 0):
            raise InputError(f"{path}: attribute '{key}' = {out[key]} is not a valid value")
    table = np.zeros((0, 3))
    if hot is not None and hot.size:
        if hot.dtype.names is None:
            raise InputError(f"{path}: dataset 'HotPixels' is not a table (dtype {hot.dtype})")
        table = np.stack([np.asarray(_field(hot, path, "HotPixels", k), dtype=np.float64)
                          for k in ("ix", "iz", "level")], axis=1).reshape(-1, 3)
    spot = {}
    for key in spot_keys:
        if key not in attrs:
            continue
        value = attrs[key]
        if key == "spot_gain":
            spot["gain"] = value.decode() if isinstance(value, bytes) else str(value)
            continue
        try:
            spot[key[5:]] = float(np.asarray(value).reshape(()))
        except (TypeError, ValueError):
            raise InputError(f"{path}: attribute '{key}' is not a number ({value!r})") from None
    try:
        model = SpotModel.from_dict(spot)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: spot-model attributes are not valid ({exc})") from None
    return {"centre": (out["centre_x"], out["centre_z"]), "stray_electrons": out["stray_electrons"],
            "read_noise": out["read_noise"], "hot_pixels": table, "spot": model}
