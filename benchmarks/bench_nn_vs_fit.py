"""Network against fit on a fresh case drawn at the fine-tuning prior's centre.

The fine-tuned network is at its best on data like the centre of the prior it was fine-tuned
on. This script takes a finished workflow folder (default: the current directory), reads that
centre from the fit's sidecar (``results/answer/fit.json``: R, sigma_R and beta of both
shells), simulates a new test file there with a new seed (same frame count and electrons per
shell as the folder's config), and runs the same command-line steps as the workflow on it:
``sevi detect`` (all frames, one process), ``sevi accumulate``, ``sevi fit`` and
``sevi nn ensemble`` with the workflow's ensemble members and calibration shards (shrunk, as in
the workflow with ``nn.combine``, towards the fit the network was fine-tuned around). It prints the
per-shell distances to the new truth of the fit, the network's answer and the ensemble alone, and
the ratio network / fit. (Here the truth is the prior's centre itself, so the centre is a perfect
answer and no estimator matches it: this measures how well each method does on data like those it
was trained for, not the "never worse than the centre" guarantee.)

    python benchmarks/bench_nn_vs_fit.py --workdir /path/to/finished/run --seed 7

Everything is written under ``--out`` (default ``results/bench_nn_vs_fit``); nothing in the
workflow's own outputs is touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml


def sevi(*args, log):
    """Run one ``sevi`` subcommand, appending its output to ``log``; stop on failure."""
    cmd = [shutil.which("sevi") or sys.exit("bench_nn_vs_fit: no 'sevi' on PATH (pip install -e .)"), *map(str, args)]
    with open(log, "a") as fh:
        if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
            sys.exit(f"bench_nn_vs_fit: {' '.join(cmd[1:3])} failed, see {log}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="finished workflow folder")
    p.add_argument("--config", type=Path, default=None, help="its config (default WORKDIR/config/config.yaml)")
    p.add_argument("--seed", type=int, default=7, help="simulation seed of the new case")
    p.add_argument("--out", type=Path, default=Path("results/bench_nn_vs_fit"))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    wd = a.workdir.resolve()
    for need in (a.config or wd / "config/config.yaml", wd / "results/answer/fit.json"):
        if not Path(need).is_file():
            sys.exit(f"bench_nn_vs_fit: {need}: no such file (is {wd} a finished workflow folder?)")
    cfg = yaml.safe_load(open(a.config or wd / "config/config.yaml"))
    sim, nn = cfg["simulation"], cfg["nn"]
    centre = json.load(open(wd / "results/answer/fit.json"))
    rounds, members = int(nn["finetune"]["rounds"]), int(nn["members"])
    ckpts = ([wd / f"results/nn/finetune/m{m}/round{rounds - 1}/best.pt" for m in range(members)] if rounds
             else [wd / "results/nn/pretrain/run/best.pt"])
    calib = [wd / f"results/nn/finetune/data/calib_{k}.h5" for k in range(int(nn["finetune"]["calib_shards"]))]
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    log.write_text("")
    f = {k: out / k for k in ("frames.h5", "truth.h5", "shard.h5", "electrons.h5", "count_map.npy",
                              "intensity_sum.npy", "fit.h5", "nn.h5", "nn.json")}

    t0 = time.perf_counter()
    sevi("simulate", "--frames", f["frames.h5"], "--truth", f["truth.h5"], "--seed", a.seed,
         "--n-frames", sim["n_frames"], "--electrons-per-shell", *sim["electrons_per_shell"],
         "--detection-loss", sim["detection_loss"], "--R", *centre["R"], "--sigma-R", *centre["sigma_R"],
         "--beta", *(",".join(map(repr, b)) for b in centre["beta"]), "--threads", a.threads,
         "--no-progress", log=log)
    sevi("detect", f["frames.h5"], "--out", f["shard.h5"], "--threads", a.threads, log=log)
    sevi("accumulate", f["shard.h5"], "--electrons", f["electrons.h5"], "--count-map", f["count_map.npy"],
         "--intensity-sum", f["intensity_sum.npy"], log=log)
    sevi("fit", f["electrons.h5"], "--method", cfg["fit"]["method"], "--n-beta", cfg["fit"]["n_beta"],
         "--out", f["fit.h5"], log=log)
    radii = ["--radii-from", f["fit.h5"]] if nn["predict"]["radii"] == "fit" else []
    prior = ["--prior-sidecar", wd / "results/answer/fit.json"] if nn["combine"] else []
    sevi("nn", "ensemble", *ckpts, "--count-map", f["count_map.npy"], "--calib", *calib, "--out", f["nn.h5"],
         "--sidecar", f["nn.json"], "--view", json.dumps(nn["view"]), *radii, *prior, log=log)

    import numpy as np

    from sevi_lib.core.io import read_answer, read_truth
    from sevi_lib.core.score import score, shell_distance

    truth = read_truth(f["truth.h5"])
    print(f"case: centre of the fine-tuning prior ({wd / 'results/answer/fit.json'}), seed {a.seed}, "
          f"{sim['n_frames']} frames, {len(ckpts)} member(s); {time.perf_counter() - t0:.0f} s")
    print(f"{'method':8s} {'d_0':>9s} {'d_1':>9s} {'sum':>9s}")
    rows = {}
    for method in ("fit", "nn"):
        s = score(read_answer(f[f"{method}.h5"]), truth)
        rows[method] = s
        print(f"{method:8s} {s['distance'][0]:9.4f} {s['distance'][1]:9.4f} {s['total']:9.4f}")
    alone = shell_distance(np.asarray(json.load(open(f["nn.json"]))["beta_network"]), truth.beta)
    print(f"{'alone':8s} {alone[0]:9.4f} {alone[1]:9.4f} {alone.sum():9.4f}   (the ensemble without the fit)")
    print(f"ratio nn / fit (sum): {rows['nn']['total'] / rows['fit']['total']:.1f}")


if __name__ == "__main__":
    main()
