"""``sevi detect``: detect the electrons of a frame range of a test file and write a shard."""

import sys
import time
from dataclasses import fields

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import FrameReader
from sevi_lib.detect.blobs import DetectorParams, detect_file, shard_range, write_shard


def add_detector_options(p):
    """One ``--name`` flag per :class:`~sevi_lib.detect.blobs.DetectorParams` field (default: the field's)."""
    g = p.add_argument_group("detector parameters (the workflow's 'detect:' config section)")
    for f in fields(DetectorParams):
        g.add_argument(f"--{f.name.replace('_', '-')}", dest=f"det_{f.name}", type=type(f.default), default=None,
                       metavar="V", help=f"default {f.default}")


def params_from_args(args):
    """DetectorParams from the ``--<name>`` flags (unset flags keep their defaults)."""
    given = {f.name: getattr(args, f"det_{f.name}") for f in fields(DetectorParams)}
    try:
        return DetectorParams(**{k: v for k, v in given.items() if v is not None}).validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None


def register(sub):
    p = sub.add_parser(
        "detect", help="detect electrons in a frame range of a FinalImage file (one shard)",
        description="Stream frames [start, stop) of a FinalImage file (or shard i of K contiguous shards), "
        "find every electron (isolated spots by centroid, overlapping and saturated blobs by a mixture fit "
        "of model spots) and write a shard: DetectedElectrons (ImageId, ElectronId, x, z in screen units, "
        "amplitude, multiplicity, blob_size), the 1024 x 1024 count map, the float64 sum of the raw frames "
        "and the blob multiplicity histogram. Written atomically: on any error nothing is left behind.",
    )
    p.add_argument("frames", help="HDF5 test file with a FinalImage dataset")
    p.add_argument("--out", required=True, metavar="SHARD.h5", help="shard file to write")
    rng = p.add_argument_group("frame range (either --start/--stop or --shard/--shards)")
    rng.add_argument("--start", type=int, help="first frame (default 0)")
    rng.add_argument("--stop", type=int, help="one past the last frame (default: end of file)")
    rng.add_argument("--shard", type=int, help="shard index i: frames [i n / K, (i + 1) n / K)")
    rng.add_argument("--shards", type=int, help="number of shards K (may exceed the number of frames)")
    p.add_argument("--threads", type=int, default=1, help="detection and decompression threads (default 1)")
    p.add_argument("--chunk", type=int, default=64, help="frames read at a time (default 64)")
    add_detector_options(p)
    p.set_defaults(func=run)


def resolve_range(args, n_frames):
    """(start, stop) from the flags; an explicitly empty or inverted --start/--stop range is an error."""
    path = args.frames
    if args.shard is not None or args.shards is not None:
        if args.start is not None or args.stop is not None:
            raise InputError("give either --start/--stop or --shard/--shards, not both")
        if args.shard is None or args.shards is None or args.shards < 1 or not 0 <= args.shard < args.shards:
            raise InputError(f"--shard {args.shard} --shards {args.shards}: need 0 <= shard < shards")
        return shard_range(n_frames, args.shard, args.shards)
    start = 0 if args.start is None else args.start
    stop = n_frames if args.stop is None else args.stop
    if not 0 <= start < stop <= n_frames:
        raise InputError(f"{path}: frame range [{start}, {stop}) is empty or outside the file's {n_frames} frames")
    return start, stop


def run(args):
    params = params_from_args(args)
    if args.threads < 1 or args.chunk < 1:
        raise InputError("--threads and --chunk must be >= 1")
    with FrameReader(args.frames) as reader:
        n_frames = reader.n_frames
    start, stop = resolve_range(args, n_frames)
    t0 = time.perf_counter()
    result = detect_file(args.frames, start, stop, params, threads=args.threads, chunk=args.chunk)
    dt = time.perf_counter() - t0
    write_shard(args.out, result, args.frames, start, stop, params)
    n = result["electrons"].size
    k = result["n_frames"]
    rate = f", {k / dt:.1f} frames/s" if k and dt > 0 else ""
    print(f"frames [{start}, {stop}) of {args.frames}: {n} electrons in {k} frames"
          f" ({n / max(k, 1):.2f} per frame){rate} -> {args.out}", file=sys.stderr)
    return 0
