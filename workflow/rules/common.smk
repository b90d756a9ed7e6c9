# Shared helpers: where the frames and the truth come from, which answers exist, final targets,
# the start-of-run checks of the input files, and the one way a config section reaches a command.
#
# test_images empty -> the embedded default: `simulate` synthesises results/simulate/frames.h5
# and its truth results/simulate/truth.h5 from the config's `simulation:` section, and every
# answer is scored against that truth. test_images set -> those frames; scored only if `truth`
# is set too.

import json
import os
import shlex
import sys

from sevi_lib._workflow import check_input_file, file_identity
from sevi_lib.core.errors import InputError

SIM_FRAMES = "results/simulate/frames.h5"
SIM_TRUTH = "results/simulate/truth.h5"


def _refuse(message):
    """One line `sevi: error: ...` and exit status 2, before any job runs."""
    print(f"sevi: error: {message}", file=sys.stderr)
    sys.exit(2)


#: whether the fit's answer is corrected for the detector's response (calibrate.smk)
CALIBRATED = bool(config["calibrate"]["enabled"])

#: method name -> its Answer file (the methods of config["answer"]["methods"] only); the fit's is
#: the calibrated one when calibration is on
ANSWERS = {
    method: path
    for method, path in {
        "fit": "results/answer/fit_calibrated.h5" if CALIBRATED else "results/answer/fit.h5",
        "nn": "results/answer/nn.h5",
    }.items()
    if method in config["answer"]["methods"]
}

#: rows of results/score.tsv: every answer, and the uncorrected fit beside the calibrated one
SCORED = dict(ANSWERS)
if CALIBRATED and "fit" in ANSWERS:
    SCORED = {"fit": ANSWERS["fit"], "fit_uncorrected": "results/answer/fit.h5",
              **{m: p for m, p in ANSWERS.items() if m != "fit"}}
if config["answer"]["method"] not in ANSWERS:
    _refuse(f"config answer.method: {config['answer']['method']!r} is not among answer.methods {list(ANSWERS)}")

# the user's files are checked once, here, so that a missing or wrong file stops the run at once
for _key, _datasets in (("test_images", ["FinalImage"]), ("truth", ["Truth", "DistributionParameters"])):
    if config.get(_key):
        try:
            check_input_file(_key, config[_key], _datasets)
        except InputError as exc:
            _refuse(exc)


def test_images():
    """The test file: config["test_images"], or the synthesised default."""
    return config.get("test_images") or SIM_FRAMES


def truth_file():
    """The truth to score against: config["truth"], the default's own truth, or None."""
    if config.get("truth"):
        return config["truth"]
    return None if config.get("test_images") else SIM_TRUTH


def frames_identity():
    """Identity of a user's frames file (size + hash of its ends; '' for the simulated default).

    A detection param: another file at the same path, or new contents, reruns detection and
    everything after it. The simulated default needs none (it is an output of `simulate`).
    """
    return file_identity(config["test_images"]) if config.get("test_images") else ""


def settings_flags(mapping, skip=()):
    """A config section as `sevi` flags: `--field-name value` per key (the one way in).

    Scalars as written (booleans true/false), lists and mappings as JSON; every value quoted
    for the shell. The command builds its settings dataclass from exactly these flags
    (sevi_lib.cli._settings), so a key the dataclass does not know is refused there too.
    """
    flags = []
    for key, value in sorted(mapping.items()):
        if key in skip or value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple, dict)):
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        else:
            text = str(value)
        flags.append(f"--{key.replace('_', '-')} {shlex.quote(text)}")
    return " ".join(flags)


def granted_cores():
    """The cores Snakemake was given (`--cores`), or None where the count is not a plain number
    (cluster executors: each SLURM job gets the CPUs it asks for)."""
    try:
        cores = workflow.cores
    except Exception:  # a cluster executor defines no total core count (WorkflowError)
        return None
    return cores if isinstance(cores, int) and 0 < cores < 4096 else None


def detect_threads():
    """Threads of one detection shard: `detect.threads`, or with 0 the cores Snakemake was given
    shared out over the shards (rounded up), so that `--cores 16` keeps 16 cores busy with 10
    shards (2 threads each, 8 at a time) instead of 10 busy and 6 idle. One on a cluster."""
    threads = int(config["detect"]["threads"])
    if threads > 0:
        return threads
    return max(1, -(-(granted_cores() or 1) // int(config["detect"]["shards"])))


#: Most threads of the survey: its spot sample (at most 1000 frames) is searched 64 frames at a
#: time, so more threads than this find too little to do.
SURVEY_THREADS_MAX = 8


def survey_threads():
    """Threads of the survey, which runs alone before detection (every shard waits for it): the
    cores Snakemake was given, at most SURVEY_THREADS_MAX; 2 on a cluster (a job's CPUs must fit
    a node, and CI's throwaway node has 2)."""
    return min(granted_cores() or 2, SURVEY_THREADS_MAX)


def final_targets():
    """Everything `rule all` asks for."""
    targets = [
        "results/final.h5",
        "results/detect/count_map.png",
        "results/detect/camera.png",
        "results/detect/summary.txt",
        *ANSWERS.values(),
        "results/report.md",
    ]
    if "fit" in ANSWERS:
        targets += ["results/answer/fit.png", "results/answer/spectrum.tsv", "results/answer/spectrum.png"]
        if CALIBRATED:
            targets.append("results/answer/fit.h5")
    if truth_file():
        targets.append("results/score.tsv")
    return targets


# -------------------- helpers of simulate.smk: the embedded default (functions live here: snakemake --lint)


def simulation_flags():
    """`sevi simulate` flags: the section's values (SimulationSettings) and its shells, per shell."""
    shells = SIM["shells"]
    per_shell = {
        "R": [float(s["R"]) for s in shells],
        "sigma_R": [float(s["sigma_R"]) for s in shells],
        "beta": [[float(b) for b in s["beta"]] for s in shells],
    }
    return settings_flags({**SIM, **per_shell}, skip=SIM_LAYOUT_KEYS)


# -------------------- helpers of nn.smk: the network method (functions live here: snakemake --lint)


def _nn_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _nn_rounds(stage):
    return int(NN[stage].get("rounds", 1)) if stage == "finetune" else 1


def nn_shards(stage, split):
    """Shard paths of one stage and split ('val', 'calib', 'round<r>' or, fine-tuning, 'm<m>_round<r>')."""
    key = {"val": "val_shards", "calib": "calib_shards"}.get(split, "shards")
    return [f"results/nn/{stage}/data/{split}_{k}.h5" for k in range(int(NN[stage][key]))]


def nn_members():
    """Number of ensemble members: nn.members fine-tuned networks (one, the pretrained, without rounds)."""
    return int(NN["members"]) if _nn_rounds("finetune") else 1


def nn_member_checkpoints():
    """The ensemble's networks: each member's last fine-tuning round (the pretrained one without rounds)."""
    rounds = _nn_rounds("finetune")
    if rounds == 0:
        return ["results/nn/pretrain/run/best.pt"]
    return [f"results/nn/finetune/m{m}/round{rounds - 1}/best.pt" for m in range(nn_members())]


def nn_combines():
    """Whether the ensemble is shrunk towards the prior centre (nn.combine, with the fit's answer as centre)."""
    return bool(NN["combine"]) and NN["finetune"]["centre"] == "fit"


def nn_first_pass_answer():
    return NN_FIT_ANSWER if NN["finetune"]["centre"] == "fit" else "results/nn/pretrain/answer.h5"


def _nn_uses_map(stage):
    return NN[stage]["prior"].get("electrons") == "map"


def _nn_synth_input(wildcards):
    out = {}
    if _nn_uses_map(wildcards.stage):
        # only the map's total electron count is read here, which recentring does not change:
        # the detected map keeps pretraining independent of the fit
        out["count_map"] = "results/detect/count_map.npy"
    if wildcards.stage == "finetune":
        out["first_pass"] = nn_first_pass_answer()
        if float(NN["finetune"]["prior"].get("beta_width_se") or 0) > 0:
            out["first_pass_se"] = "results/answer/fit.json"
    return out


def _nn_train_settings(stage):
    """Training settings of a stage: nn.train overridden by nn.<stage>.train."""
    settings = dict(NN["train"])
    settings.update(NN[stage].get("train") or {})
    return settings


def _nn_synth_settings(stage):
    """The SynthSettings fields of a stage's synthesis (threads come from the rule)."""
    return {
        "prior": NN[stage]["prior"],
        "view": NN["view"],
        "n_beta": NN["n_beta"],
        "detector_fraction": NN["detector_fraction"],
        "electrons_per_frame": NN["electrons_per_frame"],
        "detector_params": NN.get("detector_params") or {},
    }


def _nn_flag(flag, input, name):
    """`--flag PATH` (quoted) if the rule has the named input, else nothing."""
    return f"{flag} {shlex.quote(str(input[name]))}" if name in input.keys() else ""


def _nn_samples(wildcards):
    key = {"val": "val_samples_per_shard", "calib": "calib_samples_per_shard"}.get(wildcards.split,
                                                                                  "samples_per_shard")
    return int(NN[wildcards.stage][key])


def _nn_finetune_init(wildcards):
    r = int(wildcards.r)
    return "results/nn/pretrain/run/best.pt" if r == 0 else f"results/nn/finetune/m{wildcards.m}/round{r - 1}/best.pt"


def _nn_member_settings(m):
    """Fine-tuning settings of member m: the stage's, with the training seed nn.train.seed + m."""
    settings = _nn_train_settings("finetune")
    settings["seed"] = int(settings.get("seed", 0)) + int(m)
    return settings


# -------------------- helpers of report.smk: the report (functions live here: snakemake --lint)


def _report_runs():
    """Training run folders (name -> folder) of the network method, if it runs."""
    if "nn" not in ANSWERS:
        return {}
    runs = {"pretrain": "results/nn/pretrain/run"}
    runs.update({f"member {m} round {r}": f"results/nn/finetune/m{m}/round{r}"
                 for m in range(nn_members()) for r in range(_nn_rounds("finetune"))})
    return runs


def _report_input(wildcards):
    out = {
        "answers": list(SCORED.values()),
        "summary": "results/detect/summary.txt",
        "count_map_png": "results/detect/count_map.png",
        "camera_png": "results/detect/camera.png",
        "final": "results/final.h5",
        "metrics": [f"{d}/metrics.csv" for d in _report_runs().values()],
    }
    if "nn" in ANSWERS:
        out.update(nn_sidecar="results/answer/nn.json")
    if "fit" in ANSWERS:
        out.update(sidecar="results/answer/fit.json", fit_png="results/answer/fit.png")
        if CALIBRATED:
            out.update(calibration="results/answer/fit_calibrated.json")
    if truth_file():
        out.update(truth=truth_file(), score="results/score.tsv")
    return out


def _flag(name, key):
    """`--name PATH` when the report's input has `key`, else nothing (paths quoted)."""
    return lambda w, input: f"--{name} {shlex.quote(input[key])}" if key in input.keys() else ""
