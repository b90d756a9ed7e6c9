"""``sevi accumulate``: gather detection shards into the electron table, maps, PNG and summary."""

import sys


def register(sub):
    p = sub.add_parser(
        "accumulate", help="gather detection shards into one electron table, count map and raw-frame sum",
        description="Concatenate the shards written by 'sevi detect' (in frame order) into DetectedElectrons "
        "(published layout ImageId, ElectronId, x, z plus amplitude, multiplicity, blob_size), the summed "
        "1024 x 1024 count map and raw-frame sum (float64, Image[ix, iz]), a PNG of the count map and a short "
        "text summary (with the camera survey when detection used one). The shards must come from one frames "
        "file, one set of detector parameters and one camera survey (or none) and cover its frames without "
        "overlap or gap. All outputs are checked first and written atomically.",
    )
    p.add_argument("shards", nargs="+", metavar="SHARD.h5", help="shard files from 'sevi detect'")
    p.add_argument("--electrons", required=True, metavar="H5", help="electron table to write (DetectedElectrons)")
    p.add_argument("--count-map", required=True, metavar="NPY", help="count map to write (float64 .npy)")
    p.add_argument("--intensity-sum", required=True, metavar="NPY", help="raw-frame sum to write (float64 .npy)")
    p.add_argument("--png", metavar="PNG", help="picture of the count map (log colour scale)")
    p.add_argument("--summary", metavar="TXT", help="detection summary to write")
    p.add_argument("--partial", action="store_true",
                   help="accept shards covering a contiguous part of the frames file only (default: all of it)")
    p.set_defaults(func=run)


def run(args):
    from sevi_lib.detect.shards import accumulate_files

    acc, text = accumulate_files(args.shards, args.electrons, args.count_map, args.intensity_sum,
                                 summary=args.summary, partial=args.partial, also_writes=[args.png] if args.png else [])
    if args.png:  # no centre marked: the fit has not run yet (the workflow draws it after the fit: sevi plot-map)
        from sevi_lib.report.plots import count_map_figure, save_figure

        save_figure(count_map_figure(acc["count_map"], title=f"{acc['electrons'].size} electrons in "
                                     f"{acc['n_frames']} frames", bin_px=4), args.png)
    sys.stderr.write(text)
    return 0
