"""``sevi nn``: the data half of the network method (training itself is ``sevi train``).

``sevi nn synth OUT --stage pretrain|finetune --n N --seed S --key KEY [--prior JSON] [--view JSON]
[--n-beta K] [--first-pass ANSWER] [--first-pass-se FIT_JSON] [--count-map MAP] [--camera CAMERA.json]
[--detector-fraction F]
[--threads T] ...``
    Write one synthesis shard (:func:`sevi_lib.nn.synth.write_shard`); the settings are the
    fields of :class:`sevi_lib.nn.settings.SynthSettings`, one flag each. ``--camera``: the data's
    camera survey (``sevi survey``), the camera of the detector-like samples (default: the
    published camera).
``sevi nn prior --stage ... [--n N] [--prior JSON] [--n-beta K] [--first-pass ANSWER]``
    Draw from a prior and print its acceptance rates and coefficient means (nothing written).
``sevi nn centre-map ELECTRONS --fit-sidecar FIT_JSON --out MAP``
    The count map of the detected electrons shifted by -(x0, z0), the fitted image centre of the
    fit's sidecar, so that the image centre lands on the screen centre: the network's input on
    lab data (:func:`sevi_lib.nn.centre.centre_map_file`; the network does not learn offsets).
``sevi nn predict CHECKPOINT COUNT_MAP --out ANSWER [--view JSON] [--radii-from ANSWER]``
    Apply a trained network to the real (recentred) count map and write an ``Answer`` table,
    one row per shell of the network (:func:`sevi_lib.nn.predict.predict_file`).
``sevi nn ensemble CHECKPOINT ... --count-map MAP --calib SHARD ... --out ANSWER --sidecar JSON
[--prior-sidecar FIT_JSON] [--radii-from ANSWER]``
    The ensemble's Answer: every member predicts the map and the calibration shards; the mean,
    its standard errors (systematic from the calibration shards, spread of the members) and, with
    ``--prior-sidecar``, the mean shrunk towards the prior centre by the weight the calibration
    shards give it (:func:`sevi_lib.nn.predict.ensemble_file`, :mod:`sevi_lib.nn.ensemble`).
``sevi nn gpu-run --lock-dir DIR -- COMMAND ...``
    Run COMMAND on one GPU of its own (:mod:`sevi_lib.nn.gpu_slot`).
``sevi nn run-dir DIR --key TEXT [--inputs FILE ...]``
    Prepare a training run folder (:func:`sevi_lib.nn.rundir.prepare_run_dir`): keep it (so that
    ``sevi train`` resumes from ``last.pt``) if it was prepared with the same key and the same
    input files (path, size, modification time), otherwise empty it.

JSON arguments are the config sections ``nn.<stage>.prior`` and ``nn.view`` (documented in config/README.md).
The fine-tuning prior (``--stage finetune``) has as many shells as the ``--first-pass`` Answer
has rows (any K >= 1); the pretraining prior has two.
No subcommand imports torch while parsing; only ``predict`` and ``ensemble`` do, when they run.
"""

import argparse
import json
import sys

from sevi_lib.cli._settings import add_settings_arguments, settings_from_args
from sevi_lib.core.errors import InputError
from sevi_lib.nn.settings import PRIOR_FIELDS, SynthSettings

_NOT_PRIOR = tuple(f for f in SynthSettings.__dataclass_fields__ if f not in PRIOR_FIELDS)


def _json(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc})") from None


def _add_prior_args(p):
    p.add_argument("--stage", choices=("pretrain", "finetune"), required=True, help="which prior")
    p.add_argument("--first-pass", help="fine-tuning: Answer file whose R and beta centre the prior")
    p.add_argument("--first-pass-se", help="fine-tuning with beta_width_se: the fit's sidecar (JSON) whose se_beta "
                   "set the prior's widths")
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
    s.add_argument("--camera", default=None, metavar="CAMERA.json",
                   help="the data's camera survey (sevi survey): the detector-like samples are rendered with its "
                   "read noise and spot model and detected with it (default: the published camera)")
    s.add_argument("--progress", type=float, default=10.0, metavar="S",
                   help="a progress line (maps, maps/s, ETA) on stderr every S seconds (default 10; 0: none)")
    add_settings_arguments(s, SynthSettings, title="synthesis settings (SynthSettings; the workflow's nn section)")
    s.set_defaults(func=run_synth)

    q = nsub.add_parser("prior", help="draw from a prior and report acceptance rates",
                        description="Draw N parameter sets from the pretraining or fine-tuning prior and print the "
                        "fraction of candidates accepted (physical beta, separated radii) and coefficient means.")
    _add_prior_args(q)
    q.add_argument("--n", type=int, default=1000, help="number of parameter sets (default 1000)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json", action="store_true", help="print JSON")
    add_settings_arguments(q, SynthSettings, title="prior settings (SynthSettings)", skip=_NOT_PRIOR)
    q.set_defaults(func=run_prior)

    m = nsub.add_parser("centre-map", help="count map of detected electrons recentred on the fitted image centre",
                        description="Shift every detected position by -(x0, z0), the image centre the fit found "
                        "(the 'centre' of its JSON sidecar, screen units), and bin them into a 1024 x 1024 count "
                        "map (.npy, written atomically): the network's input, centred as its training maps are.")
    m.add_argument("electrons", help="HDF5 file with a DetectedElectrons table (sevi accumulate --electrons)")
    m.add_argument("--fit-sidecar", required=True, help="the fit's JSON sidecar with \"centre\": [x0, z0]")
    m.add_argument("--out", required=True, help="count map to write (.npy)")
    m.set_defaults(func=run_centre_map)

    r = nsub.add_parser("predict", help="apply a trained network to a count map, write an Answer",
                        description="Transform the real count map with the training view, predict beta of the "
                        "network's shells and write the Answer table, one row per shell (R from --radii-from or "
                        "from the map's radial profile).")
    r.add_argument("checkpoint", help="trained network (.pt)")
    r.add_argument("count_map", help="accumulated count map (.npy, 1024 x 1024, Image[ix, iz])")
    r.add_argument("--out", required=True, help="Answer file to write (HDF5)")
    r.add_argument("--view", type=_json, default=None,
                   help="JSON of the input view (default: the one recorded in the checkpoint; another is refused)")
    r.add_argument("--radii-from", help="Answer file whose R to report (default: from the map)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    r.set_defaults(func=run_predict)

    e = nsub.add_parser("ensemble", help="combine the ensemble's members into one Answer with standard errors",
                        description="Every member predicts the count map and the calibration shards; write the mean "
                        "(shrunk towards the prior centre of --prior-sidecar, if given, by the least-squares weight "
                        "measured on the calibration shards) as an Answer and every number with its standard error "
                        "as JSON.")
    e.add_argument("checkpoints", nargs="+", help="the members' trained networks (.pt)")
    e.add_argument("--count-map", required=True, help="the network's input map (.npy, 1024 x 1024)")
    e.add_argument("--calib", nargs="+", required=True, help="labelled shards no member trained on")
    e.add_argument("--out", required=True, help="Answer file to write (HDF5)")
    e.add_argument("--sidecar", required=True, help="JSON to write: answer, standard errors, every member")
    e.add_argument("--prior-sidecar", help="fit sidecar (JSON) whose beta, the centre the calibration shards were "
                   "drawn around, the answer is shrunk towards")
    e.add_argument("--radii-from", help="Answer file whose R to report (default: from the map)")
    e.add_argument("--view", type=_json, default=None, help="JSON of the input view (default: the checkpoints')")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    e.set_defaults(func=run_ensemble)

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


def run_synth(args):
    from sevi_lib.nn.synth import write_shard

    settings = settings_from_args(SynthSettings, args)
    attrs, prior, view = write_shard(args.out, args.stage, args.n, seed=args.seed, key=args.key, settings=settings,
                                     first_pass=args.first_pass, count_map=args.count_map, camera=args.camera,
                                     first_pass_se=args.first_pass_se,
                                     progress=args.progress or False)
    print(f"{args.out}: {args.n} samples, view {view.to_config()}, prior {prior.name}, "
          f"acceptance {attrs['acceptance']:.3f} (beta {attrs['beta_acceptance']:.3f} per shell, "
          f"radii {attrs['R_acceptance']:.3f})")
    return 0


def run_prior(args):
    from sevi_lib.nn.inputs import stage_prior
    from sevi_lib.nn.priors import summarize

    settings = settings_from_args(SynthSettings, args)
    out = summarize(stage_prior(args.stage, settings, first_pass=args.first_pass, count_map=args.count_map,
                                first_pass_se=args.first_pass_se),
                    args.n, args.seed)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"prior {out['prior']}: {args.n} parameter sets, acceptance {out['acceptance']:.4f} "
              f"(physical beta {out['beta_acceptance']:.4f} per shell, separated radii {out['R_acceptance']:.4f})")
        for j in range(len(out["R_mean"])):
            print(f"  shell {j}: R mean {out['R_mean'][j]:.4f}, beta mean "
                  + " ".join(f"{b:.4g}" for b in out["beta_mean"][j]))
    return 0


def run_centre_map(args):
    from sevi_lib.nn.centre import centre_map_file

    (x0, z0), n = centre_map_file(args.electrons, args.fit_sidecar, args.out)
    print(f"{args.out}: {n} electrons recentred on ({x0:.6f}, {z0:.6f}) = pixel "
          f"({512 + 512 * x0:.2f}, {512 + 512 * z0:.2f})")
    return 0


def run_ensemble(args):
    from sevi_lib.nn.predict import ensemble_file
    from sevi_lib.nn.views import View

    view = None if args.view is None else View.from_config(args.view)
    doc = ensemble_file(args.checkpoints, args.count_map, args.calib, args.out, args.sidecar,
                        prior_sidecar=args.prior_sidecar, radii_from=args.radii_from, view=view, device=args.device)
    for j, R in enumerate(doc["R"]):
        print(f"shell {j}: R = {R:.4f}, beta_2 = {doc['beta'][j][0]:.4f} +- {doc['se'][j][0]:.4f}, "
              f"beta_4 = {doc['beta'][j][1]:.4f} +- {doc['se'][j][1]:.4f} (network alone "
              f"{doc['beta_network'][j][0]:.4f} +- {doc['se_network'][j][0]:.4f}, "
              f"{doc['beta_network'][j][1]:.4f} +- {doc['se_network'][j][1]:.4f}, its weight "
              f"{doc['weight_network'][j][0]:.2f}, {doc['weight_network'][j][1]:.2f}; {doc['M']} members)")
    return 0


def run_predict(args):
    from sevi_lib.nn.predict import predict_file
    from sevi_lib.nn.views import View

    view = None if args.view is None else View.from_config(args.view)
    R, beta = predict_file(args.checkpoint, args.count_map, args.out, view=view, radii_from=args.radii_from,
                           device=args.device)
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


_RUN_DIR_MESSAGES = {"cleared": "settings or inputs changed, starting afresh",
                     "resume": "same settings and inputs, resuming from last.pt"}


def run_run_dir(args):
    from sevi_lib.nn.rundir import prepare_run_dir

    outcome = prepare_run_dir(args.run_dir, args.key, args.inputs)
    if outcome in _RUN_DIR_MESSAGES:
        print(f"{args.run_dir}: {_RUN_DIR_MESSAGES[outcome]}")
    return 0
