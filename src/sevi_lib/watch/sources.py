"""Where the frames of a live run come from: a ``FinalImage`` file being appended in SWMR mode, or
a folder of numbered chunk files that appear one by one.

Both sources answer the same questions, without ever locking the writer out: how many frames
have landed, read frames ``[a, b)`` of what has landed, has the writer finished, has the file
been replaced. A source never raises for a frame that is announced but not yet readable (a
writer between ``resize`` and its data): it reports fewer frames, and the frames come on the
next poll.

SWMR file (:class:`SwmrSource`): opened with ``h5py.File(path, "r", swmr=True)`` (readers take no
write lock), ``FinalImage`` refreshed at every poll. The writer has finished when the file's
superblock no longer says it is open for writing (:func:`writer_flags`: read from the file's
first bytes, no HDF5 call, no lock). A file a writer holds open without SWMR cannot be read at
all (HDF5 locks it): :func:`swmr_hint` is the one line that says how to write it.

Chunk folder (:class:`ChunkFolder`): ``NAME<number>.h5`` files, each a complete ``FinalImage``
file (a writer writes ``.name.tmp`` and renames it into place, as
:class:`sevi_lib.core.io.FrameWriter` does); a file named ``END`` marks the end of the run.
"""

import hashlib
import os
import re
from pathlib import Path

import h5py
import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import FrameReader, _H5_ERRORS, _one_line

#: HDF5 file signature; the superblock starts at 0, 512, 1024, 2048, ... (after a user block)
_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Name of the file that marks the end of a chunk folder's run.
END_MARKER = "END"

#: A chunk file's name: any prefix, a number, ``.h5`` (hidden and temporary names never match).
CHUNK_NAME = re.compile(r"^(?!\.)(\D*?)(\d+)\.h5$")


def swmr_hint(path):
    """The one line that tells a user how to write `path` so that it can be followed."""
    return (f"{path}: is open for writing without SWMR, so no reader can open it until the writer closes it; "
            "write it with h5py.File(path, 'w', libver='latest'), create FinalImage with maxshape=(None,) and "
            "chunks=(1,), set f.swmr_mode = True, then resize, write and flush() each frame (docs/live.md), "
            "or write numbered chunk files into a folder")


def writer_flags(path):
    """The file-consistency flags of an HDF5 file's superblock: is a writer holding it open?

    Superblock versions 2 and 3 (``libver='latest'``, needed for SWMR) keep a flags byte that
    the library sets while a writer has the file open (bit 0: open for writing, bit 2: SWMR
    writing) and clears when it closes it. Reading it takes no lock and never disturbs the
    writer. A writer killed before it closed the file leaves the flags set (``h5clear -s``
    clears them).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    int or None
        The flags byte (0: no writer), or None for a superblock of version 0 or 1 (no such
        flags) or a file that cannot be read.
    """
    try:
        with open(path, "rb") as f:
            offset = 0
            while True:
                f.seek(offset)
                head = f.read(12)
                if len(head) < 12:
                    return None
                if head[:8] == _SIGNATURE:
                    return int(head[11]) if head[8] >= 2 else None
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return None


def _identity(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class _LiveReader(FrameReader):
    """A :class:`~sevi_lib.core.io.FrameReader` that opens the file as an SWMR reader."""

    def __enter__(self):
        try:
            self.file = h5py.File(self.path, "r", swmr=True)
        except _H5_ERRORS as exc:
            text = str(exc)
            if "lock" in text or "already open for write" in text:
                raise InputError(swmr_hint(self.path)) from None
            raise InputError(f"{self.path}: not a readable HDF5 file ({_one_line(exc)})") from None
        try:
            self._open_dataset()
        except BaseException:
            self.file.close()
            raise
        self._pool = None
        return self

    def refresh(self):
        """Re-read the dataset's extent (frames announced so far)."""
        try:
            self.dataset.refresh()
            self.n_frames = self.dataset.shape[0]
        except _H5_ERRORS as exc:
            raise InputError(f"{self.path}: 'FinalImage' is unreadable (corrupt file: {_one_line(exc)})") from None
        return self.n_frames


class SwmrSource:
    """A ``FinalImage`` file that a writer appends to in SWMR mode (or a complete file).

    Parameters
    ----------
    path : str or Path

    Attributes
    ----------
    path : Path
    n_frames : int
        Frames announced by the writer at the last :meth:`poll`.
    """

    kind = "swmr"

    def __init__(self, path):
        self.path = Path(path)
        self.n_frames = 0
        self._reader = None

    def __enter__(self):
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory; give a FinalImage file (or a chunk folder with --folder)")
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        self._reader = _LiveReader(self.path).__enter__()
        self._inode = _identity(self.path)
        self.n_frames = self._reader.n_frames
        return self

    def __exit__(self, *exc):
        if self._reader is not None:
            self._reader.__exit__(*exc)
        return False

    def identity(self):
        """What identifies the file: its first frame's compressed bytes (sha256), or None before it."""
        if self.n_frames == 0:
            return None
        try:
            mask, blob = self._reader.dataset.id.read_direct_chunk((0,))
        except _H5_ERRORS:
            ids, frames = self._reader.read(0, 1)
            blob = ids.tobytes() + frames.tobytes()
        return hashlib.sha256(blob).hexdigest()

    def replaced(self):
        """Whether another file is now at the path (renamed or copied over the one being read)."""
        try:
            return _identity(self.path) != self._inode
        except OSError:
            return True

    def poll(self):
        """Frames announced so far (the writer's extent of ``FinalImage``)."""
        self.n_frames = self._reader.refresh()
        return self.n_frames

    def writing(self):
        """Whether a writer still holds the file open (:func:`writer_flags`; False for old superblocks)."""
        return bool(writer_flags(self.path))

    def read(self, start, stop):
        """Frames [start, stop): ``(ids, frames)``; InputError when one is not (yet) readable."""
        return self._reader.read(start, stop)


class ChunkFolder:
    """A folder of numbered ``FinalImage`` chunk files, each complete when it appears.

    Parameters
    ----------
    path : str or Path
        The folder.
    """

    kind = "folder"

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such folder")
        return self

    def __exit__(self, *exc):
        return False

    def landed(self):
        """The chunk files present, in number order: list of ``(number, name, size, mtime_ns)``."""
        out = []
        for entry in os.scandir(self.path):
            m = CHUNK_NAME.match(entry.name)
            if m and entry.is_file():
                st = entry.stat()
                out.append((int(m.group(2)), entry.name, int(st.st_size), int(st.st_mtime_ns)))
        out.sort()
        return out

    def ended(self):
        """Whether the writer has put the end marker (:data:`END_MARKER`) into the folder."""
        return (self.path / END_MARKER).exists()

    def frames(self, name):
        """All frames of chunk file `name`: ``(ids, frames)``; InputError (one line) on a bad file."""
        with FrameReader(self.path / name) as reader:
            if reader.n_frames == 0:
                return np.empty(0, np.int32), np.empty((0, 1024, 1024), np.uint8)
            return reader.read(0, reader.n_frames)
