"""The watch loop: detect the frames of a live run as they land, refit now and then, finish as the
batch workflow does.

:class:`Watcher` follows a source (:mod:`sevi_lib.watch.sources`) and keeps its state folder
(:mod:`sevi_lib.watch.state`). It detects with the library's streaming detector
(:class:`sevi_lib.detect.blobs.FrameDetector`, the one ``sevi detect`` uses: the electrons do not
depend on how the frames are grouped) and writes a segment every ``segment_frames`` frames (or
every ``segment_seconds``); every ``refit_seconds`` it refits all electrons counted so far
(:func:`sevi_lib.fit.unbinned.fit_electrons`, or the count map with ``method=binned``), warm-started
from the last answer (its shells and widths; the shell search is redone whenever the electrons
have doubled since the last one), and hands a status (:func:`status`) to the caller. At the end
(the writer closed the file, the end marker, a stop file or :meth:`Watcher.request_stop`) it
gathers the segments with ``sevi accumulate``'s function and fits the result with ``sevi fit``'s,
so the outputs are those of the batch commands on the same frames.

The camera survey: ``camera`` given (``sevi watch --camera``, a ``sevi survey`` JSON), or the one
the state folder recorded, or made here: of the whole file, exactly as ``sevi survey``, when the
file is complete when the watch starts; otherwise of its first
:attr:`~sevi_lib.detect.settings.SurveySettings.n_sample` frames, once they have landed.
"""

import math
import multiprocessing
import numbers
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sevi_lib.core.errors import InputError, check_settings
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.maps import count_map
from sevi_lib.detect.blobs import FrameDetector
from sevi_lib.detect.camera import CameraSurvey, survey_frames, write_survey
from sevi_lib.detect.settings import DetectorParams, SurveySettings
from sevi_lib.detect.shards import accumulate_files
from sevi_lib.fit.settings import FitSettings, min_electrons
from sevi_lib.watch.sources import CHUNK_NAME
from sevi_lib.watch.state import concat_electrons


@dataclass(frozen=True)
class WatchSettings:
    """How the watch runs (none of these change the final answer).

    Attributes
    ----------
    refit_seconds : float
        Seconds between refits (and status updates).
    poll_seconds : float
        Seconds between looks at the source when nothing new has landed.
    segment_frames : int
        Frames per segment of the state folder (what a crash can cost to redo).
    segment_seconds : float
        A segment is also written when its first frame is this old (slow cameras).
    chunk : int
        Frames read and detected at a time.
    threads : int
        Detection threads.
    idle_seconds : float
        No new frame for this long while the file is still marked open for writing: the writer
        is taken to have died, and the watch finishes with what it wrote.
    target_se : float or None
        Target standard error of beta_2 of every shell.
    target_distance : float or None
        Target expected distance (the fit's ``expected_distance``) of every shell.
    fit_nice : int
        Niceness added to the fitting process (0 to 19): the refits take the CPU that detection
        leaves, so on a machine with few cores a refit comes later rather than the counting
        falling behind the camera.
    """

    refit_seconds: float = 30.0
    poll_seconds: float = 0.5
    segment_frames: int = 256
    segment_seconds: float = 30.0
    chunk: int = 32
    threads: int = 1
    idle_seconds: float = 120.0
    target_se: float | None = 0.01
    target_distance: float | None = None
    fit_nice: int = 10

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise :class:`~sevi_lib.core.errors.SettingsError` naming the first bad setting; returns self.

        Construction runs it (``__post_init__``), so an existing object is valid.
        """
        floats = ("refit_seconds", "poll_seconds", "segment_seconds", "idle_seconds")
        ints = ("segment_frames", "chunk", "threads", "fit_nice")
        targets = ("target_se", "target_distance")
        check_settings((_is_number(getattr(self, name)), f"{name} must be a finite number, got {getattr(self, name)!r}")
                       for name in floats)
        check_settings((_is_number(getattr(self, name)) or getattr(self, name) is None,
                        f"{name} must be a finite number or None, got {getattr(self, name)!r}") for name in targets)
        check_settings((isinstance(getattr(self, name), numbers.Integral) and not isinstance(getattr(self, name), bool),
                        f"{name} must be an integer, got {getattr(self, name)!r}") for name in ints)
        check_settings((getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}") for name in floats)
        check_settings((getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
                       for name in ("segment_frames", "chunk", "threads"))
        check_settings([(0 <= self.fit_nice <= 19, f"fit_nice must be in 0 .. 19, got {self.fit_nice}")])
        check_settings((getattr(self, name) is None or getattr(self, name) > 0,
                        f"{name} must be > 0, got {getattr(self, name)}") for name in targets)
        return self


def _is_number(value):
    """A finite real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def projection(se_now, frames, target, frame_rate):
    """When will a standard error that scales as 1 / sqrt(frames) reach `target`?

    Parameters
    ----------
    se_now : float
        The largest standard error now (over the shells).
    frames : int
        Frames it was measured on.
    target : float
    frame_rate : float
        The camera's frames per second (0 or nan: unknown).

    Returns
    -------
    dict
        ``reached`` (bool), ``frames_needed`` (total frames for the target), ``frames_left``,
        ``seconds_left`` (nan when the rate is unknown).

    Examples
    --------
    >>> p = projection(0.02, 1000, 0.01, 50.0)
    >>> p["frames_needed"], p["seconds_left"]
    (4000, 60.0)
    """
    if not (se_now > 0 and frames > 0 and math.isfinite(se_now)):
        return {"reached": False, "frames_needed": None, "frames_left": None, "seconds_left": float("nan")}
    reached = bool(se_now <= target)
    needed = int(math.ceil(frames * (se_now / target) ** 2))
    left = max(0, needed - frames)
    seconds = left / frame_rate if frame_rate and frame_rate > 0 else float("nan")
    return {"reached": reached, "frames_needed": needed, "frames_left": left, "seconds_left": seconds}


def status(result, *, frames, electrons, elapsed, camera_rate, detect_rate, lag_frames, settings, note=None):
    """The status of a refit: answer with standard errors, rates, centre, shells, projections.

    Parameters
    ----------
    result : sevi_lib.fit.result.FitResult or None
        The last fit (None: none yet).
    frames, electrons : int
        Counted so far.
    elapsed : float
        Seconds since the watch started.
    camera_rate : float
        Frames per second landing (nan when unknown).
    detect_rate : float
        Frames per second the detection runs at while busy.
    lag_frames : int
        Frames landed and not yet counted.
    settings : WatchSettings
    note : str, optional
        Why there is no fit yet (shown when `result` is None).

    Returns
    -------
    dict
        JSON-ready (lists and numbers).
    """
    per_frame = electrons / frames if frames else 0.0
    out = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "elapsed_s": elapsed,
           "frames": int(frames), "electrons": int(electrons), "electrons_per_frame": per_frame,
           "camera_fps": camera_rate, "detect_fps": detect_rate,
           "electrons_per_s": per_frame * camera_rate if camera_rate == camera_rate else float("nan"),
           "lag_frames": int(lag_frames),
           "lag_s": lag_frames / camera_rate if camera_rate and camera_rate > 0 else float("nan")}
    if result is None:
        out["note"] = note
        return out
    out.update({"R": result.R.tolist(), "se_R": result.se_R.tolist(), "sigma_R": result.sigma_R.tolist(),
                "beta": result.beta.tolist(), "se_beta": result.se_beta.tolist(),
                "centre": np.asarray(result.centre).tolist(), "centre_se": np.asarray(result.centre_se).tolist(),
                "background_per_frame": result.background_per_frame,
                "expected_distance": np.asarray(result.expected_distance).tolist(),
                "converged": bool(result.converged)})
    targets = {}
    if settings.target_se is not None:
        targets["se_beta2"] = {"target": settings.target_se, "now": float(np.max(result.se_beta[:, 0])),
                               **projection(float(np.max(result.se_beta[:, 0])), frames, settings.target_se,
                                            camera_rate)}
    if settings.target_distance is not None:
        d = float(np.max(result.expected_distance))
        targets["expected_distance"] = {"target": settings.target_distance, "now": d,
                                        **projection(d, frames, settings.target_distance, camera_rate)}
    out["targets"] = targets
    return out


def status_lines(st):
    """The status as a few plain-text lines (what ``sevi watch`` prints and the page shows)."""
    def num(v, fmt):
        return "?" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)

    lines = [f"{st['time']}: {st['frames']} frames, {st['electrons']} electrons "
             f"({st['electrons_per_frame']:.1f} per frame, {num(st['electrons_per_s'], '.0f')} per s); camera "
             f"{num(st['camera_fps'], '.1f')} frames/s, detection {num(st['detect_fps'], '.1f')} frames/s, "
             f"lag {st['lag_frames']} frames ({num(st['lag_s'], '.1f')} s)"]
    if "R" not in st:
        return lines + ["no fit yet" + (f": {st['note']}" if st.get("note") else "")]
    c, cse = st["centre"], st["centre_se"]
    lines.append(f"centre ({c[0]:.5f} +- {cse[0]:.5f}, {c[1]:.5f} +- {cse[1]:.5f}); {len(st['R'])} shell(s)"
                 + ("" if st["converged"] else "; the last fit did not converge"))
    for j, R in enumerate(st["R"]):
        b, se = st["beta"][j], st["se_beta"][j]
        b4 = f", beta_4 {b[1]:+.4f} +- {se[1]:.4f}" if len(b) > 1 else ""
        lines.append(f"  shell {j}: R {R:.5f} +- {st['se_R'][j]:.5f}, sigma_R {st['sigma_R'][j]:.5f}, "
                     f"beta_2 {b[0]:+.4f} +- {se[0]:.4f}{b4}")
    for name, t in st.get("targets", {}).items():
        what = "SE of beta_2" if name == "se_beta2" else "expected distance"
        if t["reached"]:
            lines.append(f"TARGET REACHED: {what} {t['now']:.4g} <= {t['target']:g} on every shell, at {st['frames']} frames")
        elif t["frames_needed"] is not None:
            secs = t["seconds_left"]
            when = f"about {secs / 60:.1f} min more at the camera's rate" if math.isfinite(secs) else "time unknown"
            lines.append(f"target: {what} {t['now']:.4g} -> {t['target']:g} needs about {t['frames_needed']} frames "
                         f"({t['frames_left']} more; {when})")
    return lines


class Watcher:
    """Follow a source, keep the state folder, refit, and finish like the batch workflow.

    Parameters
    ----------
    source : SwmrSource or ChunkFolder
        Entered (``with``) by the caller.
    state : sevi_lib.watch.state.WatchState
    settings : WatchSettings, optional
    params : DetectorParams, optional
    fit_settings : FitSettings, optional
    camera : CameraSurvey, optional
        The camera survey (default: the state's, or made here; see the module's description).
    survey_settings : SurveySettings, optional
    on_refit : callable, optional
        Called as ``on_refit(status_dict, result, watcher)`` after every refit.
    on_chunk : callable, optional
        Called as ``on_chunk(frames_done)`` after every detected chunk (benchmarks).
    warn : callable, optional
        Receives one line per warning (default: ignored).
    stop_file : Path, optional
        A file whose appearance ends the run.
    clock : callable
        Seconds (monotonic).
    """

    def __init__(self, source, state, *, settings=None, params=None, fit_settings=None, camera=None,
                 survey_settings=None, on_refit=None, on_chunk=None, warn=None, stop_file=None,
                 clock=time.monotonic):
        self.source, self.state = source, state
        self.settings = settings or WatchSettings()
        self.params = params or DetectorParams()
        self.fit_settings = fit_settings or FitSettings()
        if self.fit_settings.method == "sum":
            raise InputError("sevi watch fits electrons (method unbinned) or their count map (binned), not the frame sum")
        self.survey_settings = survey_settings or SurveySettings()
        self.camera = camera
        self.on_refit, self.on_chunk = on_refit, on_chunk
        self.warn = warn or (lambda line: None)
        self.stop_file = stop_file
        self.clock = clock
        self._stop = False
        self.result = None
        self._growth = None
        self._pool = None
        self._job = None
        self.fit_note = None
        self.warnings = []

    # ------------------------------------------------------------------------------ bookkeeping
    def request_stop(self):
        """End the run after the frames that have landed (a signal handler may call it)."""
        self._stop = True

    def _warn(self, line):
        self.warnings.append(line)
        self.warn(line)

    def _stopping(self):
        return self._stop or (self.stop_file is not None and self.stop_file.exists())

    def _resume(self):
        """Load what the state folder has counted: electrons, count map, frames, done chunks."""
        segs = self.state.read_segments()
        self.tables = [s["DetectedElectrons"] for s in segs]
        self.count_map = np.zeros((N_PIX, N_PIX))
        for s in segs:
            self.count_map += s["CountMap"]
        self.cursor = segs[-1]["stop"] if segs else 0
        self.done_chunks = {s["source"] for s in segs} if self.source.kind == "folder" else set()
        self.n_electrons = int(sum(t.size for t in self.tables))

    def _manifest(self, identity):
        return {"source": str(Path(self.source.path).resolve()), "kind": self.source.kind, "identity": identity,
                "camera": None if self.camera is None else self.camera.to_dict(),
                "params": self.params.to_dict()}

    # ------------------------------------------------------------------------------ camera
    def _camera_from_state(self):
        cam = (self.state.manifest or {}).get("camera")
        if cam is not None and self.camera is None:
            self.camera = CameraSurvey.from_dict(cam)
        elif cam is not None and self.camera.to_dict() != cam:
            raise InputError(f"{self.state.folder}: this state folder was detected with another camera survey "
                             "than --camera; give another --state")

    def _survey(self, frames=None):
        """Make the camera survey (of `frames`, or of the whole complete file) and record it."""
        self.camera = survey_frames(self.source._reader if frames is None else frames, self.survey_settings)
        self.survey_whole_file = frames is None
        write_survey(self.state.folder / "camera.json", self.camera)

    def _detector(self):
        # as sevi detect (detect_shard): the camera's thresholds applied to the parameters, and the
        # detector given the camera as well
        params = self.params if self.camera is None else self.camera.detector_params(self.params).validate()
        return FrameDetector(params, threads=self.settings.threads, camera=self.camera)

    # ------------------------------------------------------------------------------ detection
    def _detect(self, det, ids, frames):
        t0 = self.clock()
        try:
            table = det.process(ids, frames)
        except OverflowError as exc:
            raise InputError(f"{self.source.path}: {exc}") from None
        self.busy += self.clock() - t0
        self.detected += len(ids)
        return table

    def _flush(self, det, pending, start, stop, source):
        """Write the segment of frames [start, stop) from detector `det` and its tables."""
        result = {"electrons": concat_electrons(pending), "count_map": det.count_map,
                  "intensity_sum": det.intensity_sum(), "blob_hist": det.blob_hist, "n_frames": det.n_frames}
        self.state.write_segment(result, source=source, start=start, stop=stop, params=det.params,
                                 camera=self.camera, watch_id=self.watch_id)
        det.close()

    # ------------------------------------------------------------------------------ the loop
    def run(self):
        """Follow the source until its end (or a stop), then finish; returns :meth:`finish`'s dict."""
        self._camera_from_state()
        self._resume()
        self.t_start = self.clock()
        self.busy, self.detected = 0.0, 0
        self.last_refit = self.t_start
        self.search_electrons = 0
        try:
            if self.source.kind == "swmr":
                self._run_file()
            else:
                self._run_folder()
            self.collect(wait=True)  # a refit still running: its status too (the history stays whole)
        finally:
            self.close()
        return self.finish()

    def _record(self, identity):
        """Write the manifest (first run) or check it against the state's (restart), and the survey in use."""
        self.state.start(self._manifest(identity))
        if self.camera is not None and not (self.state.folder / "camera.json").exists():
            write_survey(self.state.folder / "camera.json", self.camera)
        if identity is not None:
            self.state.update_identity(identity)

    def _run_file(self):
        src, st = self.source, self.settings
        n = src.poll()
        complete_at_start = not src.writing()
        identity = src.identity()
        if self.state.manifest is not None:
            self._record(identity)
        if self.camera is None and complete_at_start and n:
            self._survey()
        if self.camera is not None:
            self._record(identity)
        det, pending, seg_start, seg_t0 = None, [], self.cursor, None
        last_growth, stop_at, prev_n = self.clock(), None, n
        while True:
            if src.replaced():
                if det is not None and self.cursor > seg_start:
                    self._flush(det, pending, seg_start, self.cursor, str(src.path))
                raise InputError(f"{src.path}: another file was put at this path while it was followed; the "
                                 f"{self.cursor} frames counted of the first one are in {self.state.folder}; "
                                 "follow the new file with another --state")
            writing = src.writing()  # before the extent: a writer that closes has flushed every frame
            n = src.poll()
            now = self.clock()
            if n > prev_n:
                self._grew(now, n)
                last_growth, prev_n = now, n
            if stop_at is None and self._stopping():
                stop_at = n
            dead = writing and now - last_growth >= st.idle_seconds
            finished = stop_at is not None or not writing or dead
            if self.camera is None and n and (n >= self.survey_settings.n_sample or finished):
                got = self._read_prefix(0, min(n, self.survey_settings.n_sample))
                if got is not None:
                    self._survey(got[1])
                    self._record(src.identity())
            limit = n if stop_at is None else stop_at
            progressed = False
            if self.camera is not None and self.cursor < limit:
                got = self._read_prefix(self.cursor, min(st.chunk, limit - self.cursor))
                if got is not None:
                    ids, frames = got
                    if det is None:
                        self._record(src.identity())
                        self.watch_id = self.state.manifest["identity"]
                        det, pending, seg_start, seg_t0 = self._detector(), [], self.cursor, now
                    table = self._detect(det, ids, frames)
                    pending.append(table)
                    self.tables.append(table)
                    self.n_electrons += table.size
                    count_map_add(self.count_map, table)
                    self.cursor += len(ids)
                    progressed = True
                    if self.on_chunk is not None:
                        self.on_chunk(self.cursor)
                    if (self.cursor - seg_start >= st.segment_frames or self.clock() - seg_t0 >= st.segment_seconds):
                        self._flush(det, pending, seg_start, self.cursor, str(src.path))
                        det = None
                elif finished:
                    self._warn(f"{src.path}: frames [{self.cursor}, {n}) are announced but unreadable (the writer "
                               "died mid-chunk, or the file is truncated): not counted")
                    break
            if not progressed:
                if finished:
                    if dead:
                        self._warn(f"{src.path}: no new frame for {st.idle_seconds:g} s and the file is still marked "
                                   f"open for writing: the writer seems to have died; finished with its {n} frames "
                                   "(h5clear -s FILE clears the mark)")
                    break
                time.sleep(st.poll_seconds)
            self.collect(lag_frames=n - self.cursor)
            if self.clock() - self.last_refit >= st.refit_seconds:
                self.refit()
        if det is not None and self.cursor > seg_start:
            self._flush(det, pending, seg_start, self.cursor, str(src.path))

    def _read_prefix(self, start, k):
        """Frames [start, start + k) of the file, or their readable beginning (None: not even the first).

        A frame announced by the writer may not be written yet (or ever, if it died mid-chunk).
        """
        try:
            return self.source.read(start, start + k)
        except InputError:
            pass
        stop = start
        while stop < start + k:
            try:
                self.source.read(stop, stop + 1)
            except InputError:
                break
            stop += 1
        return self.source.read(start, stop) if stop > start else None

    def _run_folder(self):
        src, st = self.source, self.settings
        if self.state.manifest is not None or self.camera is not None:
            self._record(None)
        skipped = self.state.skipped()
        self.watch_id = "folder:" + str(src.path.resolve())
        counted = {}  # name -> (size, mtime) of the chunks counted in this run
        highest = max((int(m.group(2)) for m in map(CHUNK_NAME.match, self.done_chunks) if m), default=-1)
        stop_names = None
        while True:
            landed = src.landed()
            ended = src.ended()
            if stop_names is None and self._stopping():
                stop_names = {name for _, name, _, _ in landed}
            todo = [(num, name, size, mt) for num, name, size, mt in landed
                    if name not in self.done_chunks and skipped.get(name, [None, None])[:2] != [size, mt]
                    and (stop_names is None or name in stop_names)]
            for num, name, size, mt in landed:
                if name in counted and counted[name] != (size, mt):
                    self._warn(f"{src.path / name}: changed after it was counted; the counted version is kept")
                    counted[name] = (size, mt)
            if self.camera is None and todo:
                frames, total = [], 0
                for _, name, _, _ in todo:
                    try:
                        f = src.frames(name)[1]
                    except InputError:
                        continue
                    frames.append(f[: self.survey_settings.n_sample - total])
                    total += len(frames[-1])
                    if total >= self.survey_settings.n_sample:
                        break
                if total >= self.survey_settings.n_sample or (ended or stop_names is not None) and total:
                    self._survey(np.concatenate(frames))
                    self._record(None)
                else:
                    todo = []
            if self.camera is not None and todo:
                num, name, size, mt = todo[0]
                try:
                    ids, frames = src.frames(name)
                except InputError as exc:
                    self._warn(f"sevi watch: warning: skipped, not counted: {exc}")
                    skipped[name] = [size, mt, str(exc)]
                    self.state.record_skipped(skipped)
                    continue
                if num < highest:
                    self._warn(f"{src.path / name}: landed after chunk {highest}; counted after it")
                highest = max(highest, num)
                det, pending = self._detector(), []
                for a in range(0, len(ids), st.chunk):
                    table = self._detect(det, ids[a:a + st.chunk], frames[a:a + st.chunk])
                    pending.append(table)
                start = self.cursor
                self.cursor += len(ids)
                self._flush(det, pending, start, self.cursor, name)
                for table in pending:
                    self.tables.append(table)
                    self.n_electrons += table.size
                    count_map_add(self.count_map, table)
                self.done_chunks.add(name)
                self._grew(self.clock(), self.cursor)
                counted[name] = (size, mt)
                skipped.pop(name, None)
                if self.on_chunk is not None:
                    self.on_chunk(self.cursor)
            elif ended or stop_names is not None:
                break
            else:
                time.sleep(st.poll_seconds)
            self.collect()
            if self.clock() - self.last_refit >= st.refit_seconds:
                self.refit()

    # ------------------------------------------------------------------------------ fits
    def _grew(self, now, n):
        """The source grew to `n` frames at `now` (first and last growth give the camera's rate)."""
        if self._growth is None:
            self._growth = [now, n, now, n]
        else:
            self._growth[2:] = [now, n]

    def rates(self):
        """``(camera frames/s, detection frames/s while busy)``; nan where not measured yet.

        The camera's rate is the frames that landed between the first and the last growth the
        watch saw, over that time (a chunk folder: the frames of the chunks counted).
        """
        g = self._growth
        camera = (g[3] - g[1]) / (g[2] - g[0]) if g is not None and g[2] > g[0] else float("nan")
        detect = self.detected / self.busy if self.busy > 0 else float("nan")
        return camera, detect

    def refit(self):
        """Start a refit of everything counted so far (warm start) in the fitting process.

        The fit runs in a separate process (the detection goes on meanwhile); :meth:`collect`
        takes its result. One refit at a time: while one runs, this does nothing.
        """
        if self._job is not None:
            return
        self.last_refit = self.clock()
        fs = self.fit_settings
        shells = fs.shells or (len(self.result.R) if self.result is not None else 2)
        if self.n_electrons < min_electrons(fs.n_beta, shells):
            self.fit_note = f"too few electrons to fit yet ({self.n_electrons})"
            return
        kw = {"n_beta": fs.n_beta, "max_iter": fs.max_iter, "centre": fs.centre, "n_frames": self.cursor,
              "what": "electrons so far", "n_shells": fs.shells}
        if self.result is not None and self.n_electrons < 2 * self.search_electrons:
            kw.update(n_shells=len(self.result.R), R0=self.result.R, sigma0=self.result.sigma_R)
        else:
            self.search_electrons = self.n_electrons
        method = fs.method or "unbinned"
        if method == "unbinned":
            e = concat_electrons(self.tables)
            data = (np.ascontiguousarray(e["x"]), np.ascontiguousarray(e["z"]))
        else:
            data = self.count_map.copy()
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(1, initializer=_fitting_process,
                                                                   initargs=(self.settings.fit_nice,))
        self._job = (self._pool.apply_async(fit_job, (method, data, kw)), self.cursor, self.n_electrons)

    def collect(self, lag_frames=0, wait=False):
        """Take the result of a finished refit: record it, make the status, call ``on_refit``.

        Returns
        -------
        dict or None
            The status, or None when no refit has finished.
        """
        if self._job is None or not (wait or self._job[0].ready()):
            return None
        job, frames, electrons = self._job
        self._job = None
        try:
            self.result = job.get()
        except InputError as exc:  # too few electrons yet: the status says "no fit yet"
            self.fit_note = str(exc)
        camera, detect = self.rates()
        st = status(self.result, frames=frames, electrons=electrons, elapsed=self.clock() - self.t_start,
                    camera_rate=camera, detect_rate=detect, lag_frames=lag_frames + self.cursor - frames,
                    settings=self.settings, note=self.fit_note)
        if self.result is not None:
            self.state.append_history({k: st.get(k) for k in ("time", "frames", "electrons", "R", "se_R", "beta",
                                                               "se_beta", "centre", "centre_se")})
        self.last_status = st
        if self.on_refit is not None:
            self.on_refit(st, self.result, self)
        return st

    def close(self):
        """Stop the fitting process (a refit still running is dropped)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._job = None

    def electrons(self):
        """All electrons counted so far, in frame order."""
        return concat_electrons(self.tables)

    # ------------------------------------------------------------------------------ the end
    def finish(self):
        """Gather the segments and fit them exactly as ``sevi accumulate`` and ``sevi fit`` do.

        Writes into the state folder: ``electrons.h5``, ``count_map.npy``, ``intensity_sum.npy``,
        ``summary.txt`` (:func:`sevi_lib.detect.shards.accumulate_files`, ``partial``) and
        ``fit.h5``, ``fit.json`` (:func:`sevi_lib.fit.files.fit_file` of the electrons, or of the
        count map with ``method=binned``).

        Returns
        -------
        dict
            ``acc`` (the accumulation), ``result`` (FitResult or None with too few electrons),
            ``points``, ``method``, ``paths`` (name -> Path), ``status`` (the last status), ``note``
            (a line on the survey vs the whole file's, or None).
        """
        from sevi_lib.fit.files import fit_file  # local: scipy's optimizers (~1.5 s) only when the watch ends

        out = self.state.folder
        paths = {k: out / v for k, v in {"electrons": "electrons.h5", "count_map": "count_map.npy",
                                         "intensity_sum": "intensity_sum.npy", "summary": "summary.txt",
                                         "answer": "fit.h5", "sidecar": "fit.json", "plot": "fit.png",
                                         "count_map_png": "count_map.png"}.items()}
        segs = [p for _, _, p in self.state.segment_paths()]
        if not segs:
            raise InputError(f"{self.source.path}: no frame was counted; nothing to finish")
        acc, text = accumulate_files(segs, paths["electrons"], paths["count_map"], paths["intensity_sum"],
                                     summary=paths["summary"], partial=True)
        fit_input = paths["electrons"] if (self.fit_settings.method or "unbinned") == "unbinned" else paths["count_map"]
        result, points, method = None, None, None
        try:
            result, points, method = fit_file(fit_input, paths["answer"], paths["sidecar"], self.fit_settings,
                                              also_writes=[paths["plot"]])
        except InputError as exc:
            self._warn(f"final fit not made: {exc}")
        self.result = result if result is not None else self.result
        camera, detect = self.rates()
        st = status(result, frames=acc["n_frames"], electrons=acc["electrons"].size,
                    elapsed=self.clock() - self.t_start, camera_rate=camera, detect_rate=detect, lag_frames=0,
                    settings=self.settings)
        return {"acc": acc, "summary": text, "result": result, "points": points, "method": method, "paths": paths,
                "status": st, "note": self.survey_note()}

    def survey_note(self):
        """Does the whole file's survey (the workflow's) give the detector the watch used?"""
        if self.source.kind != "swmr" or getattr(self, "survey_whole_file", True) or self.camera is None:
            return None
        try:
            whole = survey_frames(self.source._reader, self.survey_settings)
        except InputError:
            return None
        same = (whole.detector_params(self.params) == self.camera.detector_params(self.params)
                and whole.hot_pixels == self.camera.hot_pixels and whole.spot_model == self.camera.spot_model)
        if same:
            return ("the survey of the whole file (sevi survey, as the workflow) gives the detector the watch used: "
                    "these electrons and this fit are the workflow's")
        return (f"the survey of the whole file (sevi survey, as the workflow) differs from the survey of the first "
                f"frames the watch used; these electrons are those of 'sevi detect --camera "
                f"{self.state.folder / 'camera.json'}'; for the workflow's, run it on the complete file")


def _fitting_process(nice):
    """Set up the fitting process: lower priority by `nice` (detection comes first), and Ctrl-C
    (sent to the whole terminal group) left to the watcher, which ends it with SIGTERM
    (:meth:`Watcher.close`)."""
    if nice:
        try:
            os.nice(int(nice))
        except OSError:  # not permitted: the refits run at the watcher's priority
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fit_job(method, data, kw):
    """One refit (run in the fitting process): the electrons ``(x, z)`` unbinned, or a count map binned."""
    # local: scipy's optimizers (~1.5 s) in the fitting process only, not in the watcher
    from sevi_lib.fit.binned import fit_count_map
    from sevi_lib.fit.unbinned import fit_electrons

    if method == "unbinned":
        return fit_electrons(data[0], data[1], **kw)
    return fit_count_map(data, **kw)


def count_map_add(image, table):
    """Add the electrons of `table` to a count map in place (the detector's binning)."""
    count_map(table["x"], table["z"], out=image)
