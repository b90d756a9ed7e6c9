"""Coverage of the network's standard errors: pulls on maps with known truth.

Takes a finished workflow folder (default: the current directory), synthesises ``--n`` new maps
from its fine-tuning prior (the same settings as its ``calib`` shards, another key, so maps no
member has seen), and treats each as the real map: the ensemble's answer and standard error
(:func:`sevi_lib.nn.ensemble.network_errors`, calibrated on the workflow's ``calib`` shards) give
a pull ``(beta - truth) / se`` per shell and coefficient. It prints the pulls' mean and standard
deviation for beta_2 and beta_4 of every shell (about 0 and 1 when the errors mean what they
say), for the network alone.

    python benchmarks/bench_nn_pulls.py --workdir /path/to/finished/run --n 256

Everything is written under ``--out`` (default ``results/bench_nn_pulls``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="finished workflow folder")
    p.add_argument("--config", type=Path, default=None, help="its config (default WORKDIR/config/config.yaml)")
    p.add_argument("--n", type=int, default=256, help="maps with known truth")
    p.add_argument("--out", type=Path, default=Path("results/bench_nn_pulls"))
    a = p.parse_args(argv)

    import torch

    from sevi_lib.nn.data import ShardDataset
    from sevi_lib.nn.ensemble import network_errors
    from sevi_lib.nn.inference import predict
    from sevi_lib.nn.settings import SynthSettings
    from sevi_lib.nn.synth import write_shard

    torch.set_num_threads(2)
    wd = a.workdir.resolve()
    nn = yaml.safe_load(open(a.config or wd / "config/config.yaml"))["nn"]
    rounds, members = int(nn["finetune"]["rounds"]), int(nn["members"])
    ckpts = [wd / f"results/nn/finetune/m{m}/round{rounds - 1}/best.pt" for m in range(members)]
    calib = [wd / f"results/nn/finetune/data/calib_{k}.h5" for k in range(int(nn["finetune"]["calib_shards"]))]
    a.out.mkdir(parents=True, exist_ok=True)
    test = a.out / "test.h5"
    t0 = time.perf_counter()
    if not test.exists():
        settings = SynthSettings(prior=nn["finetune"]["prior"], view=nn["view"], n_beta=nn["n_beta"])
        first_se = wd / "results/answer/fit.json" if nn["finetune"]["prior"].get("beta_width_se") else None
        write_shard(test, "finetune", a.n, seed=nn["seed"], key="bench/pulls/0", settings=settings,
                    first_pass=wd / "results/answer/fit.h5", count_map=wd / "results/detect/count_map.npy",
                    first_pass_se=first_se)
    labels = ShardDataset(calib).labels()
    truth = ShardDataset([test]).labels()
    calib_preds = np.array([predict(str(c), calib, device="cpu") for c in ckpts])
    test_preds = np.array([predict(str(c), [test], device="cpu") for c in ckpts])  # (M, n, K, N)
    pulls = []
    for i in range(truth.shape[0]):
        err = network_errors(test_preds[:, i], calib_preds, labels)
        pulls.append((err.beta - truth[i]) / err.se)
    pulls = np.array(pulls)
    print(f"{members} members, {labels.shape[0]} calibration maps, {truth.shape[0]} test maps; "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"{'shell':5s} {'coef':6s} {'mean':>7s} {'std':>7s}   (pulls of the network alone; expect 0 +- "
          f"{1 / np.sqrt(truth.shape[0]):.2f}, 1 +- {1 / np.sqrt(2 * truth.shape[0]):.2f})")
    summary = {}
    for j in range(truth.shape[1]):
        for k, name in ((0, "beta_2"), (1, "beta_4")):
            m, s = float(pulls[:, j, k].mean()), float(pulls[:, j, k].std())
            summary[f"shell{j}_{name}"] = {"mean": m, "std": s}
            print(f"{j:5d} {name:6s} {m:7.3f} {s:7.3f}")
    (a.out / "pulls.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
