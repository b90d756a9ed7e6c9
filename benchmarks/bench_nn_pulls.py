"""Coverage and accuracy of the network's answer: pulls and distances on maps with known truth.

Takes a finished workflow folder (default: the current directory), synthesises ``--n`` new maps
from its fine-tuning prior (the same settings as its ``calib`` shards, another key, so maps no
member has seen), and treats each as the real map, with the ensemble calibrated on the
workflow's ``calib`` shards. Per shell it prints the mean distance to the truth
(:func:`sevi_lib.core.score.shell_distance`) of

- the prior centre c (the fit's answer of the workflow's map, the same for every test map);
- the network alone (the ensemble mean, ``beta_network``);
- the inverse-variance combination with the centre used before 2026-12-07
  (``w p + (1 - w) c``, ``w = se_fit^-2 / (se^-2 + se_fit^-2)``, the fit's ``se_beta``);
- the answer shrunk towards the centre (:func:`sevi_lib.nn.ensemble.shrink_to_centre`, ``nn.h5``),

the fraction of maps on which each is farther from the truth than the centre, the network's
weight s for beta_2 and beta_4, and the pulls ``(beta - truth) / se`` of the network alone and
of the shrunk answer (mean about 0 and standard deviation about 1 when the errors mean what
they say).

On these maps the centre is independent of the map's noise (the truth is drawn around it); on
the real map it is the fit's answer of that very map. What this benchmark measures is the
calibration maps' situation, not the real map's (``sevi_lib.nn.ensemble``).

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

    from sevi_lib.core.score import shell_distance
    from sevi_lib.nn.data import ShardDataset
    from sevi_lib.nn.ensemble import network_errors, shrink_to_centre
    from sevi_lib.nn.inference import predict
    from sevi_lib.nn.settings import SynthSettings
    from sevi_lib.nn.synth import read_shard_attrs, write_shard

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
    centre = np.asarray(read_shard_attrs(test)["prior_json"]["beta_mu"])
    calib_centre = np.asarray(read_shard_attrs(calib[0])["prior_json"]["beta_mu"])
    fit = json.load(open(wd / "results/answer/fit.json"))
    se_fit = np.asarray(fit["se_beta"])[np.argsort(fit["R"])]
    calib_preds = np.array([predict(str(c), calib, device="cpu") for c in ckpts])
    test_preds = np.array([predict(str(c), [test], device="cpu") for c in ckpts])  # (M, n, K, N)
    calib_mean = calib_preds.mean(axis=0)
    answers = {k: [] for k in ("centre", "network alone", "inverse variance (before)", "shrunk (nn.h5)")}
    pulls = {"network alone": [], "shrunk (nn.h5)": []}
    s = None
    for i in range(truth.shape[0]):
        err = network_errors(test_preds[:, i], calib_preds, labels)
        shrunk = shrink_to_centre(err, centre, calib_mean, labels, calib_centre)
        w = se_fit ** -2 / (err.se ** -2 + se_fit ** -2)
        for k, b in zip(answers, (centre, err.beta, w * err.beta + (1 - w) * centre, shrunk.beta)):
            answers[k].append(shell_distance(b, truth[i]))
        pulls["network alone"].append((err.beta - truth[i]) / err.se)
        pulls["shrunk (nn.h5)"].append((shrunk.beta - truth[i]) / shrunk.se)
        s = shrunk.s
    n = truth.shape[0]
    dist = {k: np.array(v) for k, v in answers.items()}  # (n, K)
    print(f"{members} members, {labels.shape[0]} calibration maps, {n} test maps; {time.perf_counter() - t0:.0f} s")
    print("per shell: mean distance to the truth; its mean difference from the centre's (+- standard error, "
          "paired over the maps); fraction of maps farther than the centre")
    summary = {"n": n, "n_calib": int(labels.shape[0]), "members": members, "distance": {}, "minus_centre": {},
               "farther": {}, "weight_network": s.tolist(), "pulls": {}}
    for k, d in dist.items():
        diff = d - dist["centre"]
        mean, dm, de = d.mean(axis=0), diff.mean(axis=0), diff.std(axis=0, ddof=1) / np.sqrt(n)
        farther = (diff > 0).mean(axis=0)
        summary["distance"][k], summary["farther"][k] = mean.tolist(), farther.tolist()
        summary["minus_centre"][k] = {"mean": dm.tolist(), "se": de.tolist()}
        print(f"  {k:27s} " + " / ".join(f"{m:.5f}" for m in mean)
              + "   - centre: " + " / ".join(f"{m:+.6f} +- {e:.6f}" for m, e in zip(dm, de))
              + "   farther: " + " / ".join(f"{f:.2f}" for f in farther))
    print("network's weight s (beta_2, beta_4) per shell: " + "; ".join(f"{a:.3f}, {b:.3f}" for a, b in s[:, :2]))
    print(f"pulls: mean and standard deviation (expect 0 +- {1 / np.sqrt(n):.2f}, 1 +- {1 / np.sqrt(2 * n):.2f})")
    print(f"{'shell':5s} {'coef':6s} " + " ".join(f"{k:>22s}" for k in pulls))
    for j in range(truth.shape[1]):
        for k, name in ((0, "beta_2"), (1, "beta_4")):
            cells = []
            for key, v in pulls.items():
                x = np.array(v)[:, j, k]
                summary["pulls"][f"{key}/shell{j}_{name}"] = {"mean": float(x.mean()), "std": float(x.std())}
                cells.append(f"{x.mean():9.3f} {x.std():9.3f}   ")
            print(f"{j:5d} {name:6s} " + " ".join(cells))
    (a.out / "pulls.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
