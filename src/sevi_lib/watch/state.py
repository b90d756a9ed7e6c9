"""The watcher's state folder: append-only and crash-safe.

Layout of ``STATE/``:

- ``manifest.json``: what is being followed (source, its kind and identity), the camera survey
  and detector parameters in use; written once, atomically, before the first segment.
- ``segments/seg_<start>_<stop>.h5``: the electrons of frames ``[start, stop)``, one detection
  shard each (:func:`sevi_lib.detect.shards.write_shard`: electrons, count map, raw-frame sum,
  blob histogram, camera), written atomically. A segment exists completely or not at all, and
  the segments are the record of what has been counted: a restart continues at the last
  segment's ``stop``, so no frame is counted twice and none is skipped. For a chunk folder the
  range is the chunk's place in the concatenation and the shard's ``source`` the chunk's name.
- ``history.jsonl``: one JSON line per refit (appended; a line torn by a crash is ignored).
- ``skipped.json``: chunk files refused (truncated, another shape), with their size and time, so
  each is reported once and retried if it is rewritten.

The segments carry a frames identity of the watch (the file was still growing when they were
written, so its size and fingerprint were not final): ``frames_fingerprint`` is
``watch:<identity of the source>``, ``n_file_frames`` :data:`OPEN_END`. ``sevi accumulate
--partial`` reads them like any shards.
"""

import json
import re
from pathlib import Path

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import open_h5, write_text
from sevi_lib.detect.blobs import ELECTRON_DTYPE
from sevi_lib.detect.shards import read_shard, write_shard

#: ``n_file_frames`` of a segment: the frames file was still open when it was written.
OPEN_END = 2**31 - 1

_SEGMENT = re.compile(r"^seg_(\d+)_(\d+)\.h5$")


class WatchState:
    """The state folder of one watch (see the module's description).

    Parameters
    ----------
    folder : str or Path

    Attributes
    ----------
    manifest : dict or None
        None before :meth:`start`.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.segments_dir = self.folder / "segments"
        path = self.folder / "manifest.json"
        self.manifest = None
        if path.exists():
            try:
                self.manifest = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: not a watch manifest ({exc})") from None

    def start(self, manifest):
        """Record what is followed (first run), or check that a restart follows the same thing.

        Parameters
        ----------
        manifest : dict
            ``source``, ``kind``, ``identity``, ``camera``, ``params``.

        Raises
        ------
        InputError
            The state folder was made for another source, file or detector.
        """
        if self.manifest is None:
            self.manifest = dict(manifest)
            write_text(self.folder / "manifest.json", json.dumps(self.manifest, indent=1) + "\n")
            return
        old = self.manifest
        for key, what in (("kind", "a source of another kind"), ("identity", "another file (its first frame differs)"),
                          ("params", "other detector parameters")):
            if old.get(key) is not None and manifest.get(key) is not None and old[key] != manifest[key]:
                raise InputError(f"{self.folder}: this state folder follows {what} than {manifest['source']}; "
                                 "give another --state")

    def update_identity(self, identity):
        """Record the source's identity once it is known (its first frame landed)."""
        if self.manifest.get("identity") is None and identity is not None:
            self.manifest["identity"] = identity
            write_text(self.folder / "manifest.json", json.dumps(self.manifest, indent=1) + "\n")

    def segment_paths(self):
        """The segments written, in frame order: list of ``(start, stop, path)``."""
        if not self.segments_dir.is_dir():
            return []
        out = []
        for p in self.segments_dir.iterdir():
            m = _SEGMENT.match(p.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), p))
        out.sort()
        expected = 0
        for start, stop, p in out:
            if start != expected:
                raise InputError(f"{p}: segments of {self.folder} do not follow each other (frames from "
                                 f"{expected} expected); the state folder was edited")
            expected = stop
        return out

    def frames_done(self):
        """Frames counted: the last segment's stop (0 before the first)."""
        segs = self.segment_paths()
        return segs[-1][1] if segs else 0

    def write_segment(self, result, *, source, start, stop, params, camera, watch_id):
        """Write the segment of frames [start, stop) atomically (a detection shard).

        Parameters
        ----------
        result : dict
            ``electrons``, ``count_map``, ``intensity_sum``, ``blob_hist``, ``n_frames``.
        source : str
            The frames file, or the chunk file's name.
        start, stop : int
        params : DetectorParams
            The parameters detection used (the camera's thresholds included).
        camera : CameraSurvey or None
        watch_id : str
            The source's identity (segments of one watch share it).
        """
        identity = {"frames_path": str(self.manifest["source"]), "frames_size": 0, "frames_mtime_ns": 0,
                    "frames_fingerprint": f"watch:{watch_id}"}
        path = self.segments_dir / f"seg_{start:09d}_{stop:09d}.h5"
        write_shard(path, {**result, "n_file_frames": OPEN_END}, source, start, stop, params,
                    identity=identity, camera=camera)
        return path

    def read_segments(self):
        """Every segment's electrons, count map, raw sum and blob histogram, and their sources.

        Returns
        -------
        list of dict
            :func:`~sevi_lib.detect.shards.read_shard` of each segment, in frame order, with ``source``.
        """
        out = []
        for _, _, p in self.segment_paths():
            s = read_shard(p)
            with open_h5(p) as f:
                s["source"] = str(f.attrs["source"])
            out.append(s)
        return out

    def append_history(self, record):
        """Append one refit's record (a JSON line) to ``history.jsonl``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def history(self):
        """The refits recorded so far (a torn last line is ignored)."""
        path = self.folder / "history.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def skipped(self):
        """Chunk files refused so far: name -> ``[size, mtime_ns, reason]``."""
        path = self.folder / "skipped.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def record_skipped(self, skipped):
        write_text(self.folder / "skipped.json", json.dumps(skipped, indent=1) + "\n")


def concat_electrons(tables):
    """Concatenate electron tables in order, numbering ``ElectronId`` from 0."""
    e = np.concatenate(tables) if tables else np.empty(0, dtype=ELECTRON_DTYPE)
    e["ElectronId"] = np.arange(e.size, dtype=np.int32)
    return e
