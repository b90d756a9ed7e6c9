"""``sevi accumulate``: gather detection shards into the electron table, maps, PNG and summary."""

import sys

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import save_npy, write_h5, write_text
from sevi_lib.detect.blobs import ELECTRON_DTYPE, MAX_BLOB_HIST, read_shard


def register(sub):
    p = sub.add_parser(
        "accumulate", help="gather detection shards into one electron table, count map and raw-frame sum",
        description="Concatenate the shards written by 'sevi detect' (in frame order; their ranges must not "
        "overlap) into DetectedElectrons (published layout ImageId, ElectronId, x, z plus amplitude, "
        "multiplicity, blob_size), the summed 1024 x 1024 count map and raw-frame sum (float64, "
        "Image[ix, iz]), a PNG of the count map and a short text summary. All outputs are written atomically.",
    )
    p.add_argument("shards", nargs="+", metavar="SHARD.h5", help="shard files from 'sevi detect'")
    p.add_argument("--electrons", required=True, metavar="H5", help="electron table to write (DetectedElectrons)")
    p.add_argument("--count-map", required=True, metavar="NPY", help="count map to write (float64 .npy)")
    p.add_argument("--intensity-sum", required=True, metavar="NPY", help="raw-frame sum to write (float64 .npy)")
    p.add_argument("--png", metavar="PNG", help="picture of the count map (log colour scale)")
    p.add_argument("--summary", metavar="TXT", help="detection summary to write")
    p.set_defaults(func=run)


def accumulate(shards):
    """Combine shard dicts (from :func:`sevi_lib.detect.blobs.read_shard`) sorted by frame range.

    Parameters
    ----------
    shards : list of (path, dict)

    Returns
    -------
    dict
        ``electrons``, ``count_map``, ``intensity_sum``, ``blob_hist``, ``n_frames``, ``ranges``.
    """
    shards = sorted(shards, key=lambda s: (s[1]["start"], s[1]["stop"]))
    for (pa, a), (pb, b) in zip(shards, shards[1:]):
        if a["stop"] > b["start"] and a["stop"] > a["start"] and b["stop"] > b["start"]:
            raise InputError(f"{pb}: frames [{b['start']}, {b['stop']}) overlap {pa}'s [{a['start']}, {a['stop']})")
    params = {tuple(sorted(s["params"].items())) for _, s in shards}
    if len(params) > 1:
        raise InputError(f"{shards[0][0]} and other shards were detected with different detector parameters")
    tables = []
    count_map = np.zeros_like(shards[0][1]["CountMap"], dtype=np.float64)
    raw_sum = np.zeros_like(count_map)
    hist = np.zeros(MAX_BLOB_HIST + 1, dtype=np.int64)
    n_frames = 0
    for path, s in shards:
        e = s["DetectedElectrons"]
        t = np.zeros(e.size, dtype=ELECTRON_DTYPE)
        for name in ELECTRON_DTYPE.names:
            if name in e.dtype.names:
                t[name] = e[name]
        tables.append(t)
        count_map += s["CountMap"]
        raw_sum += s["IntensitySum"]
        h = np.asarray(s["BlobMultiplicity"], dtype=np.int64)
        hist[: min(h.size, hist.size)] += h[: hist.size]
        n_frames += s["n_frames"]
    electrons = np.concatenate(tables)
    electrons["ElectronId"] = np.arange(electrons.size, dtype=np.int32)
    return {"electrons": electrons, "count_map": count_map, "intensity_sum": raw_sum, "blob_hist": hist,
            "n_frames": n_frames, "ranges": [(s["start"], s["stop"]) for _, s in shards]}


def summary_text(acc):
    """Short plain-text detection summary: frames, electrons, per frame, blobs by multiplicity."""
    n = acc["electrons"].size
    f = acc["n_frames"]
    hist = acc["blob_hist"]
    lines = [
        f"frames: {f}",
        f"electrons: {n}",
        f"electrons per frame: {n / f:.3f}" if f else "electrons per frame: n/a (no frames)",
        f"blobs: {int(hist.sum())}",
        "blobs by multiplicity (electrons per blob: blobs, electrons):",
    ]
    for m in np.flatnonzero(hist):
        label = f"{m}+" if m == hist.size - 1 else f"{m}"
        lines.append(f"  {label:>4}: {int(hist[m])}, {int(hist[m]) * int(m)}")
    isolated = int(hist[1]) if hist.size > 1 else 0
    lines.append(f"electrons in isolated spots: {isolated} ({isolated / n:.1%})" if n else "electrons in isolated spots: 0")
    return "\n".join(lines) + "\n"


def plot_count_map(count_map, path, title=None, bin_px=4):
    """PNG of a count map, log colour scale, x horizontal and z (polarisation axis) vertical.

    The map is summed over ``bin_px x bin_px`` pixel blocks first, so that sparse maps stay
    visible at screen resolution.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from sevi_lib.report.plots import save_figure

    n = count_map.shape[0] // bin_px
    binned = count_map[: n * bin_px, : n * bin_px].reshape(n, bin_px, n, bin_px).sum(axis=(1, 3))
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    img = np.ma.masked_less_equal(binned.T, 0)  # Image[ix, iz] -> rows z, columns x
    vmax = max(float(binned.max()), 1.0)
    im = ax.imshow(img, origin="lower", extent=[-1, 1, -1, 1], norm=LogNorm(vmin=1.0, vmax=max(vmax, 1.0 + 1e-9)),
                   cmap="viridis", interpolation="nearest")
    ax.set_facecolor("black")
    ax.set_xlabel("x (screen units)")
    ax.set_ylabel("z (screen units, polarisation axis)")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label=f"electrons per {bin_px} x {bin_px} px")
    save_figure(fig, path)


def run(args):
    shards = [(p, read_shard(p)) for p in args.shards]
    acc = accumulate(shards)
    text = summary_text(acc)
    write_h5(args.electrons, attrs={"n_frames": acc["n_frames"]}, compression="gzip",
             DetectedElectrons=acc["electrons"], BlobMultiplicity=acc["blob_hist"])
    save_npy(args.count_map, acc["count_map"])
    save_npy(args.intensity_sum, acc["intensity_sum"])
    if args.png:
        plot_count_map(acc["count_map"], args.png,
                       title=f"{acc['electrons'].size} electrons in {acc['n_frames']} frames")
    if args.summary:
        write_text(args.summary, text)
    sys.stderr.write(text)
    return 0
