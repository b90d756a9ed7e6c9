"""``sevi detect``: detect the electrons of a frame range of a test file and write a shard."""

import sys
import time

from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.detect.settings import DetectorParams


def register(sub):
    p = sub.add_parser(
        "detect", help="detect electrons in a frame range of a FinalImage file (one shard)",
        description="Stream frames [start, stop) of a FinalImage file (or shard i of K contiguous shards), "
        "find every electron (isolated spots by centroid, overlapping and saturated blobs by a mixture fit "
        "of model spots) and write a shard: DetectedElectrons (ImageId, ElectronId, x, z in screen units, "
        "amplitude, multiplicity, blob_size), the 1024 x 1024 count map, the float64 sum of the raw frames "
        "and the blob multiplicity histogram, with the frames file's identity and the range in its attributes. "
        "With --camera (the JSON of 'sevi survey') the thresholds are raised to what the read noise implies, "
        "the hot pixels are ignored (they read 0 for the detector: no blob starts at or passes through one, "
        "the spot fit gives them no weight) and the survey is recorded in the shard. "
        "The output is checked before any work (not the input, not a directory, writable) and written "
        "atomically: on any error nothing is left behind.",
    )
    p.add_argument("frames", help="HDF5 test file with a FinalImage dataset")
    p.add_argument("--out", required=True, metavar="SHARD.h5", help="shard file to write")
    rng = p.add_argument_group("frame range (either --start/--stop or --shard/--shards)")
    rng.add_argument("--start", type=int, help="first frame (default 0)")
    rng.add_argument("--stop", type=int, help="one past the last frame (default: end of file)")
    rng.add_argument("--shard", type=int, help="shard index i: frames [i n / K, (i + 1) n / K)")
    rng.add_argument("--shards", type=int, help="number of shards K (may exceed the number of frames)")
    p.add_argument("--camera", metavar="CAMERA.json",
                   help="camera survey from 'sevi survey': noise-implied thresholds, hot pixels masked "
                   "(default: none, the published detector)")
    p.add_argument("--threads", type=int, help="detection and decompression threads (default 1)")
    p.add_argument("--chunk", type=int, help="frames read at a time (default 64; memory only, same result)")
    p.add_argument("--progress", type=float, default=10.0, metavar="S",
                   help="a progress line (frames, frames/s, ETA) on stderr every S seconds (default 10; 0: none)")
    add_settings_arguments(p, DetectorParams, title="detector parameters (the workflow's 'detect:' config section)")
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.detect.shards import detect_shard

    params = settings_from_args(DetectorParams, args)
    layout = {k: v for k, v in (("threads", args.threads), ("chunk", args.chunk)) if v is not None}
    t0 = time.perf_counter()
    result = detect_shard(args.frames, args.out, start=args.start, stop=args.stop, shard=args.shard,
                          shards=args.shards, params=params, progress=args.progress or None, camera=args.camera,
                          **layout)
    dt = time.perf_counter() - t0
    n = result["electrons"].size
    k = result["n_frames"]
    rate = f", {k / dt:.1f} frames/s" if k and dt > 0 else ""
    print(f"frames [{result['start']}, {result['stop']}) of {args.frames}: {n} electrons in {k} frames"
          f" ({n / max(k, 1):.2f} per frame){rate} -> {args.out}", file=sys.stderr)
    return 0
