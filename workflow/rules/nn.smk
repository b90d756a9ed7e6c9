# The network method (issue 5): synthesis shards -> pretraining -> fine-tuning rounds -> answer.
#
#   synth           one shard: results/nn/{stage}/data/{split}_{k}.h5
#                   stage pretrain: split val, round0; stage finetune: split val, round0 .. round{R-1}
#   pretrain        sevi train on the pretraining shards          -> results/nn/pretrain/run/best.pt
#   nn_first_pass   pretrained network on the real count map      -> results/nn/pretrain/answer.h5
#   finetune        round r starts from round r-1 (round 0 from the pretrained network), on that
#                   round's fresh shards drawn around the first-pass estimate (the fit's answer or
#                   the pretrained network's, nn.finetune.centre)  -> results/nn/finetune/round{r}/best.pt
#   predict         final network on the real count map           -> results/answer/nn.h5
#
# Training rules take `resources: gpu=1`; `sevi nn gpu-run` gives each a device of its own via
# per-device lock files (sevi_lib.nn.gpu_slot), so `--resources gpu=4` runs four on four GPUs.
# Every setting goes through params: training settings only into the training rules, so that
# editing one reruns training and prediction, not synthesis (with nn.finetune.centre: fit).
# Settings reach the commands one way: one `--field-name value` flag per field of the command's
# settings dataclass (SynthSettings for `sevi nn synth`, TrainConfig for `sevi train`), rendered
# by settings_flags. Every path is quoted (`:q`, or shlex.quote where a param builds a flag).

import json
import shlex

if "settings_flags" not in globals():

    def settings_flags(mapping, skip=()):
        """A config section as `sevi` flags: `--field-name value` per key (the one way in).

        Scalars as written (booleans true/false), lists and mappings as JSON; every value quoted
        for the shell; None values are left out.
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


NN = config["nn"]
NN_COUNT_MAP = "results/detect/count_map.npy"
NN_FIT_ANSWER = "results/answer/fit.h5"
NN_STAGES = ("pretrain", "finetune")


def _nn_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _nn_rounds(stage):
    return int(NN[stage].get("rounds", 1)) if stage == "finetune" else 1


def nn_shards(stage, split):
    """Shard paths of one stage and split ('val' or 'round<r>')."""
    key = "val_shards" if split == "val" else "shards"
    return [f"results/nn/{stage}/data/{split}_{k}.h5" for k in range(int(NN[stage][key]))]


def nn_final_checkpoint():
    rounds = _nn_rounds("finetune")
    if rounds == 0:
        return "results/nn/pretrain/run/best.pt"
    return f"results/nn/finetune/round{rounds - 1}/best.pt"


def nn_first_pass_answer():
    return NN_FIT_ANSWER if NN["finetune"]["centre"] == "fit" else "results/nn/pretrain/answer.h5"


def _nn_uses_map(stage):
    return NN[stage]["prior"].get("electrons") == "map"


def _nn_synth_input(wildcards):
    out = {}
    if _nn_uses_map(wildcards.stage):
        out["count_map"] = NN_COUNT_MAP
    if wildcards.stage == "finetune":
        out["first_pass"] = nn_first_pass_answer()
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
    key = "val_samples_per_shard" if wildcards.split == "val" else "samples_per_shard"
    return int(NN[wildcards.stage][key])


wildcard_constraints:
    stage="pretrain|finetune",
    split=r"val|round\d+",
    k=r"\d+",
    r=r"\d+",


rule synth:
    input:
        unpack(_nn_synth_input),
    output:
        "results/nn/{stage}/data/{split}_{k}.h5",
    params:
        n=_nn_samples,
        seed=NN["seed"],
        settings=lambda w: settings_flags(_nn_synth_settings(w.stage)),
        first_pass=lambda w, input: _nn_flag("--first-pass", input, "first_pass"),
        count_map=lambda w, input: _nn_flag("--count-map", input, "count_map"),
    threads: NN["synth_threads"]
    log:
        "results/logs/nn/synth_{stage}_{split}_{k}.log",
    benchmark:
        "results/benchmarks/nn/synth_{stage}_{split}_{k}.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi nn synth {output:q} --stage {wildcards.stage} --n {params.n} "
        "--seed {params.seed} --key {wildcards.stage}/{wildcards.split}/{wildcards.k} {params.settings} "
        "{params.first_pass} {params.count_map} --threads {threads} > {log:q} 2>&1"


rule pretrain:
    input:
        train=nn_shards("pretrain", "round0"),
        val=nn_shards("pretrain", "val"),
    output:
        best="results/nn/pretrain/run/best.pt",
        metrics="results/nn/pretrain/run/metrics.csv",
    params:
        run_dir="results/nn/pretrain/run",
        settings=settings_flags(_nn_train_settings("pretrain")),
        key=_nn_json(_nn_train_settings("pretrain")),
        locks=NN["gpu_lock_dir"],
    threads: NN["train_threads"]
    resources:
        gpu=1,
    log:
        "results/logs/nn/pretrain.log",
    benchmark:
        "results/benchmarks/nn/pretrain.tsv"
    shell:
        "(sevi nn run-dir {params.run_dir:q} --key {params.key:q} --inputs {input:q} && "
        "sevi nn gpu-run --lock-dir {params.locks:q} -- sevi train --train {input.train:q} --val {input.val:q} "
        "--run-dir {params.run_dir:q} {params.settings} --threads {threads} --progress false) > {log:q} 2>&1"


rule nn_first_pass:
    input:
        checkpoint="results/nn/pretrain/run/best.pt",
        count_map=NN_COUNT_MAP,
    output:
        "results/nn/pretrain/answer.h5",
    params:
        view=_nn_json(NN["view"]),
        device=NN["predict"]["device"],
    log:
        "results/logs/nn/first_pass.log",
    shell:
        "sevi nn predict {input.checkpoint:q} {input.count_map:q} --out {output:q} --view {params.view:q} "
        "--device {params.device:q} > {log:q} 2>&1"


def _nn_finetune_init(wildcards):
    r = int(wildcards.r)
    return "results/nn/pretrain/run/best.pt" if r == 0 else f"results/nn/finetune/round{r - 1}/best.pt"


rule finetune:
    input:
        init=_nn_finetune_init,
        train=lambda w: nn_shards("finetune", f"round{w.r}"),
        val=nn_shards("finetune", "val"),
    output:
        best="results/nn/finetune/round{r}/best.pt",
        metrics="results/nn/finetune/round{r}/metrics.csv",
    params:
        run_dir="results/nn/finetune/round{r}",
        settings=settings_flags(_nn_train_settings("finetune")),
        key=_nn_json(_nn_train_settings("finetune")),
        locks=NN["gpu_lock_dir"],
    threads: NN["train_threads"]
    resources:
        gpu=1,
    log:
        "results/logs/nn/finetune_round{r}.log",
    benchmark:
        "results/benchmarks/nn/finetune_round{r}.tsv"
    shell:
        "(sevi nn run-dir {params.run_dir:q} --key {params.key:q} --inputs {input:q} && "
        "sevi nn gpu-run --lock-dir {params.locks:q} -- sevi train --train {input.train:q} --val {input.val:q} "
        "--run-dir {params.run_dir:q} {params.settings} --init-from {input.init:q} --threads {threads} "
        "--progress false) > {log:q} 2>&1"


rule predict:
    input:
        unpack(lambda w: {"checkpoint": nn_final_checkpoint(), "count_map": NN_COUNT_MAP,
                          **({"radii": NN_FIT_ANSWER} if NN["predict"]["radii"] == "fit" else {})}),
    output:
        "results/answer/nn.h5",
    params:
        view=_nn_json(NN["view"]),
        device=NN["predict"]["device"],
        radii=lambda w, input: _nn_flag("--radii-from", input, "radii"),
    log:
        "results/logs/nn/predict.log",
    shell:
        "sevi nn predict {input.checkpoint:q} {input.count_map:q} --out {output:q} --view {params.view:q} "
        "--device {params.device:q} {params.radii} > {log:q} 2>&1"
