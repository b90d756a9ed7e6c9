"""``sevi nn``: the data half of the network method (training itself is ``sevi train``).

``sevi nn synth OUT --stage pretrain|finetune --n N --seed S --key KEY [--prior JSON] [--view JSON]
[--first-pass ANSWER] [--count-map MAP] [--detector-fraction F] [--threads T]``
    Write one synthesis shard (:func:`sevi_lib.nn.synth.synthesize`).
``sevi nn prior --stage ... [--n N]``
    Draw from a prior and print its acceptance rates and coefficient means (nothing written).
``sevi nn predict CHECKPOINT COUNT_MAP --out ANSWER [--view JSON] [--radii-from ANSWER]``
    Apply a trained network to the real count map and write an ``Answer`` table.
``sevi nn gpu-run --lock-dir DIR -- COMMAND ...``
    Run COMMAND on one GPU of its own (:mod:`sevi_lib.nn.gpu_slot`).
``sevi nn run-dir DIR --key TEXT [--inputs FILE ...]``
    Prepare a training run folder: keep it (so that ``sevi train`` resumes from ``last.pt``)
    if it was prepared with the same key and the same input files (path, size, modification
    time), otherwise empty it, so that changed settings or data start a fresh run.

JSON arguments are the config sections ``nn.<stage>.prior`` and ``nn.view`` (see the README).
"""

import argparse
import json
import sys

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import read_answer, read_map, write_answer, write_text


def _json(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc})") from None


def _add_prior_args(p):
    p.add_argument("--stage", choices=("pretrain", "finetune"), required=True, help="which prior")
    p.add_argument("--prior", type=_json, default={}, help="JSON of the prior's config section (defaults: README)")
    p.add_argument("--n-beta", type=int, default=12, help="beta coefficients per shell (default 12)")
    p.add_argument("--first-pass", help="fine-tuning: Answer file whose R and beta centre the prior")
    p.add_argument("--count-map", help='with electrons "map": the real count map (.npy) whose total sets the counts')


def register(sub):
    p = sub.add_parser("nn", help="network data: synthesis shards, priors, prediction, GPU slots",
                       description=__doc__.split("\n\n")[0])
    nsub = p.add_subparsers(dest="nn_command", metavar="NN_COMMAND", required=True)

    s = nsub.add_parser("synth", help="write one synthesis shard (HDF5)",
                        description="Draw N physical parameter sets from a prior, simulate their count maps "
                        "with the numba simulator (a fraction through the renderer and detector), apply the input "
                        "view and write inputs, labels, R, sigma_R, n_electrons atomically to OUT.")
    s.add_argument("out", help="output shard (HDF5)")
    _add_prior_args(s)
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    s.add_argument("--key", required=True, help="shard name mixed into the seed, e.g. pretrain/round0/3")
    s.add_argument("--view", type=_json, default={}, help='JSON of the input view, e.g. \'{"name": "fold", "downsample": 4}\'')
    s.add_argument("--detector-fraction", type=float, default=0.0,
                   help="fraction of samples rendered into frames and detected (default 0)")
    s.add_argument("--electrons-per-frame", type=float, default=80.0,
                   help="electrons per frame of the detector-like samples (default 80)")
    s.add_argument("--detector-params", type=_json, default={},
                   help="JSON of DetectorParams fields for the detector-like samples (default: detector defaults)")
    s.add_argument("--threads", type=int, default=1, help="numba threads (default 1)")
    s.add_argument("--progress", action="store_true", help="progress bar")
    s.set_defaults(func=run_synth)

    q = nsub.add_parser("prior", help="draw from a prior and report acceptance rates",
                        description="Draw N parameter sets from the pretraining or fine-tuning prior and print the "
                        "fraction of candidates accepted (physical beta, separated radii) and coefficient means.")
    _add_prior_args(q)
    q.add_argument("--n", type=int, default=1000, help="number of parameter sets (default 1000)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_prior)

    r = nsub.add_parser("predict", help="apply a trained network to a count map, write an Answer",
                        description="Transform the real count map with the training view, predict beta of both "
                        "shells and write the Answer table (R from --radii-from or from the map's radial profile).")
    r.add_argument("checkpoint", help="trained network (.pt)")
    r.add_argument("count_map", help="accumulated count map (.npy, 1024 x 1024, Image[ix, iz])")
    r.add_argument("--out", required=True, help="Answer file to write (HDF5)")
    r.add_argument("--view", type=_json, default=None,
                   help="JSON of the input view (default: the one recorded in the checkpoint; another is refused)")
    r.add_argument("--radii-from", help="Answer file whose R to report (default: from the map)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    r.set_defaults(func=run_predict)

    g = nsub.add_parser("gpu-run", help="run a command on a GPU of its own",
                        description="Take the first free per-device lock in LOCK_DIR, set CUDA_VISIBLE_DEVICES to "
                        "that device and run COMMAND; without GPUs, run it unchanged. See sevi_lib.nn.gpu_slot.")
    g.add_argument("--lock-dir", required=True, help="folder of the per-device lock files")
    g.add_argument("cmd", nargs="+", metavar="COMMAND", help="command (put it after --)")
    g.set_defaults(func=run_gpu)

    d = nsub.add_parser("run-dir", help="keep a run folder for resuming, or empty it if settings/inputs changed",
                        description="Keep RUN_DIR if RUN_DIR/run_key.json records the same --key and the same "
                        "input files (path, size, mtime); otherwise delete its contents. Then record them.")
    d.add_argument("run_dir")
    d.add_argument("--key", required=True, help="text identifying the run's settings (e.g. its training options)")
    d.add_argument("--inputs", nargs="*", default=[], help="files the run reads (shards)")
    d.set_defaults(func=run_run_dir)


def read_first_pass(path, n_beta):
    """R (2,) and beta (2, n_beta) of an Answer file (beta cut or zero-padded to n_beta)."""

    table = read_answer(path)
    if len(table) != 2:
        raise InputError(f"{path}: the first-pass Answer has {len(table)} rows, expected 2 shells")
    beta = np.zeros((2, n_beta))
    b = np.asarray(table["beta"], dtype=np.float64).reshape(2, -1)
    beta[:, : min(n_beta, b.shape[1])] = b[:, :n_beta]
    return np.asarray(table["R"], dtype=np.float64), beta


def build_prior(args):
    """The prior selected by ``--stage`` and its arguments."""
    from sevi_lib.nn.priors import finetune_prior, pretrain_prior

    total = read_map(args.count_map).sum() if args.count_map else None
    if args.stage == "pretrain":
        return pretrain_prior(args.prior, n_beta=args.n_beta, map_total=total)
    if not args.first_pass:
        raise InputError("the fine-tuning prior needs --first-pass ANSWER (the estimate it is centred on)")
    R, beta = read_first_pass(args.first_pass, args.n_beta)
    return finetune_prior(R, beta, args.prior, map_total=total)


def run_synth(args):
    from sevi_lib.nn.synth import synthesize
    from sevi_lib.nn.views import View

    prior = build_prior(args)
    view = View.from_config(args.view)
    attrs = synthesize(args.out, prior, view, args.n, args.seed, args.key,
                       detector_fraction=args.detector_fraction, electrons_per_frame=args.electrons_per_frame,
                       detector_params=args.detector_params, threads=args.threads, progress=args.progress)
    print(f"{args.out}: {args.n} samples, view {view.to_config()}, prior {prior.name}, "
          f"acceptance {attrs['acceptance']:.3f} (beta {attrs['beta_acceptance']:.3f} per shell, "
          f"radii {attrs['R_acceptance']:.3f})")
    return 0


def run_prior(args):
    from sevi_lib.nn.priors import sample

    prior = build_prior(args)
    d = sample(prior, args.n, np.random.default_rng(args.seed))
    out = {
        "prior": prior.name,
        "n": args.n,
        "acceptance": d.acceptance,
        "beta_acceptance": d.beta_acceptance,
        "R_acceptance": d.R_acceptance,
        "beta_mean": d.beta.mean(axis=0).tolist(),
        "R_mean": d.R.mean(axis=0).tolist(),
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"prior {prior.name}: {args.n} parameter sets, acceptance {d.acceptance:.4f} "
              f"(physical beta {d.beta_acceptance:.4f} per shell, separated radii {d.R_acceptance:.4f})")
        for j in range(2):
            print(f"  shell {j}: R mean {out['R_mean'][j]:.4f}, beta mean "
                  + " ".join(f"{b:.4g}" for b in out["beta_mean"][j]))
    return 0


def run_predict(args):
    from sevi_lib.nn.predict import predict_answer
    from sevi_lib.nn.views import View

    m = read_map(args.count_map)
    R = read_first_pass(args.radii_from, 1)[0] if args.radii_from else None
    view = None if args.view is None else View.from_config(args.view)
    R, beta = predict_answer(args.checkpoint, m, view, R=R, device=args.device)
    write_answer(args.out, R, beta)
    for j in range(len(R)):
        print(f"shell {j}: R = {R[j]:.4f}, beta = " + " ".join(f"{b:.4f}" for b in beta[j]))
    return 0


def run_gpu(args):
    from sevi_lib.nn.gpu_slot import run_on_slot

    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        raise InputError("gpu-run: no command given")
    sys.stdout.flush()
    return run_on_slot(cmd, args.lock_dir)


def run_run_dir(args):
    import os
    import shutil
    from pathlib import Path


    run_dir = Path(args.run_dir)
    files = []
    for f in sorted(args.inputs):
        try:
            st = os.stat(f)
        except OSError as exc:
            raise InputError(f"{f}: cannot read ({exc.strerror})") from None
        files.append([str(f), st.st_size, st.st_mtime_ns])
    record = json.dumps({"key": args.key, "inputs": files}, indent=1, sort_keys=True)
    key_file = run_dir / "run_key.json"
    if run_dir.exists() and not (key_file.exists() and key_file.read_text() == record):
        for child in run_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        print(f"{run_dir}: settings or inputs changed, starting afresh")
    elif (run_dir / "last.pt").exists():
        print(f"{run_dir}: same settings and inputs, resuming from last.pt")
    write_text(key_file, record)
    return 0
