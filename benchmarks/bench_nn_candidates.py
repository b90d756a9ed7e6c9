"""Fine-tuning candidates on a finished workflow folder: network alone, and shrunk towards the fit.

Fine-tunes ``--members`` networks (one round, ``--shards`` x 64 maps, ``--epochs`` epochs, Adam
5e-4 cosine, as the default's fine-tuning) from the folder's pretrained network
(``results/nn/pretrain/run/best.pt``) on maps drawn around the fit's answer, for one candidate:

- ``seed<k>``: prior widths k x the seed team's pretraining widths (the old default: ``seed0.25``);
- ``fitse<k>``: widths k x the fit's largest standard error of each coefficient (over shells);
- ``res_<candidate>``: the same prior, the network predicting the residual around the centre
  (``TrainConfig.residual``).

It prints the per-shell distances to the folder's truth (``results/simulate/truth.h5``) of the
fit's answer (the prior centre), of the ensemble alone, of its shrinkage towards the fit
(:func:`sevi_lib.nn.ensemble.ensemble_answer`) and of every member, with the network's weight,
standard errors and pulls for beta_2 and beta_4.

    python benchmarks/bench_nn_candidates.py --workdir RUN res_fitse3 --members 2

Shards and runs go under ``--out`` (default ``results/bench_nn_candidates``); shards are shared by
candidates with the same prior.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("candidate", help="seed<k> | fitse<k> | res_seed<k> | res_fitse<k>")
    p.add_argument("--workdir", type=Path, default=Path("."), help="finished workflow folder (default run)")
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/bench_nn_candidates"))
    a = p.parse_args(argv)

    import torch

    from sevi_lib.core.io import read_truth
    from sevi_lib.core.score import shell_distance
    from sevi_lib.nn.data import ShardDataset
    from sevi_lib.nn.ensemble import ensemble_answer
    from sevi_lib.nn.inference import predict
    from sevi_lib.nn.predict import predict_answer
    from sevi_lib.nn.priors import SEED_BETA_SIGMA
    from sevi_lib.nn.settings import SynthSettings, TrainConfig
    from sevi_lib.nn.synth import write_shard
    from sevi_lib.nn.trainer import train

    torch.set_num_threads(1)
    R = a.workdir.resolve() / "results"
    fit = json.load(open(R / "answer/fit.json"))
    se_fit, b_fit = np.array(fit["se_beta"]), np.array(fit["beta"])
    tb = np.asarray(read_truth(R / "simulate/truth.h5").beta)
    residual = a.candidate.startswith("res_")
    base = a.candidate[4:] if residual else a.candidate
    prior = {"electrons": "map", "electrons_share": [0.4, 0.6], "R_width": 0.01, "beta_truncate": 3.0}
    if base.startswith("fitse"):
        prior["beta_width"] = (float(base[5:]) * se_fit.max(axis=0)).tolist()
    elif base.startswith("seed"):
        prior["beta_width"] = [float(base[4:]) * s for s in SEED_BETA_SIGMA]
    else:
        p.error(f"unknown candidate {a.candidate!r}")
    settings = SynthSettings(prior=prior, view={"name": "fold", "downsample": 4, "scale": 255.0}, n_beta=12)
    t0 = time.perf_counter()

    def shard(split, k):
        path = a.out / base / f"{split}_{k}.h5"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_shard(path, "finetune", 64, seed=0, key=f"exp/{split}/{k}", settings=settings,
                        first_pass=R / "answer/fit.h5",
                        count_map=R / "detect/count_map.npy")
        return path

    val, calib = [shard("val", 0)], [shard("calib", 0)]
    cfg = dict(arch="resnet18", optimizer="adam", lr=5e-4, schedule="cosine", warmup_epochs=0.0, batch_size=16,
               epochs=a.epochs, patience=0, num_workers=0, device="cpu", save_every_epochs=0, progress=False,
               threads=1, init_from=str(R / "nn/pretrain/run/best.pt"), residual=residual)
    count_map = np.load(R / "nn/count_map.npy")
    real, cal = [], []
    for m in range(a.members):
        res = train(TrainConfig(**cfg, seed=m), [shard(f"m{m}", k) for k in range(a.shards)], val,
                    a.out / a.candidate / f"run{m}")
        real.append(predict_answer(res["best_checkpoint"], count_map, device="cpu")[1])
        cal.append(predict(res["best_checkpoint"], calib, device="cpu"))
    ans = ensemble_answer(np.array(real), np.array(cal), ShardDataset(calib).labels(), centre=b_fit)

    def d(b):
        return shell_distance(np.asarray(b)[None], tb[None])[0].round(4).tolist()

    se = np.array(ans["se_network"])[:, :2]
    print(f"{a.candidate}: {a.members} members x {a.epochs} epochs x {a.shards * 64} maps, "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"  fit (prior centre) {d(b_fit)}  network alone {d(ans['beta_network'])}  shrunk {d(ans['beta'])}")
    print(f"  members {[d(b) for b in real]}")
    print(f"  network weight (beta_2, beta_4) {np.round(np.array(ans['weight_network'])[:, :2], 3).tolist()}  "
          f"se {np.round(se, 4).tolist()}  pulls "
          f"{np.round(((np.array(ans['beta_network']) - tb)[:, :2] / se), 2).tolist()}")


if __name__ == "__main__":
    main()
