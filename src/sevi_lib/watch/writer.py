"""How a camera program writes frames so that ``sevi watch`` can follow them.

:class:`SwmrWriter` appends frames to a ``FinalImage`` file in HDF5's single-writer /
multiple-reader mode: the published layout (one gzip chunk per frame), a dataset that grows
(``maxshape=(None,)``), ``libver='latest'`` and ``swmr_mode = True`` once the dataset exists, then
for each batch of frames: resize, write the chunks, flush. Readers never block it. Closing the
file is the end of the run. The same in a few lines of h5py::

    f = h5py.File(path, "w", libver="latest")
    ds = f.create_dataset("FinalImage", shape=(0,), maxshape=(None,), dtype=FINAL_IMAGE_DTYPE,
                          chunks=(1,), compression="gzip", compression_opts=9)
    f.swmr_mode = True
    for row in rows:                       # each frame as it comes
        ds.resize((ds.shape[0] + 1,)); ds[-1] = row; ds.flush()
    f.close()

A folder of chunk files needs nothing special: write each chunk with
:class:`sevi_lib.core.io.FrameWriter` (it writes a temporary file and renames it into place),
named ``chunk_<number>.h5``, and put a file ``END`` into the folder at the end.
"""

import argparse
import os
import time
import zlib
from pathlib import Path

import h5py
import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.io import FINAL_IMAGE_DTYPE, FrameReader, FrameWriter


class SwmrWriter:
    """Append frames to a ``FinalImage`` file that readers follow (SWMR).

    Parameters
    ----------
    path : str or Path
        Created (an existing file is replaced).
    level : int
        gzip level (the published files: 9).

    Examples
    --------
    >>> with SwmrWriter("run.h5") as w:                 # doctest: +SKIP
    ...     w.write(ids, frames)                         # as they come
    """

    def __init__(self, path, level=9):
        self.path = path
        self.level = int(level)
        self.written = 0

    def __enter__(self):
        self.file = h5py.File(self.path, "w", libver="latest")
        self.dataset = self.file.create_dataset("FinalImage", shape=(0,), maxshape=(None,), dtype=FINAL_IMAGE_DTYPE,
                                                chunks=(1,), compression="gzip", compression_opts=self.level)
        self.file.swmr_mode = True
        return self

    def write(self, image_ids, frames):
        """Append frames (uint8 (k, 1024, 1024)) with their ids, and flush them to readers."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.shape[1:] != (N_PIX, N_PIX):
            raise InputError(f"{self.path}: frames must be uint8 (k, {N_PIX}, {N_PIX}), got {frames.dtype} {frames.shape}")
        rows = np.empty(len(frames), dtype=FINAL_IMAGE_DTYPE)
        rows["ImageId"] = image_ids
        rows["Image"] = frames
        blobs = [zlib.compress(r.tobytes(), self.level) for r in rows]
        self.dataset.resize((self.written + len(rows),))
        for i, blob in enumerate(blobs):
            self.dataset.id.write_direct_chunk((self.written + i,), blob)
        self.written += len(rows)
        self.dataset.flush()

    def write_compressed(self, blobs):
        """Append frames given as their compressed HDF5 chunks (gzip of one ``FinalImage`` row each,
        as another file of the published layout stores them), and flush them to readers."""
        self.dataset.resize((self.written + len(blobs),))
        for i, blob in enumerate(blobs):
            self.dataset.id.write_direct_chunk((self.written + i,), blob)
        self.written += len(blobs)
        self.dataset.flush()

    def close(self):
        self.file.close()

    def __exit__(self, *exc):
        self.close()
        return False


def replay(source, target, *, fps=50.0, batch=1, die_after=None, folder_chunk=None, start_at=None, clock=None):
    """Replay the frames of a ``FinalImage`` file as a camera would write them (tests, benchmark, trying out).

    Parameters
    ----------
    source : str or Path
        A complete ``FinalImage`` file.
    target : str or Path
        The SWMR file to write, or (with `folder_chunk`) the folder of chunk files.
    fps : float
        Frames per second (frame i is written at ``t0 + i / fps``; 0: as fast as possible). A
        source of the published layout is copied chunk by chunk without recompressing, so the
        writer costs almost no CPU, as a camera's own writer would not on the analysis machine.
    batch : int
        Frames per write (and flush).
    die_after : int, optional
        Announce `batch` more frames after this many, write none of them, and end the process
        at once (``os._exit``): a writer that dies mid-chunk.
    folder_chunk : int, optional
        Write chunk files of this many frames (``chunk_<i>.h5``, renamed into place) and ``END``
        instead of an SWMR file.
    start_at : float, optional
        When frame 0 is due, on `clock` (default: now).
    clock : callable, optional
        Seconds (default ``time.monotonic``, shared by the processes of a machine).

    Returns
    -------
    float
        The start time ``t0`` on `clock`.
    """
    clock = clock or time.monotonic
    target = Path(target)
    with FrameReader(source) as reader:
        n = reader.n_frames
        step = folder_chunk or batch
        t0 = clock() if start_at is None else float(start_at)
        if folder_chunk:
            target.mkdir(parents=True, exist_ok=True)
            for i, a in enumerate(range(0, n, step)):
                b = min(a + step, n)
                ids, frames = reader.read(a, b)
                _wait(t0 + (b - 1) / fps if fps else 0, clock)
                with FrameWriter(target / f"chunk_{i:06d}.h5", b - a, threads=2) as w:
                    w.write(ids, frames)
            (target / "END").touch()
            return t0
        with SwmrWriter(target) as w:
            for a in range(0, n, step):
                b = min(a + step, n)
                if die_after is not None and a >= die_after:
                    w.dataset.resize((w.written + step,))
                    w.dataset.flush()
                    os._exit(1)
                if reader._direct:  # the source's compressed chunks as they are: no compression here
                    blobs = [reader.dataset.id.read_direct_chunk((i,))[1] for i in range(a, b)]
                    _wait(t0 + (b - 1) / fps if fps else 0, clock)
                    w.write_compressed(blobs)
                else:
                    ids, frames = reader.read(a, b)
                    _wait(t0 + (b - 1) / fps if fps else 0, clock)
                    w.write(ids, frames)
    return t0


def _wait(until, clock):
    delay = until - clock()
    if delay > 0:
        time.sleep(delay)


def main(argv=None):
    """``python -m sevi_lib.watch.writer SOURCE TARGET [--fps F] [--batch K] [--folder-chunk K] [--die-after N] [--start-at T]``."""
    p = argparse.ArgumentParser(prog="python -m sevi_lib.watch.writer",
                                description="Replay a FinalImage file as a live run (SWMR file or chunk folder).")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--fps", type=float, default=50.0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--folder-chunk", type=int, default=None)
    p.add_argument("--die-after", type=int, default=None)
    p.add_argument("--start-at", type=float, default=None, help="time.monotonic() at which frame 0 is due")
    a = p.parse_args(argv)
    replay(a.source, a.target, fps=a.fps, batch=a.batch, die_after=a.die_after, folder_chunk=a.folder_chunk,
           start_at=a.start_at)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
