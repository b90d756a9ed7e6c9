"""``sevi watch FRAMES --state DIR``: follow a run while the camera writes it (live analysis)."""

import json
import signal
import sys
import time
from pathlib import Path

from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.fit.settings import FitSettings
from sevi_lib.watch.live import WatchSettings


def register(sub):
    p = sub.add_parser(
        "watch", help="follow a FinalImage file (SWMR) or a folder of chunk files while the camera writes them",
        description="Follow a run while it is being written: FRAMES is a FinalImage file that a writer appends "
        "to in HDF5 SWMR mode (or a complete file), or a folder of numbered chunk files (NAME<number>.h5, each "
        "renamed into place when complete; a file END marks the end). Each landed frame is detected (as 'sevi "
        "detect', with the camera survey of --camera, or one made of the whole file when it is complete, else "
        "of its first frames) and its electrons are kept in DIR as segments written atomically: killing the "
        "watch and starting it again with the same --state resumes where it stopped, and no frame is counted "
        "twice. Every --refit-seconds the electrons so far are refitted (warm start from the last answer) and "
        "the status is printed and drawn on DIR/live/index.html (a page that reloads itself): the answer with "
        "standard errors, electrons/s, the detection rate against the camera's, the centre and shells, and when "
        "--target-se (beta_2 of every shell) or --target-distance will be reached. The run ends when the writer "
        "closes the file (or puts END), when DIR/stop (--stop-file) appears, on Ctrl-C or SIGTERM, or when a "
        "file still marked open gets no new frame for --idle-seconds; then DIR holds electrons.h5, count_map.npy, "
        "intensity_sum.npy, summary.txt, fit.h5, fit.json and fit.png, exactly what 'sevi accumulate' and 'sevi "
        "fit' give on the same frames. See docs/live.md.",
    )
    p.add_argument("frames", help="FinalImage file (SWMR or complete) or folder of chunk files")
    p.add_argument("--state", required=True, metavar="DIR", help="state and output folder (resumed if it exists)")
    p.add_argument("--camera", metavar="CAMERA.json",
                   help="camera survey from 'sevi survey' (default: the state's, else surveyed here)")
    p.add_argument("--detector", metavar="JSON", default=None,
                   help="detector parameters as a JSON mapping of DetectorParams fields (the workflow's 'detect:' "
                   "values; default: DetectorParams' defaults)")
    p.add_argument("--stop-file", metavar="PATH", help="a file whose appearance ends the run (default DIR/stop)")
    p.add_argument("--quiet", action="store_true", help="no status lines on stdout")
    add_settings_arguments(p, WatchSettings, title="watch settings", prefix="watch_")
    add_settings_arguments(p, FitSettings, title="fit settings (as 'sevi fit'; the final fit uses them too)")
    p.set_defaults(func=run)


def _detector_params(text):
    from sevi_lib.core.errors import InputError
    from sevi_lib.detect.settings import DetectorParams

    if text is None:
        return DetectorParams()
    try:
        return DetectorParams.from_config(json.loads(text)).validate()
    except (ValueError, TypeError) as exc:
        raise InputError(f"--detector: {exc}") from None


def draw(status, result, watcher, *, finished=False, points=None):
    """Write the live page and its figures into ``STATE/live/`` (and the status text beside it)."""
    from sevi_lib.core.io import write_text
    from sevi_lib.report.live import history_figure, live_page
    from sevi_lib.report.plots import count_map_figure, fit_report, save_figure
    from sevi_lib.watch.live import status_lines

    live = watcher.state.folder / "live"
    lines = status_lines(status)
    images = [("count_map.png", "count map with the fitted centre and shells")]
    centre = None if result is None else tuple(result.centre)
    radii = None if result is None else [float(r) for r in result.R]
    save_figure(count_map_figure(watcher.count_map, centre=centre, radii=radii,
                                 title=f"{status['electrons']} electrons in {status['frames']} frames", bin_px=4),
                live / "count_map.png")
    save_figure(history_figure(watcher.state.history(), title="beta_2 and beta_4 against the frames counted"),
                live / "betas.png")
    images.append(("betas.png", "beta_2 and beta_4 of each shell (1 SE bars) against the frames counted"))
    if result is not None:
        if points is None:
            e = watcher.electrons()
            points = (e["x"], e["z"], None)
        save_figure(fit_report(result, *points, title="radial spectrum and angular densities"), live / "fit.png")
        images.append(("fit.png", "radial spectrum with the fitted model; each shell's angular density"))
    reached = any(t.get("reached") for t in status.get("targets", {}).values())
    write_text(live / "index.html", live_page(lines, images, refresh_s=watcher.settings.refit_seconds,
                                              stamp=str(int(time.time() * 1000)), finished=finished, reached=reached))
    write_text(watcher.state.folder / "status.txt", "\n".join(lines) + "\n")
    return lines


def run(args):
    from sevi_lib.core.errors import InputError
    from sevi_lib.detect.camera import read_survey
    from sevi_lib.watch.live import Watcher
    from sevi_lib.watch.sources import ChunkFolder, SwmrSource
    from sevi_lib.watch.state import WatchState

    settings = settings_from_args(WatchSettings, args, prefix="watch_")
    fit_settings = settings_from_args(FitSettings, args)
    params = _detector_params(args.detector)
    camera = read_survey(args.camera) if args.camera else None
    state_dir = Path(args.state)
    if state_dir.exists() and not state_dir.is_dir():
        raise InputError(f"{state_dir}: is a file; --state needs a folder")
    state_dir.mkdir(parents=True, exist_ok=True)
    stop_file = Path(args.stop_file) if args.stop_file else state_dir / "stop"
    if stop_file.exists():
        raise InputError(f"{stop_file}: the stop file is already there; remove it to watch")
    source = ChunkFolder(args.frames) if Path(args.frames).is_dir() else SwmrSource(args.frames)

    def on_refit(status, result, watcher):
        lines = draw(status, result, watcher)
        if not args.quiet:
            print("\n".join(lines), flush=True)

    def warn(line):
        print(line if line.startswith("sevi") else f"sevi watch: warning: {line}", file=sys.stderr, flush=True)

    with source:
        watcher = Watcher(source, WatchState(state_dir), settings=settings, params=params, fit_settings=fit_settings,
                          camera=camera, on_refit=on_refit, warn=warn, stop_file=stop_file)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def stop(signum, frame):
            watcher.request_stop()
            signal.signal(signal.SIGINT, previous[signal.SIGINT])  # a second Ctrl-C interrupts at once
            print("sevi watch: stopping after the frames that have landed (Ctrl-C again to abort)", file=sys.stderr,
                  flush=True)

        for sig in previous:
            signal.signal(sig, stop)
        try:
            out = watcher.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if out["result"] is not None:
        from sevi_lib.report.plots import fit_report, save_figure

        save_figure(fit_report(out["result"], *out["points"], title=f"{Path(args.frames).name}: {out['method']} fit"),
                    out["paths"]["plot"])
    lines = draw(out["status"], out["result"], watcher, finished=True, points=out["points"])
    sys.stderr.write(out["summary"])
    print("\n".join(["run finished"] + lines + ([out["note"]] if out["note"] else [])
                     + [f"-> {state_dir}/ (electrons.h5, count_map.npy, intensity_sum.npy, summary.txt, fit.h5, "
                        "fit.json, fit.png, live/index.html)"]), flush=True)
    return 0
